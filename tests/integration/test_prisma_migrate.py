"""maestro.deploy.prisma_migrate (native engine) against the throwaway cluster, cross-checked with the real
Prisma CLI 6.19 running offline (driver adapter), which reads back what we recorded in _prisma_migrations."""

import shutil
import threading

import psycopg
import pytest

from tests.support.migrate_run import run_module
from tests.support.paths import EXAMPLE_APP, PRISMA
from tests.support.pgprobe import Probe
from tests.support.prisma_cli import prisma

INIT = "20260119123744_init"
NOTES = "20260201090000_add_item_notes"


@pytest.fixture
def project(tmp_path):
    dest = tmp_path / "app"
    shutil.copytree(f"{EXAMPLE_APP}/prisma", dest / "prisma")
    return dest


@pytest.fixture
def migrate(pg_cluster, pg_db, project, tmp_path):
    def run(check=False, url=None, **args):
        args.setdefault("project_dir", str(project))
        args.setdefault("engine", "native")
        return run_module("prisma_migrate", args, tmp_path, url or pg_cluster.url(pg_db), check=check,
                          secret=pg_cluster.app_password)
    return run


def add_migration(project, name, sql):
    path = project / "prisma" / "migrations" / name
    path.mkdir(exist_ok=True)
    (path / "migration.sql").write_text(sql)


def rows(cluster, db):
    with psycopg.connect(**cluster.conninfo(db)) as conn:
        return conn.execute(
            "SELECT migration_name, finished_at IS NOT NULL, rolled_back_at IS NOT NULL, applied_steps_count, logs "
            "FROM _prisma_migrations ORDER BY started_at").fetchall()


def table_exists(cluster, db, name):
    with psycopg.connect(**cluster.conninfo(db)) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (name,)).fetchone()[0]


def cli_status(project, cluster, db):
    proc = prisma(str(project), cluster.url(db), "migrate", "status")
    return proc.returncode, proc.stdout


def test_deploy_from_empty_then_idempotent_and_prisma_cli_agrees(migrate, project, pg_cluster, pg_db):
    first = migrate()
    assert not first.failed, first.stdout
    assert first["changed"] is True and first["engine"] == "native"
    assert first["applied"] == [INIT, NOTES]
    assert (first["from_version"], first["to_version"]) == (None, NOTES)
    assert [r[:4] for r in rows(pg_cluster, pg_db)] == [(INIT, True, False, 1), (NOTES, True, False, 1)]
    again = migrate()
    assert again["changed"] is False and again["applied"] == [] and again["pending"] == []
    rc, out = cli_status(project, pg_cluster, pg_db)
    assert rc == 0 and "Database schema is up to date!" in out, out


def test_check_mode_lists_pending_with_sql_and_applies_nothing(migrate, project, pg_cluster, pg_db):
    shutil.rmtree(project / "prisma" / "migrations" / NOTES)
    migrate()
    shutil.copytree(f"{EXAMPLE_APP}/prisma/migrations/{NOTES}", project / "prisma" / "migrations" / NOTES)
    plan = migrate(check=True)
    assert plan["changed"] is True and plan["pending"] == [NOTES]
    assert plan["sql"][0]["migration"] == NOTES and 'ADD COLUMN     "notes" TEXT' in plan["sql"][0]["sql"]
    assert (plan["from_version"], plan["to_version"]) == (INIT, NOTES)
    assert [r[0] for r in rows(pg_cluster, pg_db)] == [INIT]
    status = migrate(command="status")
    assert status["applied"] == [INIT] and status["pending"] == [NOTES] and status["changed"] is False


def test_drop_column_is_a_finding_and_review_fail_applies_nothing(migrate, project, pg_cluster, pg_db):
    migrate()
    add_migration(project, "20260301000000_drop_notes", 'ALTER TABLE "items" DROP COLUMN "notes";\n')
    refused = migrate(review="fail")
    assert refused.failed and "20260301000000_drop_notes" in refused["msg"] and "drop-column" in refused["msg"]
    assert len(rows(pg_cluster, pg_db)) == 2
    plan = migrate(check=True)
    assert [(f["migration"], f["rule"], f["data_loss"]) for f in plan["findings"]] == [
        ("20260301000000_drop_notes", "drop-column", True)]
    assert plan["classification"][0]["class"] == "destructive"


