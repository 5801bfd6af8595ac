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
