"""Tiny HTTP helpers for tests (stdlib only)."""

import json
import time
import urllib.error
import urllib.request


def get_json(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read().decode())


def post_json(url, body, timeout=5):
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return resp.status, json.loads(resp.read().decode())


def wait_for_health(url, timeout=30):
    """Poll until the URL answers 200; returns its JSON body, or raises with the last error."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            status, body = get_json(url)
            if status == 200:
                return body
        except (urllib.error.URLError, ConnectionError, OSError, ValueError) as exc:
            last = exc
        time.sleep(0.3)
    raise AssertionError(f"{url} did not answer 200 within {timeout}s: {last}")
