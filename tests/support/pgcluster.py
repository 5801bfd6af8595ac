"""A throwaway PostgreSQL cluster built from the server binaries (initdb + pg_ctl).

Used by the test session, `make demo` (a persistent cluster under .local/) and the
benchmarks. It never touches a system service: its own data directory, a free port on
127.0.0.1 and its unix socket inside its own directory. initdb refuses to run as root, so
as root the server runs as the `postgres` user (the directory is handed over to it).

Roles: the superuser `postgres` (trust over the unix socket only) and an application role
with a password (scram-sha-256 over TCP), so tests exercise the password path for real.

    python -m tests.support.pgcluster start .local/pg --port 5433 [--demo]
    python -m tests.support.pgcluster stop .local/pg

With --demo (make demo) as root, the server's files (data, socket, log) go to
/var/tmp/maestro-demo-<hash of the settings directory> (`demo_server_dir`), owned by postgres,
because a clone under a directory postgres cannot traverse (root's 0700 home) cannot hold them;
the settings (cluster.json) stay in the given directory and say where the server is.
"""

import argparse
import glob
import hashlib
import json
import os
import pwd
import shutil
import socket
import subprocess
import sys

SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")
CLIENT_BINARIES = ("pg_dump", "pg_restore", "psql")


def server_bindir():
    """Directory holding initdb/pg_ctl: $PG_BINDIR, else the newest /usr/lib/postgresql/<ver>/bin."""
    if os.environ.get("PG_BINDIR"):
        return os.environ["PG_BINDIR"]
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for path in reversed(candidates):
        if all(os.access(os.path.join(path, b), os.X_OK) for b in SERVER_BINARIES):
            return path
    raise RuntimeError(
        "PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin: "
        "install them with `apt-get install -y postgresql` or set PG_BINDIR"
    )


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def demo_server_dir(base, euid=None):
    """Where `make demo` puts the server's files: None (inside `base`) unless running as root, where
    the server runs as postgres, which may not traverse the clone's parents (root's home is 0700):
    then /var/tmp/maestro-demo-<first 12 hex of sha256(real path of base)>, one per clone."""
    if (os.geteuid() if euid is None else euid) != 0:
        return None
    digest = hashlib.sha256(os.path.realpath(base).encode()).hexdigest()[:12]
    return os.path.join("/var/tmp", "maestro-demo-" + digest)


