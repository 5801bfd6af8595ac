"""playbooks/restore.yml against real pgBackRest 2.45 on a throwaway cluster of the test's own:
the pgbackrest role sets the stanza up, a full backup is taken, rows are written, the time is
noted, more rows are written and a bad DELETE runs; the playbook then recovers the database to
that time through a scratch cluster and swaps it in for the live one."""

import json
import os
import pwd
import re
import shutil
import time

import pytest

from bench.probe import AvailabilityProbe
from tests.integration.test_pgbackrest import wait_for
from tests.support.modrun import run_module
from tests.support.paths import VENV_BIN
from tests.support.pgbackrest_host import Host, stub_crontab
from tests.support.pgcluster import Cluster

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None,
                                reason="pgbackrest is not installed (scripts/setup.sh installs it)")

DB = "shop"


@pytest.fixture
def pitr_host():
    base = os.path.join("/tmp", "maestro-pitr-" + os.urandom(4).hex())
    os.mkdir(base)
    os.chmod(base, 0o755)
    cluster = Cluster(os.path.join(base, "pg"))
    try:
        cluster.start()
        host = Host(base, cluster)
        host.backups = os.path.join(base, "backups")
        os.mkdir(host.backups, 0o700)
        if os.geteuid() == 0:  # postgres's, as the backup role makes it: the scratch cluster lives in it
            user = pwd.getpwnam("postgres")
            os.chown(host.backups, user.pw_uid, user.pw_gid)
        yield host
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


def archive_files(host):
    """Every WAL file (segment, .backup, .history) in the stanza's archive, by name (archive.info aside)."""
    top = os.path.join(host.repo, "archive", host.stanza)
    return {f for _d, _s, files in os.walk(top) for f in files if re.match(r"^[0-9A-F]{8}", f)}


