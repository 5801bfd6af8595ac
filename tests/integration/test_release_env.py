"""The release's environment file and the scheduled backup's password file hold the database
password: they must never be readable by others, not even for the moment between writing them
and setting their mode.

ansible.builtin.template writes a new file with the default mode (0666 & ~umask, 0644) and only
then sets `mode`; for a file that exists it keeps that file's mode. So the file is created empty
with mode 0600 first. The test traces (strace) every mode change the tasks make, on a real run
of the role's tasks, and asserts that the environment file is never given a mode other than 0600
(an empty file that exists for an instant with the default mode holds nothing; strace cannot
show file contents, so this is what can be asserted)."""

import os
import re
import shutil
import subprocess

import pytest

from tests.support.paths import ANSIBLE_CFG, VENV_BIN

PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the release's environment file as the deploy does
      ansible.builtin.include_role:
        name: release
        tasks_from: env
      vars:
        release_app_name: example-app
        release_app_root: {root}
        release_id: r1
        release_app_port: 3000
        release_app_env: {{NODE_ENV: production, GREETING: "it's \\\\ \\"quoted\\" # not a comment"}}
        release_db_name: app_db
        release_db_host: 127.0.0.1
        release_db_port: 5432
        release_db_user: app
        release_db_password: "pa/ss@wo:rd %#?+' \\\\ x"
"""


PGPASS_PLAY = """
- hosts: localhost
  gather_facts: false
  tasks:
    - name: Write the scheduled backup's password file as the backup role does
      ansible.builtin.include_role:
        name: backup
        tasks_from: pgpass
      vars:
        backup_script_dir: {root}
        backup_db_name: app_db
        backup_db_user: app
        backup_db_password: "pa/ss@wo:rd %#?+' \\\\ x"
        backup_cron_user: root
"""


def traced_modes(tmp_path, play_text, path_suffix):
    """Run the play under strace; the modes every chmod of a file ending in path_suffix set."""
    play = tmp_path / "play.yml"
    play.write_text(play_text)
    log = tmp_path / "strace.log"
    env = dict(os.environ, ANSIBLE_CONFIG=ANSIBLE_CFG, ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"),
               ANSIBLE_HOME=str(tmp_path / "ansible-home"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false")
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-e", "signal=none", "-e", "trace=/chmod", "-o", str(log),
         os.path.join(VENV_BIN, "ansible-playbook"), "-i", "localhost,", "-c", "local",
         "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"), str(play)],
        env=env, capture_output=True, text=True, timeout=300, cwd=os.path.dirname(ANSIBLE_CFG))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    chmods = [line for line in log.read_text().splitlines() if path_suffix + '"' in line]
    assert chmods, "no mode change of %s was traced" % path_suffix
    return [re.search(r", (0[0-7]+)", line).group(1) for line in chmods], chmods


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed (scripts/setup.sh installs it)")
def test_environment_file_is_never_given_a_mode_but_0600(tmp_path):
    root = tmp_path / "www" / "app"
    (root / "releases" / "r1").mkdir(parents=True)
    modes, chmods = traced_modes(tmp_path, PLAY.format(root=root), "/releases/r1/.env")
    assert oct((root / "releases" / "r1" / ".env").stat().st_mode & 0o777) == "0o600"
    assert set(modes) == {"0600"}, chmods


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed (scripts/setup.sh installs it)")
def test_backup_password_file_is_never_given_a_mode_but_0600(tmp_path):
    root = tmp_path / "job"
    root.mkdir(mode=0o700)
    modes, chmods = traced_modes(tmp_path, PGPASS_PLAY.format(root=root), "/job/app_db.pgpass")
    pgpass = root / "app_db.pgpass"
    assert oct(pgpass.stat().st_mode & 0o777) == "0o600"
    assert set(modes) == {"0600"}, chmods
    assert pgpass.read_text().strip().endswith(":app:pa/ss@wo\\:rd %#?+' \\\\ x")
