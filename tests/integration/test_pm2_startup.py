"""PM2 survives a reboot (issue 13, item 11): roles/pm2_startup writes a systemd unit that
resurrects the deploy user's saved process list, saves it, and rotates the app's logs. No
systemd runs here: the unit is checked as rendered (and by systemd-analyze when it can), the
role in check mode changes nothing, logrotate -d accepts the file when logrotate is installed."""

import getpass
import os
import shutil
import subprocess

import pytest

from tests.support.paths import PM2

PLAY = """---
- name: Install PM2's startup unit
  hosts: app
  gather_facts: false
  roles:
    - role: pm2_startup
  tasks:
    - name: Save the process list as the deploy does
      ansible.builtin.include_role:
        name: pm2_startup
        tasks_from: save.yml
"""


@pytest.fixture
def startup(tmp_path, playbook, pm2_home):
    play = tmp_path / "startup.yml"
    play.write_text(PLAY)
    units, rotate = tmp_path / "units", tmp_path / "logrotate.d"
    units.mkdir()
    rotate.mkdir()
    inventory = {"all": {"children": {"app": {"hosts": {"localhost": None}}}, "vars": {
        "ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "app_name": "shop", "app_root": str(tmp_path / "www" / "shop"), "pm2_home": pm2_home, "pm2_bin": PM2,
        "pm2_startup": True, "pm2_startup_unit_dir": str(units), "pm2_startup_logrotate_dir": str(rotate)}}}
    return lambda **kw: playbook(str(play), inventory, **kw), units, rotate


def test_check_mode_changes_nothing_and_shows_the_unit(startup):
    run, units, rotate = startup
    result = run(check=True, diff=True)
    assert result.ok, result.stdout[-3000:]
    assert os.listdir(units) == [] and os.listdir(rotate) == []
    assert f"ExecStart={PM2} resurrect" in result.stdout and "copytruncate" in result.stdout


def test_unit_and_logrotate_file_as_written(startup, pm2_home):
    run, units, rotate = startup
    result = run()
    assert result.ok, result.stdout[-3000:]
    user = getpass.getuser()
    unit = (units / f"pm2-{user}.service").read_text()
    for line in (f"User={user}", f"Environment=PM2_HOME={pm2_home}", f"PIDFile={pm2_home}/pm2.pid",
                 f"ExecStart={PM2} resurrect", f"ExecStop={PM2} kill", "Type=forking", "WantedBy=multi-user.target"):
        assert line in unit.splitlines(), (line, unit)
    assert "systemd does not run on localhost" in result.stdout  # written, not enabled, and said so
    assert os.path.exists(os.path.join(pm2_home, "dump.pm2"))  # pm2 save ran as this user
    conf = rotate / "pm2-shop"
    text = conf.read_text()
    assert "/www/shop/shared/logs/*.log" in text and f"{pm2_home}/logs/*.log" in text and "copytruncate" in text
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(units / f"pm2-{user}.service")],
                                capture_output=True, text=True)
        assert "Unknown key" not in verify.stderr and "Invalid" not in verify.stderr, verify.stderr
    if shutil.which("logrotate"):
        os.chmod(conf, 0o644)
        check = subprocess.run(["logrotate", "-d", str(conf)], capture_output=True, text=True)
        assert check.returncode == 0 and "error" not in check.stderr.lower(), check.stderr
