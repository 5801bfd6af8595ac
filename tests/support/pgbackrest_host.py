"""One db host's worth of pgBackRest for tests and benchmarks: a throwaway cluster and every
path roles/pgbackrest is given (repository, spool, log, lock, cron file) under one directory of
its own, so runs side by side never meet."""

import os
import subprocess
import sys

from tests.support.adhoc import run_module

QUEUE_MAX = "64MB"


class Host:
    """One db host's worth of pgBackRest: a cluster and every path the role is given."""

    def __init__(self, base, cluster):
        self.base = base
        self.cluster = cluster
        self.stanza = "t" + os.urandom(3).hex()
        self.config = os.path.join(base, "etc", "pgbackrest.conf")
        self.repo = os.path.join(base, "repo")
        self.log = os.path.join(base, "log")
        self.cron = os.path.join(base, "cron")
        self.vars = {
            "pgbackrest_stanza": self.stanza, "pgbackrest_config_file": self.config,
            "pgbackrest_pg_path": cluster.data, "pgbackrest_pg_port": cluster.port,
            "pgbackrest_pg_socket_path": cluster.socket_dir, "pgbackrest_repo_path": self.repo,
            "pgbackrest_spool_path": os.path.join(base, "spool"), "pgbackrest_log_path": self.log,
            "pgbackrest_lock_path": os.path.join(base, "lock"), "pgbackrest_cron_file": self.cron,
            "pgbackrest_archive_push_queue_max": QUEUE_MAX, "pgbackrest_install": False,
            "pgbackrest_restart_command": self.as_postgres([
                os.path.join(cluster.bindir, "pg_ctl"), "restart", "-D", cluster.data, "-m", "fast", "-w",
                "-t", "60", "-l", cluster.log]),
        }

    @staticmethod
    def as_postgres(argv):
        return (["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []) + argv

    def pgbackrest(self, *args, check=True):
        return subprocess.run(self.as_postgres(["pgbackrest", "--config=" + self.config, "--stanza=" + self.stanza]
                                               + list(args)), capture_output=True, text=True, check=check,
                              timeout=300)

    def start_command(self):
        """The argv that starts the cluster (restore.yml's restore_start_command for it)."""
        return self.as_postgres([os.path.join(self.cluster.bindir, "pg_ctl"), "start", "-D", self.cluster.data,
                                 "-l", self.cluster.log, "-w", "-t", "120"])

    def crash(self):
        """Stop the server the way a crash does: no shutdown checkpoint, no last WAL switch."""
        subprocess.run(self.as_postgres([os.path.join(self.cluster.bindir, "pg_ctl"), "stop", "-D", self.cluster.data,
                                         "-m", "immediate", "-w"]), capture_output=True, check=True, timeout=120)

    def postmaster_pid(self):
        with open(os.path.join(self.cluster.data, "postmaster.pid")) as fh:
            return int(fh.readline())

    def inventory(self, **extra):
        hostvars = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable}
        hostvars.update(self.vars, **extra)
        return {"all": {"children": {"db": {"hosts": {"localhost": None}}}, "vars": hostvars}}

    def info(self, **thresholds):
        args = dict(stanza=self.stanza, config=self.config, **thresholds)
        done = run_module("maestro.deploy.pgbackrest_info", args)
        assert not done.failed, (done.stdout, done.stderr)
        return done.result


def stub_crontab(base):
    """The cron module insists on finding `crontab` though with cron_file it never runs it."""
    bindir = os.path.join(base, "bin")
    os.makedirs(bindir)
    stub = os.path.join(bindir, "crontab")
    with open(stub, "w") as fh:
        fh.write("#!/bin/sh\necho 'crontab must not run: cron_file is used' >&2\nexit 1\n")
    os.chmod(stub, 0o755)
    return bindir
