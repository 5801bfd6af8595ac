# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the health check (roles/smoke_test): what the inventory expects of the answer
(`healthcheck_expect`, placeholders filled in), whether an answer meets it, and what to say
when it does not."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

# Placeholders in healthcheck_expect values (single braces, so Jinja leaves them alone).
PLACEHOLDERS = ("{revision}", "{version}")
BODY_BYTES = 200


def health_expectations(expect, revision="", version=""):
    """{field: wanted value} with `{revision}` (the commit being checked) and `{version}` filled in."""
    if expect in (None, ""):
        return {}
    if not isinstance(expect, dict):
        raise ValueError("healthcheck_expect must be a mapping of response field to value, got %r" % (expect,))
    out = {}
    for field, value in expect.items():
        text = "" if value is None else str(value)
        out[str(field)] = text.replace("{revision}", str(revision or "")).replace("{version}", str(version or ""))
    return out


def health_mismatches(answer, wanted):
    """What in an answer (the uri result) does not meet `wanted`: [] when it is a 200 meeting it."""
    answer = answer or {}
    status = answer.get("status", -1)
    if status != 200:
        return ["status %s, expected 200" % status]
    if not wanted:
        return []
    body = answer.get("json")
    if not isinstance(body, dict):
        try:
            body = json.loads(answer.get("content") or "")
        except ValueError:
            body = None
    if not isinstance(body, dict):
        return ["the body is not a JSON object (%s expected)" % ", ".join(sorted(wanted))]
    wrong = []
    for field in sorted(wanted):
        got = body.get(field)
        got_text = "" if got is None else (json.dumps(got) if isinstance(got, (dict, list)) else str(got))
        if isinstance(got, bool):
            got_text = "true" if got else "false"
        if field not in body or got_text != wanted[field]:
            wrong.append("%s=%s, expected %s" % (field, "(missing)" if field not in body else got_text, wanted[field]))
    return wrong


def health_answer(answer):
    """The last answer in one line: status and the first 200 bytes of the body (or why there was none)."""
    answer = answer or {}
    status = answer.get("status", -1)
    body = answer.get("content")
    if body is None and isinstance(answer.get("json"), (dict, list)):
        body = json.dumps(answer["json"])
    if status in (-1, None) or (not body and answer.get("msg")):
        return "no HTTP answer (%s)" % (answer.get("msg") or "no response")
    raw = (body or "").encode("utf-8", "replace")
    cut = raw[:BODY_BYTES].decode("utf-8", "ignore")
    return "status %s, body %s%s" % (status, json.dumps(cut), " (cut at %d bytes)" % BODY_BYTES if len(raw) > BODY_BYTES
                                     else "")


class FilterModule(object):
    def filters(self):
        return dict(health_expectations=health_expectations, health_mismatches=health_mismatches,
                    health_answer=health_answer)
