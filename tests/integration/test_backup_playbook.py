"""playbooks/backup.yml through ansible-runner: an on-demand backup, and the scheduled script."""

import json
import pwd
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import threading

import psycopg
import pytest

from tests.support.cron import run_cron_line
from tests.support.http import Receiver
from tests.support.inventory import local_inventory
from tests.support.paths import VENV_BIN


def stub_crontab(tmp_path):
    """The cron module insists on finding `crontab`, though with cron_file it never runs it; where the
    cron package is not installed, a stand-in that fails loudly if it is ever run."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    stub = bindir / "crontab"
    stub.write_text("#!/bin/sh\necho 'crontab must not run: cron_file is used' >&2\nexit 1\n")
    stub.chmod(0o755)
    return str(bindir)


def test_backup_playbook_backs_up_and_schedules(pg_cluster, pg_db, tmp_path, playbook):
    inventory = local_inventory(tmp_path, pg_cluster, pg_db, "unused-repo", str(tmp_path / "pm2"))
    hostvars = inventory["all"]["vars"]
    hostvars.update(
        backup_max_age_days=28, backup_script_dir=str(tmp_path / "script"),
        backup_log_file=str(tmp_path / "backup.log"), backup_cron_file=str(tmp_path / "cron.d-entry"),
        backup_cron_install=False, backup_code_dir=str(tmp_path / "code"), backup_cron_python=sys.executable,
        # the job as the connecting user (root here); test_scheduled_job_runs_from_cron_as_postgres_...
        # covers the default, postgres
        backup_cron_user=pwd.getpwuid(os.getuid()).pw_name,
    )
    env = {"PATH": os.pathsep.join([stub_crontab(tmp_path), VENV_BIN, os.environ["PATH"]])}
    # The schedule given with -e: backup.yml leaves the inventory's to prepare_host.yml (root's).
    run = playbook("backup.yml", inventory, envvars=env,
                   extravars={"backup_label": "on-demand", "backup_schedule": "0 2 * * *"})
    assert run.ok, run.stdout
    assert pg_cluster.app_password not in run.stdout

    backups = sorted(n for n in os.listdir(hostvars["backup_dir"]) if not n.endswith(".json"))
    assert len(backups) == 1 and backups[0].startswith(pg_db + "_")
    manifest = json.loads(open(os.path.join(hostvars["backup_dir"], backups[0] + ".json")).read())
    assert manifest["label"] == "on-demand" and manifest["verify"] == "read"
    assert stat.S_IMODE(os.stat(hostvars["backup_dir"]).st_mode) == 0o700
    fact = [e for e in run.events if e.get("event") == "runner_on_ok"
            and e["event_data"].get("task") == "Report where the backup is and what it holds"]
    assert backups[0] in fact[0]["event_data"]["res"]["msg"]

    script = tmp_path / "script" / ("backup-%s.sh" % pg_db)
    assert stat.S_IMODE(script.stat().st_mode) == 0o700
    assert pg_cluster.app_password not in script.read_text()
    passfile = tmp_path / "script" / ("%s.pgpass" % pg_db)
    assert stat.S_IMODE(passfile.stat().st_mode) == 0o600
    cron = (tmp_path / "cron.d-entry").read_text()
    assert "0 2 * * * %s %s" % (hostvars["backup_cron_user"], script) in cron

    # What cron would run: one more backup, logged, exit 0 ...
    done = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (tmp_path / "backup.log").read_text()
    log = (tmp_path / "backup.log").read_text()
    assert "backup of %s succeeded" % pg_db in log and pg_cluster.app_password not in log
    assert len([n for n in os.listdir(hostvars["backup_dir"]) if n.endswith(".json")]) == 2
    # ... and with a wrong password in the passfile: non-zero, logged, nothing new written.
    passfile.write_text("*:*:*:%s:wrong-password\n" % pg_cluster.app_user)
    failed = subprocess.run([str(script)], capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0
    log = (tmp_path / "backup.log").read_text()
    assert "backup of %s FAILED" % pg_db in log and "password authentication failed" in log
    assert len(os.listdir(hostvars["backup_dir"])) == 4


def test_backup_role_failure_names_the_problem(pg_cluster, pg_db, tmp_path, playbook):
    inventory = local_inventory(tmp_path, pg_cluster, pg_db, "unused-repo", str(tmp_path / "pm2"),
                                db_password="not-the-password")
    run = playbook("backup.yml", inventory)
    assert not run.ok
    failed = run.failed_tasks()
    assert "password authentication failed" in failed[-1]["res"]["msg"]
    assert "not-the-password" not in run.stdout
    assert os.listdir(inventory["all"]["vars"]["backup_dir"]) == []


def test_backup_files_can_belong_to_another_user(pg_cluster, pg_db, tmp_path, playbook):
    """As root (become in production), backups can be handed to postgres and stay 0600."""
    if os.geteuid() != 0:
        pytest.skip("changing a file's owner needs root")
    inventory = local_inventory(tmp_path, pg_cluster, pg_db, "unused-repo", str(tmp_path / "pm2"),
                                backup_owner="postgres", backup_group="postgres")
    os.makedirs(inventory["all"]["vars"]["backup_dir"])
    run = playbook("backup.yml", inventory)
    assert run.ok, run.stdout[-3000:]
    files = os.listdir(inventory["all"]["vars"]["backup_dir"])
    assert len(files) == 2
    postgres = pwd.getpwnam("postgres").pw_uid
    for name in files:
        st = os.stat(os.path.join(inventory["all"]["vars"]["backup_dir"], name))
        assert (st.st_uid, oct(st.st_mode & 0o777)) == (postgres, "0o600")


# --- the scheduled backup as cron runs it: installed code, the database-side user, quoting ---

SCHEDULED_SESSION = "maestro.backup:scheduled"
RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


@pytest.fixture
def host_dir():
    """A directory the database-side user (postgres) can reach, as /usr/local/lib or /var/backups
    would be on a db host (pytest's tmp_path is private to root)."""
    if os.geteuid() != 0:
        pytest.skip("installing the scheduled backup for postgres needs root")
    base = tempfile.mkdtemp(prefix="maestro-sched-")
    os.chmod(base, 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def host_python():
    """The host's system python3 with psycopg, runnable by postgres: a venv of /usr/bin/python3
    that sees the test venv's site-packages (the test venv's own interpreter lives under /root)."""
    if os.geteuid() != 0 or not os.path.exists("/usr/bin/python3"):
        pytest.skip("needs root and /usr/bin/python3")
    base = tempfile.mkdtemp(prefix="maestro-hostpy-")
    os.chmod(base, 0o755)
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", base + "/venv"], check=True)
    site = subprocess.run([base + "/venv/bin/python", "-c",
                           "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    with open(os.path.join(site, "psycopg-from-test-venv.pth"), "w") as fh:
        fh.write(os.path.dirname(os.path.dirname(psycopg.__file__)) + "\n")
    python = base + "/venv/bin/python"
    probe = subprocess.run([RUNUSER, "-u", "postgres", "--", python, "-I", "-c", "import psycopg"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        shutil.rmtree(base, ignore_errors=True)
        pytest.skip("no python3 with psycopg that postgres can run: %s" % probe.stderr[-300:])
    yield python
    shutil.rmtree(base, ignore_errors=True)


def scheduled_inventory(tmp_path, pg_cluster, pg_db, host_dir, host_python, **overrides):
    values = dict(
        backup_dir=os.path.join(host_dir, "backups"), app_root=os.path.join(host_dir, "www", "app"),
        backup_schedule="0 2 * * *", backup_max_age_days=28,
        backup_script_dir=os.path.join(host_dir, "script dir 100%"),
        backup_code_dir=os.path.join(host_dir, "code"), backup_log_file=os.path.join(host_dir, "backup.log"),
        backup_cron_file=os.path.join(host_dir, "cron.d-entry"), backup_cron_install=False,
        backup_cron_python=host_python,
    )
    values.update(overrides)
    return local_inventory(tmp_path, pg_cluster, pg_db, "unused-repo", str(tmp_path / "pm2"), **values)


def test_schedule_with_a_cron_injection_is_refused_before_anything_changes(pg_cluster, pg_db, tmp_path,
                                                                           playbook, host_dir, host_python):
    inventory = scheduled_inventory(tmp_path, pg_cluster, pg_db, host_dir, host_python,
                                    backup_schedule="@reboot root id ; #")
    env = {"PATH": os.pathsep.join([stub_crontab(tmp_path), VENV_BIN, os.environ["PATH"]])}
    # backup.yml installs a schedule given with -e only (the inventory's is prepare_host.yml's).
    schedule = {"backup_schedule": inventory["all"]["vars"]["backup_schedule"]}
    run = playbook("backup.yml", inventory, envvars=env, extravars=schedule)
    assert not run.ok
    assert not os.path.exists(os.path.join(host_dir, "cron.d-entry"))
    assert "backup_schedule=@reboot root id ; #" in run.failed_tasks()[-1]["res"]["msg"]
    assert sorted(os.listdir(host_dir)) == []  # no backup, no script, no code, no log
    checked = playbook("backup.yml", inventory, envvars=env, check=True, extravars=schedule)
    assert not checked.ok and "backup_schedule=@reboot root id ; #" in checked.stdout
    assert sorted(os.listdir(host_dir)) == []


def test_scheduled_job_runs_from_cron_as_postgres_from_installed_code(pg_cluster, pg_db, tmp_path, playbook,
                                                                      host_dir, host_python):
    with Receiver() as hook:  # the job's notify and heartbeat URLs, with secrets in their paths
        inventory = scheduled_inventory(tmp_path, pg_cluster, pg_db, host_dir, host_python,
                                        backup_notify_url=hook.url("/hooks/s3cret-Token?x=1"),
                                        backup_heartbeat_url=hook.url("/ping/0f7c-s3cret-uuid"))
        scheduled_job_runs(inventory, pg_db, tmp_path, playbook, host_dir, hook)


def scheduled_job_runs(inventory, pg_db, tmp_path, playbook, host_dir, hook):
    hostvars = inventory["all"]["vars"]
    env = {"PATH": os.pathsep.join([stub_crontab(tmp_path), VENV_BIN, os.environ["PATH"]])}
    schedule = {"backup_schedule": hostvars["backup_schedule"]}
    run = playbook("backup.yml", inventory, envvars=env, extravars=schedule)
    assert run.ok, run.stdout[-4000:]
    log = os.path.join(host_dir, "backup.log")

    # The job line, run through /bin/sh -c as cron would (after its `%` handling), backs up.
    fields, done = run_cron_line(os.path.join(host_dir, "cron.d-entry"))
    assert done.returncode == 0, (done.stderr, open(log).read() if os.path.exists(log) else "no log")
    assert fields[:6] == ["0", "2", "*", "*", "*", "postgres"]
    assert "backup of %s succeeded" % pg_db in open(log).read()
    assert len([n for n in os.listdir(hostvars["backup_dir"]) if n.endswith(".json")]) == 2
    # It said so: the outcome POSTed to the notify URL, then the heartbeat; neither URL in its log.
    (notified, beat) = hook.received
    assert (notified["method"], notified["path"], beat["method"], beat["path"]) == (
        "POST", "/hooks/s3cret-Token?x=1", "GET", "/ping/0f7c-s3cret-uuid")
    body = notified["body"]
    assert (body["job"], body["outcome"], body["exit_code"], body["db"]) == ("scheduled backup", "success", 0, pg_db)
    assert body["path"].startswith(hostvars["backup_dir"]) and body["size_bytes"] > 0 and body["message"]
    text = open(log).read()
    assert "notification sent to %s/..." % hook.url("").rstrip("/") in text and "s3cret" not in text

    # What runs is installed on the host, owned by root and writable by nobody else; the job's
    # script and password file belong to postgres, 0700 / 0600; nothing comes from the controller.
    postgres = pwd.getpwnam("postgres").pw_uid
    script_dir = hostvars["backup_script_dir"]
    script = os.path.join(script_dir, "backup-%s.sh" % pg_db)
    for path, mode in ((script, 0o700), (os.path.join(script_dir, "%s.pgpass" % pg_db), 0o600)):
        st = os.stat(path)
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (postgres, mode), path
    text = open(script).read()
    assert sys.prefix not in text and "ansible" not in text.replace("ansible_managed", "")
    code = hostvars["backup_code_dir"]
    for root, dirs, files in os.walk(code):
        for name in dirs + files + ["."]:
            st = os.lstat(os.path.join(root, name))
            assert st.st_uid == 0 and not st.st_mode & 0o022, os.path.join(root, name)
    assert os.path.exists(os.path.join(code, "maestro_backup_job.py"))

    # A deploy holds the lock: the job skips, says so, exits 75 (EX_TEMPFAIL), writes nothing.
    os.makedirs(hostvars["app_root"])
    with open(os.path.join(hostvars["app_root"], ".deploy.lock"), "w") as fh:
        json.dump({"who": "alice", "release_id": "20261201T020000Z-v7", "token": "20261201T020000Z-v7",
                   "some_new_key": [1]}, fh)
    _, skipped = run_cron_line(os.path.join(host_dir, "cron.d-entry"))
    assert skipped.returncode == 75, open(log).read()
    assert "skipped: deploy 20261201T020000Z-v7 holds the lock" in open(log).read()
    assert [(r["method"], (r["body"] or {}).get("outcome"), (r["body"] or {}).get("exit_code"))
            for r in hook.received[2:]] == [("POST", "skipped", 75)]  # and no heartbeat
    assert len([n for n in os.listdir(hostvars["backup_dir"]) if n.endswith(".json")]) == 2
    # An unreadable lock file counts as held.
    with open(os.path.join(hostvars["app_root"], ".deploy.lock"), "w") as fh:
        fh.write("{not json")
    _, skipped = run_cron_line(os.path.join(host_dir, "cron.d-entry"))
    assert skipped.returncode == 75 and "unreadable lock file" in open(log).read()
    os.unlink(os.path.join(hostvars["app_root"], ".deploy.lock"))

    # Rerunning the role changes nothing.
    again = playbook("backup.yml", inventory, envvars=env, extravars={"backup_label": "again", **schedule})
    assert again.ok, again.stdout[-4000:]
    schedule_changes = [r["task"] for r in again.task_results() if r["res"].get("changed")
                        and r["task"] != "Dump, verify and publish the backup with its manifest"]
    assert schedule_changes == []


def test_deploy_waits_for_a_running_scheduled_backup_then_fails_naming_it(pg_cluster, pg_db, pm2_home, app_repo,
                                                                          tmp_path, playbook):
    repo, _shas = app_repo
    inventory = local_inventory(tmp_path, pg_cluster, pg_db, repo, pm2_home, preflight_backup_wait=3,
                                preflight_backup_poll=1)
    app_root = inventory["all"]["vars"]["app_root"]
    started = threading.Event()

    def scheduled_backup():
        with psycopg.connect(**pg_cluster.conninfo(pg_db), application_name=SCHEDULED_SESSION,
                             autocommit=True) as conn:
            started.set()
            try:
                conn.execute("SELECT pg_sleep(600)")
            except psycopg.Error:
                pass  # ended by the test

    worker = threading.Thread(target=scheduled_backup, daemon=True)
    worker.start()
    assert started.wait(10)
    with psycopg.connect(**pg_cluster.conninfo(pg_db), autocommit=True) as conn:
        pid, since = conn.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE application_name = %s",
                                  (SCHEDULED_SESSION,)).fetchone()
    run = playbook("deploy.yml", inventory, extravars={"app_version": "v1"})
    try:
        assert not run.ok
        assert "DEPLOY FAILED in stage preflight" in run.stdout, run.stdout[-3000:]
        assert "scheduled backup" in run.stdout and "pid %s" % pid in run.stdout
        assert since.strftime("%Y-%m-%dT%H:%M:%S") in run.stdout
        waits = run.task_results("Wait for the scheduled backup to end")
        assert waits and waits[-1]["res"].get("attempts", 0) >= 3
        assert not os.path.exists(os.path.join(app_root, "current"))
        assert not os.path.exists(os.path.join(app_root, ".deploy.lock"))
        assert not os.path.exists(inventory["all"]["vars"]["backup_dir"]) or \
            os.listdir(inventory["all"]["vars"]["backup_dir"]) == []
    finally:
        with psycopg.connect(**pg_cluster.conninfo(pg_db), autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
        worker.join(10)
