"""pgbackrest_restore's and restore.yml's pure parts: the recovery target's grammar, the backup set
chosen from real pgBackRest 2.45 `info` JSON (tests/unit/data/pgbackrest), the exact argv of
`pgbackrest restore`, `pg_ctl` and `psql`, the scratch cluster's configuration, what the server log
says, and what the module does given the scratch directory's state."""

import json
import os

import pytest
from ansible_collections.maestro.deploy.plugins.filter.pgbackrest import pitr_problems
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import parse_info
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (
    RestoreError,
    choose_backup,
    config_files,
    decide,
    parse_probe,
    parse_time,
    pg_bindir,
    pg_ctl_start_argv,
    pg_ctl_stop_argv,
    plan,
    plan_lines,
    probe_argv,
    read_marker,
    recovery_from_log,
    restore_argv,
    scratch_problem,
    target_problems,
    target_value,
)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pgbackrest")
FULL, DIFF = "20261201-231332F", "20261201-231332F_20261201-231437D"
FULL_STOP, DIFF_STOP = 1796166818, 1796166880
S = "/var/backups/app/pitr-20261201T234500Z"


def entry():
    with open(os.path.join(DATA, "info_full_diff.json")) as fh:
        return parse_info(fh.read(), "exp")


@pytest.mark.parametrize("text, utc", [
    ("2026-12-01T23:40:32Z", "2026-12-01 23:40:32.000000+00"),
    ("2026-12-01 23:40:32.5+01:00", "2026-12-01 22:40:32.500000+00"),
    ("2026-12-01T23:40-0130", "2026-12-02 01:10:00.000000+00"),
    ("2026-12-01T23:40:32.123456+00", "2026-12-01 23:40:32.123456+00"),
])
def test_times_with_a_timezone_are_given_to_pgbackrest_in_utc(text, utc):
    assert target_value("time", time=text) == utc


@pytest.mark.parametrize("bad", ["2026-12-01 10:00", "2026-12-01", "yesterday", "2026-13-01T00:00Z",
                                 "2026-02-30T00:00Z", "2026-12-01T25:00Z", "2026-12-01T10:00+15",
                                 "2026-12-01T10:00Z\n", "2026-12-01T10:00Z; rm -rf /", ""])
def test_times_without_a_timezone_or_not_iso_are_refused_naming_the_variable(bad):
    assert parse_time(bad) is None
    (problem,) = target_problems({"restore_target": "time", "restore_time": bad})
    assert problem.startswith("restore_time=")
    assert "(an ISO 8601 time with a timezone" in problem


def test_target_grammar():
    assert target_problems({"restore_target": "latest"}) == []
    assert target_problems({"restore_target": "immediate"}) == []
    assert target_problems({"restore_target": "xid", "restore_xid": "741"}) == []
    assert target_problems({"restore_target": "name", "restore_name": "before_bad"}) == []
    assert target_problems({"restore_target": ""}) == [
        "restore_target=(empty) (one of latest, time, xid, name, immediate)"]
    assert target_problems({"restore_target": "xid", "restore_xid": "12a"}) == [
        "restore_xid=12a (a transaction id: digits)"]
    assert target_problems({"restore_target": "name", "restore_name": "x'; DROP"})[0].startswith(
        "restore_name=x'; DROP (a restore point's name")
    assert target_problems({"restore_target": "latest", "restore_time": "2026-12-01T00:00Z"}) == [
        "restore_time=2026-12-01T00:00Z (only with restore_target=time)"]
    assert target_problems({"restore_target": "xid", "restore_xid": "1", "restore_set": "latest"}) == [
        "restore_set=latest (a pgBackRest backup label such as 20261201-234005F)"]


def test_playbook_values_are_checked_together():
    good = {"restore_target": "time", "restore_time": "2026-12-01T23:40:32Z", "pgbackrest_stanza": "main",
            "db_name": "manumaestro_db", "restore_backup_dir": "/var/backups/manumaestro",
            "restore_scratch_base": "/var/backups/manumaestro", "restore_scratch_port": "55432"}
    assert pitr_problems(good) == []
    bad = dict(good, restore_time="noon", db_name="a b", restore_scratch_base="/var/x y",
               restore_scratch_port="0", pgbackrest_stanza="")
    assert pitr_problems(bad) == [
        "restore_time=noon (an ISO 8601 time with a timezone, e.g. 2026-12-01T23:40:32Z or 2026-12-01 23:40:32+01:00)",
        "pgbackrest_stanza= (letters, digits, _ and -, starting with a letter or digit, at most 64)",
        "db_name=a b (letters, digits, _ $ or -, starting with a letter or _, at most 63)",
        "restore_scratch_base=/var/x y (letters, digits, '_', '.', '-' and '/' only (the scratch server's "
        "options hold it))",
        "restore_scratch_port=0 (a port number, 1-65535)",
    ]