def scratch_processes(path):
    """Pids of processes whose command line names `path`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as fh:
                if path.encode() in fh.read():
                    found.append(int(pid))
        except OSError:
            continue
    return found


def test_restore_yml_recovers_one_database_to_a_time_beside_the_live_site(pitr_host, playbook):
    host, cluster = pitr_host, pitr_host.cluster
    env = {"PATH": os.pathsep.join([stub_crontab(host.base), VENV_BIN, os.environ["PATH"]])}
    setup = playbook("pgbackrest.yml", host.inventory(pgbackrest_restart_allowed=True), envvars=env)
    assert setup.ok, setup.stdout

    cluster.create_database(DB)
    q = lambda sql: cluster.psql(sql, db=DB)  # noqa: E731
    q("CREATE TABLE items (id int PRIMARY KEY, note text); "
      "INSERT INTO items SELECT g, 'before the backup' FROM generate_series(1, 100) g")
    host.pgbackrest("--type=full", "backup")
    q("INSERT INTO items SELECT g, 'after the backup, before the point' FROM generate_series(101, 150) g")
    time.sleep(1.1)
    point = q("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")
    time.sleep(1.1)
    q("INSERT INTO items SELECT g, 'after the point' FROM generate_series(151, 160) g")
    q("DELETE FROM items WHERE id <= 50")  # the bad change
    segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    wait_for("WAL %s archived" % segment, lambda: (
        lambda w: w and w["max"] >= segment)(host.info()["repos"][0]["newest_wal"]))
    archive_before = archive_files(host)
    assert archive_before and all(name.startswith("00000001") for name in archive_before)

    app_root = os.path.join(host.base, "www")
    os.mkdir(app_root)
    inventory = host.inventory(app_name="pitrapp", db_name=DB, backup_dir=host.backups, backup_owner="postgres",
                               app_root=app_root)
    inventory["all"]["children"]["app"] = {"hosts": {"localhost": None}}
    lock = os.path.join(app_root, ".deploy.lock")

    def deploy_lock(**args):
        return run_module("deploy_lock", dict(args, path=lock, token="a-deploy-of-another-run"), host.base)

    def restore(check=False, **extra):
        return playbook("restore.yml", inventory, envvars=env, check=check, extravars=extra)

    def live():
        return q("SELECT count(*), min(id), max(id) FROM items")

    # A bad time is refused in the first task, naming it; nothing changes.
    refused = restore(restore_target="time", restore_time="2026-12-01 10:00")
    assert not refused.ok
    (failed,) = refused.failed_tasks()
    assert failed["task"] == "Check the restore's values before anything changes"
    assert "restore_time=2026-12-01 10:00 (an ISO 8601 time with a timezone" in failed["res"]["msg"]
    assert os.listdir(host.backups) == [] and live() == "110|51|160"

    # Check mode: the plan, and nothing changed.
    preview = restore(check=True, restore_target="time", restore_time=point)
    assert preview.ok, preview.stdout
    (shown,) = [r["res"]["msg"] for r in preview.task_results("Show the recovery plan")]
    backup = host.info()["repos"][0]["newest_backup"]
    assert shown[0].startswith("Would recover %s on localhost to time %s" % (DB, point[:19].replace("T", " ")))
    assert shown[1].startswith("Backup set: %s in repo1 (full, " % backup["label"])
    assert "%d bytes" % backup["size_bytes"] in shown[1]
    wal = host.info()["repos"][0]["newest_wal"]
    assert shown[2] == "Archived WAL (15-1): %s to %s." % (wal["min"], wal["max"])
    assert shown[3].startswith("Scratch cluster: %s/pitr-" % host.backups) and "(port 55432, " in shown[3]
    assert os.listdir(host.backups) == [] and live() == "110|51|160"
    assert cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%s\\_\\_%%'" % DB) == "0"

    # A deploy holds the app host's lock: the restore is refused before anything changes, naming it.
    assert not deploy_lock(holder={"who": "ops", "action": "deploy", "version": "v9", "release_id": "r9"}).failed
    blocked = restore(restore_target="time", restore_time=point)
    assert not blocked.ok
    (failed,) = blocked.failed_tasks()
    assert failed["task"].startswith("Take the deploy lock of every app host"), failed
    assert "deploy" in str(failed["res"]) and "v9" in str(failed["res"]), failed["res"]
    assert os.listdir(host.backups) == [] and live() == "110|51|160"
    assert json.load(open(lock))["token"] == "a-deploy-of-another-run"  # its lock is left as it was
    assert not deploy_lock(state="absent").failed and not os.path.exists(lock)

    # The recovery, under the app host's deploy lock, released at the end, with the live database
    # watched the way an app sees it (a new connection and a read every 5 ms).
    with AvailabilityProbe(dict(host=cluster.socket_dir, port=cluster.port, user="postgres", dbname=DB),
                           query="SELECT count(*) FROM items") as probe:
        run = restore(restore_target="time", restore_time=point)
    assert run.ok, run.stdout
    seen = probe.summary()
    print("live database %s during the restore: unavailable %.3f s at most (%d of %d probes failed, resolution "
          "%.3f s)" % (DB, seen["unavailable_s"], seen["failed_probes"], seen["probes"], seen["probe_resolution_s"]))
    assert seen["probes"] > 100 and seen["unavailable_s"] <= 1.0, seen
    (took,) = run.task_results("Take the deploy lock of every app host (no deploy or rollback while the database is "
                               "restored)")
    assert took["res"]["results"][0]["changed"] is True
    assert not os.path.exists(lock)
    (summary,) = [r["res"]["msg"] for r in run.task_results("Summarise the restore")]
    print("\n".join(summary))
    (scratch,) = [r["res"] for r in run.task_results("Restore the backup into the scratch cluster and wait until it "
                                                     "has promoted", ran=True)]
    assert scratch["changed"] and scratch["timeline"] == 2 and scratch["recovery"]["fatal"] is None
    assert scratch["recovery"]["stopped"].startswith("recovery stopping before commit of transaction")
    argv = scratch["commands"][[i for i, c in enumerate(scratch["commands"]) if "restore" in c["cmd"]][0]]["cmd"]
    assert "--archive-mode=off" in argv and "--type=time" in argv and "--target-action=promote" in argv
    assert "--set=%s" % backup["label"] in argv and "--pg1-path=%s/data" % scratch["plan"]["scratch_dir"] in argv

    # Live: the rows from before the point, none after, the bad DELETE undone.
    assert live() == "150|1|150"
    assert q("SELECT count(*) FROM items WHERE note = 'after the point'") == "0"
    # The database as it was is kept, with the later rows, and they were counted.
    (previous,) = cluster.psql("SELECT datname FROM pg_database WHERE datname LIKE '%s\\_\\_pre\\_restore\\_%%'"
                               % DB).splitlines()
    assert cluster.psql("SELECT count(*), min(id), max(id) FROM items", db=previous) == "110|51|160"
    (lost,) = [r["res"] for r in run.task_results("Count the rows written since the recovery point that the swap "
                                                  "set aside", ran=True)]
    assert lost["tables"] == {"public.items": 10}
    # The dump is a pg_backup one, labelled with the restore's id.
    dumps = [n for n in os.listdir(host.backups) if n.endswith(".dump")]
    assert len(dumps) == 1
    manifest = json.load(open(os.path.join(host.backups, dumps[0] + ".json")))
    assert manifest["tool"] == "maestro.deploy.pg_backup" and manifest["label"].startswith("pitr-")
    # The scratch cluster is gone: no directory, no process.
    scratch_dir = scratch["plan"]["scratch_dir"]
    assert not os.path.exists(scratch_dir)
    assert scratch_processes(scratch_dir) == []
    assert sorted(os.listdir(host.backups)) == sorted(dumps + [dumps[0] + ".json"])
    # The repository's archive got nothing from the scratch copy (timeline 2): only the live
    # server's own timeline-1 segments were added.
    live_segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    wait_for("WAL %s archived" % live_segment, lambda: (
        lambda w: w and w["max"] >= live_segment)(host.info()["repos"][0]["newest_wal"]))
    added = archive_files(host) - archive_before
    assert added and all(name.startswith("00000001") for name in added), added
    assert not [n for n in archive_files(host) if ".history" in n or n.startswith("00000002")]
    assert host.info()["repos"][0]["newest_wal"]["max"].startswith("00000001")
