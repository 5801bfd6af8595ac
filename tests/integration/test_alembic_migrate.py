"""maestro.deploy.alembic_migrate against the throwaway cluster, with the example app's Alembic history."""

import shutil
import textwrap

import psycopg
import pytest

from tests.support.migrate_run import run_module
from tests.support.paths import EXAMPLE_APP
from tests.support.pgprobe import Probe


@pytest.fixture
def project(tmp_path):
    dest = tmp_path / "alembic"
    shutil.copytree(f"{EXAMPLE_APP}/alembic", dest, ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def migrate(pg_cluster, pg_db, project, tmp_path):
    def run(check=False, url=None, **args):
        args.setdefault("project_dir", str(project))
        return run_module("alembic_migrate", args, tmp_path, url or pg_cluster.url(pg_db), check=check,
                          secret=pg_cluster.app_password)
    return run


def add_revision(project, rev, down, upgrade, downgrade="pass"):
    (project / "versions" / f"{rev}.py").write_text(textwrap.dedent(f'''\
        """{rev}"""
        from alembic import op

        revision = "{rev}"
        down_revision = "{down}"


        def upgrade():
            {upgrade}


        def downgrade():
            {downgrade}
        '''))


def db_version(cluster, db):
    with psycopg.connect(**cluster.conninfo(db)) as conn:
        if conn.execute("SELECT to_regclass('alembic_version')").fetchone()[0] is None:
            return None
        row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        return row[0] if row else None


def columns(cluster, db, table):
    with psycopg.connect(**cluster.conninfo(db)) as conn:
        return [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s ORDER BY ordinal_position",
            (table,))]


def test_upgrade_from_empty_to_head_then_nothing_changes(migrate, pg_cluster, pg_db):
    first = migrate()
    assert not first.failed, first.stdout
    assert first["changed"] is True
    assert first["applied"] == ["0001_init", "0002_add_item_notes"]
    assert (first["from_version"], first["to_version"]) == (None, "0002_add_item_notes")
    assert first["heads"] == ["0002_add_item_notes"]
    assert [c["class"] for c in first["classification"]] == ["additive", "additive"]
    assert "notes" in columns(pg_cluster, pg_db, "items")
    again = migrate()
    assert again["changed"] is False and again["applied"] == [] and again["pending"] == []


def test_check_mode_lists_pending_with_sql_and_applies_nothing(migrate, pg_cluster, pg_db):
    assert migrate(revision="0001_init")["to_version"] == "0001_init"
    plan = migrate(check=True)
    assert plan["changed"] is True
    assert plan["pending"] == ["0002_add_item_notes"]
    assert plan["sql"] == [{"migration": "0002_add_item_notes", "sql": "ALTER TABLE items ADD COLUMN notes TEXT;"}]
    assert plan["to_version"] == "0002_add_item_notes"
    assert db_version(pg_cluster, pg_db) == "0001_init"
    assert "notes" not in columns(pg_cluster, pg_db, "items")


def test_drop_column_is_a_finding_and_review_fail_applies_nothing(migrate, project, pg_cluster, pg_db):
    migrate()
    add_revision(project, "0003_drop_notes", "0002_add_item_notes", 'op.drop_column("items", "notes")',
                 'op.add_column("items", __import__("sqlalchemy").Column("notes", __import__("sqlalchemy").Text))')
    refused = migrate(review="fail")
    assert refused.failed
    assert "0003_drop_notes" in refused["msg"] and "drop-column" in refused["msg"]
    assert db_version(pg_cluster, pg_db) == "0002_add_item_notes"
    warned = migrate(review="warn", check=True)
    assert [(f["migration"], f["rule"]) for f in warned["findings"]] == [("0003_drop_notes", "drop-column")]
    assert warned["findings"][0]["statement"] == "ALTER TABLE items DROP COLUMN notes"
    assert "drop-column" in warned.stderr  # module.warn, one per finding
    # a downgrade exists, but it cannot bring the dropped data back
    assert warned["classification"][0]["class"] == "destructive"


def test_rename_with_a_downgrade_is_reversible(migrate, project):
    migrate()
    add_revision(project, "0003_rename", "0002_add_item_notes",
                 'op.alter_column("items", "notes", new_column_name="note")',
                 'op.alter_column("items", "note", new_column_name="notes")')
    plan = migrate(check=True)
    assert [f["rule"] for f in plan["findings"]] == ["rename"]
    assert plan["classification"][0]["class"] == "reversible"


