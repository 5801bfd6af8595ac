"""backup_method: pgbackrest's pure parts: the restore point's name, the exact argv that waits for
its WAL, the backup a recovery to it starts from (real pgBackRest 2.45 `info` JSON), the record the
history keeps and the checks it passes when read back from the host (untrusted), and the rollback
plan that uses it."""

import json
import os

import pytest
from ansible_collections.maestro.deploy.plugins.filter.deploy import rollback_plan
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import parse_info
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_point import (
    PointError,
    base_backup,
    check_argv,
    point_name,
    record,
    record_problems,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import choose_backup, target_problems
from ansible_collections.maestro.deploy.plugins.module_utils.release_history import shape_problem

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pgbackrest")
FULL, DIFF = "20261201-231332F", "20261201-231332F_20261201-231437D"
FULL_STOP, DIFF_STOP = 1796166818, 1796166880


def entry(name="info_full_diff.json"):
    with open(os.path.join(DATA, name)) as fh:
        return parse_info(fh.read(), "exp")


def test_the_point_is_named_after_the_release_and_fits_postgresql():
    assert point_name("20261203T120000Z-v2.3.0") == "maestro-20261203T120000Z-v2.3.0"
    assert point_name("20261203T120000Z-feature/x y") == "maestro-20261203T120000Z-feature-x-y"
    long = point_name("20261203T120000Z-" + "a" * 60)
    assert len(long) == 63 and long.startswith("maestro-20261203T120000Z-aaa")
    for bad in ("", None):
        with pytest.raises(PointError, match="gives no restore point name"):
            point_name(bad)


def test_the_wait_for_the_archive_is_pgbackrest_check_with_a_timeout():
    assert check_argv("/usr/bin/pgbackrest", "app", "/etc/pgbackrest/pgbackrest.conf", 60) == [
        "/usr/bin/pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=app", "--archive-timeout=60",
        "check"]
    assert check_argv("pgbackrest", "app", None, 5) == ["pgbackrest", "--stanza=app", "--archive-timeout=5", "check"]


def test_a_point_needs_a_backup_before_it():
    assert base_backup(entry())["label"] == DIFF
    with open(os.path.join(DATA, "info_no_backup.json")) as fh:
        empty = json.loads(fh.read())[0]
    with pytest.raises(PointError, match="has no backup: a restore point can only be recovered from a backup taken "
                                         "before it.*Nothing was changed"):
        base_backup(empty)


def test_the_record_passes_its_own_checks_and_hostile_ones_do_not():
    made = record("exp", "maestro-r1", "0/5000060", "2026-12-03T12:00:01.123456Z", base_backup(entry()))
    assert made == {"method": "pgbackrest", "stanza": "exp", "name": "maestro-r1", "lsn": "0/5000060",
                    "time": "2026-12-03T12:00:01.123456Z", "set": DIFF, "repo": 1, "set_stop": "2026-12-01T23:14:40Z"}
    assert record_problems(made) == []
    assert record_problems("maestro-r1") == ["restore_point is not an object ('maestro-r1')"]
    hostile = dict(made, method="shell", stanza="exp --repo1-path=/tmp/x", name="maestro-x'; DROP DATABASE a; --",
                   time="2026-12-03 12:00", set="latest --delta", lsn="0/0;")
    assert record_problems(hostile) == [
        "method='shell' (pgbackrest)",
        "stanza='exp --repo1-path=/tmp/x' (letters, digits, _ and -)",
        "name=\"maestro-x'; DROP DATABASE a; --\" (maestro-<release id>)",
        "time='2026-12-03 12:00' (an ISO 8601 time with a timezone)",
        "set='latest --delta' (a pgBackRest backup label)",
        "lsn='0/0;' (a WAL location such as 0/3000060)",
    ]
    assert record_problems(dict(made, name="before_bad")) == ["name='before_bad' (maestro-<release id>)"]


def test_a_point_chooses_the_newest_backup_that_stopped_before_it():
    # A restore point may be given the time it was made: a later backup does not hold it.
    assert target_problems({"restore_target": "name", "restore_name": "maestro-r1",
                            "restore_time": "2026-12-01T23:14:00Z"}) == []
    assert target_problems({"restore_target": "name", "restore_name": "maestro-r1", "restore_time": "noon"})[0] \
        .startswith("restore_time=noon (an ISO 8601 time with a timezone")
    assert choose_backup(entry(), "name", DIFF_STOP - 1)["label"] == FULL
    assert choose_backup(entry(), "name", DIFF_STOP + 1)["label"] == DIFF
    assert choose_backup(entry(), "name")["label"] == DIFF


POINT = {"method": "pgbackrest", "stanza": "app", "name": "maestro-r1", "lsn": "0/5000060",
         "time": "2026-12-03T12:00:01Z", "set": FULL, "repo": 1}


def history(*between):
    return {"target": {"id": "t", "schema_after": "0001"}, "between": list(between)}


def test_rollback_restores_to_the_point_of_the_release_undone_first():
    plan = rollback_plan(history({"id": "r1", "db_class": "destructive", "restore_point": POINT},
                                 {"id": "r2", "db_class": "destructive", "backup_path": "/b/r2.dump"}),
                         "0003", "auto", "prisma")
    assert (plan["action"], plan["backup"], plan["restore_point"], plan["error"]) == ("restore", None, POINT, "")
    dumped = rollback_plan(history({"id": "r1", "db_class": "destructive", "backup_path": "/b/r1.dump",
                                    "restore_point": POINT}), "0003", "auto", "prisma")
    assert (dumped["backup"], dumped["restore_point"]) == ("/b/r1.dump", None)
    code_only = rollback_plan(history({"id": "r1", "db_class": "additive", "restore_point": POINT}), "0003",
                              "auto", "prisma")
    assert (code_only["action"], code_only["restore_point"]) == ("none", None)


def test_a_tampered_point_in_the_history_is_refused_before_anything_runs():
    plan = rollback_plan(history({"id": "r1", "db_class": "destructive",
                                  "restore_point": dict(POINT, name="maestro-x' --")}), "0003", "yes", "prisma")
    assert plan["action"] == "restore"
    assert plan["error"].startswith("release r1's restore point in the history is not one a deploy records "
                                    "(name=\"maestro-x' --\" (maestro-<release id>)): nothing is restored from it")
    assert shape_problem({"releases": [{"id": "r1", "restore_point": "maestro-r1"}]}) == (
        "is malformed: release r1: restore_point is not an object ('maestro-r1')")
    assert shape_problem({"releases": [{"id": "r1", "restore_point": POINT}]}) is None


def test_a_backup_from_before_a_stanza_upgrade_is_no_base_for_a_point():
    upgraded = entry()
    upgraded["db"] = list(upgraded["db"]) + [{"id": 2, "repo-key": 1, "system-id": 1, "version": "16"}]
    with pytest.raises(PointError, match="has no backup of its current database \\(id 2; the backups there are of an "
                                         "earlier one, as after a stanza-upgrade\\)"):
        base_backup(upgraded)


def test_room_for_a_recovery_keeps_a_share_of_the_filesystem_free():
    from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import room_problem

    gib = 1 << 30
    assert room_problem("/var/backups/app", 10 * gib, free_bytes=20 * gib, total_bytes=100 * gib, what="x") is None
    said = room_problem("/var/backups/app", 16 * gib, free_bytes=20 * gib, total_bytes=100 * gib,
                        what="the scratch cluster")
    assert said.startswith("not enough room in /var/backups/app for the scratch cluster: %d bytes needed and %d kept "
                           "free (5%% of the filesystem" % (16 * gib, 5 * gib))
    assert "Nothing was changed" in said


def test_a_recovery_to_a_point_must_say_it_stopped_there():
    from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import stopped_at_point

    assert stopped_at_point({"stopped": 'recovery stopping at restore point "maestro-r1", time 2026-12-03 12:00'},
                            "maestro-r1")
    assert not stopped_at_point({"stopped": 'recovery stopping at restore point "maestro-r10", time x'}, "maestro-r1")
    assert not stopped_at_point({"stopped": None}, "maestro-r1") and not stopped_at_point(None, "maestro-r1")


def test_a_time_given_with_another_target_is_refused_once():
    assert target_problems({"restore_target": "xid", "restore_xid": "7", "restore_time": "noon"}) == [
        "restore_time=noon (only with restore_target=time)"]
