"""PM2 survives a reboot (issue 13, item 11): roles/pm2_startup writes a systemd unit that
resurrects the deploy user's saved process list, saves it, and rotates the app's logs. No
systemd runs here: the unit is checked as rendered (and by systemd-analyze when it can), the
role in check mode changes nothing, logrotate -d accepts the file when logrotate is installed."""

import getpass
import json
import os
import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.support import handmade
from tests.support.paths import PM2
from tests.support.pgcluster import free_port


def wait_for_text(url, timeout=20):
    """The body of the first 200 answer from `url` within `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return resp.read().decode()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)

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


SERVER = ("const fs = require('fs');\n"
          "require('http').createServer((q, r) => r.end(fs.readFileSync('RELEASE', 'utf8')))"
          ".listen(Number(process.env.PORT));\n")


def unit_service(unit_text):
    """The [Service] lines systemd would use to start the unit: its environment and ExecStart argv."""
    env, start = {}, None
    for line in unit_text.splitlines():
        key, _, value = line.partition("=")
        if key == "Environment":
            name, _, val = value.partition("=")
            env[name] = val
        elif key == "ExecStart":
            start = value.split()
        elif key == "PIDFile":
            env["_pidfile"] = value
    return env, start


def test_the_unit_brings_the_saved_app_back_after_pm2_is_gone_as_at_boot(startup, pm2_home, tmp_path):
    # issue 13 item 11, without systemd: what the unit runs at boot (its ExecStart with its
    # Environment, as its User) brings back the process list the role saved, from current
    run, units, _rotate = startup
    release = tmp_path / "www" / "shop" / "releases" / "r1"
    release.mkdir(parents=True)
    (release / "server.js").write_text(SERVER)
    (release / "RELEASE").write_text("r1")
    current = tmp_path / "www" / "shop" / "current"
    current.symlink_to(release)
    port = str(free_port())
    config = tmp_path / "shop.json"  # as roles/pm2_app starts an app: cwd is the current link
    config.write_text(json.dumps({"apps": [{"name": "shop", "script": "server.js", "cwd": str(current)}]}))
    started = subprocess.run([PM2, "start", str(config)], capture_output=True, text=True,
                             env=dict(os.environ, PM2_HOME=pm2_home, PORT=port), timeout=60)
    assert started.returncode == 0, started.stderr
    assert wait_for_text(f"http://127.0.0.1:{port}/") == "r1"
    result = run()
    assert result.ok, result.stdout[-3000:]

    subprocess.run([PM2, "kill"], env=dict(os.environ, PM2_HOME=pm2_home), capture_output=True, timeout=60)
    with pytest.raises(OSError):  # the "reboot": nothing runs
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)

    env, argv = unit_service((units / f"pm2-{getpass.getuser()}.service").read_text())
    pidfile = env.pop("_pidfile")
    boot = {k: v for k, v in os.environ.items() if k in ("HOME", "LANG")}  # what systemd gives a User= service
    done = subprocess.run(argv, env=dict(boot, **env), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert wait_for_text(f"http://127.0.0.1:{port}/") == "r1"
    (proc,) = handmade.pm2_processes(pm2_home, "shop")
    assert proc["pm2_env"]["pm_cwd"] == str(current)  # the saved cwd: current, not the release it resolved to
    with open(pidfile) as fh:  # Type=forking waits for this file
        assert os.path.exists(f"/proc/{int(fh.read().strip())}")
