"""pgbackrest_info's pure parts: the exact argv it runs, real `info`/`repo-ls` JSON of pgBackRest
2.45 (tests/unit/data/pgbackrest, see its README) parsed, and the problems it reports."""

import os

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import (
    InfoError,
    check_line,
    info_argv,
    parse_info,
    problems,
    repo_ls_argv,
    segment_push_time,
    summarise,
    wanted_push_times,
    wrap_as,
)

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "pgbackrest")
FULL_STOP = 1796166818
DIFF_STOP = 1796166880
WAL_C_PUSHED = 1796166881


def read(name):
    with open(os.path.join(DATA, name)) as fh:
        return fh.read()


def test_info_argv_is_exactly_what_runs():
    assert info_argv("/usr/bin/pgbackrest", "main") == [
        "/usr/bin/pgbackrest", "--stanza=main", "--output=json", "info"]
    assert info_argv("/usr/bin/pgbackrest", "main", config="/srv/pgbr/pgbackrest.conf") == [
        "/usr/bin/pgbackrest", "--config=/srv/pgbr/pgbackrest.conf", "--stanza=main", "--output=json", "info"]


def test_repo_ls_argv_lists_the_newest_segment_s_directory_of_one_repository():
    assert repo_ls_argv("/usr/bin/pgbackrest", "exp", 1, "15-1", "00000001000000000000000C") == [
        "/usr/bin/pgbackrest", "--stanza=exp", "--repo=1", "--output=json", "repo-ls",
        "archive/exp/15-1/0000000100000000"]


@pytest.mark.parametrize("stanza,archive_id,segment", [
    ("exp", "15-1", "../../etc/passwd0000000000"), ("exp", "../x", "00000001000000000000000C"),
    ("a/b", "15-1", "00000001000000000000000C"), ("exp", "15-1", None),
])
def test_repo_ls_argv_refuses_what_is_not_a_segment(stanza, archive_id, segment):
    with pytest.raises(InfoError):
        repo_ls_argv("/usr/bin/pgbackrest", stanza, 1, archive_id, segment)


def test_wrap_as_runs_through_runuser_only_as_root_for_another_user():
    argv = ["/usr/bin/pgbackrest", "--stanza=x", "--output=json", "info"]
    assert wrap_as(argv, "postgres", 0, "root", runuser="/usr/sbin/runuser") == [
        "/usr/sbin/runuser", "-u", "postgres", "--"] + argv
    assert wrap_as(argv, "postgres", 101, "postgres") == argv
    assert wrap_as(argv, "", 0, "root") == argv
    with pytest.raises(InfoError, match="become postgres"):
        wrap_as(argv, "postgres", 1000, "deploy")


def test_full_and_diff_backups_newest_is_the_diff():
    entry = parse_info(read("info_full_diff.json"), "exp")
    now = DIFF_STOP + 100
    assert wanted_push_times(entry) == [(1, "15-1", "00000001000000000000000C")]
    pushed = segment_push_time(read("repo_ls.json"), "00000001000000000000000C")
    assert pushed == WAL_C_PUSHED  # the segment's file, not its .backup history file (1796166880)
    repos = summarise(entry, {(1, "00000001000000000000000C"): pushed}, now)
    assert repos == [dict(
        key=1, status=dict(code=0, message="ok"), backup_count=2,
        newest_backup=dict(
            type="diff", label="20261201-231332F_20261201-231437D", prior="20261201-231332F",
            start=1796166877, stop=DIFF_STOP, age_s=100, size_bytes=23033642, delta_bytes=1728778,
            repo_size_bytes=3045647, repo_delta_bytes=229528,
            wal_start="00000001000000000000000C", wal_stop="00000001000000000000000C"),
        newest_wal=dict(archive_id="15-1", min="000000010000000000000001", max="00000001000000000000000C",
                        pushed_at=WAL_C_PUSHED, age_s=now - WAL_C_PUSHED),
    )]
    assert problems(entry, repos, max_backup_age=3600, max_wal_age=600) == []


def test_old_backup_and_old_wal_are_problems():
    entry = parse_info(read("info_full_diff.json"), "exp")
    now = WAL_C_PUSHED + 7200
    repos = summarise(entry, {(1, "00000001000000000000000C"): WAL_C_PUSHED}, now)
    assert problems(entry, repos, max_backup_age=3600, max_wal_age=600) == [
        "repo1: newest backup 20261201-231332F_20261201-231437D (diff) is 7201s old, more than max_backup_age=3600s",
        "repo1: newest archived WAL 00000001000000000000000C is 7200s old, more than max_wal_age=600s: "
        "archiving is failing or dropping WAL (see archive-push-queue-max)",
    ]
    assert problems(entry, repos) == []  # no thresholds, nothing to say


def test_wal_not_found_in_the_repository_is_a_problem_when_watched():
    entry = parse_info(read("info_full_diff.json"), "exp")
    repos = summarise(entry, {(1, "00000001000000000000000C"): None}, DIFF_STOP)
    assert repos[0]["newest_wal"]["age_s"] is None
    assert problems(entry, repos, max_wal_age=600) == [
        "repo1: newest archived WAL 00000001000000000000000C not found in the repository (no push time)"]


def test_stanza_without_backup():
    entry = parse_info(read("info_no_backup.json"), "exp2")
    assert wanted_push_times(entry) == []
    repos = summarise(entry, {}, 0)
    assert repos == [dict(key=1, status=dict(code=2, message="no valid backups"), backup_count=0,
                          newest_backup=None, newest_wal=None)]
    assert problems(entry, repos, max_backup_age=3600, max_wal_age=600) == [
        "repo1: no backup of stanza exp2", "repo1: no WAL archived for stanza exp2"]


