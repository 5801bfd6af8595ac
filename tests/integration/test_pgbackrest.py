"""roles/pgbackrest (playbooks/pgbackrest.yml) and pgbackrest_info against real pgBackRest (Debian's
2.45, `apt-get install pgbackrest`) on a throwaway PostgreSQL cluster of each test's own (the role
turns archive_mode on and restarts it). Every pgBackRest path, its lock directory included, is the
test's, so tests can run side by side."""

import grp
import os
import re
import shutil
import stat
import tempfile
import time

import pytest

from tests.support.cron import run_cron_line
from tests.support.http import Receiver
from tests.support.paths import VENV_BIN
from tests.support.pgbackrest_host import QUEUE_MAX, Host, stub_crontab
from tests.support.pgcluster import Cluster

SEGMENT = 16 * 1024 ** 2

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None,
                                reason="pgbackrest is not installed (scripts/setup.sh installs it)")


CHECK_TASK = ("Give the monitoring check's one line, failing when continuous backup has a problem "
              "(-e status_check=true)")


@pytest.fixture
def pgbr_host():
    """A cluster of this test's own under /tmp (postgres must reach it), destroyed afterwards."""
    base = tempfile.mkdtemp(prefix="maestro-pgbr-", dir="/tmp")
    os.chmod(base, 0o755)
    cluster = Cluster(os.path.join(base, "pg"))
    try:
        cluster.start()
        yield Host(base, cluster)
    finally:
        cluster.destroy()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def pgbr_play(pgbr_host, playbook):
    env = {"PATH": os.pathsep.join([stub_crontab(pgbr_host.base), VENV_BIN, os.environ["PATH"]])}

    def run(check=False, diff=False, **extra):
        return playbook("pgbackrest.yml", pgbr_host.inventory(**extra), envvars=env, check=check, diff=diff)

    return run


def changed(run):
    return [r["task"] for r in run.task_results() if r["res"].get("changed")]


def wait_for(what, probe, timeout=120, every=1.0):
    deadline = time.time() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.time() > deadline:
            pytest.fail("timed out waiting for " + what)
        time.sleep(every)


