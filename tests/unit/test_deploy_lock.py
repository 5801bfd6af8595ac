"""The deploy lock: atomic, names its holder, breaks only stale locks and only when asked."""

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import deploy_lock as lock


def test_second_acquire_fails_naming_holder(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    assert lock.acquire(path, {"who": "alice", "version": "v2", "release_id": "r1", "token": "r1"}, 3600)[0]
    with pytest.raises(lock.LockHeld) as held:
        lock.acquire(path, {"who": "bob", "token": "r2"}, 3600)
    assert "held by alice" in str(held.value) and "v2" in str(held.value)
    assert held.value.stale is False


def test_same_token_is_idempotent(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": "r1"}, 3600)
    assert lock.acquire(path, {"who": "alice", "token": "r1"}, 3600) == (False, None)


def test_stale_lock_broken_only_when_asked(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "killed-run", "token": "r1"}, 3600, now=1000.0)
    with pytest.raises(lock.LockHeld) as held:
        lock.acquire(path, {"who": "bob", "token": "r2"}, 60, now=5000.0)
    assert held.value.stale is True
    acquired, broken = lock.acquire(path, {"who": "bob", "token": "r2"}, 60, break_stale=True, now=5000.0)
    assert acquired and broken["who"] == "killed-run"
    assert lock.read(path)["who"] == "bob"


def test_fresh_lock_is_not_broken_even_when_asked(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": "r1"}, 3600, now=1000.0)
    with pytest.raises(lock.LockHeld):
        lock.acquire(path, {"who": "bob", "token": "r2"}, 3600, break_stale=True, now=1010.0)


def test_release_refuses_other_token(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": "r1"}, 3600)
    with pytest.raises(lock.LockHeld):
        lock.release(path, token="r2")
    assert lock.release(path, token="r1") is True
    assert lock.read(path) is None
    assert lock.release(path, token="r1") is False


def test_lock_of_an_ended_run_is_broken_at_any_age_but_only_when_asked(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    lost = {"who": "ops", "token": "r1", "release_id": "r1", "controller": "bastion", "controller_pid": 4242}
    lock.acquire(path, lost, 3600, now=1000.0)
    with pytest.raises(lock.LockHeld):
        lock.acquire(path, {"who": "ops", "token": "r2"}, 3600, holder_ended=True, now=1010.0)
    for unknown_or_running in (None, False):
        with pytest.raises(lock.LockHeld):
            lock.acquire(path, {"who": "ops", "token": "r2"}, 3600, break_stale=True,
                         holder_ended=unknown_or_running, now=1010.0)
    acquired, broken = lock.acquire(path, {"who": "ops", "token": "r2"}, 3600, break_stale=True,
                                    holder_ended=True, now=1010.0)
    assert acquired and broken["token"] == "r1"
    assert lock.read(path)["token"] == "r2"


@pytest.mark.parametrize("age, ended, expected", [
    (10, None, "Wait for that run to finish; a lock becomes breakable after 3600s, or at once when its run has ended."),
    (10, False, "That run is still going: wait for it to finish (a lock whose run is going is not broken, "
                "whatever its age)."),
    (10, True, "That run has ended: rerun with -e deploy_break_lock=true to break the lock."),
    (4000, None, "It is stale (older than 3600s): rerun with -e deploy_break_lock=true to break it."),
    (4000, False, "That run is still going: wait for it to finish (a lock whose run is going is not broken, "
                  "whatever its age)."),
])
def test_hint_says_what_the_operator_can_do(age, ended, expected):
    assert lock.hint(age, 3600, ended) == expected


def test_holder_names_the_run_by_its_controller_when_recorded():
    with_controller = {"who": "ops", "since": "T", "version": "v2", "release_id": "r1", "pid": 77,
                       "controller": "bastion", "controller_pid": 4242}
    assert lock.describe(with_controller, 12.7) == (
        "held by ops since T (12s ago) for deploy v2 (release r1, ansible-playbook pid 4242 on bastion)")
    assert lock.describe({"who": "ops", "pid": 77}, 1).endswith("(release ?, pid 77)")


def test_a_stale_lock_whose_run_is_known_to_be_going_is_never_broken(tmp_path):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "long-migration", "token": "r1"}, 3600, now=1000.0)
    with pytest.raises(lock.LockHeld):
        lock.acquire(path, {"who": "ops", "token": "r2"}, 3600, break_stale=True, holder_ended=False, now=9000.0)
    assert lock.read(path)["token"] == "r1"


def test_two_runs_breaking_the_same_lock_at_once_leave_one_holder(tmp_path):
    """The guard serialises read, unlink and create: the second breaker finds the first's fresh lock."""
    import threading
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "lost", "token": "r0"}, 3600, now=1000.0)
    won, lost = [], []
    start = threading.Barrier(8)

    def breaker(i):
        start.wait()
        try:  # each found that r0's run has ended; by the time it acts, another may hold the lock
            lock.acquire(path, {"who": "ops%d" % i, "token": "r%d" % (i + 1)}, 3600, break_stale=True,
                         holder_ended=True, ended_token="r0")
            won.append(i)
        except lock.LockHeld:
            lost.append(i)

    threads = [threading.Thread(target=breaker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1 and len(lost) == 7
    assert lock.read(path)["who"] == "ops%d" % won[0]
