"""The benchmark's code path on tiny sizes, so `make bench` does not rot: the backup/restore
benchmark runs for real (its own cluster), then the results JSON and the table are checked
for their keys. Never a time: benchmarks are not tests."""

import json
import os

from bench import run as bench_run

ROW_KEYS = {"bench", "what", "unit", "manual", "ours", "ratio", "target", "met", "note"}


def test_quick_backup_restore_writes_json_and_table(tmp_path):
    results = tmp_path / "results"
    assert bench_run.main(["--quick", "--size-mb", "2", "--only", "backup_restore", "--results", str(results)]) == 0

    with open(results / "backup_restore.json") as fh:
        payload = json.load(fh)
    assert {"benchmark", "mode", "params", "machine", "rows", "details"} <= set(payload)
    assert payload["benchmark"] == "backup_restore" and payload["mode"] == "quick"
    assert {"nproc", "memory_gib", "postgres"} <= set(payload["machine"])
    assert payload["rows"] and all(set(r) == ROW_KEYS for r in payload["rows"])
    details = payload["details"]
    assert {"data", "floor", "manual_backup", "backups", "restores", "manual_restore"} <= set(details)
    rows = details["data"]["rows"]
    # Every restore path, ours and the manual one, brought back every generated row.
    assert all(r["rows_after"] == rows for r in details["restores"].values())
    assert details["manual_restore"]["rows_after"] == rows
    unavailable = [r for r in payload["rows"] if r["what"].startswith("database unavailable")]
    assert len(unavailable) == 1 and unavailable[0]["target"] == "≤ 1 s"

    table = (results / "latest.md").read_text()
    assert table.count("| backup/restore |") == len(payload["rows"])
    assert "| benchmark | measure | unit | manual (reference) | ours | ours ÷ ref | target | status | note |" in table
    assert os.path.exists(results / "machine.json")


def test_quick_lock_wait_applies_the_migration_under_every_setting(tmp_path):
    results = tmp_path / "results"
    assert bench_run.main(["--quick", "--only", "lock_wait", "--block-s", "2", "--results", str(results)]) == 0
    with open(results / "lock_wait.json") as fh:
        payload = json.load(fh)
    runs = payload["details"]["runs"]
    assert [r["label"].split(":")[0] for r in runs] == ["before", "after", "after"]
    assert all(r["applied"] == ["20260201090000_add_item_notes"] and not r["failed"] for r in runs), runs
    assert all(r["probe_queries"] > 0 for r in runs)
    assert [r["what"].rsplit(": ", 1)[1] for r in payload["rows"]] == ["role defaults", "lock_timeout 1s"]
