"""Issue 16 item 8: recovery point and recovery time of a disaster (the database's disk lost)
with a writer committing rows at a fixed rate, for the nightly dump (the manual procedure's
backup, assumed kept off the lost disk), pgBackRest with archive_timeout 60 s, and the tightest
setting made to work here (archive_timeout 1 s). The pgBackRest cases rebuild with
`restore.yml -e restore_mode=disaster`; the dump case builds a fresh cluster and restores the dump
into it, as the guide's procedure would."""

import os
import shutil
import threading
import time

import psycopg

from bench import data
from bench.report import row
from tests.support.adhoc import run_module
from tests.support.pgbackrest_host import Host, stub_crontab
from tests.support.pgcluster import Cluster
from tests.support.paths import VENV_BIN

DB = "ledger"


class Writer(threading.Thread):
    """Commits one row every 1/rate s (reconnecting after a failure); remembers each commit's time by id."""

    def __init__(self, cluster, rate, first_id):
        super().__init__(daemon=True)
        self.cluster, self.rate, self.committed, self.stop = cluster, rate, {}, threading.Event()
        self.n = first_id - 1

    def run(self):
        while not self.stop.is_set():
            try:
                with psycopg.connect(host=self.cluster.socket_dir, port=self.cluster.port, user="postgres",
                                     dbname=DB, autocommit=True, connect_timeout=2) as conn:
                    while not self.stop.is_set():
                        self.n += 1
                        conn.execute("INSERT INTO ticks (id) VALUES (%s)", (self.n,))
                        self.committed[self.n] = time.time()
                        time.sleep(1.0 / self.rate)
            except psycopg.Error:
                time.sleep(0.2)


def lost(cluster, committed, crashed):
    """(rows lost, seconds of writes lost) of the rows committed before the crash."""
    before = {i: t for i, t in committed.items() if t <= crashed}
    present = {int(i) for i in cluster.psql("SELECT id FROM ticks", db=DB).split()}
    gone = [t for i, t in before.items() if i not in present]
    return len(gone), round(crashed - min(gone), 2) if gone else 0.0


