"""A distinctive canary password goes through two deploys and a rollback with a restore, at
-vvvv, and must show up nowhere but in the releases' 0600 environment files: not in the task
output or events, not in any process's argv (sampled from /proc all along), not in backups,
manifests, the release history, PM2's logs and dump, cron entries or stray files.

The password holds every character that needs encoding somewhere (/ @ : % # ? + ' " \\ and a
space) between distinctive pieces, and each piece is searched for on its own: a password cut
at a special character (by a URL parser, a shell, a quote) would leak a piece, not the whole."""

import glob
import json
import os
import stat
import time
from urllib.parse import quote

import psycopg
import pytest
from psycopg import sql

from tests.support.faults import ArgvSampler
from tests.support.http import wait_for_health
from tests.support.inventory import local_inventory

SKIP_DIRS = {"node_modules", ".git", "repo"}


def files_under(root):
    for base, dirs, files in os.walk(root):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = os.path.join(base, name)
            if not os.path.islink(path):
                yield path


def holding(paths, needle, max_size=32 * 1024 * 1024):
    found = []
    for path in paths:
        try:
            if os.path.getsize(path) > max_size:
                continue
            with open(path, "rb") as fh:
                if needle in fh.read():
                    found.append(path)
        except OSError:
            continue
    return found


def recent_tmp_files(since):
    """Files under /tmp changed since `since` (a passfile left behind would be one)."""
    for path in files_under("/tmp"):
        try:
            if os.lstat(path).st_mtime >= since and stat.S_ISREG(os.lstat(path).st_mode):
                yield path
        except OSError:
            continue


@pytest.fixture
def canary_env(pg_cluster, pm2_home, app_repo, tmp_path):
    suffix = os.urandom(4).hex()
    pieces = ["Cq" + os.urandom(6).hex() for _ in range(12)]
    specials = ["/", "@", ":", "%", "#", "?", "+", "'", '"', "\\", " ", ""]
    password = "".join(p + sep for p, sep in zip(pieces, specials, strict=True))
    role = f"canary_{suffix}"
    db = f"canary_{suffix}"
    superuser = dict(pg_cluster.conninfo("postgres", user="postgres", password=""), host=pg_cluster.socket_dir)
    with psycopg.connect(**superuser, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN CREATEDB PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)))
    pg_cluster.create_database(db, owner=role)
    repo, shas = app_repo
    inventory = local_inventory(tmp_path, pg_cluster, db, repo, pm2_home, db_user=role, db_password=password,
                                pm2_app_stable_for=1, smoke_test_timeout=30, pm2_app_save=True)
    yield inventory, password, pieces, shas
    pg_cluster.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    for name in pg_cluster.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{db}%'").split():
        pg_cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_cluster.psql(f"DROP ROLE IF EXISTS {role}")


def test_canary_password_appears_only_in_the_environment_file(canary_env, playbook, pm2_home, tmp_path):
    inventory, password, pieces, shas = canary_env
    hv = inventory["all"]["vars"]
    needles = [password] + pieces
    started = time.time()
    sampler = ArgvSampler(needles)
    sampler.start()
    runs = []
    try:
        for version in ("v1", "v2"):
            runs.append(playbook("deploy.yml", inventory, extravars={"app_version": version}, verbosity=4))
            assert runs[-1].ok, runs[-1].stdout[-3000:]
        runs.append(playbook("rollback.yml", inventory, extravars={"rollback_db": "yes"}, verbosity=4))
        assert runs[-1].ok, runs[-1].stdout[-3000:]
    finally:
        hits = sampler.finish()
    assert wait_for_health(hv["healthcheck_url"])["revision"] == shas["v1"]
    print("argv samples taken: %d" % sampler.samples)

    assert sampler.samples > 50
    assert hits == [], hits
    for run in runs:
        for needle in needles:
            assert needle not in run.stdout, needle
            assert needle not in json.dumps(run.events), needle

    app_root, backup_dir = hv["app_root"], hv["backup_dir"]
    # Each release has its own environment file; the password is there percent-encoded, in DATABASE_URL.
    env_files = set(glob.glob(os.path.join(app_root, "releases", "*", ".env")))
    assert len(env_files) == 2
    for env_file in env_files:
        assert not os.path.islink(env_file)
        assert oct(os.stat(env_file).st_mode & 0o777) == "0o600"
        assert holding([env_file], quote(password, safe="").encode()) == [env_file]  # the one place it belongs
        assert holding([env_file], password.encode()) == []

    # ansible-runner's inventory/ and env/ are this test's input (in production: the vaulted inventory)
    inputs = {p for p in files_under(str(tmp_path))
              if os.sep + "inventory" + os.sep in p or os.sep + "env" + os.sep in p}
    runner_outputs = [p for p in files_under(str(tmp_path)) if p not in inputs]
    leaked = {p for needle in needles for p in holding(runner_outputs, needle.encode())} - env_files
    assert leaked == set(), leaked  # app tree, backups, manifests, history, PM2 logs and dump, artifacts
    assert os.path.exists(os.path.join(app_root, "history.json"))
    assert any(name.endswith(".json") for name in os.listdir(backup_dir))
    assert os.path.exists(os.path.join(pm2_home, "dump.pm2"))
    cron = [p for d in ("/etc/cron.d", "/var/spool/cron") if os.path.isdir(d) for p in files_under(d)]
    assert [p for needle in needles for p in holding(cron, needle.encode())] == []
    recent = list(recent_tmp_files(started))
    stray = {p for needle in needles for p in holding(recent, needle.encode())} - env_files - inputs
    assert stray == set(), stray  # no passfile outlives its use

    for name in os.listdir(backup_dir):
        path = os.path.join(backup_dir, name)
        if os.path.isfile(path):
            assert os.stat(path).st_mode & 0o777 == 0o600, path
    writable = []
    for base, dirs, files in os.walk(os.path.join(app_root, "releases")):
        for name in dirs + files:
            path = os.path.join(base, name)
            if not os.path.islink(path) and os.lstat(path).st_mode & stat.S_IWOTH:
                writable.append(path)
    assert writable == []