def test_failed_transactional_migration_is_rolled_back_and_does_not_block(migrate, project, pg_cluster, pg_db):
    """Issue 15 item 3: our transaction undid it, so it is recorded failed *and* rolled back (logs kept): the next
    deploy re-applies a fixed version, and a deploy of an older release (without it) is not blocked (no P3009)."""
    migrate()
    bad = "20260301000000_add_tags"
    add_migration(project, bad, 'CREATE TABLE "tags" ("id" SERIAL PRIMARY KEY);\nALTER TABLE "nope" ADD "x" INT;\n')
    failed = migrate()
    assert failed.failed and failed["failed_migration"] == bad
    assert f"migration {bad} failed" in failed["msg"] and 'relation "nope" does not exist' in failed["msg"]
    assert "rolled back" in failed["msg"] and "nothing of it was applied" in failed["msg"]
    assert failed["to_version"] == NOTES and failed["failed_migrations"] == []
    last = rows(pg_cluster, pg_db)[-1]
    assert last[:4] == (bad, False, True, 0) and 'relation "nope" does not exist' in last[4]
    assert not table_exists(pg_cluster, pg_db, "tags")  # our transaction: nothing half-applied
    rc, out = cli_status(project, pg_cluster, pg_db)
    assert "have failed" not in out, out  # the Prisma CLI does not see it as failed either

    shutil.rmtree(project / "prisma" / "migrations" / bad)  # the previous release, without the migration
    older = migrate()
    assert not older.failed, older.get("msg")
    assert older["changed"] is False and older["to_version"] == NOTES

    add_migration(project, bad, 'CREATE TABLE "tags" ("id" SERIAL PRIMARY KEY);\n')  # the fixed release
    fixed = migrate()
    assert not fixed.failed, fixed.get("msg")
    assert fixed["applied"] == [bad] and fixed["to_version"] == bad
    assert [r[:3] for r in rows(pg_cluster, pg_db)][-2:] == [(bad, False, True), (bad, True, False)]
    rc, out = cli_status(project, pg_cluster, pg_db)
    assert rc == 0 and "Database schema is up to date!" in out, out


def test_failed_non_transactional_migration_blocks_deploy_then_resolves(migrate, project, pg_cluster, pg_db):
    """A script that could not run in a transaction may have left something behind: Prisma's P3009 stays, and the
    message says how to resolve it with the module."""
    migrate()
    bad = "20260301000000_add_index"
    add_migration(project, bad, 'CREATE INDEX CONCURRENTLY "items_name_idx" ON "items"("name");\n'
                                'CREATE INDEX CONCURRENTLY "nope_x_idx" ON "nope"("x");\n')
    failed = migrate()
    assert failed.failed and failed["failed_migration"] == bad
    assert 'relation "nope" does not exist' in failed["msg"]
    assert f"command=resolve resolve_rolled_back={bad}" in failed["msg"]
    assert [f["name"] for f in failed["failed_migrations"]] == [bad]
    last = rows(pg_cluster, pg_db)[-1]
    assert last[:4] == (bad, False, False, 0) and 'relation "nope" does not exist' in last[4]
    rc, out = cli_status(project, pg_cluster, pg_db)
    assert rc != 0 and f"have failed:\n{bad}" in out, out

    blocked = migrate()
    assert blocked.failed and "P3009" in blocked["msg"]
    assert f"command=resolve resolve_rolled_back={bad}" in blocked["msg"]

    resolved = migrate(command="resolve", resolve_rolled_back=bad)
    assert resolved["changed"] is True and resolved["pending"] == [bad]
    assert migrate(command="resolve", resolve_rolled_back=bad)["changed"] is False
    add_migration(project, bad, 'CREATE INDEX CONCURRENTLY IF NOT EXISTS "items_name_idx" ON "items"("name");\n')
    fixed = migrate()
    assert fixed["applied"] == [bad] and fixed["to_version"] == bad
    rc, out = cli_status(project, pg_cluster, pg_db)
    assert rc == 0 and "Database schema is up to date!" in out, out


def test_edited_migration_is_reported_by_name(migrate, project):
    migrate()
    with open(project / "prisma" / "migrations" / INIT / "migration.sql", "a") as fh:
        fh.write("-- edited after it was applied\n")
    status = migrate(command="status")
    assert status["modified"] == [INIT]
    deploy = migrate()
    assert deploy["modified"] == [INIT] and deploy["changed"] is False
    assert f"migration {INIT} was edited after it was applied" in deploy.stderr


