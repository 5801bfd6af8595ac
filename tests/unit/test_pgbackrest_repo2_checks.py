"""roles/pgbackrest's repo2 values checked for their grammar (plugins/filter/pgbackrest.py), the
cipher pass never shown, and the role's repo2 pieces: the forced command refuses all but
pgBackRest's remote, the configuration template holds the pass only where it must."""

import os
import subprocess

import jinja2
import pytest
from ansible_collections.maestro.deploy.plugins.filter.pgbackrest import (
    pgbackrest_cipher_pass_ok,
    pgbackrest_problems,
)

from tests.unit.test_pgbackrest_role import GOOD, ROLE

PASS = "x7Qm/2+vZr9K0pLw4sTn8bYc"
KNOWN = "[10.0.0.7]:2222 ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHd8bXl0ZXN0a2V5Zm9ybWFlc3Ryb2RlcGxveQ"
REPO2 = dict(GOOD, **{
    "inventory_hostname": "db1",
    "pgbackrest_repo2_host": "backup1.example.org", "pgbackrest_repo2_host_port": 22,
    "pgbackrest_repo2_host_user": "pgbackrest", "pgbackrest_repo2_path": "/srv/pgbackrest",
    "pgbackrest_repo2_inventory_host": "backup1", "pgbackrest_repo2_db_host": "10.0.0.5",
    "pgbackrest_repo2_db_host_port": "22", "pgbackrest_repo2_cipher_pass_ok": True,
    "pgbackrest_repo2_retention_full": 4, "pgbackrest_repo2_retention_diff": "6",
    "pgbackrest_repo2_known_hosts": KNOWN, "pgbackrest_repo2_db_known_hosts": "",
    "pgbackrest_repo2_ssh_dir": "/etc/pgbackrest/repo2-ssh", "pgbackrest_repo2_host_config":
    "/etc/pgbackrest/pgbackrest.conf", "pgbackrest_repo2_host_ssh_dir": "/etc/pgbackrest/db-ssh",
    "pgbackrest_repo2_host_log_path": "/var/log/pgbackrest", "pgbackrest_repo2_host_lock_path": "/tmp/pgbackrest",
    "pgbackrest_repo2_authorized_keys_file": "/home/pgbackrest/.ssh/authorized_keys",
    "pgbackrest_repo2_db_authorized_keys_file": "/var/lib/postgresql/.ssh/authorized_keys",
    "pgbackrest_repo2_pgbackrest_bin": "/usr/bin/pgbackrest", "pgbackrest_repo2_full_schedule": "30 2 * * 0",
    "pgbackrest_repo2_diff_schedule": "", "pgbackrest_repo2_verify_schedule": "30 5 * * 0",
    "pgbackrest_repo2_cron_file": "maestro-pgbackrest-repo2-x",
})


def test_repo2_defaults_pass_and_no_repo2_checks_nothing():
    assert pgbackrest_problems(REPO2) == []
    assert pgbackrest_problems(dict(REPO2, pgbackrest_repo2_host="", pgbackrest_repo2_host_user="root",
                                    pgbackrest_repo2_cipher_pass_ok=False)) == []
    assert pgbackrest_problems(dict(REPO2, pgbackrest_repo2_host="::1", pgbackrest_repo2_known_hosts=KNOWN + "\n"
                                    + KNOWN.replace("10.0.0.7", "backup1"))) == []


@pytest.mark.parametrize("name,value,rule", [
    ("pgbackrest_repo2_host", "back up", "a host name or an IP address"),
    ("pgbackrest_repo2_host", "-oProxyCommand=x", "a host name or an IP address"),
    ("pgbackrest_repo2_db_host", "db_1", "a host name or an IP address"),
    ("pgbackrest_repo2_host_port", 0, "a port number"),
    ("pgbackrest_repo2_db_host_port", "22x", "a port number"),
    ("pgbackrest_repo2_host_user", "root", "other than root"),
    ("pgbackrest_repo2_host_user", "Backup", "a user name"),
    ("pgbackrest_repo2_inventory_host", "", "the inventory name"),
    ("pgbackrest_repo2_path", "srv/pgbackrest", "an absolute path"),
    ("pgbackrest_repo2_path", "/var/lib", "not a system directory"),
    ("pgbackrest_repo2_ssh_dir", "/etc/pgbackrest", "not a system directory"),
    ("pgbackrest_repo2_host_config", "/etc/pgbackrest/pg backrest.conf", "letters, digits"),
    ("pgbackrest_repo2_authorized_keys_file", "/home/x/.ssh/../authorized_keys", "a normalised path"),
    ("pgbackrest_repo2_retention_full", 0, "a whole number, 1-9999999"),
    ("pgbackrest_repo2_retention_diff", "two", "a whole number"),
    ("pgbackrest_repo2_full_schedule", "61 * * * *", "minute"),
    ("pgbackrest_repo2_cron_file", "repo2.cron", "a file name under /etc/cron.d"),
    ("pgbackrest_repo2_known_hosts", "backup1 AAAA", "known_hosts lines"),
    ("pgbackrest_repo2_db_known_hosts", KNOWN + "\nnot a key line", "known_hosts lines"),
])
def test_bad_repo2_values_are_named_with_their_rule(name, value, rule):
    (problem,) = pgbackrest_problems(dict(REPO2, **{name: value}))
    assert problem.startswith(name + "=") and rule in problem, problem


def test_repo2_config_apart_from_the_db_config_on_one_host():
    (problem,) = pgbackrest_problems(dict(REPO2, pgbackrest_repo2_inventory_host="db1"))
    assert problem.startswith("pgbackrest_repo2_host_config=") and "apart from pgbackrest_config_file" in problem


