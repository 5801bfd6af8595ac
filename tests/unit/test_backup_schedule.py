"""The scheduled backup: its variables checked against cron's grammar and where we put things,
the cron job quoted for /bin/sh and cron's `%`, and the job installed on the db host (the code it
needs, the deploy lock read-only, the AnsibleModule stand-in)."""

import ast
import importlib.util
import json
import os
import subprocess

import pytest
import yaml
from ansible_collections.maestro.deploy.plugins.filter.schedule import (
    cron_command,
    cron_fields,
    cron_schedule_problem,
    path_problem,
    schedule_problems,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
JOB = os.path.join(REPO, "roles", "backup", "files", "maestro_backup_job.py")


def load_job():
    spec = importlib.util.spec_from_file_location("maestro_backup_job", JOB)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("schedule", [
    "0 2 * * *", "*/15 * * * *", "0 0-23/2 * * 1-5", "5,35 1,13 1 jan sun", "0 3 * * 7", "0 4 1-7 * MON",
    "30 2 * dec *", "@daily", "@hourly", "@weekly", "@monthly", "@yearly", "@annually", "0 2  * * *",
])
def test_cron_schedules_that_are_accepted(schedule):
    assert cron_schedule_problem(schedule) is None


@pytest.mark.parametrize("schedule", [
    "@reboot root id ; #",           # became a root cron line running `id`
    "@reboot",                       # not a schedule
    "0 2 * * * root id",             # a sixth field: the user and a command
    "0 2 * * *\n* * * * * root id",  # a newline: a second cron line
    "0 2 * * ;id", "0 2 * * $(id)", "0 2 * * `id`", "0 2 * * *|id", "0 2 * * >x", "0\t2 * * *",
    "60 2 * * *", "0 24 * * *", "0 2 0 * *", "0 2 * 13 *", "0 2 * * 8", "0 5-1 * * *", "0 */0 * * *",
    "0 5/2 * * *", "0 2 * jan-mar *", "0 2 * * sun,mon", "0 2 mon * *", "0 2 * *", "", "* * * * * *",
    "0 2 * * -1", "0 2 * * 1-", "0 2 ,, * *", "0 002 * * *",
])
def test_cron_schedules_that_are_refused(schedule):
    assert cron_schedule_problem(schedule)


def test_schedule_problems_name_the_variable_and_value():
    problems = schedule_problems(dict(GOOD, backup_schedule="@reboot root id ; #"))
    assert len(problems) == 1 and problems[0].startswith("backup_schedule=@reboot root id ; # (")
    shown = schedule_problems(dict(GOOD, backup_schedule="0 2 * * *\n* * * * * root id"))[0]
    assert "\n" not in shown and shown.startswith('backup_schedule="0 2 * * *\\n')


def test_cron_fields_for_the_cron_module():
    assert cron_fields("5 2 * * sun") == dict(minute="5", hour="2", day="*", month="*", weekday="sun")
    assert cron_fields("@daily") == dict(special_time="daily")
    assert cron_fields("@annually") == dict(special_time="yearly")


@pytest.mark.parametrize("path, ok", [
    ("/usr/local/lib/maestro-backup", True), ("/srv/backup script dir", True), ("/opt/a%b", True),
    ("relative/dir", False), ("", False), ("/usr/local/lib/", False), ("/usr/local/lib/../x", False),
    ("/a/./b", False), ("//x", False), ("/a//b", False), ("/a\nb", False), ("/a\x7fb", False), ("/a\\b", False),
    ("/", False), ("/etc", False), ("/usr/bin", False), ("/etc/cron.d", False), ("/var/log", False),
    ("/tmp", False), ("/root", False),
])
def test_paths_are_absolute_normalised_printable_and_not_system_dirs(path, ok):
    assert (path_problem(path) is None) is ok


GOOD = dict(backup_schedule="0 2 * * *", backup_script_dir="/usr/local/lib/maestro-backup",
            backup_code_dir="/usr/local/lib/maestro-deploy/backup-job",
            backup_log_file="/var/log/maestro-backup-db.log",
            backup_cron_python="/usr/bin/python3", backup_cron_file="maestro-backup-db", backup_cron_user="postgres",
            backup_db_name="db", backup_app_root="/var/www/app")


def test_the_defaults_pass():
    assert schedule_problems(GOOD) == []
    assert schedule_problems(dict(GOOD, backup_app_root="", backup_cron_file="/etc/cron.d/maestro-backup")) == []


@pytest.mark.parametrize("name, value", [
    ("backup_script_dir", "/etc"), ("backup_script_dir", "backups"), ("backup_log_file", "/var/log/x\n* * * * *"),
    ("backup_code_dir", "/usr/local/lib"), ("backup_cron_python", "python3"), ("backup_cron_file", "maestro.backup"),
    ("backup_cron_file", "../../etc/passwd"), ("backup_cron_file", "a b"), ("backup_cron_user", "root ; id"),
    ("backup_cron_user", ""), ("backup_db_name", "db\n* * * * * root id"), ("backup_app_root", "www"),
    ("backup_script_dir", "/usr/local/lib/maestro-deploy/backup-job/s"),
])
def test_bad_values_are_each_named(name, value):
    problems = schedule_problems(dict(GOOD, **{name: value}))
    assert len(problems) == 1 and problems[0].startswith(name + "="), problems


@pytest.mark.parametrize("path", ["/srv/plain/backup.sh", "/srv/script dir/backup.sh", "/srv/100%/b.sh",
                                  "/srv/it's/b.sh", "/srv/$(id)/b.sh", "/srv/`id`;x/b.sh", '/srv/"q"/b.sh'])
def test_cron_command_runs_exactly_the_path_through_cron_and_sh(path):
    line = cron_command([path])
    # cron: the command ends at the first unescaped %, and \% becomes % (vixie cron, cronie)
    assert "%" not in line.replace("\\%", "")
    after_cron = line.replace("\\%", "%")
    argv = subprocess.run(["/bin/sh", "-c", "printf '%s\\0' " + after_cron], capture_output=True, check=True).stdout
    assert argv.decode().split("\0")[:-1] == [path]


def test_the_installed_code_covers_what_pg_backup_core_imports():
    """The role copies a fixed list of module_utils to the db host: it must hold every module
    pg_backup_core needs, transitively (the job fails its self-test otherwise)."""
    with open(os.path.join(REPO, "roles", "backup", "vars", "main.yml")) as fh:
        listed = set(yaml.safe_load(fh)["backup_job_module_utils"])
    needed, todo = set(), ["pg_backup_core.py"]
    prefix = "ansible_collections.maestro.deploy.plugins.module_utils"
    while todo:
        name = todo.pop()
        if name in needed:
            continue
        needed.add(name)
        with open(os.path.join(REPO, "plugins", "module_utils", name)) as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix):
                if node.module == prefix:
                    todo.extend(alias.name + ".py" for alias in node.names)
                else:
                    todo.append(node.module.rsplit(".", 1)[1] + ".py")
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("ansible.module_utils"):
                pytest.fail("%s imports %s, which is not installed on the db host" % (name, node.module))
    assert needed <= listed, needed - listed


