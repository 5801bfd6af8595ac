# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Bounded lock waits for migrations: lock_timeout, retries with backoff, and who blocked us.

Why: a DDL statement (ALTER TABLE ...) queued behind one long transaction makes every later query on
that table wait behind it, although the DDL itself takes milliseconds. So every migration statement
runs with a short `lock_timeout`; when it expires the statement (and its transaction) is rolled back,
the queries that queued behind it proceed, and we try again after a pause (1 s, doubling, capped),
a bounded number of times. While we wait, a second connection asks `pg_blocking_pids()` who holds
what we wait for, so that giving up names the blocking sessions.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import threading
import time

_sleep = time.sleep

LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout expired (and NOWAIT)
FIRST_DELAY = 1.0
MAX_DELAY = 30.0

_DURATION = re.compile(r"^([0-9]{1,9})(ms|s|min)?$")
_UNIT_MS = {"ms": 1, "s": 1000, "min": 60000, None: 1000}

BLOCKERS_SQL = (
    "SELECT a.pid, coalesce(a.application_name, ''), coalesce(a.state, ''), "
    "coalesce(extract(epoch FROM now() - coalesce(a.xact_start, a.query_start))::bigint, 0), "
    "left(coalesce(a.query, ''), 100) "
    "FROM pg_stat_activity a WHERE a.pid = ANY(pg_blocking_pids(%s)) ORDER BY a.pid")

# Our own sessions in this database under an application_name (for tools we run as subprocesses).
OUR_SESSIONS_SQL = (
    "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s "
    "AND pid <> pg_backend_pid()")


def parse_duration(value, option):
    """`3s`, `500ms`, `1min` or a bare number of seconds -> milliseconds (int > 0). Raises ValueError."""
    text = str(value if value is not None else "").strip()
    m = _DURATION.fullmatch(text)
    if not m or int(m.group(1)) == 0:
        raise ValueError("%s=%r is not a duration: use a positive whole number with ms, s or min (e.g. 3s, 500ms); "
                         "a bare number means seconds" % (option, value))
    return int(m.group(1)) * _UNIT_MS[m.group(2)]


def pg_duration(ms):
    """The value we hand PostgreSQL (set_config, PGOPTIONS): always whole milliseconds with a unit."""
    return "%dms" % ms


def delays(retries, first=FIRST_DELAY, cap=MAX_DELAY):
    """Pauses before each retry: first, doubling, at most cap."""
    out, delay = [], first
    for _step in range(max(0, retries)):
        out.append(min(delay, cap))
        delay *= 2
    return out


def is_lock_timeout(exc):
    return getattr(exc, "sqlstate", None) == LOCK_NOT_AVAILABLE


_LOCK_TIMEOUT_TEXT = re.compile(r"\bLockNotAvailable\b|canceling statement due to lock timeout")


class ToolError(Exception):
    """A failure of a tool we ran (alembic), as LockRetry sees it: sqlstate 55P03 when its output says so."""

    def __init__(self, text):
        super(ToolError, self).__init__(text)
        self.sqlstate = LOCK_NOT_AVAILABLE if _LOCK_TIMEOUT_TEXT.search(text or "") else None


def blocker_rows(conn, pid):
    """[{pid, application_name, state, seconds, query}] of the sessions `pid` waits for."""
    return [dict(pid=r[0], application_name=r[1], state=r[2], seconds=int(r[3]), query=r[4])
            for r in conn.execute(BLOCKERS_SQL, (pid,)).fetchall()]


def describe_blockers(blockers):
    """One line per blocking session, for messages."""
    if not blockers:
        return "the blocking session was not seen (it may have ended)"
    parts = []
    for b in blockers:
        query = " ".join((b.get("query") or "").split())
        parts.append("pid %s (application_name %r, state %r, for %s s): %s" % (
            b["pid"], b.get("application_name") or "", b.get("state") or "", b.get("seconds", 0), query or "-"))
    return "; ".join(parts)


class BlockerWatch:
    """A thread with its own connection that records who blocks our migration session(s) while they wait.

    `pids()` returns the backend pids to watch (our session, or the sessions of a tool we run). The last
    non-empty answer is kept in `blockers`, so it is still there after our statement gave up.
    """

    def __init__(self, connect, pids, interval=0.1):
        self.connect = connect
        self.pids = pids
        self.interval = interval
        self.blockers = []
        self.error = None
        self._stop = threading.Event()
        self._thread = None

    def __enter__(self):
        try:
            self.conn = self.connect()
        except Exception as exc:  # noqa: BLE001 - watching is best effort; the migration itself goes on
            self.error = str(exc)
            return self
        self._thread = threading.Thread(target=self._run, name="blocker-watch")
        self._thread.daemon = True
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            try:
                found = []
                for pid in self.pids(self.conn):
                    found.extend(blocker_rows(self.conn, pid))
                if found:
                    self.blockers = found
            except Exception as exc:  # noqa: BLE001
                self.error = str(exc)
                return
            self._stop.wait(self.interval)

    def reset(self):
        self.blockers = []

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
            try:
                self.conn.close()
            except Exception:  # noqa: S110, BLE001
                pass
        return False


def our_sessions(application_name):
    """pids() for BlockerWatch: the sessions of this database that carry `application_name`."""
    def pids(conn):
        return [r[0] for r in conn.execute(OUR_SESSIONS_SQL, (application_name,)).fetchall()]
    return pids


class LockRetry:
    """How apply_migration waits for locks: the pauses before each retry, and who blocked us (a BlockerWatch)."""

    def __init__(self, delays=(), watch=None, lock_timeout="", sleep=_sleep):
        self.delays = list(delays)
        self.watch = watch
        self.lock_timeout = lock_timeout
        self.sleep = sleep
        self.attempts = 0
        self.blockers = []

    def give_up(self, exc, attempt):
        """True when `exc` is final; else pauses before the next attempt."""
        if not is_lock_timeout(exc):
            return True
        if self.watch is not None and self.watch.blockers:
            self.blockers = list(self.watch.blockers)
        if attempt >= len(self.delays):
            return True
        self.sleep(self.delays[attempt])
        return False

    def why(self):
        return ("lock_timeout %s was reached on each of %d attempts (pauses of %s s between them); blocked by: %s"
                % (self.lock_timeout, self.attempts, ", ".join("%g" % d for d in self.delays) or "no",
                   describe_blockers(self.blockers)))
