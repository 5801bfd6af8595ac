"""A distinctive canary password goes through two deploys and a rollback with a restore, at
-vvvv, and must show up nowhere but in the 0600 environment file: not in the task output or
events, not in any process's argv (sampled from /proc all along), not in backups, manifests,
the release history, PM2's logs and dump, cron entries or stray files."""

import json
import os
import stat
import time

import pytest

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
    role, password = f"canary_{suffix}", f"Canary-{suffix}-Zx9Q-never-leak"
    db = f"canary_{suffix}"
    pg_cluster.psql(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
    pg_cluster.create_database(db, owner=role)
    repo, shas = app_repo
    inventory = local_inventory(tmp_path, pg_cluster, db, repo, pm2_home, db_user=role, db_password=password,
                                pm2_app_stable_for=1, smoke_test_timeout=30, pm2_app_save=True)
    yield inventory, password, shas
    pg_cluster.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
    for name in pg_cluster.psql(f"SELECT datname FROM pg_database WHERE datname LIKE '{db}%'").split():
        pg_cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_cluster.psql(f"DROP ROLE IF EXISTS {role}")


def test_canary_password_appears_only_in_the_environment_file(canary_env, playbook, pm2_home, tmp_path):
    inventory, password, shas = canary_env
    hv = inventory["all"]["vars"]
    needle = password.encode()
    started = time.time()
    sampler = ArgvSampler(password)
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
        assert password not in run.stdout
        assert password not in json.dumps(run.events)

    app_root, backup_dir = hv["app_root"], hv["backup_dir"]
    env_file = os.path.join(app_root, "shared", ".env")
    assert oct(os.stat(env_file).st_mode & 0o777) == "0o600"
    assert holding([env_file], needle) == [env_file]  # the one place it belongs

    # ansible-runner's inventory/ and env/ are this test's input (in production: the vaulted inventory)
    inputs = {p for p in files_under(str(tmp_path))
              if os.sep + "inventory" + os.sep in p or os.sep + "env" + os.sep in p}
    runner_outputs = [p for p in files_under(str(tmp_path)) if p not in inputs]
    leaked = set(holding(runner_outputs, needle)) - {env_file}
    assert leaked == set(), leaked  # app tree, backups, manifests, history, PM2 logs and dump, artifacts
    assert os.path.exists(os.path.join(app_root, "history.json"))
    assert any(name.endswith(".json") for name in os.listdir(backup_dir))
    assert os.path.exists(os.path.join(pm2_home, "dump.pm2"))
    cron = [p for d in ("/etc/cron.d", "/var/spool/cron") if os.path.isdir(d) for p in files_under(d)]
    assert holding(cron, needle) == []
    stray = set(holding(recent_tmp_files(started), needle)) - {env_file} - inputs
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