def test_role_sets_up_archiving_stanza_backups_and_the_watch(pgbr_host, pgbr_play, playbook):
    host, cluster = pgbr_host, pgbr_host.cluster
    pid = host.postmaster_pid()

    # Check mode on a host without pgBackRest's set-up: says what it would do, changes nothing.
    preview = pgbr_play(check=True)
    assert preview.ok, preview.stdout
    assert "A restart of PostgreSQL would be needed for archive_mode" in preview.stdout
    assert not os.path.exists(host.config) and not os.path.exists(host.repo) and not os.path.exists(host.cron)
    assert cluster.psql("SHOW archive_mode") == "off"
    assert cluster.psql("SELECT count(*) FROM pg_file_settings WHERE name LIKE 'archive%'") == "0"

    # Without pgbackrest_restart_allowed: settings written, nothing restarted, a clear failure.
    refused = pgbr_play()
    assert not refused.ok
    failed = refused.failed_tasks()
    assert [f["task"] for f in failed] == ["Stop when PostgreSQL must be restarted and this run may not restart it"]
    assert failed[0]["res"]["msg"].startswith("RESTART NEEDED: PostgreSQL on localhost (port %d) must be restarted "
                                              "for archive_mode" % cluster.port)
    assert host.postmaster_pid() == pid
    assert cluster.psql("SHOW archive_mode") == "off"
    assert cluster.psql("SELECT setting FROM pg_file_settings WHERE name = 'archive_mode'") == "on"

    # Allowed: restarted, archiving, stanza created, pgbackrest check passed, cron entries.
    setup = pgbr_play(pgbackrest_restart_allowed=True)
    assert setup.ok, setup.stdout
    assert host.postmaster_pid() != pid
    assert cluster.psql("SHOW archive_mode") == "on"
    assert cluster.psql("SHOW archive_command") == \
        "pgbackrest --config=%s --stanza=%s archive-push %%p" % (host.config, host.stanza)
    assert cluster.psql("SHOW archive_timeout") == "1min"
    assert "Create the stanza in the repository" in changed(setup)
    checks = setup.task_results("Check that WAL is archived end to end (pgbackrest check)")
    assert [c["event"] for c in checks] == ["runner_on_ok"]
    conf = open(host.config).read()
    assert "archive-async=y" in conf and "archive-push-queue-max=%s" % QUEUE_MAX in conf
    assert "[%s]\npg1-path=%s\npg1-port=%d\n" % (host.stanza, cluster.data, cluster.port) in conf
    assert host.pgbackrest("check").returncode == 0
    cron = open(host.cron).read()
    base = "postgres pgbackrest --config=%s --stanza=%s" % (host.config, host.stanza)
    for line in ("30 1 * * 0 %s --type=full backup" % base, "30 1 * * 1-6 %s --type=diff backup" % base,
                 "30 4 * * 0 %s verify" % base):
        assert line in cron.splitlines()
    info = host.info(max_backup_age=3600, max_wal_age=3600)
    assert info["status"]["code"] == 2  # the stanza exists: "no valid backups"
    assert info["problems"][0] == "repo1: no backup of stanza %s" % host.stanza

    # A second run changes nothing; check mode with --diff neither.
    again = pgbr_play(pgbackrest_restart_allowed=True)
    assert again.ok, again.stdout
    assert changed(again) == []
    preview = pgbr_play(check=True, diff=True)
    assert preview.ok, preview.stdout
    assert changed(preview) == []

    # A full backup, reported by pgbackrest_info.
    host.pgbackrest("--type=full", "backup")
    info = host.info(max_backup_age=3600, max_wal_age=3600)
    (repo,) = info["repos"]
    backup = repo["newest_backup"]
    assert (backup["type"], repo["backup_count"]) == ("full", 1)
    assert backup["label"].endswith("F") and 0 <= backup["age_s"] < 300
    assert backup["size_bytes"] > 0 and backup["repo_size_bytes"] > 0
    assert info["problems"] == []
    as_postgres = [shutil.which("runuser"), "-u", "postgres", "--"] if os.geteuid() == 0 else []
    assert info["commands"][0]["cmd"] == as_postgres + [
        shutil.which("pgbackrest"), "--config=" + host.config, "--stanza=" + host.stanza, "--output=json", "info"]

    # A WAL segment switched out is archived and reported, with its age.
    cluster.psql("CREATE TABLE IF NOT EXISTS pitr_probe (x int); INSERT INTO pitr_probe VALUES (1)")
    segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    wal = wait_for("WAL %s in the repository" % segment, lambda: (
        lambda w: w if w and w["max"] >= segment else None)(host.info()["repos"][0]["newest_wal"]))
    assert wal["max"] >= segment and 0 <= wal["age_s"] < 120 and wal["pushed_at"] > 0

    # status.yml shows it (an app host with nothing deployed; the db is the cluster).
    inventory = host.inventory(app_name="pgbr-status", app_root=os.path.join(host.base, "www"),
                               pm2_home=os.path.join(host.base, "pm2"), db_name="postgres", db_host="127.0.0.1",
                               db_port=cluster.port, db_user=cluster.app_user, db_password=cluster.app_password,
                               backup_dir=os.path.join(host.base, "backups"))
    inventory["all"]["children"]["app"] = {"hosts": {"localhost": None}}
    status = playbook("status.yml", inventory)
    assert status.ok, status.stdout
    (shown,) = [r["res"]["msg"] for r in status.task_results("Show the status")]
    line = [m for m in shown if m.startswith("pgBackRest %s repo1: " % host.stanza)]
    assert len(line) == 1, shown
    assert line[0].startswith("pgBackRest %s repo1: newest backup %s full " % (host.stanza, backup["label"]))
    assert re.search(r"; last archived WAL [0-9A-F]{24} [0-9]+s ago$", line[0]), line[0]
    assert not [m for m in shown if m.startswith("pgBackRest problem")], shown

    # As a monitoring check: one line and Nagios's exit code, 0 while fresh, 2 once the newest
    # backup is older than the threshold (it is older than a second by now).
    check = playbook("status.yml", inventory, extravars={"status_check": True})
    assert check.ok and check.rc == 0, check.stdout
    (said,) = [r["res"]["msg"] for r in check.task_results(CHECK_TASK)]
    print("status_check=true, rc %d: %s" % (check.rc, said))
    assert re.match(r"^PGBACKREST OK - stanza %s: repo1 backup [0-9]+s old WAL [0-9]+s old$" % host.stanza, said), said
    stale = playbook("status.yml", inventory, extravars={"status_check": True, "pgbackrest_max_backup_age": 1})
    assert not stale.ok and stale.rc == 2, stale.stdout
    (failed,) = stale.failed_tasks()
    print("status_check=true pgbackrest_max_backup_age=1, rc %d: %s" % (stale.rc, failed["res"]["msg"]))
    assert failed["task"] == CHECK_TASK
    assert failed["res"]["msg"].startswith("PGBACKREST CRITICAL - stanza %s: repo1: newest backup %s (full) is "
                                           % (host.stanza, backup["label"])), failed["res"]["msg"]

    # The jobs report: with a notify and a heartbeat URL the cron lines run pgBackRest through the
    # wrapper, which POSTs the outcome and pings the heartbeat after a success; the URLs sit in a
    # file only the job's group can read, never on the cron line.
    with Receiver() as hook:
        urls = {"pgbackrest_notify_url": hook.url("/hooks/s3cret?t=1"), "pgbackrest_heartbeat_url": hook.url("/hb/u"),
                "pgbackrest_code_dir": os.path.join(host.base, "code"), "pgbackrest_cron_python": "/usr/bin/python3"}
        reporting = pgbr_play(pgbackrest_restart_allowed=True, **urls)
        assert reporting.ok, reporting.stdout
        cron = open(host.cron).read()
        assert "s3cret" not in cron and "maestro_pgbackrest_job.py" in cron
        notify_file = os.path.join(os.path.dirname(host.config), "maestro-notify-%s.json" % host.stanza)
        st = os.stat(notify_file)
        assert (st.st_uid, stat.S_IMODE(st.st_mode), grp.getgrgid(st.st_gid).gr_name) == (0, 0o640, "postgres")
        _, done = run_cron_line(host.cron, containing="--type=diff")
        assert done.returncode == 0, done.stderr
        (notified, beat) = hook.received
        assert (notified["method"], notified["path"], beat["method"], beat["path"]) == (
            "POST", "/hooks/s3cret?t=1", "GET", "/hb/u")
        body = notified["body"]
        assert (body["job"], body["outcome"], body["exit_code"], body["stanza"]) == (
            "pgbackrest differential backup", "success", 0, host.stanza)
        assert host.info()["repos"][0]["newest_backup"]["type"] == "diff"
        assert "s3cret" not in done.stderr + done.stdout
        # Without URLs the plain lines come back and the file goes.
        plain = pgbr_play(pgbackrest_restart_allowed=True)
        assert plain.ok and "maestro_pgbackrest_job.py" not in open(host.cron).read()
        assert not os.path.exists(notify_file)


