#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: prisma_migrate
short_description: Apply Prisma Migrate migrations idempotently, with a pending list, SQL preview and a safety review
description:
  - Applies the migrations of a Prisma project (C(prisma/migrations/*/migration.sql)) to a PostgreSQL database,
    reports what was pending, reviews the pending SQL for risky statements first and classifies each migration
    as C(additive) or C(destructive) for the rollback decision.
  - With O(engine=native) the module applies the migrations itself and records them in C(_prisma_migrations)
    exactly as C(prisma migrate deploy) does (checksum = sha256 of C(migration.sql), compared as Prisma compares
    it, ignoring CRLF/LF differences; a leading UTF-8 byte order mark is not executed; C(started_at),
    C(finished_at), C(logs) of a failed attempt, C(rolled_back_at), C(applied_steps_count)), holding Prisma's
    advisory lock C(72707369), so the Prisma CLI and Prisma Client agree afterwards. This works on hosts
    where the Prisma CLI cannot download its schema engine (air-gapped hosts).
  - "Difference from Prisma, on purpose: each migration and its bookkeeping row run in one transaction, so a
    failed migration leaves no half-applied schema; it is recorded as failed and rolled back (C(rolled_back_at)
    set, its logs kept), which Prisma reads as not applied, so it does not block the next deploy (no P3009): a
    fixed version of it deploys, and so does the previous release. Scripts that cannot run in a transaction
    (C(CREATE INDEX CONCURRENTLY), explicit C(BEGIN)/C(COMMIT)) run statement by statement, as Prisma runs them;
    a failure there stays recorded as failed and blocks later deploys (P3009) until resolved with
    O(command=resolve)."
  - With O(engine=cli) the project's own Prisma CLI runs C(prisma migrate deploy|status|resolve); the pending
    list, SQL and review are still computed by this module before it runs.
  - C(changed) is true only when the set of applied migrations moved.
version_added: "0.1.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.migration_review
options:
  project_dir:
    description: The application's directory (where C(prisma/) is). Must exist.
    type: path
    required: true
  migrations_dir:
    description: Migrations directory, relative to O(project_dir) unless absolute.
    type: path
    default: prisma/migrations
  schema:
    description: The Prisma schema, relative to O(project_dir) unless absolute. Passed to the CLI only.
    type: path
    default: prisma/schema.prisma
  database_url:
    description:
      - The app's C(DATABASE_URL) (C(postgresql://user:password@host:port/db?schema=public)).
      - Never logged or returned, never on a command line; the native engine connects with psycopg, the CLI
        gets it in its environment as C(DATABASE_URL).
    type: str
    required: true
  command:
    description:
      - C(deploy) applies pending migrations; C(status) reports applied, pending, failed and modified migrations;
        C(resolve) marks one migration with O(resolve_applied) or O(resolve_rolled_back).
    type: str
    choices: [deploy, status, resolve]
    default: deploy
  resolve_applied:
    description:
      - With O(command=resolve), record this migration (directory name) as applied without running it
        (C(prisma migrate resolve --applied)), e.g. to baseline a database. Failed attempts of it become rolled back.
      - Unlike the CLI, a migration already applied is not an error (C(changed=false)).
    type: str
  resolve_rolled_back:
    description:
      - With O(command=resolve), mark the failed migration of this name as rolled back
        (C(prisma migrate resolve --rolled-back)) so a fixed version of it deploys again.
    type: str
  engine:
    description:
      - C(native) applies and records migrations with psycopg; C(cli) runs the Prisma CLI (O(prisma));
        C(auto) uses the CLI when C(prisma --version) succeeds (its engines are present) and native otherwise,
        and says which in RV(engine).
    type: str
    choices: [auto, cli, native]
    default: auto
  prisma:
    description: Path to the Prisma CLI. Defaults to C(node_modules/.bin/prisma) in O(project_dir).
    type: path
  advisory_lock_timeout:
    description:
      - Seconds to wait for Prisma's migration advisory lock (held by another migrate run) before failing (native
        engine). This was named O(lock_timeout) before O(lock_timeout) became the table lock bound.
    type: int
    default: 10
  lock_timeout:
    description:
      - "The longest any migration statement waits for a table lock (PostgreSQL C(lock_timeout) of the migration
        session), e.g. C(3s), C(500ms), C(1min); a bare number is seconds. An C(ALTER TABLE) queued behind a long
        transaction makes every later query on that table wait behind it; this bounds how long the app waits."
      - When it expires the migration's transaction is rolled back (nothing applied, the app's queries go on) and
        it is retried O(lock_retries) times after pauses of 1 s, doubling, at most 30 s. Giving up fails the task
        naming the blocking sessions (RV(blockers)). The native engine sets it on its session; O(engine=cli)
        only gets it as C(PGOPTIONS) in its environment, which Prisma's own engine does not read (no bound, no
        retries there).
    type: str
    default: 3s
  lock_retries:
    description: How many times a migration that hit O(lock_timeout) is tried again (0 = once only).
    type: int
    default: 5
  statement_timeout:
    description: Optional PostgreSQL C(statement_timeout) of the migration session (same format as O(lock_timeout)).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports the pending migrations, their SQL, findings and classification; applies nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
notes:
  - Findings name the migration, the statement and why it is risky. Rules are C(drop-table), C(drop-column),
    C(deletes-data), C(not-null-without-default), C(index-without-concurrently), C(rename), C(alter-column-type),
    C(foreign-key-without-not-valid) and C(do-block). Indexes and foreign keys on a table created in the same
    migration are not findings.
  - "A recorded failed (not rolled back) migration blocks O(command=deploy) (Prisma P3009) until it is resolved.
    A database with tables but no C(_prisma_migrations) is refused (Prisma P3005): baseline it with O(resolve_applied)."
requirements:
  - psycopg >= 3 on the managed host
  - the Prisma CLI in the project for O(engine=cli)
seealso:
  - module: maestro.deploy.alembic_migrate
  - name: Prisma Migrate in production
    description: What C(migrate deploy) and C(migrate resolve) do.
    link: https://www.prisma.io/docs/orm/prisma-migrate/workflows/patching-and-hotfixing
"""

EXAMPLES = r"""
- name: Show what would be applied and what the review finds
  maestro.deploy.prisma_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
  check_mode: true
  register: plan

- name: Apply pending migrations, refusing risky SQL
  maestro.deploy.prisma_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    review: fail

- name: Status, as prisma migrate status
  maestro.deploy.prisma_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    command: status

- name: Mark a failed migration rolled back so its fixed version deploys
  maestro.deploy.prisma_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    command: resolve
    resolve_rolled_back: 20260301120000_add_orders
"""

RETURN = r"""
engine:
  description: The engine that ran (C(native) or C(cli)), and with O(engine=auto) why, in RV(engine_reason).
  returned: always
  type: str
  sample: native
engine_reason:
  description: Why this engine was chosen.
  returned: always
  type: str
  sample: "prisma --version failed (its schema engine is not installed): using the native engine"
from_version:
  description: Name of the newest applied migration before the run (null for an empty database).
  returned: always
  type: str
  sample: 20260119123744_init
to_version:
  description: Name of the newest applied migration after the run (in check mode, what it would be).
  returned: always
  type: str
  sample: 20260201090000_add_item_notes
applied:
  description: Migrations applied by this run, in order (for status, all applied migrations).
  returned: always
  type: list
  elements: str
pending:
  description: Migrations not yet applied (in check mode, what deploy would apply).
  returned: always
  type: list
  elements: str
failed_migrations:
  description:
    - Recorded failed migrations that block O(command=deploy) (name, started_at, logs). Named so, not C(failed),
      because Ansible reads a C(failed) key as the task's own failure.
  returned: always
  type: list
  elements: dict
  sample:
    - name: 20260301120000_add_index
      started_at: "2026-03-01T12:00:00+00:00"
      logs: "Migration failed to apply ..."
modified:
  description: Applied migrations whose migration.sql changed since (checksum differs).
  returned: always
  type: list
  elements: str
missing:
  description: Migrations applied in the database but absent from O(migrations_dir).
  returned: always
  type: list
  elements: str
findings:
  description: Review findings for the pending SQL.
  returned: always
  type: list
  elements: dict
  sample:
    - migration: 20260301120000_drop_legacy
      statement: ALTER TABLE "items" DROP COLUMN "legacy";
      rule: drop-column
      why: DROP COLUMN deletes the column's data for every row; the previous release still reads it
      data_loss: true
      line: 2
classification:
  description: Per pending/applied migration, C(additive) or C(destructive) with reasons (for the rollback choice).
  returned: always
  type: list
  elements: dict
  sample:
    - migration: 20260201090000_add_item_notes
      class: additive
      reasons: [only adds schema objects the previous release ignores]
blockers:
  description:
    - When a migration gave up waiting for its locks, the sessions that held them (seen by C(pg_blocking_pids())
      while it waited), with C(pid), C(application_name), C(state), C(seconds) (age of their transaction) and the first
      100 characters of their C(query).
  returned: on a lock timeout
  type: list
  elements: dict
  sample:
    - pid: 4242
      application_name: psql
      state: idle in transaction
      seconds: 312
      query: SELECT count(*) FROM items
lock_attempts:
  description: How many times the failed migration was tried (lock timeouts are retried).
  returned: on failure of a migration
  type: int
sql:
  description: Pending migrations' SQL (C(migration), C(sql)), in order.
  returned: when O(preview=true) or in check mode
  type: list
  elements: dict
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import pg_locks  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import prisma_native as pn  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.database_url import (  # noqa: E402
    DatabaseUrlError, describe, parse_database_url)
from ansible_collections.maestro.deploy.plugins.module_utils.migration_plan import review_pending  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402


def session_options(p):
    """PGOPTIONS for a libpq tool (the CLI engine): the migration session's timeouts, validated above."""
    opts = os.environ.get("PGOPTIONS", "").strip()
    opts = (opts + " " if opts else "") + "-c lock_timeout=%s" % pg_locks.pg_duration(p["lock_timeout_ms"])
    if p["statement_timeout_ms"]:
        opts += " -c statement_timeout=%s" % pg_locks.pg_duration(p["statement_timeout_ms"])
    return opts


def set_session_timeouts(conn, p):
    conn.execute("SELECT set_config('lock_timeout', %s, false)", (pg_locks.pg_duration(p["lock_timeout_ms"]),))
    if p["statement_timeout_ms"]:
        conn.execute("SELECT set_config('statement_timeout', %s, false)",
                     (pg_locks.pg_duration(p["statement_timeout_ms"]),))


def choose_engine(module, runner, prisma):
    wanted = module.params["engine"]
    if wanted == "native":
        return "native", "engine=native"
    if wanted == "cli":
        if not prisma:
            module.fail_json(msg="engine=cli but the Prisma CLI was not found: set prisma= or install it in "
                                 "project_dir/node_modules")
        return "cli", "engine=cli"
    if not prisma:
        return "native", "no Prisma CLI in the project: using the native engine"
    rc, _out, err = runner.run([prisma, "--version"], check=False, cwd=module.params["project_dir"])
    if rc == 0:
        return "cli", "prisma --version runs: using the Prisma CLI"
    last = (err or "").strip().splitlines()
    return "native", "prisma --version failed (%s): using the native engine" % (last[-1][:200] if last else rc)


def run_cli(module, runner, prisma, args):
    p = module.params
    argv = [prisma] + args + ["--schema", p["schema"]]
    try:
        return runner.run(argv, cwd=p["project_dir"], what="prisma " + " ".join(args[:2]))
    except CommandError as exc:
        runner.fail(error=exc)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            migrations_dir=dict(type="path", default="prisma/migrations"),
            schema=dict(type="path", default="prisma/schema.prisma"),
            database_url=dict(type="str", required=True, no_log=True),
            command=dict(type="str", default="deploy", choices=["deploy", "status", "resolve"]),
            resolve_applied=dict(type="str"),
            resolve_rolled_back=dict(type="str"),
            engine=dict(type="str", default="auto", choices=["auto", "cli", "native"]),
            prisma=dict(type="path"),
            review=dict(type="str", default="warn", choices=["off", "warn", "fail"]),
            preview=dict(type="bool", default=False),
            advisory_lock_timeout=dict(type="int", default=10),
            lock_timeout=dict(type="str", default="3s"),
            lock_retries=dict(type="int", default=5),
            statement_timeout=dict(type="str"),
        ),
        mutually_exclusive=[("resolve_applied", "resolve_rolled_back")],
        required_if=[("command", "resolve", ("resolve_applied", "resolve_rolled_back"), True)],
        supports_check_mode=True,
    )
    p = module.params
    try:
        p["lock_timeout_ms"] = pg_locks.parse_duration(p["lock_timeout"], "lock_timeout")
        p["statement_timeout_ms"] = (pg_locks.parse_duration(p["statement_timeout"], "statement_timeout")
                                     if p["statement_timeout"] not in (None, "") else None)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if p["lock_retries"] < 0 or p["lock_retries"] > 20:
        module.fail_json(msg="lock_retries=%s: use 0 to 20" % p["lock_retries"])
    if not os.path.isdir(p["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist or is not a directory" % p["project_dir"])
    p["migrations_dir"] = os.path.join(p["project_dir"], p["migrations_dir"])
    p["schema"] = os.path.join(p["project_dir"], p["schema"])
    if not os.path.isdir(p["migrations_dir"]):
        module.fail_json(msg="migrations_dir %s does not exist" % p["migrations_dir"])
    try:
        conn_kwargs, db_schema = parse_database_url(p["database_url"])
    except DatabaseUrlError as exc:
        module.fail_json(msg=str(exc))
    secrets = [p["database_url"], conn_kwargs.get("password")]
    runner = Runner(module, environ={"DATABASE_URL": p["database_url"], "CHECKPOINT_DISABLE": "1",
                                     "PGOPTIONS": session_options(p)},
                    secrets=secrets)
    prisma = p["prisma"] or os.path.join(p["project_dir"], "node_modules", ".bin", "prisma")
    if p["prisma"] and not os.access(prisma, os.X_OK):
        module.fail_json(msg="prisma=%s is not an executable" % prisma)
    prisma = prisma if os.access(prisma, os.X_OK) else None

    try:
        local = pn.local_migrations(p["migrations_dir"])
    except pn.PrismaMigrateError as exc:
        module.fail_json(msg=exc.msg, code=exc.code)

    try:
        import psycopg
    except ImportError:
        module.fail_json(msg="the psycopg (3) Python package is required on the managed host")
    try:
        conn = psycopg.connect(autocommit=True, **conn_kwargs)
    except psycopg.Error as exc:
        module.fail_json(msg="cannot connect to %s: %s" % (describe(conn_kwargs), runner.mask(str(exc).strip())))

    result = dict(changed=False, engine="native", engine_reason="reads _prisma_migrations directly",
                  applied=[], pending=[], failed_migrations=[], modified=[], missing=[], findings=[], classification=[])
    with conn:
        try:
            body(module, runner, conn, db_schema, local, prisma, result, conn_kwargs)
        except pn.PrismaMigrateError as exc:
            result.update(exc.details)
            result.update(msg=runner.mask(exc.msg), code=exc.code, rc=1, cmd=result.get("cmd"),
                          stderr=runner.mask(exc.details.get("error", exc.msg)))
            module.fail_json(**result)
    module.exit_json(**result)


def body(module, runner, conn, db_schema, local, prisma, result, conn_kwargs):
    p = module.params
    rows = pn.read_rows(conn)
    state = pn.status(local, rows)
    version = pn.current_version(rows)
    result.update(from_version=version, to_version=version, modified=state["modified"], missing=state["missing"],
                  failed_migrations=state["failed"])
    for name in state["modified"]:
        module.warn("migration %s was edited after it was applied: its migration.sql checksum differs from the "
                    "one recorded in _prisma_migrations" % name)

    if p["command"] == "status":
        result.update(applied=state["applied"], pending=state["pending"])
        if p["engine"] == "cli":
            _rc, out, _err = run_cli(module, runner, prisma, ["migrate", "status"])
            result.update(engine="cli", engine_reason="engine=cli", cli_output=out)
        return

    if p["command"] == "resolve":
        resolve(module, runner, conn, db_schema, local, rows, prisma, result)
        return

    by_name = dict((m["name"], m) for m in local)
    if state["failed"]:
        raise pn.PrismaMigrateError(pn.failed_message(state["failed"]), code="P3009")
    if rows is None and not pn.schema_is_empty(conn, db_schema) and state["pending"]:
        raise pn.PrismaMigrateError(
            "the database schema %r is not empty and has no _prisma_migrations table (P3005): baseline it first "
            "with command=resolve resolve_applied=<each migration already in it>" % db_schema, code="P3005")
    pending = [by_name[n] for n in state["pending"]]
    review_pending(module, result, [(m["name"], m["sql"], False) for m in pending])
    result["pending"] = [m["name"] for m in pending]
    if not pending:
        return
    result["to_version"] = pn.current_version(
        (rows or []) + [dict(migration_name=m["name"], finished_at=1, rolled_back_at=None) for m in pending])
    if module.check_mode:
        result["changed"] = True
        return
    engine, reason = choose_engine(module, runner, prisma)
    result.update(engine=engine, engine_reason=reason)
    if engine == "cli":
        error = None
        try:
            runner.run([prisma, "migrate", "deploy", "--schema", p["schema"]], cwd=p["project_dir"],
                       what="prisma migrate deploy")
        except CommandError as exc:
            error = exc
        after = pn.read_rows(conn)
        now = pn.status(local, after)
        result.update(applied=[n for n in now["applied"] if n in result["pending"]],
                      to_version=pn.current_version(after), failed_migrations=now["failed"], pending=now["pending"])
        result["changed"] = bool(result["applied"]) or bool(now["failed"])
        if error is not None:
            failed = [f["name"] for f in now["failed"]]
            result.update(error.as_result())
            result.update(failed_migration=failed[0] if failed else None,
                          msg="%s; the database is at %s" % (error.msg, result["to_version"] or "no migration"))
            module.fail_json(**result)
        return
    result["cmd"] = ["native", "deploy"]
    import psycopg

    backend = conn.info.backend_pid
    watch = pg_locks.BlockerWatch(lambda: psycopg.connect(autocommit=True, **conn_kwargs), lambda _c: [backend])
    with pn.AdvisoryLock(conn, p["advisory_lock_timeout"]), watch:
        if pn.read_rows(conn) is None:
            pn.create_table(conn, db_schema)
        set_session_timeouts(conn, p)
        for mig in pending:
            watch.reset()
            retry = pn.LockRetry(pg_locks.delays(p["lock_retries"]), watch, p["lock_timeout"])
            try:
                pn.apply_migration(conn, mig, retry)
            except pn.MigrationFailed as exc:
                after = pn.read_rows(conn)
                result.update(to_version=pn.current_version(after), failed_migrations=pn.status(local, after)["failed"],
                              pending=[m["name"] for m in pending if m["name"] not in result["applied"]],
                              changed=True, failed_migration=mig["name"], lock_attempts=exc.details["lock_attempts"])
                if exc.details.get("lock_timeout"):
                    result["blockers"] = exc.details["blockers"]
                exc.msg = failure_message(exc, mig["name"], result["to_version"])
                raise
            result["applied"].append(mig["name"])
            result["changed"] = True
    result["pending"] = []
    result["to_version"] = pn.current_version(pn.read_rows(conn))


def failure_message(exc, name, version):
    """What happened to a failed migration, what state it left and what to do next."""
    at = version or "no migration"
    if exc.details.get("lock_timeout") and exc.details.get("rolled_back"):
        return ("%s. Nothing of it was applied (its transaction was rolled back each time, so the app's queries on "
                "the table went on), the database is at %s and nothing needs restoring. End the blocking session or "
                "wait until it is done (pg_terminate_backend(pid) if it is safe to cut), then deploy again; a larger "
                "lock_timeout/lock_retries (migrate_lock_timeout, migrate_lock_retries) makes the app wait longer"
                % (exc.msg, at))
    if exc.details.get("rolled_back"):
        return ("%s. It ran in one transaction, which was rolled back: nothing of it was applied, the database is at "
                "%s, and it is recorded in _prisma_migrations as failed and rolled back (its logs kept), so it does "
                "not block the next deploy: fix the migration and deploy again, or deploy the previous release"
                % (exc.msg, at))
    return ("%s. It could not run in a transaction (statement by statement, as Prisma runs it), so the statements "
            "before the failing one stayed applied; the database is at %s and the migration is recorded as failed, "
            "which blocks later deploys (P3009). Fix the database by hand if it left anything behind (e.g. an "
            "INVALID index), then run prisma_migrate command=resolve resolve_rolled_back=%s and deploy a fixed "
            "migration, or command=resolve resolve_applied=%s if you completed it by hand" % (exc.msg, at, name, name))


def resolve(module, runner, conn, db_schema, local, rows, prisma, result):
    p = module.params
    name = p["resolve_applied"] or p["resolve_rolled_back"]
    by_name = dict((m["name"], m) for m in local)
    if p["resolve_applied"] and name not in by_name:
        raise pn.PrismaMigrateError(
            "resolve_applied=%s: no such migration in %s (P3017); use the whole directory name"
            % (name, p["migrations_dir"]), code="P3017")
    rows = rows or []
    mine = [r for r in rows if r["migration_name"] == name]
    if p["resolve_applied"]:
        would = not any(r["finished_at"] is not None and r["rolled_back_at"] is None for r in mine)
    else:
        would = any(r["finished_at"] is None and r["rolled_back_at"] is None for r in mine)
        if not would:
            pn.resolve_rolled_back(None, name, rows)  # raises P3011/P3012 when it was never failed
    result["resolved"] = name
    if not would or module.check_mode:
        result["changed"] = would
        return
    engine, reason = choose_engine(module, runner, prisma)
    result.update(engine=engine, engine_reason=reason)
    if engine == "cli":
        flag = "--applied" if p["resolve_applied"] else "--rolled-back"
        run_cli(module, runner, prisma, ["migrate", "resolve", flag, name])
        changed = True
    else:
        with pn.AdvisoryLock(conn, p["advisory_lock_timeout"]):
            if pn.read_rows(conn) is None:
                pn.create_table(conn, db_schema)
            fresh = pn.read_rows(conn)
            if p["resolve_applied"]:
                changed = pn.resolve_applied(conn, by_name[name], fresh)
            else:
                changed = pn.resolve_rolled_back(conn, name, fresh)
    after = pn.read_rows(conn)
    state = pn.status(local, after)
    result.update(changed=changed, to_version=pn.current_version(after), failed_migrations=state["failed"],
                  applied=state["applied"], pending=state["pending"])


if __name__ == "__main__":
    main()
