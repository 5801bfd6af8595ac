"""The deploy lock: atomic, names its holder, breaks only stale locks and only when asked."""

import os

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
    assert lock.release(path, token="r1")["who"] == "alice"  # the holder it removed
    assert lock.read(path) is None
    assert lock.release(path, token="r1") is None


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


# --- Whose lock it is: the token of the run that took it, compared under the guard (issue 14) ---

import contextlib  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.deploy_lock import LockHeld  # noqa: E402
from ansible_collections.maestro.deploy.plugins.modules import deploy_lock as lock_module  # noqa: E402

T1, T2 = "1f" * 16, "2e" * 16  # two runs' tokens (the lookup draws 32 hex digits per run)


def run_module(capsys, **args):
    """deploy_lock's main() on these arguments; its JSON result (failed or not)."""
    with patch_module_args(args), pytest.raises(SystemExit):
        lock_module.main()
    return json.loads(capsys.readouterr().out)


def lock_bytes(path):
    with open(path, "rb") as fh:
        return fh.read()


def test_two_runs_with_one_release_id_but_their_own_tokens_do_not_both_hold_the_lock(tmp_path):
    """Two deploys of one tag in the same second share the release id, never the token."""
    path = str(tmp_path / ".deploy.lock")
    same = {"who": "ops", "version": "v2", "release_id": "20261201T120000Z-v2"}
    assert lock.acquire(path, dict(same, token=T1), 3600)[0]
    with pytest.raises(lock.LockHeld) as held:
        lock.acquire(path, dict(same, token=T2), 3600)
    assert "release 20261201T120000Z-v2" in str(held.value)
    assert lock.read(path)["token"] == T1


@pytest.mark.parametrize("token", ["", None])
def test_an_empty_or_missing_token_is_nobody_s(tmp_path, token):
    """A run that has no token (it never took the lock) releases nothing and takes nothing."""
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": T1}, 3600)
    before = lock_bytes(path)
    with pytest.raises(lock.LockHeld):
        lock.release(path, token=token)
    assert lock_bytes(path) == before
    assert not lock.owns({"who": "alice"}, token) and not lock.owns({"token": ""}, token)
    with pytest.raises(ValueError):
        lock.acquire(path, {"who": "bob", "token": token}, 3600)
    assert lock_bytes(path) == before


def test_a_lock_without_a_token_is_not_released_by_a_run_with_one(tmp_path):
    """A lock written by hand, by an older version or damaged has no token: it is no run's own."""
    path = str(tmp_path / ".deploy.lock")
    with open(path, "w") as fh:
        json.dump({"who": "by-hand", "since_epoch": 1000.0}, fh)
    before = lock_bytes(path)
    with pytest.raises(lock.LockHeld):
        lock.release(path, token=T1)
    assert lock_bytes(path) == before
    assert lock.release(path, token=None, force=True)["who"] == "by-hand"
    assert lock.read(path) is None


@pytest.mark.parametrize("token", [T2, "", None])
def test_module_absent_with_another_or_no_token_keeps_the_lock_and_says_whose_it_is(
        tmp_path, capsys, token, monkeypatch):
    warned = []
    monkeypatch.setattr(lock_module.AnsibleModule, "warn", lambda self, msg: warned.append(msg))
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "version": "v2", "release_id": "r1", "token": T1}, 3600)
    before = lock_bytes(path)
    args = dict(path=path, state="absent")
    if token is not None:
        args["token"] = token
    result = run_module(capsys, **args)
    assert not result.get("failed") and result["changed"] is False, result
    assert "held by alice" in result["held_by"] and result["holder"]["token"] == T1
    assert warned == ["left the deploy lock at %s in place: it is not this run's, it is %s" % (path, result["held_by"])]
    assert lock_bytes(path) == before


def test_module_absent_releases_its_own_lock(tmp_path, capsys):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": T1}, 3600)
    result = run_module(capsys, path=path, state="absent", token=T1)
    assert result["changed"] is True and result["holder"] is None and result["released"]["token"] == T1
    assert not (tmp_path / ".deploy.lock").exists()


def test_module_absent_decides_whose_lock_it_is_under_the_guard(tmp_path, capsys, monkeypatch):
    """Between the module's first look and its unlink another run may break the lock and take it
    (the guard serialises that): the decision is made on what the file holds under the guard."""
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": T1}, 3600, now=1000.0)  # ours, and stale
    real_guarded = lock.guarded

    @contextlib.contextmanager
    def taken_over_meanwhile(p):
        monkeypatch.setattr(lock, "guarded", real_guarded)
        lock.acquire(p, {"who": "bob", "token": T2}, 60, break_stale=True)  # bob breaks the stale lock
        with real_guarded(p):
            yield

    monkeypatch.setattr(lock, "guarded", taken_over_meanwhile)
    result = run_module(capsys, path=path, state="absent", token=T1)
    assert lock.read(path)["token"] == T2, result  # bob's lock stays
    assert result["changed"] is False and "held by bob" in result["held_by"], result


def test_module_check_mode_absent_reports_without_releasing(tmp_path, capsys):
    path = str(tmp_path / ".deploy.lock")
    lock.acquire(path, {"who": "alice", "token": T1}, 3600)
    before = lock_bytes(path)
    ours = run_module(capsys, path=path, state="absent", token=T1, _ansible_check_mode=True)
    theirs = run_module(capsys, path=path, state="absent", token=T2, _ansible_check_mode=True)
    assert ours["changed"] is True and theirs["changed"] is False and "held by alice" in theirs["held_by"]
    assert lock_bytes(path) == before