def test_backup_set_is_the_newest_that_stopped_before_a_time_target_else_the_newest():
    e = entry()
    assert choose_backup(e, "time", DIFF_STOP + 1)["label"] == DIFF
    assert choose_backup(e, "time", DIFF_STOP)["label"] == DIFF
    assert choose_backup(e, "time", DIFF_STOP - 1)["label"] == FULL
    assert choose_backup(e, "latest")["label"] == DIFF
    assert choose_backup(e, "xid")["label"] == DIFF
    assert choose_backup(e, "xid", wanted_set=FULL)["label"] == FULL
    with pytest.raises(RestoreError, match="no backup of stanza exp ended before the target 2026-12-01T23:13:37Z: "
                                           "the oldest, 20261201-231332F, stopped at 2026-12-01T23:13:38Z"):
        choose_backup(e, "time", FULL_STOP - 1)
    assert choose_backup(e, "latest", repo=1)["label"] == DIFF
    with pytest.raises(RestoreError, match="stanza exp has no backup to restore from in repo2"):
        choose_backup(e, "latest", repo=2)
    with pytest.raises(RestoreError, match="has no backup 20261201-000000F"):
        choose_backup(e, "latest", wanted_set="20261201-000000F")
    with open(os.path.join(DATA, "info_no_backup.json")) as fh:
        empty = json.loads(fh.read())[0]
    with pytest.raises(RestoreError, match="has no backup to restore from"):
        choose_backup(empty, "latest")


def test_plan_names_backup_wal_range_size_point_and_scratch():
    e = entry()
    got = plan(e, "time", "2026-12-01 23:14:40.000000+00", choose_backup(e, "time", DIFF_STOP), S, 55432)
    assert got["recovery_point"] == "time 2026-12-01 23:14:40.000000+00"
    assert got["backup"]["label"] == DIFF and got["backup"]["stop"] == "2026-12-01T23:14:40Z"
    assert got["backup"]["size_bytes"] > 0 and got["backup"]["repo_size_bytes"] > 0
    assert got["wal"] == {"archive_id": "15-1", "min": "000000010000000000000001", "max": "00000001000000000000000C"}
    assert (got["scratch_dir"], got["data_dir"], got["port"]) == (S, S + "/data", 55432)
    latest = plan(e, "latest", None, choose_backup(e, "latest"), S, 55432)
    assert latest["recovery_point"] == "the end of the archived WAL (00000001000000000000000C)"


def test_restore_argv_is_exactly_what_runs():
    assert restore_argv("/usr/bin/pgbackrest", "main", None, S, "time", "2026-12-01 23:40:32.000000+00", FULL) == [
        "/usr/bin/pgbackrest", "--stanza=main", "--pg1-path=%s/data" % S, "--set=%s" % FULL,
        "--archive-mode=off",
        "--tablespace-map-all=%s/tablespaces" % S, "--type=time", "--target=2026-12-01 23:40:32.000000+00",
        "--target-action=promote", "restore"]
    assert restore_argv("pgbackrest", "main", "/etc/pgbr/x.conf", S, "name", "before_bad", DIFF)[1:3] == [
        "--config=/etc/pgbr/x.conf", "--stanza=main"]
    assert restore_argv("pgbackrest", "main", None, S, "immediate", None, FULL)[-3:] == [
        "--type=immediate", "--target-action=promote", "restore"]
    assert restore_argv("pgbackrest", "main", None, S, "latest", None, FULL, 2)[1:3] == ["--stanza=main", "--repo=2"]
    latest = restore_argv("pgbackrest", "main", None, S, "latest", None, FULL)
    assert latest[-1] == "restore" and not [a for a in latest if a.startswith(("--type", "--target"))]