def test_migration_failing_halfway_leaves_previous_version(migrate, project, pg_cluster, pg_db):
    migrate()
    add_revision(project, "0003_bad", "0002_add_item_notes",
                 'op.execute("CREATE TABLE half_done (id int)"); op.execute("ALTER TABLE nope ADD COLUMN x int")')
    failed = migrate()
    assert failed.failed
    assert failed["failed_migration"] == "0003_bad"
    assert "migration 0003_bad failed" in failed["msg"] and 'relation "nope" does not exist' in failed["msg"]
    assert "at 0002_add_item_notes afterwards" in failed["msg"]
    assert failed["to_version"] == "0002_add_item_notes" and failed["changed"] is False
    assert db_version(pg_cluster, pg_db) == "0002_add_item_notes"
    assert columns(pg_cluster, pg_db, "half_done") == []  # transactional DDL: the good statement rolled back


def test_downgrade_one_step(migrate, pg_cluster, pg_db):
    migrate()
    down = migrate(command="downgrade", revision="0001_init")
    assert not down.failed, down.stdout
    assert down["changed"] is True and down["applied"] == ["0002_add_item_notes"]
    assert (down["from_version"], down["to_version"]) == ("0002_add_item_notes", "0001_init")
    assert [f["rule"] for f in down["findings"]] == ["drop-column"]
    assert "notes" not in columns(pg_cluster, pg_db, "items")
    assert migrate(command="downgrade", revision="0001_init")["changed"] is False


def test_unknown_revision_fails_before_anything_runs(migrate, pg_cluster, pg_db):
    bad = migrate(revision="no_such_rev")
    assert bad.failed
    assert "no_such_rev" in bad["msg"] and "Can't locate revision" in bad["msg"]
    assert db_version(pg_cluster, pg_db) is None
    assert not any(c["cmd"][-1] == "no_such_rev" and "--sql" not in c["cmd"] for c in bad["commands"])


def test_multiple_heads_are_reported_and_refused(migrate, project):
    add_revision(project, "0003_a", "0002_add_item_notes", 'op.execute("SELECT 1")')
    add_revision(project, "0003_b", "0002_add_item_notes", 'op.execute("SELECT 2")')
    state = migrate(command="current")
    assert sorted(state["heads"]) == ["0003_a", "0003_b"] and state["changed"] is False
    refused = migrate()
    assert refused.failed and "2 heads" in refused["msg"] and "0003_a" in refused["msg"]


def test_missing_project_dir_and_wrong_url_fail_clearly(migrate, pg_cluster, pg_db, tmp_path):
    missing = migrate(project_dir=str(tmp_path / "nope"))
    assert missing.failed and f"project_dir {tmp_path / 'nope'} does not exist" in missing["msg"]
    wrong = migrate(url=pg_cluster.url(pg_db).replace(pg_cluster.app_password, "wrong-password"))
    assert wrong.failed and "password authentication failed" in wrong["msg"]
    assert "wrong-password" not in wrong.stdout


def test_upgrade_behind_a_long_transaction_gives_up_naming_it_and_the_app_keeps_serving(
        migrate, project, pg_cluster, pg_db):
    """Issue 15 item 1 for Alembic: lock_timeout reaches the session through PGOPTIONS; retried, then named."""
    assert not migrate().failed
    add_revision(project, "0003_add_sku", "0002_add_item_notes", 'op.execute("ALTER TABLE items ADD COLUMN sku TEXT")')
    blocker = psycopg.connect(application_name="long-report", **pg_cluster.conninfo(pg_db))
    try:
        blocker.execute("SELECT count(*) FROM items").fetchone()  # ACCESS SHARE held, transaction left open
        pid = blocker.info.backend_pid
        with Probe(pg_cluster, pg_db) as probe:
            run = migrate(lock_timeout="1s", lock_retries=1)
        assert run.failed and run["failed_migration"] == "0003_add_sku", run.result
        assert "lock_timeout" in run["msg"] and f"pid {pid}" in run["msg"] and "long-report" in run["msg"], run["msg"]
        assert [b["pid"] for b in run["blockers"]] == [pid] and run["lock_attempts"] == 2
        assert run["to_version"] == "0002_add_item_notes" and db_version(pg_cluster, pg_db) == "0002_add_item_notes"
        assert "sku" not in columns(pg_cluster, pg_db, "items")
        assert probe.longest < 2.0, probe.longest
        blocker.rollback()
    finally:
        blocker.close()
    assert migrate()["applied"] == ["0003_add_sku"]
