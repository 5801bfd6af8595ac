"""pgbackrest_rebuild's pure parts: what it does given the cluster's state (a running server is
never replaced), where a data directory in the way goes, the exact argv of the restore into the
live data directory, its marker, and restore.yml's values in disaster mode."""

import json

import pytest
from ansible_collections.maestro.deploy.plugins.filter.pgbackrest import pitr_problems
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_rebuild import (
    aside_path,
    aside_problem,
    decide,
    marker_text,
    pg_path_problem,
    pid_alive,
    read_marker,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import RestoreError, recovery_argv

PG = "/var/lib/postgresql/15/main"
FULL = "20261201-231332F"


def test_a_lost_or_stopped_cluster_is_restored_and_what_is_left_moved_aside():
    assert decide(dict(path=PG, entries=None, running=False)) == "restore"
    assert decide(dict(path=PG, entries=[], running=False)) == "restore"
    assert decide(dict(path=PG, entries=["PG_VERSION", "base"], running=False)) == "aside"
    # a rebuild of ours whose server failed to start: moved aside again, never deleted
    assert decide(dict(path=PG, entries=["maestro-rebuild.json"], running=False, marker={"tool": "x"})) == "aside"


def test_a_running_server_is_never_replaced_unless_it_is_our_promoted_rebuild():
    ours = {"tool": "maestro.deploy.pgbackrest_rebuild", "stanza": "main"}
    assert decide(dict(path=PG, entries=["base"], running=True, promoted=True, marker=ours)) == "none"
    with pytest.raises(RestoreError, match=r"PostgreSQL is running on /var/lib/postgresql/15/main: a disaster "
                                           r"rebuild .* never stops a running one. Nothing was changed"):
        decide(dict(path=PG, entries=["base"], running=True, promoted=True, marker=None))
    with pytest.raises(RestoreError, match="a rebuild of ours, still recovering"):
        decide(dict(path=PG, entries=["base"], running=True, promoted=False, marker=ours))
    # a server answering on the port while pg_path is absent (another cluster there): refused too
    with pytest.raises(RestoreError):
        decide(dict(path=PG, entries=None, running=True, promoted=True, marker=None))


def test_what_is_in_the_way_goes_beside_it_under_a_new_name():
    assert aside_path(PG, "20261203T071500Z") == PG + ".before-rebuild-20261203T071500Z"
    with pytest.raises(RestoreError):
        aside_path(PG, "now; rm -rf /")
    assert aside_problem(PG + ".before-rebuild-x", PG) is None
    assert aside_problem("/tmp/elsewhere", PG) == (
        "aside_path=/tmp/elsewhere: another name beside pg_path, in /var/lib/postgresql/15")
    assert aside_problem(PG, PG).startswith("aside_path=%s: another name" % PG)
    assert aside_problem(PG + "/../x", PG).startswith("aside_path=")


@pytest.mark.parametrize("bad", ["", "relative/main", "/", "/var", "/var/lib/../main", "/var/lib/pg main",
                                 "/var/lib/pg'main"])
def test_pg_path_must_be_a_plain_absolute_path_two_levels_deep(bad):
    assert pg_path_problem(bad).startswith("pg_path=")
    assert pg_path_problem(PG) is None


def test_restore_into_the_live_data_directory_keeps_archiving_on():
    assert recovery_argv("/usr/bin/pgbackrest", "main", "/etc/pgbackrest/pgbackrest.conf", PG, "latest", None,
                         FULL) == [
        "/usr/bin/pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=main", "--repo=1",
        "--pg1-path=" + PG, "--set=" + FULL, "restore"]
    assert recovery_argv("pgbackrest", "main", None, PG, "time", "2026-12-01 23:40:32.000000+00", FULL, 2) == [
        "pgbackrest", "--stanza=main", "--repo=2", "--pg1-path=" + PG, "--set=" + FULL, "--type=time",
        "--target=2026-12-01 23:40:32.000000+00", "--target-action=promote", "restore"]


def test_marker_is_ours_only_for_the_same_stanza():
    text = marker_text("main", {"backup": {"label": FULL}}, "2026-12-03T07:15:00Z", None)
    assert read_marker(text, "main")["plan"]["backup"]["label"] == FULL
    assert read_marker(text, "other") is None
    assert read_marker(json.dumps({"tool": "someone else", "stanza": "main"}), "main") is None
    assert read_marker("not json", "main") is None and read_marker(None, "main") is None


def test_pid_alive_reads_the_first_line_only():
    assert pid_alive("1\n/var/lib/postgresql/15/main\n") is False  # never init
    assert pid_alive("") is False and pid_alive(None) is False and pid_alive("abc\n") is False
    assert pid_alive("%d\n/x\n" % __import__("os").getpid()) is True


def test_restore_yml_values_in_disaster_mode():
    base = {"restore_mode": "disaster", "restore_target": "latest", "pgbackrest_stanza": "main",
            "db_name": "", "restore_start_command": ["systemctl", "start", "postgresql@15-main"]}
    assert pitr_problems(base) == []  # no db_name needed: the whole cluster comes back
    assert pitr_problems(dict(base, restore_start_command="systemctl start postgresql")) == [
        "restore_start_command=systemctl start postgresql (the argv that starts PostgreSQL: a list of strings, "
        "e.g. [systemctl, start, postgresql@15-main])"]
    assert pitr_problems(dict(base, restore_start_command=[])) != []
    assert pitr_problems(dict(base, restore_mode="cluster")) == [
        "restore_mode=cluster (database: one database with the site up; disaster: the whole cluster)"]
    assert pitr_problems(dict(base, restore_mode="database")) == [
        "db_name= (letters, digits, _ $ or -, starting with a letter or _, at most 63)"]
