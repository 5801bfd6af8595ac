"""Release bookkeeping: rollback targets from the history only, failed releases never targets,
pruning never removes the current, previous or backed-up release."""

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import release_history as rh


def history(*entries):
    data = rh.empty("app")
    for rid, status, *rest in entries:
        entry = {"id": rid, "status": status}
        if rest:
            entry["backup_path"] = rest[0]
        data["releases"].append(entry)
    return data


H = history(("r1", "success"), ("r2", "success"), ("r3", "failed"), ("r4", "success"))


def test_previous_skips_failed_release():
    assert rh.previous_of(H, "r4")["id"] == "r2"


@pytest.mark.parametrize("rollback_to, expected", [(None, "r2"), ("1", "r2"), ("2", "r1"), (2, "r1"), ("r1", "r1")])
def test_rollback_target(rollback_to, expected):
    assert rh.rollback_target(H, "r4", rollback_to)["id"] == expected


@pytest.mark.parametrize("rollback_to, message", [
    ("r3", "status 'failed'"),
    ("r4", "is the release that is live now"),
    ("r9", "is not a release in the history"),
    ("3", "2 earlier release(s) served successfully, 3 step(s) back asked"),
    ("0", "steps back must be 1 or more"),
    ("../etc", "not a valid release id"),
])
def test_bad_rollback_target_names_the_value(rollback_to, message):
    with pytest.raises(rh.HistoryError) as err:
        rh.rollback_target(H, "r4", rollback_to)
    assert message in str(err.value)


def test_releases_between_excludes_failed():
    assert [r["id"] for r in rh.releases_between(H, "r1", "r4")] == ["r2", "r4"]


def test_upsert_merges_and_reports_change():
    data = history(("r1", "pending"))
    assert rh.upsert(data, {"id": "r1", "status": "success"}) is True
    assert rh.upsert(data, {"id": "r1", "status": "success"}) is False
    assert rh.find(data, "r1") == {"id": "r1", "status": "success"}
    with pytest.raises(rh.HistoryError, match="release.id='a/b'"):
        rh.upsert(data, {"id": "a/b"})


def test_prune_plan_keeps_current_previous_and_backed_up():
    data = history(("r1", "success", "/b/r1.dump"), ("r2", "success"), ("r3", "success"), ("r4", "failed"),
                   ("r5", "success"), ("r6", "success"))
    dirs = {"r1", "r2", "r3", "r4", "r5", "r6", "stray"}
    delete, kept, unknown = rh.prune_plan(data, dirs, keep=1, current_id="r6",
                                          backup_exists=lambda p: p == "/b/r1.dump")
    assert sorted(delete) == ["r2", "r3", "r4"]
    assert kept == {"r1": "its backup is still kept", "r5": "previous release", "r6": "current"}
    assert unknown == ["stray"]


def test_failed_releases_do_not_count_toward_keep():
    data = history(("r1", "success"), ("r2", "success"), ("r3", "failed"), ("r4", "failed"))
    delete, kept, _ = rh.prune_plan(data, {"r1", "r2", "r3", "r4"}, keep=2, current_id="r2",
                                    backup_exists=lambda p: False)
    assert sorted(delete) == ["r3", "r4"]
    assert set(kept) == {"r1", "r2"}


@pytest.mark.parametrize("keep", [0, -1])
def test_prune_refuses_keep_below_one(keep):
    with pytest.raises(rh.HistoryError, match="keep_releases=%d" % keep):
        rh.prune_plan(history(), set(), keep=keep, current_id=None, backup_exists=lambda p: False)


def test_save_and_load_roundtrip(tmp_path):
    path = str(tmp_path / "history.json")
    rh.save(path, H)
    assert rh.load(path) == H
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(rh.HistoryError, match="not valid JSON"):
        rh.load(str(tmp_path / "bad.json"))


def test_rollback_skips_releases_with_the_live_code():
    data = history(("r1", "success"), ("r2", "rolled_back"), ("r3", "success"))
    for rid, sha in (("r1", "aaa"), ("r2", "bbb"), ("r3", "bbb")):
        rh.find(data, rid)["sha"] = sha
    assert rh.rollback_target(data, "r3")["id"] == "r1"


# -- a malformed history gets a message naming the file (issue 14) -------------------------------
def run_history_module(args, monkeypatch, capsys):
    import json

    from ansible.module_utils.testing import patch_module_args
    from ansible_collections.maestro.deploy.plugins.modules import release_history

    with patch_module_args(args), pytest.raises(SystemExit):
        release_history.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("text, why", [
    ("{", "is not valid JSON"),
    ("[]", "is not a JSON object"),
    ('[{"id": "r1"}]', "is not a JSON object"),
    ('{"releases": {"id": "r1"}}', "'releases' is not a list"),
    ('{"releases": ["r1"]}', "release #1 is not an object"),
    ('{"releases": [{"status": "success"}]}', "release #1 has no valid id"),
    ('{"releases": [{"id": "../../etc", "status": "success"}]}', "release #1 has no valid id"),
    ('{"releases": [], "events": {}}', "'events' is not a list"),
    ('{"releases": [{"id": "r1", "backup_path": 7}]}', "release r1: backup_path is not a string"),
])
@pytest.mark.parametrize("state", ["query", "present"])
def test_a_malformed_history_is_refused_naming_the_file(tmp_path, monkeypatch, capsys, text, why, state):
    history_file = tmp_path / "history.json"
    history_file.write_text(text)
    args = {"app_root": str(tmp_path), "state": state}
    if state == "present":
        args["release"] = {"id": "r9", "status": "pending"}
    result = run_history_module(args, monkeypatch, capsys)
    assert result.get("failed") and str(history_file) in result["msg"] and why in result["msg"], result
    assert "fix it or move it aside" in result["msg"]
    assert history_file.read_text() == text  # nothing rewritten