def test_stanza_never_created():
    entry = parse_info(read("info_missing_stanza.json"), "exp2")
    repos = summarise(entry, {}, 0)
    assert repos[0]["status"] == dict(code=1, message="missing stanza path")
    assert problems(entry, repos) == ["stanza exp2: missing stanza path (status code 1)"]


def test_a_failed_backup_is_never_the_newest():
    entry = parse_info(read("info_full_diff.json"), "exp")
    entry["backup"][1]["error"] = True
    repos = summarise(entry, {}, DIFF_STOP)
    assert repos[0]["newest_backup"]["label"] == "20261201-231332F"
    assert repos[0]["backup_count"] == 1


@pytest.mark.parametrize("text,message", [
    ("not json", "did not print JSON"), ('{"a": 1}', "not a list of stanzas"), ("[]", "nothing about stanza exp"),
])
def test_bad_info_output(text, message):
    with pytest.raises(InfoError, match=message):
        parse_info(text, "exp")


def test_segment_missing_from_listing():
    assert segment_push_time(read("repo_ls.json"), "0000000100000000000000FF") is None
    with pytest.raises(InfoError):
        segment_push_time("[]", "00000001000000000000000C")


# Two repositories as pgBackRest 2.45 printed them in tests/integration/test_pgbackrest_repo2.py:
# repo1 local without a backup, repo2 on a repository host, encrypted, with one full backup.
TWO_REPOS = (
    '[{"archive":[{"database":{"id":1,"repo-key":1},"id":"15-1","max":"000000010000000000000004",'
    '"min":"000000010000000000000001"},{"database":{"id":1,"repo-key":2},"id":"15-1",'
    '"max":"000000010000000000000004","min":"000000010000000000000001"}],'
    '"backup":[{"archive":{"start":"000000010000000000000003","stop":"000000010000000000000003"},'
    '"backrest":{"format":5,"version":"2.45"},"database":{"id":1,"repo-key":2},"error":false,'
    '"info":{"delta":22992661,"repository":{"delta":3044085,"size":3044085},"size":22992661},'
    '"label":"20261202-000145F","lsn":{"start":"0/3000028","stop":"0/3000100"},"prior":null,"reference":null,'
    '"timestamp":{"start":1796169705,"stop":1796169711},"type":"full"}],"cipher":"mixed",'
    '"db":[{"id":1,"repo-key":1,"system-id":7714489921548487254,"version":"15"},'
    '{"id":1,"repo-key":2,"system-id":7714489921548487254,"version":"15"}],"name":"s1",'
    '"repo":[{"cipher":"none","key":1,"status":{"code":2,"message":"no valid backups"}},'
    '{"cipher":"aes-256-cbc","key":2,"status":{"code":0,"message":"ok"}}],'
    '"status":{"code":4,"lock":{"backup":{"held":false}},"message":"different across repos"}}]')


def test_two_repositories_each_with_its_newest_backup_and_problems():
    entry = parse_info(TWO_REPOS, "s1")
    assert wanted_push_times(entry) == [(1, "15-1", "000000010000000000000004"),
                                        (2, "15-1", "000000010000000000000004")]
    repos = summarise(entry, {(1, "000000010000000000000004"): 1796169800,
                              (2, "000000010000000000000004"): 1796169801}, 1796169900)
    assert [r["key"] for r in repos] == [1, 2]
    assert (repos[0]["backup_count"], repos[0]["newest_backup"]) == (0, None)
    assert repos[1]["newest_backup"]["label"] == "20261202-000145F" and repos[1]["backup_count"] == 1
    assert repos[1]["newest_wal"]["age_s"] == 99
    # 4 (different across repos) is not a problem of its own: each repository says what it lacks
    assert problems(entry, repos, max_backup_age=3600, max_wal_age=600) == ["repo1: no backup of stanza s1"]


def test_info_with_raw_bytes_in_a_status_message_is_parsed():
    # 2.45 puts the bytes of an info file it cannot decrypt (no or a wrong cipher pass) into the message
    text = TWO_REPOS.replace('"code":0,"message":"ok"', '"code":99,"message":"[FormatError] Salted__\x01\x02\x1f"')
    repos = summarise(parse_info(text, "s1"), {}, 1796169900)
    assert repos[1]["status"] == dict(code=99, message="[FormatError] Salted__\x01\x02\x1f")


def test_check_line_is_ok_with_each_repository_s_ages_and_critical_with_what_is_wrong():
    """status.yml -e status_check=true prints this line and exits with its code (Nagios-style)."""
    entry = parse_info(read("info_full_diff.json"), "exp")
    fresh = summarise(entry, {(1, "00000001000000000000000C"): WAL_C_PUSHED}, WAL_C_PUSHED + 40)
    assert check_line("exp", fresh, problems(entry, fresh, max_backup_age=3600, max_wal_age=600)) == dict(
        code=0, state="OK", line="PGBACKREST OK - stanza exp: repo1 backup 41s old WAL 40s old")
    stale = summarise(entry, {(1, "00000001000000000000000C"): WAL_C_PUSHED}, WAL_C_PUSHED + 700)
    assert check_line("exp", stale, problems(entry, stale, max_backup_age=3600, max_wal_age=600)) == dict(
        code=2, state="CRITICAL",
        line="PGBACKREST CRITICAL - stanza exp: repo1: newest archived WAL 00000001000000000000000C is 700s old, "
             "more than max_wal_age=600s: archiving is failing or dropping WAL (see archive-push-queue-max)")
    unknown_push = summarise(entry, {(1, "00000001000000000000000C"): None}, DIFF_STOP)
    assert check_line("exp", unknown_push, [])["line"] == "PGBACKREST OK - stanza exp: repo1 backup 0s old WAL none"
