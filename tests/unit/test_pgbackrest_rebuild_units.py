"""pgbackrest_rebuild's pure parts: what it does given the cluster's state (a running server is
never replaced), where a data directory in the way goes, the exact argv of the restore into the
live data directory, its marker, and restore.yml's values in disaster mode."""

import json
import os

import pytest
from ansible_collections.maestro.deploy.plugins.filter.pgbackrest import pitr_problems
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_rebuild import (
    aside_path,
    aside_problem,
    config_pg_path,
    decide,
    is_postgres,
    marker_text,
    pg_path_problem,
    postmaster_pid,
    read_marker,
    system_id,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (
    RestoreError,
    recovery_argv,
    repo_to_pin,
)

PG = "/var/lib/postgresql/15/main"
FULL = "20261201-231332F"


OURS = {"tool": "maestro.deploy.pgbackrest_rebuild", "stanza": "main"}
SERVING = {"in_recovery": False, "timeline": 2, "data_directory": PG, "system_identifier": "7714477630679359950"}


def state(**given):
    base = dict(path=PG, kind="dir", entries=[], answered=None, refused=None, pid=None, marker=None,
                serves_here=False, same_system=False, intact=False, replace_intact=False)
    return dict(base, **given)


def test_a_lost_cluster_is_restored_and_what_is_left_moved_aside():
    assert decide(state(kind="absent", entries=None)) == "restore"
    assert decide(state(entries=[])) == "restore"
    assert decide(state(entries=["left-over"])) == "aside"
    # a rebuild of ours whose server failed to start: moved aside again, never deleted
    assert decide(state(entries=["maestro-rebuild.json", "base"], marker=OURS)) == "aside"
    # a fresh disk mounted there: its lost+found does not count
    assert decide(state(kind="mount", entries=["lost+found"])) == "restore"


def test_a_running_server_is_never_replaced_unless_it_is_our_promoted_rebuild_of_this_system():
    assert decide(state(entries=["base"], answered=SERVING, marker=OURS, serves_here=True, same_system=True)) == "none"
    with pytest.raises(RestoreError, match=r"PostgreSQL is running \(it answers on the socket, serving "
                                           r"/var/lib/postgresql/15/main\): a disaster rebuild .* never stops a "
                                           r"running one. Nothing was changed"):
        decide(state(entries=["base"], answered=SERVING, serves_here=True, same_system=True))
    with pytest.raises(RestoreError, match="a rebuild of ours still recovering"):
        decide(state(entries=["base"], answered=dict(SERVING, in_recovery=True), marker=OURS, serves_here=True,
                     same_system=True))
    # the marker proves nothing when another cluster or another system answers
    for other in (dict(serves_here=False, same_system=True), dict(serves_here=True, same_system=False)):
        with pytest.raises(RestoreError, match="PostgreSQL is running"):
            decide(state(entries=["base"], answered=SERVING, marker=OURS, **other))
    # a server that answered but refused (authentication, too many clients) counts as running
    with pytest.raises(RestoreError, match=r"refused the check \(FATAL:  sorry, too many clients already\)"):
        decide(state(kind="absent", entries=None, refused="FATAL:  sorry, too many clients already"))
    # a live postgres named by postmaster.pid, though nothing answers on the socket
    with pytest.raises(RestoreError, match="names process 4242, a running postgres"):
        decide(state(entries=["base", "postmaster.pid"], pid=4242))


def test_a_symlink_a_file_a_full_mount_point_and_an_intact_cluster_are_refused():
    with pytest.raises(RestoreError, match="is a symlink: give the directory itself"):
        decide(state(kind="symlink", entries=None))
    with pytest.raises(RestoreError, match="is not a directory"):
        decide(state(kind="other", entries=None))
    with pytest.raises(RestoreError, match=r"a mount point with files in it \(base, global\)"):
        decide(state(kind="mount", entries=["base", "global", "lost+found"]))
    with pytest.raises(RestoreError, match="holds a stopped cluster that looks intact .* replace_intact=true"):
        decide(state(entries=["base", "global"], intact=True))
    assert decide(state(entries=["base", "global"], intact=True, replace_intact=True)) == "aside"


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
        "/usr/bin/pgbackrest", "--config=/etc/pgbackrest/pgbackrest.conf", "--stanza=main",
        "--pg1-path=" + PG, "--set=" + FULL, "restore"]
    assert recovery_argv("pgbackrest", "main", None, PG, "time", "2026-12-01 23:40:32.000000+00", FULL, 2) == [
        "pgbackrest", "--stanza=main", "--repo=2", "--pg1-path=" + PG, "--set=" + FULL, "--type=time",
        "--target=2026-12-01 23:40:32.000000+00", "--target-action=promote", "restore"]


