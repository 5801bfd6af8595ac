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


class Receiver:
    """A webhook receiver on a free loopback port: `with Receiver() as hook:`; hook.url(path) is a
    URL on it, hook.received the requests that came, each {"method", "path", "body"} (body: the
    JSON a POST sent, else None). It answers 204 to everything."""

    def __init__(self):
        import http.server
        import threading

        received = self.received = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def record(self, body):
                received.append({"method": self.command, "path": self.path, "body": body})
                self.send_response(204)
                self.end_headers()

            def do_GET(self):  # noqa: N802 (http.server API)
                self.record(None)

            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("content-length", 0))
                self.record(json.loads(self.rfile.read(length) or b"null"))

            def log_message(self, *args):
                pass

        self.server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path="/"):
        return "http://127.0.0.1:%d%s" % (self.server.server_port, path)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


class NoAnswer:
    """Polls a URL in a thread while the `with` block runs (every `interval` s).

    `longest` is the longest stretch (s) without a 200 answer, a stretch still open when the block
    ends included; `answered` and `failed` count the requests."""

    def __init__(self, url, interval=0.1):
        import threading

        self.url, self.interval = url, interval
        self.longest, self.answered, self.failed = 0.0, 0, 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.down_since = None

    def _close_gap(self, now):
        if self.down_since is not None:
            self.longest = max(self.longest, now - self.down_since)
            self.down_since = None

    def run(self):
        while not self.stop.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=1) as resp:
                    ok = resp.status == 200
            except Exception:  # noqa: BLE001 - any failure is "no answer"
                ok = False
            now = time.monotonic()
            if ok:
                self.answered += 1
                self._close_gap(now)
            else:
                self.failed += 1
                if self.down_since is None:
                    self.down_since = now
            time.sleep(self.interval)
        self._close_gap(time.monotonic())

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(5)