def test_a_symlinked_history_is_not_followed(tmp_path, monkeypatch, capsys):
    elsewhere = tmp_path / "elsewhere.json"
    elsewhere.write_text('{"releases": [], "events": []}')
    (tmp_path / "history.json").symlink_to(elsewhere)
    result = run_history_module({"app_root": str(tmp_path)}, monkeypatch, capsys)
    assert result.get("failed") and "symbolic link" in result["msg"], result


def test_an_unreadable_history_is_not_taken_for_an_empty_one(tmp_path):
    (tmp_path / "history.json").mkdir()
    with pytest.raises(rh.HistoryError, match="cannot read release history"):
        rh.load(str(tmp_path / "history.json"))
    assert rh.load(str(tmp_path / "missing.json")) == rh.empty()


def test_live_release_is_never_a_failed_current():
    # issue 13: a failed first deploy left `current` on the failed release; the next deploy named it
    # its previous release (the rescue's target and the summary's "rollback target")
    data = history(("r1", "failed"))
    assert rh.live_release(data, "r1") is None
    data = history(("r1", "success"), ("r2", "failed"))
    assert rh.live_release(data, "r2")["id"] == "r1"
    assert rh.live_release(data, "r1")["id"] == "r1"
    assert rh.live_release(history(), None) is None
    assert rh.live_release(history(("r1", "success"), ("r2", "rolled_back")), "r9")["id"] == "r2"


def test_history_writers_take_turns(tmp_path):
    """The fast no-op records its event without the deploy lock: a write waits for one in progress
    (a flock on the app root), then lands beside it, and the lock is gone when the module ends."""
    import fcntl
    import os
    import time

    from tests.support.modrun import finish_module, start_module

    root = tmp_path / "app"
    root.mkdir()
    holder = os.open(str(root), os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # another writer, mid read-modify-write
    proc = start_module("release_history", dict(app_root=str(root), state="present",
                                                 event={"type": "noop", "release_id": "R1"}), tmp_path)
    time.sleep(1.0)
    assert proc.poll() is None, "the write did not wait for the one in progress"
    assert not (root / "history.json").exists()
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    done = finish_module(proc, timeout=30)
    assert not done.failed, done.result
    assert [e["type"] for e in rh.load(str(root / "history.json"))["events"]] == ["noop"]
    again = os.open(str(root), os.O_RDONLY)
    fcntl.flock(again, fcntl.LOCK_EX | fcntl.LOCK_NB)  # released: raises BlockingIOError if still held
    os.close(again)


def test_a_writer_lock_held_too_long_is_given_up_with_a_warning(tmp_path):
    """Anyone who can open the app root can hold its flock: the write waits a bounded time, then
    goes on without it (as before there was one) and says so."""
    import fcntl
    import os

    holder = os.open(str(tmp_path), os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        fd, warning = rh.hold_writer_lock(str(tmp_path), wait_s=0.3)
        assert fd is None and "written without its writer lock" in warning and "held a lock" in warning
    finally:
        os.close(holder)
    fd, warning = rh.hold_writer_lock(str(tmp_path), wait_s=0.3)
    assert fd is not None and warning is None
    os.close(fd)
    assert rh.hold_writer_lock(str(tmp_path / "absent")) == (None, None)


def test_a_noop_event_is_not_written_when_a_deploy_moved_current_meanwhile(tmp_path):
    """The no-op's event names the release it found live; a deploy that switched current while the
    event waited for the writer lock makes that stale: nothing is written, a warning says why."""
    import fcntl
    import json
    import os

    from tests.support.modrun import finish_module, start_module

    root = tmp_path / "app"
    for release in ("R1", "R2"):
        (root / "releases" / release).mkdir(parents=True)
    os.symlink(str(root / "releases" / "R1"), str(root / "current"))
    holder = os.open(str(root), os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # the deploy, mid-write
    proc = start_module("release_history", dict(app_root=str(root), state="present", when_current="R1",
                                                 event={"type": "noop", "release_id": "R1"}), tmp_path)
    os.symlink(str(root / "releases" / "R2"), str(root / "current.new"))
    os.rename(str(root / "current.new"), str(root / "current"))  # the deploy's switch
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    done = finish_module(proc, timeout=30)
    assert not done.failed and done.result["changed"] is False, done.result
    assert done.result["not_written"] == "current points to R2, not to R1 any more (a deploy ran meanwhile)"
    assert "Nothing was written" in json.dumps(done.result.get("warnings"))  # 2.19 sends them as dicts
    assert not (root / "history.json").exists()
    # while current still points to it, the event is written
    done = finish_module(start_module("release_history", dict(
        app_root=str(root), state="present", when_current="R2", event={"type": "noop", "release_id": "R2"}),
        tmp_path), timeout=30)
    assert not done.failed and done.result["changed"] is True, done.result
    assert [e["release_id"] for e in rh.load(str(root / "history.json"))["events"]] == ["R2"]
