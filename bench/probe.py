"""Watch a database the way the app sees it: a new connection and a read every few
milliseconds; the longest stretch of failures is the time it was unavailable."""

import threading
import time


class AvailabilityProbe:
    def __init__(self, conninfo, query="SELECT 1 FROM orders LIMIT 1", interval=0.005):
        self.conninfo, self.query, self.interval = dict(conninfo, connect_timeout=2), query, interval
        self.samples = []  # (monotonic, ok)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _check(self):
        import psycopg

        try:
            with psycopg.connect(**self.conninfo, autocommit=True) as conn:
                conn.execute(self.query).fetchall()
            return True
        except psycopg.Error:
            return False

    def _loop(self):
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), self._check()))
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        time.sleep(0.1)
        self._stop.set()
        self._thread.join(timeout=10)

    def summary(self):
        """Longest and total unavailable time: from the last good sample before a failure to the
        first good one after it (an upper bound at the probe's resolution)."""
        longest = total = 0.0
        last_ok = None
        down_since = None
        failures = 0
        for stamp, ok in self.samples:
            if not ok:
                failures += 1
                if down_since is None:
                    down_since = last_ok if last_ok is not None else stamp
            else:
                if down_since is not None:
                    gap = stamp - down_since
                    longest, total = max(longest, gap), total + gap
                    down_since = None
                last_ok = stamp
        gaps = [b[0] - a[0] for a, b in zip(self.samples, self.samples[1:], strict=False)]
        return {"unavailable_s": round(longest, 3), "unavailable_total_s": round(total, 3),
                "failed_probes": failures, "probes": len(self.samples),
                "probe_resolution_s": round(max(gaps), 3) if gaps else None}