def test_non_empty_schema_needs_a_baseline(migrate, pg_cluster, pg_db):
    with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
        conn.execute('CREATE TABLE "items" ("id" SERIAL PRIMARY KEY, "name" TEXT NOT NULL, '
                     '"created_at" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP)')
    refused = migrate()
    assert refused.failed and "P3005" in refused["msg"]
    baseline = migrate(command="resolve", resolve_applied=INIT)
    assert baseline["changed"] is True and baseline["applied"] == [INIT]
    assert rows(pg_cluster, pg_db)[0][:4] == (INIT, True, False, 0)
    rest = migrate()
    assert rest["applied"] == [NOTES]
    assert migrate(command="resolve", resolve_applied=INIT)["changed"] is False


def test_bad_inputs_fail_clearly(migrate, pg_cluster, pg_db, tmp_path):
    missing = migrate(project_dir=str(tmp_path / "nope"))
    assert missing.failed and f"project_dir {tmp_path / 'nope'} does not exist" in missing["msg"]
    wrong = migrate(url=pg_cluster.url(pg_db).replace(pg_cluster.app_password, "wrong-password"))
    assert wrong.failed and "password authentication failed" in wrong["msg"] and "wrong-password" not in wrong.stdout
    unknown = migrate(command="resolve", resolve_applied="20990101000000_nope")
    assert unknown.failed and "20990101000000_nope" in unknown["msg"] and "P3017" in unknown["msg"]
    never = migrate(command="resolve", resolve_rolled_back=INIT)
    assert never.failed and "never applied" in never["msg"]
    not_url = migrate(url="not a url")
    assert not_url.failed and "database_url is not a URL" in not_url["msg"]


def test_auto_engine_falls_back_to_native_when_cli_cannot_run(migrate):
    """Here the Prisma CLI cannot download its schema engine: `prisma --version` fails, auto uses native."""
    run = migrate(engine="auto", prisma=PRISMA)
    assert not run.failed, run.stdout
    assert run["engine"] == "native" and "prisma --version failed" in run["engine_reason"]
    assert run["applied"] == [INIT, NOTES]


def test_prisma_cli_resolves_what_we_recorded_and_we_read_what_it_records(migrate, project, pg_cluster, pg_db):
    """Both directions: the CLI's `migrate resolve` acts on our failed row, and we honour its rows."""
    migrate()
    bad = "20260301000000_add_tags"
    add_migration(project, bad, 'CREATE INDEX CONCURRENTLY "nope_x_idx" ON "nope"("x");\n')  # stays failed
    assert migrate().failed
    proc = prisma(str(project), pg_cluster.url(pg_db), "migrate", "resolve", "--rolled-back", bad,
                  done_when=f"Migration {bad} marked as rolled back")
    assert proc.returncode == 0, proc.stdout
    assert rows(pg_cluster, pg_db)[-1][:3] == (bad, False, True)
    add_migration(project, bad, 'CREATE TABLE "tags" ("id" SERIAL PRIMARY KEY);\n')
    extra = "20260302000000_mark_only"
    add_migration(project, extra, 'CREATE TABLE "never_run" ("id" INT);\n')
    proc = prisma(str(project), pg_cluster.url(pg_db), "migrate", "resolve", "--applied", extra,
                  done_when=f"Migration {extra} marked as applied")
    assert proc.returncode == 0, proc.stdout
    deployed = migrate()
    assert deployed["applied"] == [bad] and deployed["to_version"] == extra
    assert not table_exists(pg_cluster, pg_db, "never_run")


def test_cli_engine_failure_is_reported_with_the_database_version(migrate, pg_cluster, pg_db):
    """engine=cli runs the real `prisma migrate deploy`; here it cannot fetch its engine, and says so."""
    run = migrate(engine="cli", prisma=PRISMA)
    assert run.failed and run["engine"] == "cli"
    assert run["msg"].startswith("prisma migrate deploy failed (rc=1)")
    assert "the database is at no migration" in run["msg"]
    assert run["cmd"][1:4] == ["migrate", "deploy", "--schema"]
    assert not table_exists(pg_cluster, pg_db, "items")


def test_status_reports_a_failed_migration_without_failing(migrate, project, pg_cluster, pg_db):
    """Issue 15 item 4: `failed` (a list) in the result made Ansible read the task as failed ("Unknown error")."""
    migrate()
    bad = "20260301000000_concurrent_index"  # cannot run in a transaction: stays failed (P3009)
    add_migration(project, bad, 'CREATE INDEX CONCURRENTLY "nope_x_idx" ON "nope"("x");\n')
    assert migrate().failed
    status = migrate(command="status")
    assert not status.failed, status.stdout
    assert [f["name"] for f in status["failed_migrations"]] == [bad]
    assert 'relation "nope" does not exist' in status["failed_migrations"][0]["logs"]
    assert "failed" not in status.result or status["failed"] is False


