"""rollback_db=auto picks the path by what the undone migrations did (issue: keep the data
written since the deploy): downgrade for reversible Alembic revisions, restore (with the set
aside rows counted) for destructive ones. The additive path is in test_deploy_flow."""

import json
import os
import shutil

import psycopg

from tests.integration.test_deploy_flow import assert_ok, deploy_env  # noqa: F401 (fixture)
from tests.support.apprepo import make_variant
from tests.support.http import post_json

RENAME = '''"""rename notes to remarks: reversible."""
from alembic import op

revision = "0003_rename_notes"
down_revision = "0002_add_item_notes"
branch_labels = None
depends_on = None


def upgrade():
    op.alter_column("items", "notes", new_column_name="remarks")


def downgrade():
    op.alter_column("items", "remarks", new_column_name="notes")
'''

DROP = '''"""drop notes: destructive (its data goes)."""
import sqlalchemy as sa
from alembic import op

revision = "0003_drop_notes"
down_revision = "0002_add_item_notes"
branch_labels = None
depends_on = None


def upgrade():
    op.drop_column("items", "notes")


def downgrade():
    op.add_column("items", sa.Column("notes", sa.Text, nullable=True))
'''

# The app's POST sends notes only when given, so it runs on all three schemas.


def test_reversible_alembic_release_is_downgraded_not_restored(deploy_env):  # noqa: F811
    env = deploy_env
    make_variant(env.repo, "v5-rename", files={"alembic/versions/0003_rename_notes.py": RENAME})
    assert_ok(env.deploy("v2"))
    assert_ok(env.deploy("v5-rename"))
    assert env.history()["releases"][-1]["db_class"] == "reversible"
    post_json(env.items_url, {"name": "written-after-v5"})

    plan = env.rollback(check=True)
    assert_ok(plan)
    assert "database: DOWNGRADE" in plan.stdout

    run = env.rollback()
    assert_ok(run)
    assert env.health()["revision"] == env.shas["v2"]
    assert env.sql("SELECT version_num FROM alembic_version") == [("0002_add_item_notes",)]
    assert env.sql("SELECT name, notes FROM items") == [("written-after-v5", None)]
    event = env.history()["events"][-1]
    assert event["database"] == "downgrade" and event["previous_db"] is None


def test_destructive_release_is_restored_and_set_aside_rows_counted(deploy_env, pg_cluster):  # noqa: F811
    env = deploy_env
    v6_sha = make_variant(env.repo, "v6-drop", files={"alembic/versions/0003_drop_notes.py": DROP})
    assert_ok(env.deploy("v2"))
    post_json(env.items_url, {"name": "before-v6", "notes": "kept by the backup"})
    assert_ok(env.deploy("v6-drop"))
    assert env.history()["releases"][-1]["db_class"] == "destructive"
    for i in range(3):
        post_json(env.items_url, {"name": f"after-v6-{i}"})

    plan = env.rollback(check=True)
    assert_ok(plan)
    assert "database: RESTORE" in plan.stdout and env.history()["releases"][-1]["backup_path"] in plan.stdout

    # history.json is writable by the app user: a backup path in it pointing outside the backup
    # directory (here a genuine copy with its manifest) is refused before the live database is touched.
    history_file = os.path.join(env.app_root, "history.json")
    with open(history_file) as fh:
        genuine = fh.read()
    real = env.history()["releases"][-1]["backup_path"]
    evil_dir = os.path.join(os.path.dirname(env.app_root), "evil")
    os.makedirs(evil_dir)
    evil = os.path.join(evil_dir, os.path.basename(real))
    shutil.copy(real, evil)
    shutil.copy(real + ".json", evil + ".json")
    tampered = json.loads(genuine)
    tampered["releases"][-1]["backup_path"] = evil
    with open(history_file, "w") as fh:
        json.dump(tampered, fh)
    refused = env.rollback()
    assert not refused.ok and "is not in the backup directory" in refused.stdout
    assert env.health()["revision"] == v6_sha
    assert len(env.sql("SELECT name FROM items WHERE name LIKE 'after-v6-%'")) == 3
    with open(history_file, "w") as fh:
        fh.write(genuine)

    run = env.rollback()
    assert_ok(run)
    assert env.health()["revision"] == env.shas["v2"]
    assert env.sql("SELECT name, notes FROM items ORDER BY id") == [("before-v6", "kept by the backup")]
    event = env.history()["events"][-1]
    assert event["database"] == "restore"
    assert event["lost_rows"] == {"public.items": 3}
    with psycopg.connect(**pg_cluster.conninfo(event["previous_db"])) as conn:
        kept = [r[0] for r in conn.execute("SELECT name FROM items WHERE name LIKE 'after-v6-%' ORDER BY id")]
    assert kept == ["after-v6-0", "after-v6-1", "after-v6-2"]
    assert "public.items=3" in run.stdout


def test_production_rollback_requires_confirmation(deploy_env):  # noqa: F811
    run = deploy_env.rollback(deploy_environment="production")
    assert not run.ok
    assert "rerun with -e confirm=" + deploy_env.vars["app_name"] in run.stdout
    assert not os.path.exists(deploy_env.app_root)