class Cluster:
    """One cluster: `base` holds cluster.json (its settings) and, unless `server_dir` is given,
    data/, the socket and the log; with `server_dir` those live there."""

    def __init__(self, base, port=None, app_user="maestro_app", app_password=None, server_dir=None):
        self.base = os.path.abspath(base)
        saved = self._load()
        self.server_dir = saved.get("server_dir") or (os.path.abspath(server_dir) if server_dir else self.base)
        if not saved.get("server_dir") and os.path.exists(os.path.join(self.base, "data", "PG_VERSION")):
            self.server_dir = self.base  # a cluster made before server_dir existed stays where it is
        self.data = os.path.join(self.server_dir, "data")
        self.log = os.path.join(self.server_dir, "server.log")
        self.socket_dir = self.server_dir
        self.bindir = server_bindir()
        self.port = port or saved.get("port") or free_port()
        self.app_user = saved.get("app_user", app_user)
        self.app_password = saved.get("app_password") or app_password or "app-" + os.urandom(9).hex()
        self.run_as = "postgres" if os.geteuid() == 0 else None

    # -- settings -------------------------------------------------------------------------
    @property
    def _settings_file(self):
        return os.path.join(self.base, "cluster.json")

    def _load(self):
        try:
            with open(self._settings_file) as fh:
                return json.load(fh)
        except FileNotFoundError:
            return {}

    def _save(self):
        fd = os.open(self._settings_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump({"port": self.port, "app_user": self.app_user, "app_password": self.app_password,
                       "server_dir": self.server_dir}, fh)

    # -- running the server binaries ----------------------------------------------------------
    def _server_cmd(self, argv, **kwargs):
        if self.run_as:
            argv = ["runuser", "-u", self.run_as, "--"] + argv
        env = dict(os.environ, LC_ALL="C")
        return subprocess.run(argv, env=env, check=True, capture_output=True, text=True, **kwargs)

    def _prepare_dirs(self):
        os.makedirs(self.base, exist_ok=True)
        os.makedirs(self.server_dir, exist_ok=True)
        os.chmod(self.server_dir, 0o700 if self.server_dir != self.base else 0o755)
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(self.server_dir, user.pw_uid, user.pw_gid)
            probe = subprocess.run(["runuser", "-u", self.run_as, "--", "test", "-w", self.server_dir])
            if probe.returncode != 0:
                raise RuntimeError(
                    f"the {self.run_as} user cannot write to {self.server_dir}: a parent directory is not "
                    "traversable; put the cluster somewhere it can reach (for example under /tmp)"
                )

    def initdb(self):
        if os.path.exists(os.path.join(self.data, "PG_VERSION")):
            return False
        self._prepare_dirs()
        pwfile = os.path.join(self.server_dir, "superuser.pw")  # postgres must read it
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("postgres-" + os.urandom(9).hex() + "\n")
        if self.run_as:
            user = pwd.getpwnam(self.run_as)
            os.chown(pwfile, user.pw_uid, user.pw_gid)
        try:
            self._server_cmd([
                os.path.join(self.bindir, "initdb"), "-D", self.data, "-U", "postgres",
                "--auth-local=trust", "--auth-host=scram-sha-256", f"--pwfile={pwfile}",
                "-E", "UTF8", "--locale=C", "--no-sync",
            ])
        finally:
            os.unlink(pwfile)
        with open(os.path.join(self.data, "postgresql.auto.conf"), "a") as fh:
            fh.write(
                f"listen_addresses = '127.0.0.1'\nport = {self.port}\n"
                f"unix_socket_directories = '{self.socket_dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\n"
            )
        return True

    def is_running(self):
        if not os.path.exists(os.path.join(self.data, "postmaster.pid")):
            return False
        try:
            self._server_cmd([os.path.join(self.bindir, "pg_ctl"), "status", "-D", self.data])
            return True
        except subprocess.CalledProcessError:
            return False

    def start(self):
        """Create (once), start (unless running) and set up the app role. Returns self."""
        created = self.initdb()
        if not self.is_running():
            self._server_cmd([
                os.path.join(self.bindir, "pg_ctl"), "start", "-D", self.data, "-l", self.log,
                "-w", "-t", "60", "-o", f"-p {self.port}",
            ])
        if created or not self._load():
            self._create_app_role()
            self._save()
        return self

    def stop(self):
        if self.is_running():
            self._server_cmd([os.path.join(self.bindir, "pg_ctl"), "stop", "-D", self.data, "-m", "fast", "-w"])

    def destroy(self):
        self.stop()
        if self.server_dir != self.base:
            shutil.rmtree(self.server_dir, ignore_errors=True)
        shutil.rmtree(self.base, ignore_errors=True)

    # -- SQL as the superuser -----------------------------------------------------------------
    def psql(self, sql, db="postgres"):
        """Run SQL as the superuser over the socket; returns stdout (unaligned, tuples only)."""
        out = subprocess.run(
            [os.path.join(self.bindir, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", self.socket_dir, "-p", str(self.port), "-U", "postgres", "-d", db, "-c", sql],
            check=True, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"),
        )
        return out.stdout.strip()

    def _create_app_role(self):
        # The password is set through psql's stdin-free -c; it is test data, not a secret of ours.
        pw = self.app_password.replace("'", "''")
        self.psql(
            f"DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{self.app_user}') THEN "
            f"CREATE ROLE {self.app_user} LOGIN CREATEDB PASSWORD '{pw}'; END IF; END $$;"
        )

    def create_database(self, name, owner=None):
        owner = owner or self.app_user
        self.psql(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    # -- what clients need ----------------------------------------------------------------------
    def conninfo(self, db, user=None, password=None):
        """Connection settings for the app role over TCP (the password path)."""
        return {
            "host": "127.0.0.1", "port": self.port, "user": user or self.app_user,
            "password": self.app_password if password is None else password, "dbname": db,
        }

    def url(self, db):
        return f"postgresql://{self.app_user}:{self.app_password}@127.0.0.1:{self.port}/{db}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["start", "stop", "status", "destroy"])
    parser.add_argument("base")
    parser.add_argument("--port", type=int)
    parser.add_argument("--database", action="append", default=[], help="create this database when missing")
    parser.add_argument("--demo", action="store_true",
                        help="as root, put the server's files where postgres can reach them (demo_server_dir)")
    args = parser.parse_args(argv)
    cluster = Cluster(args.base, port=args.port, server_dir=demo_server_dir(args.base) if args.demo else None)
    if args.action == "start":
        cluster.start()
        for name in args.database:
            if not cluster.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}'"):
                cluster.create_database(name)
        print(json.dumps({"port": cluster.port, "socket_dir": cluster.socket_dir, "data": cluster.data,
                          "app_user": cluster.app_user}))
    elif args.action == "stop":
        cluster.stop()
        print(cluster.server_dir)
    elif args.action == "destroy":
        cluster.destroy()
    else:
        running = cluster.is_running()
        print("running" if running else "stopped")
        return 0 if running else 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