def run(env, size_mb, window_s=90, tight_window_s=20, rate=20.0):
    cluster = env.cluster
    base = env.dir("pgbr")
    host = Host(base, cluster)
    envvars = {"PATH": os.pathsep.join([stub_crontab(base), VENV_BIN, os.environ["PATH"]])}
    inventory = host.inventory(pgbackrest_restart_allowed=True, app_name=DB, restore_start_command=host.start_command(),
                               restore_log_file=cluster.log)
    details = {"rate_per_s": rate, "window_s": window_s, "size_mb": size_mb, "cases": {}}

    def set_up(archive_timeout):
        inventory["all"]["vars"]["pgbackrest_archive_timeout"] = archive_timeout
        run_, _wall = env.playbook("pgbackrest.yml", inventory, envvars=envvars)
        if not run_.ok:
            raise RuntimeError("pgbackrest.yml failed:\n" + run_.stdout[-3000:])

    def disaster(name, archive_timeout, window, dump_dir=None):
        set_up(archive_timeout)
        host.pgbackrest("--type=full", "backup")
        writer = Writer(cluster, rate, int(cluster.psql("SELECT coalesce(max(id), 0) + 1 FROM ticks", db=DB)))
        writer.start()
        dump = None
        if dump_dir:  # the nightly dump, taken as the writer starts (the manual procedure's backup)
            env.run_script("backup.sh", env.path("marks", "dump"), DB_NAME=DB, BACKUP_DIR=dump_dir)
            dump = [os.path.join(dump_dir, f) for f in os.listdir(dump_dir)][0]
            dumped_at = time.time()
        time.sleep(window)
        crashed = time.time()
        host.crash()
        committed = dict(writer.committed)
        shutil.rmtree(cluster.data)
        run_, wall = env.playbook("restore.yml", inventory, extravars={"restore_mode": "disaster"},
                                  envvars=envvars)
        if not run_.ok:
            raise RuntimeError("restore.yml disaster failed:\n" + run_.stdout[-3000:])
        rows, seconds = lost(cluster, committed, crashed)
        writer.stop.set()
        writer.join(10)
        details["cases"][name] = {"archive_timeout_s": archive_timeout, "committed": len(
            [t for t in committed.values() if t <= crashed]), "rows_lost": rows, "seconds_lost": seconds,
            "recovery_s": round(wall, 2)}
        if dump:
            details["cases"]["nightly dump"] = manual(env, dump, committed, crashed, dumped_at)

    def manual(env, dump, committed, crashed, dumped_at):
        """The lost cluster replaced by a fresh one and the dump restored into it (gunzip | psql)."""
        fresh = Cluster(env.dir("manual-pg"))
        start = time.monotonic()
        fresh.start()
        fresh.create_database(DB)  # what restore.sh drops and creates again, as the guide does
        env.run_script("restore.sh", env.path("marks", "restore"), DB_NAME=DB, BACKUP=dump,
                       PGHOST=fresh.socket_dir, PGPORT=str(fresh.port))
        recovered_s = time.monotonic() - start
        rows, seconds = lost(fresh, committed, crashed)
        fresh.destroy()
        return {"committed": len([t for t in committed.values() if t <= crashed]), "rows_lost": rows,
                "seconds_lost": seconds, "recovery_s": round(recovered_s, 2),
                "dump_age_at_crash_s": round(crashed - dumped_at, 2)}

    def deploy_backup():
        """Issue 16 item 4: the deploy's backup before its migrations, the backup role's default dump
        (pg_backup: custom, zstd, verify=read) against a restore point (backup_method: pgbackrest), as
        the role runs each (a module run, over the socket as postgres)."""
        set_up(60)
        host.pgbackrest("--type=full", "backup")
        conn = dict(db=DB, host=cluster.socket_dir, port=cluster.port, user="postgres")
        timed = {}
        for name, module, args in (
                ("dump", "maestro.deploy.pg_backup", dict(conn, dest_dir=env.dir("deploy-dumps"), compression="zstd",
                                                           verify="read", label="bench")),
                ("restore point", "maestro.deploy.pgbackrest_restore_point",
                 dict(conn, stanza=host.stanza, config=host.config, label="bench-" + str(int(time.time()))))):
            start = time.monotonic()
            done = run_module(module, args, timeout=1800)
            timed[name] = round(time.monotonic() - start, 2)
            if done.failed:
                raise RuntimeError("%s failed: %s" % (module, done.result.get("msg") or done.stderr[-2000:]))
        details["deploy_backup"] = timed

    env.create_db(DB)
    details["data"] = data.generate(cluster, DB, size_mb)  # what a restore has to bring back besides the rows
    cluster.psql("CREATE TABLE ticks (id int PRIMARY KEY, at timestamptz NOT NULL DEFAULT clock_timestamp())", db=DB)
    deploy_backup()
    disaster("pgBackRest, archive_timeout 60 s", 60, window_s, dump_dir=env.dir("dumps"))
    disaster("pgBackRest, archive_timeout 1 s", 1, tight_window_s)
    return details, rows_from(details)


def rows_from(d):
    b = "disaster"
    dump = d["cases"]["nightly dump"]
    rows = []
    if d.get("deploy_backup"):
        timed = d["deploy_backup"]
        rows.append(row("deploy stage", "backup before the migrations: restore point (backup_method: pgbackrest) vs "
                        "the default dump", "s", timed["dump"], timed["restore point"],
                        note=f"{d['size_mb']:g} MB of data; reference = pg_backup custom/zstd/verify=read; each a "
                             "module run (pgbackrest check waits for the WAL to be archived)"))
    for name, case in d["cases"].items():
        if name == "nightly dump":
            continue
        bound = case["archive_timeout_s"]
        rows.append(row(b, f"recovery point: seconds of writes lost, {name}", "s", dump["seconds_lost"],
                        case["seconds_lost"], f"≤ archive_timeout ({bound} s) + a push", absolute=bound + 3,
                        note=f"{case['rows_lost']} of {case['committed']} rows at {d['rate_per_s']:g}/s; manual = "
                             f"nightly dump {dump['dump_age_at_crash_s']:g} s old here (up to 24 h in production)"))
        rows.append(row(b, f"recovery time: until the database answers, {name}", "s", dump["recovery_s"],
                        case["recovery_s"], note=f"{d['size_mb']:g} MB of data; ours: restore.yml "
                                                 "restore_mode=disaster (plan, rebuild, start, promote); manual: a "
                                                 "fresh cluster and the dump restored into it"))
    return rows
