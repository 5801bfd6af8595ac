# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Prisma Migrate's bookkeeping, done in Python: what `prisma migrate deploy|status|resolve` record.

Why: the Prisma CLI downloads its native schema engine at first use, which air-gapped hosts
(and this build machine) cannot do. The migrations themselves are plain SQL, and the state
lives in one table, `_prisma_migrations`, so we apply them ourselves and write that table
exactly as Prisma does, so the real CLI and Prisma Client agree with us afterwards:

- one row per attempt: id (uuid), checksum (sha256 hex of migration.sql), migration_name,
  started_at, finished_at (NULL until it succeeded), logs (the error of a failed attempt),
  rolled_back_at (set by `migrate resolve --rolled-back`), applied_steps_count;
- applied = a row with finished_at set and rolled_back_at NULL; failed = finished_at NULL and
  rolled_back_at NULL, which blocks every later deploy (Prisma's P3009) until resolved;
- the table is created on first deploy only if the schema is empty (else P3005: baseline
  first with resolve --applied); the advisory lock 72707369 is held while writing.

One deliberate difference: Prisma sends migration.sql as one script without a transaction of
its own. We wrap each migration and its bookkeeping row in one transaction on PostgreSQL, so a
failed migration leaves no half-applied schema; it is recorded as failed and rolled back (its
logs kept), which Prisma reads as not applied, so it does not block the next deploy (P3009).
Scripts that cannot run in a transaction (CREATE INDEX CONCURRENTLY, explicit BEGIN/COMMIT,
...) run statement by statement, like Prisma, and a failure there stays failed (P3009).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import hashlib
import os
import re
import time
import uuid

from ansible_collections.maestro.deploy.plugins.module_utils import pg_locks
from ansible_collections.maestro.deploy.plugins.module_utils.sql_review import split_statements

TABLE = "_prisma_migrations"
ADVISORY_LOCK_ID = 72707369
MIGRATION_FILE = "migration.sql"
BOM = "\ufeff"

CREATE_TABLE_SQL = (
    'CREATE TABLE "_prisma_migrations" (\n'
    '    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,\n'
    '    "checksum"              VARCHAR(64) NOT NULL,\n'
    '    "finished_at"           TIMESTAMPTZ,\n'
    '    "migration_name"        VARCHAR(255) NOT NULL,\n'
    '    "logs"                  TEXT,\n'
    '    "rolled_back_at"        TIMESTAMPTZ,\n'
    '    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),\n'
    '    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0\n'
    ')'
)

# Statements PostgreSQL refuses inside a transaction block, or that manage transactions themselves.
NO_TRANSACTION = re.compile(
    r"^(CREATE\s+(UNIQUE\s+)?INDEX\s+CONCURRENTLY|DROP\s+INDEX\s+CONCURRENTLY|REINDEX\b.*\bCONCURRENTLY|"
    r"VACUUM|CREATE\s+DATABASE|DROP\s+DATABASE|ALTER\s+SYSTEM|CREATE\s+TABLESPACE|"
    r"BEGIN|COMMIT|END|ROLLBACK|START\s+TRANSACTION|SAVEPOINT|RELEASE|ALTER\s+TYPE\b.*\bADD\s+VALUE)\b",
    re.I)


class PrismaMigrateError(Exception):
    """A Prisma-semantics error; `code` is Prisma's own (P3005, P3009, ...) where one exists."""

    def __init__(self, msg, code=None, **details):
        super(PrismaMigrateError, self).__init__(msg)
        self.msg = msg
        self.code = code
        self.details = details


class MigrationFailed(PrismaMigrateError):
    """A migration's SQL failed; the row is recorded as failed with `logs`."""


def checksum(data):
    """Prisma's checksum: sha256 of migration.sql's bytes, lower-case hex (what a new row records)."""
    return hashlib.sha256(data).hexdigest()


def checksum_matches(script, recorded):
    """Prisma's script_matches_checksum (schema-engine core, checksum.rs): the script matches a recorded
    checksum as it is, with CRLF turned into LF, or with LF turned into CRLF (git autocrlf checkouts);
    a recorded checksum that is not 64 characters long is the old format without zero padding."""
    recorded = recorded or ""
    for variant in (script, script.replace("\r\n", "\n"), script.replace("\n", "\r\n")):
        digest = hashlib.sha256(variant.encode("utf-8")).digest()
        if len(recorded) != 64 and recorded:
            text = "".join("%x" % b for b in bytearray(digest))
        else:
            text = "".join("%02x" % b for b in bytearray(digest))
        if text == recorded:
            return True
    return False


def local_migrations(migrations_dir):
    """[{name, path, sql, checksum}] of migrations_dir/*/migration.sql, in name order (Prisma's order)."""
    found = []
    for name in sorted(os.listdir(migrations_dir)):
        path = os.path.join(migrations_dir, name, MIGRATION_FILE)
        if not os.path.isdir(os.path.join(migrations_dir, name)):
            continue
        if not os.path.isfile(path):
            raise PrismaMigrateError("migration directory %s has no %s" % (name, MIGRATION_FILE), code="P3015")
        with open(path, "rb") as fh:
            data = fh.read()
        try:
            script = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise PrismaMigrateError("migration %s: %s is not UTF-8 (%s)" % (name, MIGRATION_FILE, exc),
                                     code="P3015") from exc
        # `script` is what the checksum covers; `sql` is what runs: a leading byte order mark is not SQL.
        sql = script[1:] if script.startswith(BOM) else script
        found.append(dict(name=name, path=path, script=script, sql=sql, checksum=checksum(data)))
    return found


def table_exists(conn):
    return conn.execute("SELECT to_regclass(%s) IS NOT NULL", ('"%s"' % TABLE,)).fetchone()[0]


def read_rows(conn):
    """All rows of _prisma_migrations (oldest first), or None when the table does not exist."""
    if not table_exists(conn):
        return None
    cur = conn.execute(
        'SELECT id, checksum, finished_at, migration_name, logs, rolled_back_at, started_at, applied_steps_count '
        'FROM "_prisma_migrations" ORDER BY started_at, migration_name')
    cols = [d.name for d in cur.description]
    return [{col: row[i] for i, col in enumerate(cols)} for row in cur.fetchall()]


def schema_is_empty(conn, schema):
    """True when the schema holds no relations or enum types (Prisma's P3005 test)."""
    rels = conn.execute(
        "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')", (schema,)).fetchone()[0]
    enums = conn.execute(
        "SELECT count(*) FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace "
        "WHERE n.nspname = %s AND t.typtype = 'e'", (schema,)).fetchone()[0]
    return rels + enums == 0


def create_table(conn, schema):
    if schema != "public":
        from psycopg import sql

        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    conn.execute(CREATE_TABLE_SQL)


def _is_applied(row):
    return row["finished_at"] is not None and row["rolled_back_at"] is None


def _is_failed(row):
    return row["finished_at"] is None and row["rolled_back_at"] is None


def status(local, rows):
    """What `prisma migrate status` reports, as lists of names (failed: dicts with their logs)."""
    rows = rows or []
    by_name = {}
    for row in rows:
        by_name.setdefault(row["migration_name"], []).append(row)
    applied, pending, failed, modified = [], [], [], []
    for mig in local:
        mine = by_name.get(mig["name"], [])
        done = [r for r in mine if _is_applied(r)]
        bad = [r for r in mine if _is_failed(r)]
        if done:
            applied.append(mig["name"])
            if not any(_same_script(mig, r) for r in done):
                modified.append(mig["name"])
        elif bad:
            failed.append(dict(name=mig["name"], started_at=_iso(bad[-1]["started_at"]), logs=bad[-1]["logs"]))
        else:
            pending.append(mig["name"])
    local_names = set(m["name"] for m in local)
    missing = sorted(set(r["migration_name"] for r in rows if _is_applied(r)) - local_names)
    failed_unknown = [dict(name=r["migration_name"], started_at=_iso(r["started_at"]), logs=r["logs"])
                      for r in rows if _is_failed(r) and r["migration_name"] not in local_names]
    return dict(applied=applied, pending=pending, failed=failed + failed_unknown, modified=modified,
                missing=missing)


def _same_script(mig, row):
    if row["checksum"] == mig["checksum"]:
        return True
    return "script" in mig and checksum_matches(mig["script"], row["checksum"])


def current_version(rows):
    """The newest applied migration's name (name order, as Prisma orders them), or None."""
    names = sorted(r["migration_name"] for r in rows or [] if _is_applied(r))
    return names[-1] if names else None


def _iso(value):
    return value.isoformat() if value is not None else None


def failed_message(failed):
    """Prisma's P3009 text, plus the two ways out."""
    lines = ["migrate found failed migrations in the target database, new migrations will not be applied (P3009)."]
    for f in failed:
        lines.append("The `%s` migration started at %s failed" % (f["name"], f["started_at"]))
    name = failed[0]["name"]
    lines.append(
        "A failed migration that was not rolled back (a script that could not run in a transaction, a Prisma CLI "
        "run, or a record of an older maestro.deploy) may have left part of it applied: fix the database by hand if "
        "it left anything behind (e.g. an INVALID index of CREATE INDEX CONCURRENTLY), then mark it with this "
        "module: command=resolve resolve_rolled_back=%s (prisma migrate resolve --rolled-back %s) and deploy a "
        "fixed migration, or command=resolve resolve_applied=%s if you completed it by hand." % (name, name, name))
    return " ".join(lines)


class AdvisoryLock:
    """Prisma's migration lock (pg_advisory_lock(72707369)), polled so a stuck holder is reported, not waited on."""

    def __init__(self, conn, timeout=10.0):
        self.conn = conn
        self.timeout = timeout

    def __enter__(self):
        deadline = time.time() + self.timeout
        while not self.conn.execute("SELECT pg_try_advisory_lock(%s)", (ADVISORY_LOCK_ID,)).fetchone()[0]:
            if time.time() >= deadline:
                raise PrismaMigrateError(
                    "timed out after %ss waiting for the migration advisory lock %s: another "
                    "`prisma migrate` (or maestro.deploy) run holds it" % (self.timeout, ADVISORY_LOCK_ID),
                    code="P1002")
            time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        try:
            self.conn.execute("SELECT pg_advisory_unlock(%s)", (ADVISORY_LOCK_ID,))
        except Exception:  # noqa: S110 - the session ends right after; closing releases the lock anyway
            pass
        return False


def needs_no_transaction(sql):
    """True when the script cannot be wrapped in one transaction."""
    return any(NO_TRANSACTION.match(s.code) for s in split_statements(sql))


def _error_logs(exc, retry=None):
    """Logs text for a failed migration row, shaped like Prisma's (code, message, position)."""
    diag = getattr(exc, "diag", None)
    parts = ["Migration failed to apply (applied by maestro.deploy, native engine)."]
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        parts.append("Database error code: %s" % sqlstate)
    parts.append("Database error:\n%s" % str(exc).strip())
    if diag is not None and getattr(diag, "message_detail", None):
        parts.append("DETAIL: %s" % diag.message_detail)
    if retry is not None and pg_locks.is_lock_timeout(exc):
        parts.append(retry.why())
    return "\n\n".join(parts)


INSERT_ROW = ('INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, applied_steps_count) '
              "VALUES (%s, %s, %s, %s, 0)")
FINISH_ROW = ('UPDATE "_prisma_migrations" SET finished_at = clock_timestamp(), '
              "applied_steps_count = applied_steps_count + 1 WHERE id = %s")
ROLLED_BACK_ROW = ('INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, logs, rolled_back_at, '
                   "applied_steps_count) VALUES (%s, %s, %s, %s, %s, clock_timestamp(), 0)")


LockRetry = pg_locks.LockRetry


def apply_migration(conn, migration, retry=None):
    """Apply one migration and record it as Prisma does. Raises MigrationFailed.

    In one transaction (the usual case) the attempt's row is written with the migration, so a failure leaves
    nothing: it is then recorded as failed *and* rolled back (finished_at NULL, rolled_back_at set, logs kept),
    which Prisma reads as "not applied" (no P3009; the next deploy applies it again). A script that cannot run
    in a transaction runs statement by statement after its row is written, as Prisma runs it; a failure there
    may leave earlier statements applied, so the row stays failed (P3009) until someone resolves it.

    A statement that hits lock_timeout (the session's setting) is retried after the pauses of `retry`: the
    whole transaction, or in a non-transactional script that one statement (not a CONCURRENTLY one, which
    can leave an INVALID index behind).
    """
    import psycopg

    retry = retry or LockRetry()
    row_id = str(uuid.uuid4())
    started = conn.execute("SELECT clock_timestamp()").fetchone()[0]
    statements = split_statements(migration["sql"])
    if needs_no_transaction(migration["sql"]):
        conn.execute(INSERT_ROW, (row_id, migration["checksum"], migration["name"], started))
        retry.attempts = 0
        try:
            for stmt in statements:
                attempt = 0
                while True:
                    retry.attempts = max(retry.attempts, attempt + 1)
                    try:
                        conn.execute(stmt.text.encode("utf-8"))
                        break
                    except psycopg.Error as exc:
                        if conn.info.transaction_status != 0:
                            conn.rollback()
                        if NO_TRANSACTION.match(stmt.code) or retry.give_up(exc, attempt):
                            raise
                        attempt += 1
            conn.execute(FINISH_ROW, (row_id,))
        except psycopg.Error as exc:
            logs = _error_logs(exc, retry)
            if conn.info.transaction_status != 0:  # not idle: leave the aborted transaction first
                conn.rollback()
            conn.execute('UPDATE "_prisma_migrations" SET logs = %s WHERE id = %s', (logs, row_id))
            raise _failed(migration, exc, logs, retry, rolled_back=False) from exc
        return row_id
    attempt = 0
    while True:
        retry.attempts = attempt + 1
        try:
            with conn.transaction():
                conn.execute(INSERT_ROW, (row_id, migration["checksum"], migration["name"], started))
                if statements:
                    conn.execute(migration["sql"].encode("utf-8"))
                conn.execute(FINISH_ROW, (row_id,))
            return row_id
        except psycopg.Error as exc:
            if conn.info.transaction_status != 0:
                conn.rollback()
            if not retry.give_up(exc, attempt):
                attempt += 1
                continue
            logs = _error_logs(exc, retry)
            conn.execute(ROLLED_BACK_ROW, (row_id, migration["checksum"], migration["name"], started, logs))
            raise _failed(migration, exc, logs, retry, rolled_back=True) from exc


def _failed(migration, exc, logs, retry, rolled_back):
    lock = pg_locks.is_lock_timeout(exc)
    what = "could not take its locks: %s" % retry.why() if lock else "failed: %s" % _first_line(exc)
    return MigrationFailed("migration %s %s" % (migration["name"], what), migration=migration["name"], logs=logs,
                           error=str(exc).strip(), rolled_back=rolled_back, lock_timeout=lock,
                           blockers=retry.blockers if lock else [], lock_attempts=retry.attempts)


def _first_line(exc):
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def resolve_applied(conn, migration, rows):
    """`migrate resolve --applied`: failed attempts become rolled back, a finished row is added. Returns changed."""
    mine = [r for r in rows if r["migration_name"] == migration["name"]]
    if any(_is_applied(r) for r in mine):
        return False
    with conn.transaction():
        for r in mine:
            if _is_failed(r):
                conn.execute('UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE id = %s', (r["id"],))
        conn.execute(
            'INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, '
            "applied_steps_count) VALUES (%s, %s, %s, now(), now(), 0)",
            (str(uuid.uuid4()), migration["checksum"], migration["name"]))
    return True


def resolve_rolled_back(conn, name, rows):
    """`migrate resolve --rolled-back`: a failed attempt is marked rolled back. Returns changed."""
    mine = [r for r in rows if r["migration_name"] == name]
    failed = [r for r in mine if _is_failed(r)]
    if failed:
        for r in failed:
            conn.execute('UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE id = %s', (r["id"],))
        return True
    if any(_is_applied(r) for r in mine):
        raise PrismaMigrateError(
            "migration %s cannot be rolled back because it is not in a failed state (it is applied)" % name,
            code="P3012")
    if mine:
        return False  # already rolled back
    raise PrismaMigrateError(
        "migration %s cannot be rolled back because it was never applied to the database" % name, code="P3011")
