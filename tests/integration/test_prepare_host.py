"""playbooks/prepare_host.yml: the one play that becomes root creates what an unprivileged deploy
cannot (the app root, the PM2 home, the backup directory) and hands over nothing else.

The tests run as root on the local inventory, so the play's become is turned off with -e (the
harness has no sudo); the Molecule SSH scenario runs it with become for real."""

import os
import pwd
import stat
from types import SimpleNamespace

import pytest

from tests.support.inventory import local_inventory

NOT_ROOT = {"ansible_become": False}
# The play touches no database: the inventory's database values are placeholders.
NO_CLUSTER = SimpleNamespace(port=5432, app_user="unused", app_password="unused")


def _inventory(tmp_path, **overrides):
    pm2_home = overrides.pop("pm2_home", str(tmp_path / "home" / "pm2"))
    inventory = local_inventory(tmp_path, NO_CLUSTER, "unused_db", "unused-repo", pm2_home,
                                deploy_user="nobody", prepare_host_deploy_group="nogroup", **overrides)
    return inventory, inventory["all"]["vars"]


def _owner_mode(path):
    st = os.lstat(path)
    return pwd.getpwuid(st.st_uid).pw_name, oct(stat.S_IMODE(st.st_mode))


@pytest.fixture
def as_root():
    if os.geteuid() != 0:
        pytest.skip("handing directories to other users needs root")


def test_prepare_host_creates_the_directories_for_their_users(as_root, tmp_path, playbook):
    inventory, hostvars = _inventory(tmp_path)
    preview = playbook("prepare_host.yml", inventory, extravars=NOT_ROOT, check=True, diff=True)
    assert preview.ok, preview.stdout[-3000:]
    assert not os.path.exists(hostvars["app_root"]) and not os.path.exists(hostvars["backup_dir"])

    run = playbook("prepare_host.yml", inventory, extravars=NOT_ROOT)
    assert run.ok, run.stdout[-3000:]
    assert _owner_mode(hostvars["app_root"]) == ("nobody", "0o755")
    assert _owner_mode(hostvars["pm2_home"]) == ("nobody", "0o700")
    assert _owner_mode(hostvars["backup_dir"]) == ("postgres", "0o700")
    # The parents it had to create are root's, as /var/www is: the deploy user owns only its own.
    assert _owner_mode(os.path.dirname(hostvars["app_root"])) == ("root", "0o755")


def test_prepare_host_refuses_what_is_not_the_apps(as_root, tmp_path, playbook):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "somebody-elses").write_text("kept\n")
    (tmp_path / "link").symlink_to("/etc")
    inventory, hostvars = _inventory(tmp_path, app_root=str(busy), pm2_home=str(tmp_path / "link"))
    run = playbook("prepare_host.yml", inventory, extravars=NOT_ROOT)
    assert not run.ok
    msg = run.failed_tasks()[-1]["res"]["msg"]
    assert msg.startswith("Nothing was changed.")
    assert f"{tmp_path}/link is a symbolic link" in msg
    assert f"{busy} holds files and is root's, not nobody's" in msg
    assert _owner_mode(busy) == ("root", "0o755") and not os.path.exists(hostvars["backup_dir"])

    system = playbook("prepare_host.yml", _inventory(tmp_path, backup_dir="/usr/local")[0],
                      extravars=NOT_ROOT)
    assert not system.ok
    assert "backup_dir=/usr/local (a system directory)" in system.failed_tasks()[-1]["res"]["msg"]
    assert _owner_mode("/usr/local")[0] == "root"
