"""What the app sees while a migration waits for a lock: a probe query on its own connection."""

import threading
import time

import psycopg


class Probe:
    """The app: `SELECT count(*) FROM items` every 100 ms on its own connection; records the longest wait."""

    def __init__(self, cluster, db):
        self.conn = psycopg.connect(autocommit=True, application_name="probe", **cluster.conninfo(db))
        self.longest = 0.0
        self.count = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self):
        while not self.stop.is_set():
            started = time.monotonic()
            self.conn.execute("SELECT count(*) FROM items").fetchone()
            self.longest = max(self.longest, time.monotonic() - started)
            self.count += 1
            time.sleep(0.1)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.thread.join(10)
        self.conn.close()
