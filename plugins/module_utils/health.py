# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health check: what the inventory expects of the answer (`healthcheck_expect`,
placeholders filled in), whether an answer meets it, and what to say when it does not. The
smoke_test role's filters and live_version's own check (the fast no-op) share it."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import time

# Placeholders in healthcheck_expect values (single braces, so Jinja leaves them alone).
PLACEHOLDERS = ("{revision}", "{version}")
BODY_BYTES = 200
REQUEST_TIMEOUT_S = 5  # the smoke test's uri timeout


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


def fetch_answer(url, timeout_s):
    """One GET of `url`, as the uri result the functions above read: status, content, msg."""
    # Imported here: the smoke_test filters load this file on the controller, in every worker
    # that templates one, and ansible.module_utils.urls costs 40-100 ms there.
    from urllib.error import HTTPError

    from ansible.module_utils.urls import open_url

    try:
        resp = open_url(url, method="GET", timeout=timeout_s, follow_redirects="safe")
        return dict(status=resp.getcode(), content=resp.read().decode("utf-8", "replace"))
    except HTTPError as exc:
        body = exc.read() if hasattr(exc, "read") else b""
        return dict(status=exc.code, content=(body or b"").decode("utf-8", "replace"), msg=str(exc))
    except Exception as exc:  # connection refused, timeout, bad TLS: no HTTP answer
        return dict(status=-1, msg=str(exc))


def wait_for_answer(url, wanted, within_s, delay_s=0.5, fetch=fetch_answer, clock=time.monotonic, sleep=time.sleep):
    """(mismatches, last answer): asks until the answer meets `wanted` or `within_s` has passed
    (at least once; each request may take REQUEST_TIMEOUT_S, as the smoke test's do); mismatches
    is [] when it met it."""
    deadline = clock() + within_s
    while True:
        answer = fetch(url, REQUEST_TIMEOUT_S)
        wrong = health_mismatches(answer, wanted)
        if not wrong or clock() + delay_s > deadline:
            return wrong, answer
        sleep(delay_s)
