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
