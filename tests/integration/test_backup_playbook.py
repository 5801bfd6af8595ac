"""playbooks/backup.yml through ansible-runner: an on-demand backup, and the scheduled script."""

import json
import pwd
import os
import stat
import subprocess

import pytest

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
        backup_cron_install=False,
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
    assert "0 2 * * * root %s" % script in cron

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
