"""The controller_run lookup: which run this is, and whether a run recorded in a lock has ended."""

import getpass
import os
import socket
import subprocess
import sys

import pytest
from ansible.errors import AnsibleError
from ansible_collections.maestro.deploy.plugins.lookup import controller_run


def lookup(**options):
    return controller_run.run_state(**options)


def test_without_options_it_names_this_controller_and_run():
    run = lookup()
    assert run == {"controller": socket.gethostname(), "pid": os.getpid(), "running": True,
                   "user": getpass.getuser(), "space": controller_run.process_space()}
    assert run["space"].count("/") == 1 and run["space"].endswith("]")  # boot id / pid:[inode]


def test_a_live_ansible_process_on_this_controller_is_running():
    # a process whose argv says ansible, as ansible-playbook's does
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", "ansible-playbook"])
    try:
        assert lookup(controller=socket.gethostname(), pid=proc.pid)["running"] is True
    finally:
        proc.kill()
        proc.wait()
    assert lookup(controller=socket.gethostname(), pid=proc.pid)["running"] is False


def test_a_pid_reused_by_another_program_counts_as_ended():
    proc = subprocess.Popen(["sleep", "30"])
    try:
        assert lookup(controller=socket.gethostname(), pid=proc.pid)["running"] is False
    finally:
        proc.kill()
        proc.wait()


def test_a_run_of_another_controller_is_unknown():
    assert lookup(controller="not-" + socket.gethostname(), pid=1)["running"] is None


def test_a_pid_of_another_process_space_with_the_same_host_name_is_unknown():
    # a container with this host name, or this machine before a reboot: its pid 1 is not ours to read
    here = socket.gethostname()
    assert lookup(controller=here, pid=1, space="another-boot/pid:[1]")["running"] is None
    assert lookup(controller=here, pid=1, space=controller_run.process_space())["running"] is False


@pytest.mark.parametrize("options", [{"controller": "bastion"}, {"pid": 12}, {"controller": "bastion", "pid": -3}])
def test_half_a_run_is_refused_naming_the_values(options):
    with pytest.raises(AnsibleError, match="needs both controller and pid"):
        lookup(**options)
