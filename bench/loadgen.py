"""A bounded load generator: exactly `count` GET requests to a loopback URL at a fixed rate
(open loop: request i is sent at start + i/rate whatever happened before), then it stops."""

import http.client
import threading
import time
import urllib.parse


def percentile(values, pct):
    if not values:
        return None
    values = sorted(values)
    k = min(len(values) - 1, max(0, int(round(pct / 100.0 * (len(values) - 1)))))
    return values[k]


class Load:
    def __init__(self, url, count, rate, workers=24, timeout=5.0):
        parts = urllib.parse.urlsplit(url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the load generator only targets loopback, not {parts.hostname}")
        self.host, self.port, self.path = parts.hostname, parts.port, parts.path or "/"
        self.count, self.rate, self.timeout = int(count), float(rate), timeout
        self.results = []  # (index, sent_at, latency_s, ok, error)
        self._next = 0
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._work, daemon=True) for _ in range(workers)]
        self.started = self.finished = None

    def _take(self):
        with self._lock:
            if self._next >= self.count:
                return None
            self._next += 1
            return self._next - 1

    def _work(self):
        while True:
            i = self._take()
            if i is None:
                return
            due = self.started + i / self.rate
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            sent = time.monotonic()
            ok, error = False, None
            try:
                conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("GET", self.path)
                resp = conn.getresponse()
                resp.read()
                ok = resp.status == 200
                error = None if ok else f"HTTP {resp.status}"
                conn.close()
            except (OSError, http.client.HTTPException) as exc:
                error = type(exc).__name__
            with self._lock:
                self.results.append((i, sent, time.monotonic() - sent, ok, error))

    def start(self):
        self.started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def wait(self):
        for t in self._threads:
            t.join()
        self.finished = time.monotonic()
        return self.summary()

    def summary(self):
        lat = [r[2] for r in self.results if r[3]]
        failed = [r for r in self.results if not r[3]]
        errors = {}
        for r in failed:
            errors[r[4]] = errors.get(r[4], 0) + 1
        return {
            "requests": len(self.results), "rate_per_s": self.rate, "failed": len(failed), "errors": errors,
            "p50_ms": round(percentile(lat, 50) * 1000, 1) if lat else None,
            "p99_ms": round(percentile(lat, 99) * 1000, 1) if lat else None,
            "max_ms": round(max(lat) * 1000, 1) if lat else None,
            "window_s": round((self.finished or time.monotonic()) - self.started, 2),
        }