def test_crlf_checkout_is_not_modified_and_a_bom_file_applies(migrate, project, pg_cluster, pg_db):
    """Issue 15 item 4: Prisma compares checksums ignoring line endings and does not execute a leading BOM."""
    migrate()
    path = project / "prisma" / "migrations" / INIT / "migration.sql"
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))
    status = migrate(command="status")
    assert status["modified"] == [] and status["applied"] == [INIT, NOTES], status.stdout
    bom = "20260301000000_bom"
    (project / "prisma" / "migrations" / bom).mkdir()
    (project / "prisma" / "migrations" / bom / "migration.sql").write_bytes(
        b'\xef\xbb\xbf-- CreateTable\r\nCREATE TABLE "tags" ("id" SERIAL PRIMARY KEY);\r\n')
    deployed = migrate()
    assert not deployed.failed, deployed.get("msg")
    assert deployed["applied"] == [bom] and table_exists(pg_cluster, pg_db, "tags")
    assert migrate(command="status")["modified"] == []
    rc, out = cli_status(project, pg_cluster, pg_db)
    assert rc == 0 and "Database schema is up to date!" in out, out


@pytest.fixture
def blocker(pg_cluster, pg_db):
    """A session that read `items` in a transaction and stays open (ACCESS SHARE on items)."""
    conn = psycopg.connect(application_name="long-report", **pg_cluster.conninfo(pg_db))
    yield conn
    conn.close()


def columns(cluster, db, table):
    with psycopg.connect(**cluster.conninfo(db)) as conn:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (table,))]


def test_migration_behind_a_long_transaction_gives_up_naming_it_and_the_app_keeps_serving(
        migrate, project, pg_cluster, pg_db, blocker):
    """Issue 15 item 1 (Done-when): lock_timeout 1s, 2 retries; the probe never waits more than 1 s + 1 s."""
    migrate()
    blocker.execute("SELECT count(*) FROM items").fetchone()  # BEGIN implicitly: ACCESS SHARE held
    pid = blocker.info.backend_pid
    name = "20260301000000_add_sku"
    add_migration(project, name, 'ALTER TABLE "items" ADD COLUMN "sku" TEXT;\n')
    with Probe(pg_cluster, pg_db) as probe:
        run = migrate(lock_timeout="1s", lock_retries=2)
    assert run.failed and run["failed_migration"] == name
    assert "lock_timeout" in run["msg"] and f"pid {pid}" in run["msg"] and "long-report" in run["msg"], run["msg"]
    assert "SELECT count(*) FROM items" in run["msg"] and "nothing of it was applied" in run["msg"].lower()
    assert [b["pid"] for b in run["blockers"]] == [pid] and run["blockers"][0]["state"] == "idle in transaction"
    assert run["lock_attempts"] == 3 and run["applied"] == [] and run["to_version"] == NOTES
    assert probe.count > 10 and probe.longest < 2.0, probe.longest
    print(run["msg"], "\nlongest probe wait %.3f s over %d probes" % (probe.longest, probe.count))
    assert "sku" not in columns(pg_cluster, pg_db, "items")
    assert [r[:3] for r in rows(pg_cluster, pg_db)][-1] == (name, False, True)  # rolled back: does not block
    blocker.rollback()
    assert migrate()["applied"] == [name]


def test_migration_waits_out_a_blocker_that_ends_during_the_retries(migrate, project, pg_cluster, pg_db, blocker):
    migrate()
    blocker.execute("SELECT count(*) FROM items").fetchone()
    name = "20260301000000_add_sku"
    add_migration(project, name, 'ALTER TABLE "items" ADD COLUMN "sku" TEXT;\n')
    ender = threading.Timer(4.0, blocker.rollback)  # ansible's start-up takes a few seconds of its own
    ender.start()
    try:
        with Probe(pg_cluster, pg_db) as probe:
            run = migrate(lock_timeout="1s", lock_retries=4)
    finally:
        ender.join()
    assert not run.failed, run.get("msg")
    assert run["applied"] == [name] and "sku" in columns(pg_cluster, pg_db, "items")
    assert probe.longest < 2.0, probe.longest
    assert [r[:3] for r in rows(pg_cluster, pg_db)][-1] == (name, True, False)
