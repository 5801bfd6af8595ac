"""Issue 14: a run never passes, nor releases, a lock that another run holds, whatever release id
it is given. A live run's lock is faked (a process whose argv says ansible-playbook, recorded as
its holder on this controller), so each deploy stops in preflight within seconds."""

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from tests.support.faults import lock_path, wait_for
from tests.support.inventory import local_inventory
from tests.support.playbooks import run_playbook

HELD_RELEASE = "20261201T120000Z-v1"  # what the refusal message shows of the live run's lock


def this_process_space():
    with open("/proc/sys/kernel/random/boot_id") as fh:
        return "%s/%s" % (fh.read().strip(), os.readlink("/proc/self/ns/pid"))


@pytest.fixture
def live_holder():
    """A live 'ansible-playbook' on this controller: the controller_run lookup says it is going."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)", "ansible-playbook"])
    try:
        wait_for(lambda: open("/proc/%d/cmdline" % proc.pid, "rb").read(), timeout=10, what="the holder's argv")
        yield proc
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize("release_id", [HELD_RELEASE, ""], ids=["the-held-release-id", "empty"])
def test_a_deploy_given_the_held_release_id_or_an_empty_one_is_refused_and_leaves_the_lock(
        release_id, live_holder, pg_cluster, app_repo, pm2_home, tmp_path):
    repo, _shas = app_repo
    inventory = local_inventory(str(tmp_path), pg_cluster, pg_cluster.create_database("lock_" + os.urandom(3).hex()),
                                repo, pm2_home)
    app_root = inventory["all"]["vars"]["app_root"]
    os.makedirs(app_root)
    held = {"who": "ops", "action": "deploy", "version": "v1", "release_id": HELD_RELEASE,
            # as main wrote it: the release id was the token, so passing it passed the lock
            "token": HELD_RELEASE, "session": "maestro.deploy:" + HELD_RELEASE,
            "controller": socket.gethostname(), "controller_pid": live_holder.pid,
            "controller_space": this_process_space(), "since_epoch": time.time() - 5}
    with open(lock_path(app_root), "w") as fh:
        json.dump(held, fh)
    with open(lock_path(app_root), "rb") as fh:
        before = fh.read()
    stat_before = os.stat(lock_path(app_root))

    run = run_playbook("deploy.yml", inventory, str(tmp_path / "runner"),
                       extravars={"app_version": "v1", "deploy_release_id": release_id})

    at = run.stdout.find("DEPLOY FAILED")
    message = run.stdout[at:at + 3000] if at >= 0 else run.stdout[-3000:]
    assert not run.ok and "DEPLOY FAILED in stage preflight" in message, message
    if release_id:
        assert "held by ops" in message and "That run is still going" in message, message
    else:
        assert "deploy_release_id=" in message, message
    with open(lock_path(app_root), "rb") as fh:
        assert fh.read() == before
    assert os.stat(lock_path(app_root)).st_mtime_ns == stat_before.st_mtime_ns
    assert not os.path.lexists(os.path.join(app_root, "releases"))
    assert not os.path.lexists(os.path.join(app_root, "current"))