def test_server_argv_and_config_keep_the_copy_off_tcp_and_off_the_archive():
    start = pg_ctl_start_argv("/usr/lib/postgresql/15/bin", S, 55432, 600)
    assert start == [
        "/usr/lib/postgresql/15/bin/pg_ctl", "start", "-D", S + "/data", "-l", S + "/server.log", "-w", "-t", "600",
        "-o", "-c config_file={0}/postgresql.conf -c hba_file={0}/pg_hba.conf -c ident_file={0}/pg_ident.conf "
              "-p 55432 -c listen_addresses= -c unix_socket_directories={0} -c archive_mode=off "
              "-c hot_standby=off".format(S)]
    assert pg_ctl_stop_argv("/b", S) == ["/b/pg_ctl", "stop", "-D", S + "/data", "-m", "fast", "-w", "-t", "120"]
    probe = probe_argv("/b/psql", S, 55432, "postgres")
    assert probe[:13] == ["/b/psql", "-X", "-q", "-A", "-t", "-w", "-h", S, "-p", "55432", "-U", "postgres", "-d"]
    files = config_files("postgres", "root")
    assert files["hba"] == "local all postgres peer map=maestro_pitr\n"
    assert files["ident"] == "maestro_pitr postgres postgres\nmaestro_pitr root postgres\n"
    assert "archive_mode = off" in files["conf"] and "listen_addresses = ''" in files["conf"]
    assert config_files("postgres", "postgres")["ident"] == "maestro_pitr postgres postgres\n"
    assert pg_bindir("15\n") == "/usr/lib/postgresql/15/bin"
    with pytest.raises(RestoreError):
        pg_bindir("../../bin")


def test_scratch_dir_never_overlaps_the_live_data_directory():
    live = "/var/lib/postgresql/15/main"
    assert scratch_problem(S, [live]) is None
    assert "overlaps the live data directory" in scratch_problem(live, [live])
    assert "overlaps" in scratch_problem(live + "/pitr", [live])
    assert "overlaps" in scratch_problem("/var/lib/postgresql", [live])
    assert scratch_problem("/var/backups/app/../x", [live]).startswith("scratch_dir=/var/backups/app/../x: ")
    assert scratch_problem("/tmp/a b", []).startswith("scratch_dir=/tmp/a b: ")
    assert "not a top-level directory" in scratch_problem("/pitr", [])


LOG = """\
2026-12-01 23:40:55.499 GMT [2107] LOG:  starting point-in-time recovery to "before_bad"
2026-12-01 23:40:56.000 GMT [2110] FATAL:  the database system is not accepting connections
2026-12-01 23:40:56.100 GMT [2111] FATAL:  the database system is not yet accepting connections
2026-12-01 23:40:57.865 GMT [2107] LOG:  recovery stopping at restore point "before_bad", time 2026-12-01 23:40:32.2+00
2026-12-01 23:40:57.865 GMT [2107] LOG:  last completed transaction was at log time 2026-12-01 23:40:32.086144+00
2026-12-01 23:40:59.260 GMT [2107] LOG:  selected new timeline ID: 2
"""


def test_recovery_read_from_the_server_log():
    assert recovery_from_log(LOG) == dict(
        stopped='recovery stopping at restore point "before_bad", time 2026-12-01 23:40:32.2+00',
        last_transaction="2026-12-01 23:40:32.086144+00", new_timeline=2, fatal=None)
    died = recovery_from_log("x FATAL:  recovery ended before configured recovery target was reached\n")
    assert died["fatal"] == "FATAL: recovery ended before configured recovery target was reached"


def test_decide_from_the_scratch_directory_state():
    ours = read_marker(json.dumps({"tool": "maestro.deploy.pgbackrest_restore"}))
    assert read_marker('{"tool": "other"}') is None and read_marker("not json") is None
    assert decide({"exists": False}, present=True) == "create"
    assert decide({"exists": True, "marker": ours, "running": True, "promoted": True}, present=True) == "none"
    with pytest.raises(RestoreError, match="already exists"):
        decide({"path": S, "exists": True, "marker": None, "entries": ["x"]}, present=True)
    assert decide({"exists": False}, present=False) == "none"
    assert decide({"exists": True, "marker": ours, "entries": ["data"]}, present=False) == "remove"
    assert decide({"exists": True, "marker": None, "entries": []}, present=False) == "remove"
    with pytest.raises(RestoreError, match="not made by pgbackrest_restore; refusing to remove it"):
        decide({"path": S, "exists": True, "marker": None, "entries": ["base"]}, present=False)


def test_plan_in_words_is_what_the_playbooks_show():
    e = entry()
    lines = plan_lines(plan(e, "latest", None, choose_backup(e, "latest"), S, 55432))
    assert lines[0].startswith("Backup set: %s in repo1 (diff, 2026-12-01T23:14:3" % DIFF)
    assert " bytes, " in lines[0] and " in the repository), WAL 0000000100000000000000" in lines[0]
    assert lines[1] == "Archived WAL (15-1): 000000010000000000000001 to 00000001000000000000000C."


def test_probe_answers_only_when_the_server_answered_json():
    assert parse_probe(0, '{"in_recovery": false, "timeline": 2}\n') == {"in_recovery": False, "timeline": 2}
    assert parse_probe(2, '{"in_recovery": false}') is None
    assert parse_probe(0, "psql: error") is None and parse_probe(0, "[1]") is None and parse_probe(0, None) is None