@pytest.mark.parametrize("content, expected", [
    (None, None),
    (json.dumps({"release_id": "20261201T020000Z-v7", "token": "x", "new_key": {"a": 1}}), "20261201T020000Z-v7"),
    (json.dumps({"token": "20261201T020000Z-v8"}), "20261201T020000Z-v8"),
    ("{not json", "unknown (unreadable lock file"),
    ("[1, 2]", "unknown (unreadable lock file"),
    (json.dumps({"who": "alice"}), "unknown (lock file"),
    (json.dumps({"release_id": "r\nskipped: fake"}), "r?skipped: fake"),
])
def test_the_job_reads_the_deploy_lock_read_only(tmp_path, content, expected):
    job = load_job()
    lock = tmp_path / ".deploy.lock"
    if content is not None:
        lock.write_text(content)
    before = lock.read_text() if content is not None else None
    holder = job.lock_holder(str(tmp_path))
    if expected is None:
        assert holder is None
    else:
        assert holder.startswith(expected)
    assert (lock.read_text() if content is not None else None) == before
    assert sorted(os.listdir(tmp_path)) == ([".deploy.lock"] if content is not None else [])


def test_an_unreadable_lock_counts_as_held(tmp_path):
    job = load_job()
    (tmp_path / ".deploy.lock").mkdir()  # open() fails with EISDIR
    assert job.lock_holder(str(tmp_path)).startswith("unknown (cannot read")
    assert job.lock_holder(str(tmp_path / "no-such-app")) is None