def test_unwritable_repository_drops_wal_beyond_the_queue_max_and_info_says_so(pgbr_host, pgbr_play):
    host, cluster = pgbr_host, pgbr_host.cluster
    setup = pgbr_play(pgbackrest_restart_allowed=True)
    assert setup.ok, setup.stdout
    before = host.info()["repos"][0]["newest_wal"]
    assert before is not None  # pgbackrest check archived one

    # The repository's archive becomes unwritable for postgres (root is not held back, the test is).
    archive = os.path.join(host.repo, "archive", host.stanza)
    for top, dirs, _files in os.walk(archive):
        for d in dirs:
            os.chmod(os.path.join(top, d), 0o550)
    os.chmod(archive, 0o550)

    cluster.psql("CREATE TABLE filler (x text)")
    async_log = os.path.join(host.log, "%s-archive-push-async.log" % host.stanza)

    def dropped():
        cluster.psql("INSERT INTO filler VALUES (repeat('x', 1000)); SELECT pg_switch_wal()")
        try:
            text = open(async_log).read()
        except FileNotFoundError:
            return None
        return "because archive queue exceeded %s" % QUEUE_MAX in text and text

    log = wait_for("archive-push-queue-max to drop WAL", dropped, timeout=180, every=0.5)
    assert "could not push WAL file" in log and "Permission denied" in log
    assert "WARN: dropped WAL file '" in log

    # pg_wal does not keep more than the queue max waiting (.ready), whatever is switched out.
    for _ in range(6):
        cluster.psql("INSERT INTO filler VALUES (repeat('y', 1000)); SELECT pg_switch_wal()")
        time.sleep(0.5)
    # The async pusher drops in batches, so a busy machine may see one more segment waiting for a
    # moment; what matters is that the backlog comes back under the max (without it, it only grows).
    status_dir = os.path.join(cluster.data, "pg_wal", "archive_status")

    def ready_within_queue_max():
        ready = [n for n in os.listdir(status_dir) if n.endswith(".ready")]
        return len(ready) * SEGMENT <= 64 * 1024 ** 2 + 2 * SEGMENT

    wait_for("the .ready backlog to come back under the queue max", ready_within_queue_max, timeout=60, every=1)
    # PostgreSQL counts the dropped segments as archived: its archiver keeps going, pg_wal is recycled.
    last_archived = cluster.psql("SELECT last_archived_wal FROM pg_stat_archiver")
    assert last_archived > before["max"]
    assert not any(n.startswith(last_archived) for _t, _d, files in os.walk(archive) for n in files)

    # The watch sees the repository's newest WAL getting old.
    info = wait_for("pgbackrest_info to report the stale archive", lambda: (
        lambda i: i if any("more than max_wal_age=5s" in p for p in i["problems"]) else None)(
            host.info(max_wal_age=5)), timeout=60, every=2)
    assert info["repos"][0]["newest_wal"]["max"] == before["max"]
    problem = [p for p in info["problems"] if "max_wal_age" in p][0]
    assert problem.startswith("repo1: newest archived WAL %s is " % before["max"])
    assert "archiving is failing or dropping WAL (see archive-push-queue-max)" in problem
    assert "repo1: no backup of stanza %s" % host.stanza in info["problems"]