def test_repo_is_pinned_when_asked_or_when_the_backup_is_not_in_repo1():
    assert repo_to_pin(None, 1) is None
    assert repo_to_pin(None, 2) == 2
    assert repo_to_pin(1, 1) == 1 and repo_to_pin(2, 1) == 2


def test_marker_is_ours_only_for_the_same_stanza():
    text = marker_text("main", {"backup": {"label": FULL}}, "2026-12-03T07:15:00Z", None)
    assert read_marker(text, "main")["plan"]["backup"]["label"] == FULL
    assert read_marker(text, "other") is None
    assert read_marker(json.dumps({"tool": "someone else", "stanza": "main"}), "main") is None
    assert read_marker("not json", "main") is None and read_marker(None, "main") is None


def test_postmaster_pid_and_the_process_it_names():
    assert postmaster_pid("4242\n/var/lib/postgresql/15/main\n1733211000\n") == 4242
    assert postmaster_pid("") is None and postmaster_pid(None) is None and postmaster_pid("abc\n") is None
    assert postmaster_pid("0\n") is None
    assert is_postgres("/usr/lib/postgresql/15/bin/postgres\0-D\0/var/lib/postgresql/15/main\0")
    assert is_postgres("postgres: 15/main: checkpointer \0")
    assert not is_postgres("/sbin/init\0") and not is_postgres("") and not is_postgres(None)
    assert not is_postgres("/usr/bin/python3\0postgres\0")


def test_pg_path_must_be_the_stanza_s_pg1_path():
    conf = "[global]\nrepo1-path=/var/lib/pgbackrest\n\n[main]\npg1-path=/var/lib/postgresql/15/main\npg1-port=5432\n"
    assert config_pg_path(conf, "main") == PG
    assert config_pg_path(conf, "other") is None and config_pg_path(None, "main") is None
    assert config_pg_path("[main]\n# pg1-path=/old\npg1-path = /var/lib/postgresql/15/main \n", "main") == PG


def test_the_backup_s_system_identifier():
    entry = {"db": [{"id": 1, "repo-key": 1, "system-id": 7714477630679359950, "version": "15"},
                    {"id": 1, "repo-key": 2, "system-id": 1234, "version": "15"}]}
    assert system_id(entry, {"database": {"id": 1, "repo-key": 1}}) == "7714477630679359950"
    assert system_id(entry, {"database": {"id": 1, "repo-key": 2}}) == "1234"
    assert system_id(entry, {"database": {"id": 2, "repo-key": 1}}) is None


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


def test_files_in_directories_others_write_are_read_safely(tmp_path):
    from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import read_text

    real = tmp_path / "secret"
    real.write_text("root only\n")
    (tmp_path / "postmaster.pid").symlink_to(real)
    assert read_text(str(tmp_path / "postmaster.pid")) is None  # never through a symlink
    fifo = tmp_path / "fifo"
    os.mkfifo(str(fifo))
    assert read_text(str(fifo)) is None  # neither blocks nor reads a FIFO
    big = tmp_path / "big.log"
    big.write_text("x" * 5000 + "tail")
    assert read_text(str(big), limit=100) == "x" * 100
    assert read_text(str(big), offset=5000) == "tail"
    assert read_text(str(big), limit=6, tail=True) == "xxtail"  # a log's end
    assert read_text(str(big), offset=5000, limit=100, tail=True) == "tail"
    assert read_text(str(tmp_path / "absent")) is None


def test_new_files_and_directories_are_private_and_never_follow_a_planted_link(tmp_path):
    from ansible_collections.maestro.deploy.plugins.module_utils.owned_paths import make_dir, write_new_file

    uid, gid = os.getuid(), os.getgid()
    make_dir(str(tmp_path / "data"), uid, gid)
    assert oct(os.stat(str(tmp_path / "data")).st_mode & 0o777) == "0o700"
    write_new_file(str(tmp_path / "data" / "marker.json"), "{}\n", uid, gid)
    assert oct(os.stat(str(tmp_path / "data" / "marker.json")).st_mode & 0o777) == "0o600"
    target = tmp_path / "elsewhere"
    target.write_text("untouched\n")
    (tmp_path / "planted").symlink_to(target)
    with pytest.raises(OSError):
        write_new_file(str(tmp_path / "planted"), "overwritten\n", uid, gid)
    assert target.read_text() == "untouched\n"