@pytest.mark.parametrize("token", ["", None])
def test_module_present_without_a_token_takes_nothing(tmp_path, capsys, token):
    path = str(tmp_path / ".deploy.lock")
    args = dict(path=path, holder={"who": "ops"})
    if token is not None:
        args["token"] = token
    result = run_module(capsys, **args)
    assert result["failed"] and "needs this run's token" in result["msg"], result
    assert not (tmp_path / ".deploy.lock").exists()


MALFORMED = {
    "a list": b"[]",
    "a string": b'"locked"',
    "null": b"null",
    "not JSON": b"{not json",
    "not UTF-8": b"\xff\xfe{}",
    "empty": b"",
    "since_epoch a word": b'{"who": "x", "token": "t", "since_epoch": "yesterday"}',
    "since_epoch NaN": b'{"who": "x", "token": "t", "since_epoch": NaN}',
    "since_epoch null": b'{"who": "x", "token": "t", "since_epoch": null}',
    "since_epoch past any calendar": b'{"who": "x", "token": "t", "since_epoch": 1e300}',
    "nested too deep": b"[" * 100000,
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_lock_file_is_held_by_an_unknown_run_and_named(tmp_path, name):
    path = str(tmp_path / ".deploy.lock")
    with open(path, "wb") as fh:
        fh.write(MALFORMED[name])
    holder = lock.read(path)
    assert isinstance(holder, dict) and math.isfinite(lock.age_of(holder))
    with pytest.raises(lock.LockHeld) as held:
        lock.acquire(path, {"who": "bob", "token": T2}, 3600)
    assert "held by" in str(held.value)
    with pytest.raises(lock.LockHeld):
        lock.release(path, token=T2)
    assert lock_bytes(path) == MALFORMED[name]


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_module_on_a_malformed_lock_file_fails_naming_it_and_what_to_do(tmp_path, capsys, name):
    path = str(tmp_path / ".deploy.lock")
    with open(path, "wb") as fh:
        fh.write(MALFORMED[name])
    result = run_module(capsys, path=path, token=T2, holder={"who": "bob"})
    assert result["failed"] and "Traceback" not in json.dumps(result), result
    assert result["msg"].startswith("deploy lock at %s is " % path), result["msg"]
    assert "make sure no deploy or rollback runs on this host, then remove %s" % path in result["msg"], result["msg"]
    assert lock_bytes(path) == MALFORMED[name]
    for state in ("query", "absent"):  # reading it never raises either
        assert not run_module(capsys, path=path, token=T2, state=state).get("failed")
    assert lock_bytes(path) == MALFORMED[name]


def test_module_on_an_unreadable_lock_path_fails_naming_it(tmp_path, capsys):
    path = str(tmp_path / ".deploy.lock")
    os.mkdir(path)  # a directory where the lock file goes
    result = run_module(capsys, path=path, token=T2, holder={"who": "bob"})
    assert result["failed"] and path in result["msg"] and "Traceback" not in json.dumps(result), result
    assert os.path.isdir(path)


@pytest.mark.parametrize("holder, kwargs, expected", [
    (None, {}, "free"),
    ({"who": "alice", "token": T1, "since_epoch": 1000.0}, {}, "own"),
    ({"who": "bob", "token": T2, "since_epoch": 1000.0}, {"break_stale": True}, "break"),  # stale: 7200 s
    ({"who": "bob", "token": T2, "since_epoch": 8000.0}, {"break_stale": True, "holder_ended": True,
                                                          "ended_token": T2}, "break"),  # ended, any age
    ({"who": "bob", "token": T2, "since_epoch": 8000.0}, {"break_stale": True}, LockHeld),  # fresh
    ({"who": "bob", "token": T2, "since_epoch": 1000.0}, {}, LockHeld),  # stale, not asked
    ({"who": "bob", "token": T2, "since_epoch": 1000.0}, {"break_stale": True, "holder_ended": False,
                                                          "ended_token": T2}, LockHeld),  # going
])
def test_acquire_decision_is_what_taking_the_lock_does(holder, kwargs, expected):
    decide = functools.partial(lock.acquire_decision, holder, T1, 8200.0, 3600, **kwargs)
    if expected is LockHeld:
        with pytest.raises(LockHeld):
            decide()
    else:
        assert decide() == expected


@pytest.mark.parametrize("held, break_stale, changed, failed", [
    (None, False, True, False), (T1, False, False, False), (T2, False, None, True), (T2, True, True, False),
])
def test_module_check_mode_present_decides_as_acquire_and_writes_nothing(tmp_path, capsys, held, break_stale,
                                                                          changed, failed):
    path = str(tmp_path / ".deploy.lock")
    if held:
        lock.acquire(path, {"who": "alice", "token": held}, 3600, now=time.time() - 7200)
    before = lock_bytes(path) if held else None
    out = run_module(capsys, path=path, token=T1, stale_after=3600, break_stale=break_stale,
                     _ansible_check_mode=True)
    assert bool(out.get("failed")) is failed and (failed or out["changed"] is changed)
    assert (lock_bytes(path) if held else os.path.exists(path)) == (before if held else False)