@pytest.mark.parametrize("value,ok", [
    (PASS, True), ("a" * 20, True), ("a" * 19, False), ("a" * 1025, False), ("", False), (None, False),
    (PASS + " x", False), (PASS + "\n", False), (PASS + "é", False), (12345678901234567890123, False),
])
def test_cipher_pass_form(value, ok):
    assert pgbackrest_cipher_pass_ok(value) is ok


def test_a_bad_cipher_pass_is_never_shown():
    values = dict(REPO2)
    del values["pgbackrest_repo2_cipher_pass_ok"]
    values["pgbackrest_repo2_cipher_pass"] = "short secret 99"
    (problem,) = pgbackrest_problems(values)
    assert problem.startswith("pgbackrest_repo2_cipher_pass=<hidden> (required (from the vault)")
    assert "short secret 99" not in problem
    (problem,) = pgbackrest_problems(dict(REPO2, pgbackrest_repo2_cipher_pass_ok=False))
    assert problem.startswith("pgbackrest_repo2_cipher_pass=<hidden>")


def render(name, **values):
    # config files and shell, not HTML: no autoescape, as Ansible's template module
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(os.path.join(ROLE, "templates")),  # noqa: S701
                             keep_trailing_newline=True)
    return env.get_template(name).render(**values)


@pytest.fixture
def forced(tmp_path):
    script = tmp_path / "remote-only.sh"
    fake = tmp_path / "pgbackrest"
    fake.write_text('#!/bin/sh\necho "RAN $*"\n')
    fake.chmod(0o755)
    script.write_text(render("pgbackrest-remote-only.sh.j2", forced_from="test", forced_remote_type="repo",
                             forced_config="/etc/pgbackrest/repo.conf", pgbackrest_repo2_pgbackrest_bin=str(fake)))
    script.chmod(0o755)

    def run(command):
        env = {"PATH": "/usr/bin:/bin"}
        if command is not None:
            env["SSH_ORIGINAL_COMMAND"] = command
        return subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=10,
                              check=False)
    return run


def test_forced_command_runs_pgbackrest_remote_only(forced):
    sent = ("pgbackrest --config=/etc/pgbackrest/repo.conf --exec-id=3208-c3550f94 --log-level-console=off "
            "--pg1-path=/var/lib/postgresql/15/main --process=0 --remote-type=repo --repo=2 --stanza=s1 "
            "archive-push:remote")
    for exe in ("", "/usr/bin/"):  # the other side's executable: its repo2-host-cmd / pg1-host-cmd
        done = forced(exe + sent)
        assert (done.returncode, done.stdout) == (0, "RAN " + sent.split(" ", 1)[1] + "\n")


@pytest.mark.parametrize("command", [
    None, "", "id", "sh -c id", "pgbackrest version", "pgbackrest info",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --remote-type=repo info",
    "pgbackrest --config=/etc/passwd --remote-type=repo info:remote",
    "pgbackrest --remote-type=repo info:remote",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --config=/tmp/x --remote-type=repo info:remote",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --remote-type=pg backup:remote",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --remote-type=repo --cmd-ssh=/tmp/x info:remote",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --remote-type=repo info:remote; id",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --remote-type=repo $(id):remote",
    "pgbackrest --config=/etc/pgbackrest/repo.conf --remote-type=repo /*:remote x",
    "/tmp/evil --config=/etc/pgbackrest/repo.conf --remote-type=repo info:remote",
    "/tmp/pgbackrest.sh --config=/etc/pgbackrest/repo.conf --remote-type=repo info:remote",
])
def test_forced_command_refuses_anything_else(forced, command):
    done = forced(command)
    assert done.returncode == 1 and "RAN" not in done.stdout
    assert "maestro.deploy: refused" in done.stderr


def test_db_config_holds_repo2_only_when_asked():
    base = dict(pgbackrest_repo_path="/var/lib/pgbackrest", pgbackrest_retention_full=2, pgbackrest_retention_diff=6,
                pgbackrest_process_max=1, pgbackrest_spool_path="/s", pgbackrest_archive_push_queue_max="1GB",
                pgbackrest_log_path="/l", pgbackrest_lock_path="/k", pgbackrest_stanza="s1", pgbackrest_pg_path="/d",
                pgbackrest_pg_port=5432, pgbackrest_pg_socket_path="/run/postgresql")
    assert "repo2" not in render("pgbackrest.conf.j2", pgbackrest_repo2_host="", **base)
    text = render("pgbackrest.conf.j2", pgbackrest_repo2_host="backup1", pgbackrest_repo2_host_user="pgbackrest",
                  pgbackrest_repo2_host_config="/etc/pgbackrest/pgbackrest.conf", pgbackrest_repo2_path="/srv/r",
                  pgbackrest_repo2_retention_full=4, pgbackrest_repo2_retention_diff=6,
                  pgbackrest_repo2_cipher_pass=PASS, pgbackrest_repo2_ssh_dir="/etc/pgbackrest/repo2-ssh",
                  pgbackrest_repo2_pgbackrest_bin="/usr/bin/pgbackrest", **base)
    for line in ("repo2-host=maestro-repo2", "repo2-host-user=pgbackrest", "repo2-path=/srv/r",
                 "repo2-cipher-type=aes-256-cbc", "repo2-cipher-pass=" + PASS, "repo2-retention-full=4",
                 "cmd-ssh=/etc/pgbackrest/repo2-ssh/ssh", "repo2-host-cmd=/usr/bin/pgbackrest"):
        assert line in text.splitlines()