def test_the_module_stand_in_runs_commands_like_ansible(tmp_path):
    job = load_job()
    module = job.JobModule({"db": "x", "dest_dir": str(tmp_path)},
                           {"db": {}, "dest_dir": {}, "mode": {"default": "0600"}})
    assert module.params == {"db": "x", "dest_dir": str(tmp_path), "mode": "0600"}
    rc, out, err = module.run_command(["/bin/sh", "-c", "cat; echo \"$X\" >&2; exit 3"], data="in",
                                      environ_update={"X": "from-env"})
    assert (rc, out, err) == (3, "in\n", "from-env\n")
    assert module.get_bin_path("sh") and module.get_bin_path("no-such-tool-here") is None
    with pytest.raises(job.JobFailed) as failed:
        module.get_bin_path("no-such-tool-here", required=True)
    assert "no-such-tool-here" in failed.value.msg
    target = tmp_path / "f"
    target.write_text("x")
    assert module.set_mode_if_different(str(target), "0640", False) is True
    assert oct(target.stat().st_mode & 0o777) == "0o640"
    assert module.set_mode_if_different(str(target), 0o640, False) is False


@pytest.mark.parametrize("url", ["ftp://example.com/x", "http://user:pw@example.com/hook", "https://example.com/a b",
                                 "https://example.com/\x7f", "example.com/hook", "https:///nohost"])
def test_notify_and_heartbeat_urls_are_checked_without_showing_them(url):
    from ansible_collections.maestro.deploy.plugins.filter.schedule import schedule_problems

    problems = schedule_problems({"backup_schedule": "0 2 * * *", "backup_cron_file": "maestro-backup-shop",
                                  "backup_notify_url": url,
                                  "backup_heartbeat_url": url})
    assert [p.split("=", 1)[0] for p in problems] == ["backup_notify_url", "backup_heartbeat_url"], problems
    assert all("an http:// or https:// URL" in p for p in problems)
    assert not any(("pw" in p or "hook" in p) for p in problems), problems  # never the path or the userinfo


def test_notifications_never_raise_and_log_only_scheme_and_host(monkeypatch):
    from ansible_collections.maestro.deploy.plugins.module_utils import job_notify

    real_call, calls, logged = job_notify._call, [], []
    monkeypatch.setattr(job_notify, "_call", lambda url, data=None: calls.append((url, data)) or (
        "HTTP 500" if "down" in url else None))
    failures = job_notify.send("https://hooks.example/T0/s3cret", "https://hc.example/ping/uuid",
                               {"outcome": "success", "db": "shop"}, logged.append)
    assert failures == [] and [c[0] for c in calls] == ["https://hooks.example/T0/s3cret", "https://hc.example/ping/uuid"]
    assert json.loads(calls[0][1]) == {"outcome": "success", "db": "shop"} and calls[1][1] is None
    assert logged == ["notification sent to https://hooks.example/...", "heartbeat sent to https://hc.example/..."]
    del calls[:], logged[:]
    failures = job_notify.send("https://down.example/s3cret", "https://hc.example/ping/uuid", {"outcome": "failed"},
                               logged.append)
    assert failures == ["notification"] and len(calls) == 1  # no heartbeat after a failure
    assert logged == ["notification to https://down.example/... not delivered: HTTP 500"]
    assert real_call("http://127.0.0.1:9/nothing-listens") is not None  # refused: an error string, no raise
