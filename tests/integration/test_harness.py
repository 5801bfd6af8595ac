"""The harness itself: our own PostgreSQL, the app repository, PM2 serving the example app."""

import os
import subprocess

import psycopg
import pytest

from tests.support.apprepo import git
from tests.support.http import get_json, post_json, wait_for_health
from tests.support.paths import EXAMPLE_APP, PM2
from tests.support.pgcluster import free_port


def test_cluster_accepts_app_role_with_password_only(pg_cluster, pg_db):
    with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
        assert conn.execute("SELECT current_user").fetchone()[0] == pg_cluster.app_user
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(**pg_cluster.conninfo(pg_db, password="wrong"))


def test_app_repo_has_v1_and_v2(app_repo):
    path, shas = app_repo
    assert set(git(path, "tag").split()) >= {"v1", "v2"}
    v1_files = git(path, "ls-tree", "-r", "--name-only", "v1").split()
    v2_files = git(path, "ls-tree", "-r", "--name-only", "v2").split()
    assert "alembic/versions/0002_add_item_notes.py" not in v1_files
    assert "alembic/versions/0002_add_item_notes.py" in v2_files
    assert any(f.endswith("add_item_notes/migration.sql") for f in v2_files)


def test_pm2_serves_example_app(pg_cluster, pg_db, pm2_home, tmp_path):
    """PM2 from node_modules starts the app in cluster mode; /health does a database round trip."""
    subprocess.run([os.path.join(os.path.dirname(PM2), "..", ".bin", "pm2"), "--version"], check=True,
                   env=dict(os.environ, PM2_HOME=pm2_home), capture_output=True)
    with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, notes text,"
                     " created_at timestamp DEFAULT now())")
    port = free_port()
    env = dict(os.environ, PM2_HOME=pm2_home, APP_NAME="harness-app", PORT=str(port),
               DATABASE_URL=pg_cluster.url(pg_db))
    subprocess.run([PM2, "start", os.path.join(EXAMPLE_APP, "ecosystem.config.js")], env=env, check=True,
                   capture_output=True, timeout=60)
    body = wait_for_health(f"http://127.0.0.1:{port}/health")
    assert body["status"] == "ok" and body["version"] == "2.0.0"
    status, item = post_json(f"http://127.0.0.1:{port}/items", {"name": "widget"})
    assert status == 201 and item["name"] == "widget"
    assert get_json(f"http://127.0.0.1:{port}/items")[1][0]["name"] == "widget"
