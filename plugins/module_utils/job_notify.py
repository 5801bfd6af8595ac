# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a scheduled job (the dump backup, pgBackRest's backups and verify) tells the outside
when it ends: its outcome POSTed as JSON to a notify URL, and after a success a GET of a
heartbeat URL (a dead man's switch such as healthchecks.io: the watcher raises the alarm when
the pings stop, which also covers a job that never ran). Runs on the db host without ansible,
with the standard library only. Never raises and never changes the job's exit code; a URL is
never logged whole (a webhook's path or query is often its secret): only its scheme and host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re
import socket

try:
    from urllib.request import Request, urlopen
    from urllib.error import HTTPError, URLError
except ImportError:  # pragma: no cover - Python 2 has no place on a db host we support
    Request = urlopen = HTTPError = URLError = None

# http(s), a host (no userinfo), an optional port and path/query; printable ASCII, no spaces.
URL = re.compile(r"^https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:[/?][\x21-\x7e]*)?\Z")
TIMEOUT = 10


def url_problem(value):
    """None for '' (not set) or a URL the jobs can call; else the rule it breaks."""
    if value in (None, ""):
        return None
    if not isinstance(value, str) or not URL.match(value):
        return "an http:// or https:// URL with a host, no user:password@, no spaces or control characters"
    return None


def shown(url):
    """scheme://host[:port]/... : what may be logged of a URL (never its user:password@, path or query)."""
    m = re.match(r"^(https?)://(?:[^/?#]*@)?([^/?#@\s]+)", url or "")
    return ("%s://%s/..." % m.groups()) if m else "(no URL)"


def _call(url, data=None):
    headers = {"User-Agent": "maestro.deploy scheduled job"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    request = Request(url, data=data, headers=headers, method="POST" if data is not None else "GET")
    try:
        with urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 - scheme checked by url_problem
            status = response.status
    except HTTPError as exc:
        return "HTTP %s" % exc.code
    except (URLError, socket.timeout, OSError, ValueError) as exc:
        return str(getattr(exc, "reason", exc))
    return None if 200 <= status < 300 else "HTTP %s" % status


def send(notify_url, heartbeat_url, payload, log):
    """POST payload to notify_url (when set) and, when payload['outcome'] is 'success', GET
    heartbeat_url (when set). `log(message)` records what happened; returns the list of failures."""
    failures = []
    for url, data, what in ((notify_url, json.dumps(payload, sort_keys=True).encode("utf-8"), "notification"),
                            (heartbeat_url if payload.get("outcome") == "success" else None, None, "heartbeat")):
        if not url:
            continue
        if url_problem(url):
            error = "not a URL the job can call"
        else:
            error = _call(url, data)
        if error:
            failures.append(what)
            log("%s to %s not delivered: %s" % (what, shown(url), error))
        else:
            log("%s sent to %s" % (what, shown(url)))
    return failures
