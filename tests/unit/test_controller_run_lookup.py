"""The controller_run lookup: which run this is, and whether a run recorded in a lock has ended."""

import getpass
import os
import socket
import subprocess
import sys
import time

import pytest
from ansible.errors import AnsibleError
from ansible_collections.maestro.deploy.plugins.lookup import controller_run


def lookup(**options):
    return controller_run.run_state(**options)


def here(pid):
    """A run recorded on this controller, in this process space."""
    return dict(controller=socket.gethostname(), pid=pid, space=controller_run.process_space())


def started(proc):
    """Wait until the child's argv is in /proc (it is empty for a moment after fork)."""
    deadline = time.time() + 10
    while time.time() < deadline:
        with open("/proc/%d/cmdline" % proc.pid, "rb") as fh:
            if fh.read():
                return proc
        time.sleep(0.01)
    raise AssertionError("child %d never showed its argv" % proc.pid)


def test_without_options_it_names_this_controller_and_run():
    run = lookup()
    assert run == {"controller": socket.gethostname(), "pid": os.getpid(), "running": True,
                   "user": getpass.getuser(), "space": controller_run.process_space(),
                   "token": run["token"]}
    assert run["space"].count("/") == 1 and run["space"].endswith("]")  # boot id / pid:[inode]


def test_a_live_ansible_process_on_this_controller_is_running():
    # a process whose argv says ansible, as ansible-playbook's does
    proc = started(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ansible-playbook"]))
    try:
        assert lookup(**here(proc.pid))["running"] is True
    finally:
        proc.kill()
        proc.wait()
    assert lookup(**here(proc.pid))["running"] is False


def test_a_pid_reused_by_another_program_counts_as_ended():
    proc = started(subprocess.Popen(["sleep", "30"]))
    try:
        assert lookup(**here(proc.pid))["running"] is False
    finally:
        proc.kill()
        proc.wait()


def test_a_run_of_another_controller_is_unknown():
    assert lookup(controller="not-" + socket.gethostname(), pid=1)["running"] is None


def test_a_pid_of_another_process_space_with_the_same_host_name_is_unknown():
    # a container with this host name, or this machine before a reboot: its pid 1 is not ours to read
    same_name = socket.gethostname()
    assert lookup(controller=same_name, pid=1, space="another-boot/pid:[1]")["running"] is None
    assert lookup(controller=same_name, pid=1)["running"] is None  # recorded without a space: cannot tell


def test_a_process_that_cannot_be_signalled_counts_as_running(monkeypatch):
    def kill(pid, sig):
        raise PermissionError("another user's process")
    monkeypatch.setattr(controller_run.os, "kill", kill)
    assert controller_run.pid_runs_ansible(12345) is True


def test_the_user_of_a_uid_without_a_name_is_its_number(monkeypatch):
    def getuser():
        raise KeyError("getpwuid(): uid not found")
    monkeypatch.setattr(controller_run.getpass, "getuser", getuser)
    assert controller_run.controller_user() == "uid %d" % os.getuid()


@pytest.mark.parametrize("options", [{"controller": "bastion"}, {"pid": 12}, {"controller": "bastion", "pid": -3}])
def test_half_a_run_is_refused_naming_the_values(options):
    with pytest.raises(AnsibleError, match="needs both controller and pid"):
        lookup(**options)
