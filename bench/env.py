"""The benchmark's world: its own PostgreSQL cluster, app repository, PM2 homes and work
directory under /tmp, all removed at the end (like the test fixtures, without pytest)."""

import os
import shutil
import subprocess
import tempfile
import time

from tests.support import apprepo
from tests.support.paths import PM2, REPO, VENV_BIN
from tests.support.pgcluster import Cluster, free_port
from tests.support.playbooks import run_playbook

NODE_BIN = os.path.join(REPO, "node_modules", ".bin")
MANUAL_DIR = os.path.join(REPO, "bench", "manual")


class BenchEnv:
    """Start with `with BenchEnv() as env:`; everything it started is stopped on exit."""

    def __init__(self, keep=False):
        self.keep = keep
        self.base = None
        self.cluster = None
        self.pm2_homes = []
        self.repo = None
        self.shas = {}
        self._runs = 0

    def __enter__(self):
        self.base = tempfile.mkdtemp(prefix="maestro-bench-", dir="/tmp")
        os.chmod(self.base, 0o755)  # noqa: S103 - the postgres user must reach the cluster below
        self.cluster = Cluster(os.path.join(self.base, "pg"))
        self.cluster.start()
        return self

    def __exit__(self, *exc):
        for home in self.pm2_homes:
            subprocess.run([PM2, "kill"], env=dict(os.environ, PM2_HOME=home), capture_output=True, timeout=120)
        if self.cluster:
            self.cluster.destroy()
        if not self.keep:
            shutil.rmtree(self.base, ignore_errors=True)

    # -- paths and resources ------------------------------------------------------------------
    def path(self, *parts):
        p = os.path.join(self.base, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def dir(self, *parts):
        p = os.path.join(self.base, *parts)
        os.makedirs(p, exist_ok=True)
        os.chmod(p, 0o755)  # noqa: S103 - the postgres user writes server-side files here
        return p

    def pm2_home(self, name):
        home = self.dir("pm2", name)
        self.pm2_homes.append(home)
        return home

    def kill_pm2(self, home):
        subprocess.run([PM2, "kill"], env=dict(os.environ, PM2_HOME=home), capture_output=True, timeout=120)

    def app_repo(self):
        """The example app's git repository (tags v1, v2, and v3 = v2's code as 3.0.0), made once."""
        if self.repo is None:
            self.repo = self.path("apprepo", "example-app.git")
            self.shas = apprepo.make_app_repo(self.repo)
            self.shas["v3"] = apprepo.make_variant(self.repo, "v3", base="v2", version="3.0.0")
        return self.repo, self.shas

    def create_db(self, name):
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        return self.cluster.create_database(name)

    def drop_db(self, name):
        self.cluster.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    # -- running things -----------------------------------------------------------------------
    def playbook(self, name, inventory, extravars=None, forks=None, strategy=None, envvars=None):
        """Run playbooks/<name> through ansible-runner like the tests; returns (run, wall seconds).
        strategy: None for ansible.cfg's (Mitogen's mitogen_linear), or e.g. "linear"."""
        self._runs += 1
        envvars = dict(envvars or {}, **({"ANSIBLE_FORKS": str(forks)} if forks else {}))
        if strategy:
            envvars["ANSIBLE_STRATEGY"] = strategy
        start = time.monotonic()
        run = run_playbook(name, inventory, self.dir("runner", "%03d" % self._runs),
                           extravars=extravars or {}, envvars=envvars or None)
        return run, time.monotonic() - start

    def script_env(self, **extra):
        """Environment for bench/manual/*.sh: the cluster as the guide's `-U postgres`, the tools."""
        env = dict(os.environ)
        env.update({
            "PATH": os.pathsep.join([self.cluster.bindir, VENV_BIN, NODE_BIN, os.environ.get("PATH", "")]),
            "PGHOST": self.cluster.socket_dir, "PGPORT": str(self.cluster.port), "PGUSER": "postgres",
            "PY": os.path.join(VENV_BIN, "python"), "PYTHONPATH": REPO, "LC_ALL": "C",
            "CHECKPOINT_DISABLE": "1", "npm_config_audit": "false", "npm_config_fund": "false",
        })
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def run_script(self, name, marks_file, **extra):
        """Run bench/manual/<name> (bash -e); returns (wall seconds, {mark: epoch})."""
        env = self.script_env(MARKS=marks_file, **extra)
        start = time.monotonic()
        proc = subprocess.run(["bash", os.path.join(MANUAL_DIR, name)], env=env, capture_output=True, text=True,
                              timeout=1800)
        wall = time.monotonic() - start
        if proc.returncode != 0:
            raise RuntimeError(f"{name} failed (rc {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
        return wall, read_marks(marks_file)


def read_marks(path):
    marks = {}
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                name, _, stamp = line.strip().partition(" ")
                if name:
                    marks[name] = float(stamp)
    return marks


def between(marks, start, end):
    return round(marks[end] - marks[start], 3) if start in marks and end in marks else None


def hosts_inventory(env, db_name, count, tag, fleet=None, **overrides):
    """An inventory of `count` app hosts on this machine, each with its own app_root, port and PM2
    home, all on one database. Without a fleet: the local connection, the first host also the db
    host. With one (bench/fleet.py): each app host over SSH as the fleet's deploy user, and the
    database its own host, `db` (the local connection: the PostgreSQL runs here)."""
    repo, _ = env.app_repo()
    if fleet:
        repo = fleet.repo_copy(repo, env.path("hosts", tag, "example-app.git"))
    hosts = {}
    for i in range(1, count + 1):
        name = "h%02d" % i
        port = free_port()
        hosts[name] = {
            "app_name": f"bench-{tag}-{name}",
            "app_root": env.dir("hosts", tag, name, "www"),
            "app_port": port,
            "pm2_home": env.pm2_home(f"{tag}-{name}"),
            "healthcheck_url": f"http://127.0.0.1:{port}/health",
        }
        if fleet:
            fleet.own(hosts[name]["app_root"])
            fleet.own(hosts[name]["pm2_home"])
            hosts[name].update(fleet.host_vars(i - 1))
    group_vars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "app_repo": repo,
        "app_version": "v1",
        "app_env": {"NODE_ENV": "production"},
        "db_name": db_name,
        "db_host": "127.0.0.1",
        "db_port": env.cluster.port,
        "db_user": env.cluster.app_user,
        "db_password": env.cluster.app_password,
        "backup_dir": env.dir("hosts", tag, "backups"),
        "migration_tool": "prisma",
        "keep_releases": 5,
    }
    group_vars.update(overrides)
    db_hosts = {"db": {"ansible_connection": "local"}} if fleet else {"h01": None}
    return {
        "all": {
            "children": {"app": {"hosts": hosts}, "db": {"hosts": db_hosts}},
            "vars": group_vars,
        }
    }
