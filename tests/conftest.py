"""Test harness: a throwaway PostgreSQL cluster per session, a PM2 home per test, the example
app as a git repository, and playbooks run through ansible-runner."""

import os
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.support import apprepo  # noqa: E402
from tests.support.paths import PM2, REPO  # noqa: E402
from tests.support.pgcluster import Cluster  # noqa: E402
from tests.support.playbooks import run_playbook  # noqa: E402


def pytest_collection_modifyitems(config, items):
    """Tests under tests/unit are `unit`; everything else is `integration`."""
    for item in items:
        rel = os.path.relpath(str(item.fspath), REPO)
        if rel.startswith(os.path.join("tests", "unit")):
            item.add_marker(pytest.mark.unit)
        else:
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def pg_cluster():
    """A PostgreSQL cluster of our own for the whole session, removed even when tests fail.

    Under /tmp so that the `postgres` user (the server's user when we run as root) reaches it.
    """
    base = tempfile.mkdtemp(prefix="maestro-pg-", dir="/tmp")
    cluster = Cluster(base)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


@pytest.fixture
def pg_db(pg_cluster, request):
    """A fresh empty database owned by the app role; dropped afterwards."""
    name = "t_" + "".join(c if c.isalnum() else "_" for c in request.node.name.lower())[:40] + "_" + os.urandom(3).hex()
    pg_cluster.create_database(name)
    yield name
    pg_cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pm2_home(tmp_path):
    """A PM2_HOME of this test's own; its daemon is always killed at teardown."""
    home = tmp_path / "pm2"
    home.mkdir()
    yield str(home)
    env = dict(os.environ, PM2_HOME=str(home))
    subprocess.run([PM2, "kill"], env=env, capture_output=True, timeout=60)


@pytest.fixture(scope="session")
def app_repo(tmp_path_factory):
    """The example app as a git repository with tags v1 and v2; returns (path, {tag: sha})."""
    dest = str(tmp_path_factory.mktemp("apprepo") / "example-app.git")
    shas = apprepo.make_app_repo(dest)
    return dest, shas


@pytest.fixture
def playbook(tmp_path):
    """Run a playbook of this repo through ansible-runner: playbook('deploy.yml', inventory, ...)."""
    counter = {"n": 0}

    def run(name, inventory, **kwargs):
        counter["n"] += 1
        return run_playbook(name, inventory, str(tmp_path / f"runner-{counter['n']}"), **kwargs)

    return run


@pytest.fixture(scope="session")
def node_modules_ready():
    if not os.path.exists(PM2):
        pytest.fail("node_modules/.bin/pm2 is missing: run `make setup` first")
    return PM2


@pytest.fixture
def writable_tmp(tmp_path):
    """A temp dir the postgres user can also enter (for server-side paths)."""
    tmp_path.chmod(0o755)
    return tmp_path


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(os.path.join(REPO, ".pytest-tmp"), ignore_errors=True)
