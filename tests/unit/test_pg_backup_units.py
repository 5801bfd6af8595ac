"""pg_backup's decisions as data: option checks, names, compression plans, exact argv, retention."""

import datetime
import json
import os

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import pg_archive, pg_manifest
from ansible_collections.maestro.deploy.plugins.module_utils.pg_backup_core import (
    check_options,
    free_space_problem,
    normalize_verify,
    parse_mode,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pg_dbstate import compare_counts, derived_db_name
from ansible_collections.maestro.deploy.plugins.module_utils.runner import Runner
from tests.unit.fakes import FakeModule

UTC = datetime.timezone.utc


def params(**kw):
    base = dict(jobs=1, format="custom", keep_last=None, max_age_days=None)
    base.update(kw)
    return base


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value, expected", [
    ("read", "read"), ("Restore", "restore"), ("checksum", "checksum"),
    (False, "none"), ("false", "none"), ("no", "none"), ("none", "none"),
])
def test_verify_levels(value, expected):
    assert normalize_verify(value) == expected


def test_unknown_verify_level_is_named():
    with pytest.raises(ValueError, match="verify='full' is not one of checksum, read, restore or false"):
        normalize_verify("full")


def test_jobs_only_with_directory_format():
    assert check_options(params(jobs=4, format="directory")) == []
    assert check_options(params(jobs=4, format="custom")) == [
        "jobs=4 needs format=directory (pg_dump writes other formats with one process), got format=custom"]
    assert check_options(params(jobs=0)) == ["jobs=0 must be at least 1"]


def test_retention_options_are_checked():
    assert check_options(params(keep_last=0, max_age_days=-1)) == [
        "keep_last=0 must be at least 1 (the new backup is always kept)",
        "max_age_days=-1 must not be negative",
    ]


@pytest.mark.parametrize("value, expected", [("0600", 0o600), ("600", 0o600), ("0400", 0o400), ("0o600", 0o600)])
def test_modes(value, expected):
    assert parse_mode(value) == expected


def test_bad_mode_is_named():
    with pytest.raises(ValueError, match="mode='rw-------' is not an octal file mode"):
        parse_mode("rw-------")


@pytest.mark.parametrize("value, why", [
    (644, "mode=644 is a number"),  # YAML `mode: 644`: 0o1204 when taken as a mode
    (384, "mode=384 is a number"),
    ("0644", "mode='0644' lets group or others"),
    ("640", "mode='640' lets group or others"),
    ("1600", "mode='1600' has setuid, setgid or sticky bits"),
    ("0200", "mode='0200' does not let the owner read"),
])
def test_modes_that_let_others_read_a_backup_are_refused(value, why):
    with pytest.raises(ValueError) as err:
        parse_mode(value)
    assert why in str(err.value) and "0600" in str(err.value)


def test_free_space_message_has_both_numbers():
    assert free_space_problem("appdb", 100, "/b", 1000) is None
    msg = free_space_problem("appdb", 5000, "/b", 1000)
    assert "5000 bytes" in msg and "only 1000 bytes free" in msg and "appdb" in msg and "/b" in msg


# -- names ---------------------------------------------------------------------------------------
def test_backup_name_follows_the_manual_procedure():
    moment = datetime.datetime(2026, 2, 1, 2, 0, 5, tzinfo=UTC)
    assert pg_manifest.backup_name("manumaestro_db", moment, ".dump") == "manumaestro_db_20260201_020005.dump"


def test_backup_name_never_collides():
    moment = datetime.datetime(2026, 2, 1, 2, 0, 5, tzinfo=UTC)
    taken = {"db_20260201_020005.sql.gz", "db_20260201_020005_2.sql.gz"}
    assert pg_manifest.backup_name("db", moment, ".sql.gz", taken) == "db_20260201_020005_3.sql.gz"


def test_partials_and_manifests_count_as_taken(tmp_path):
    (tmp_path / "db_1.dump.partial").write_text("")
    (tmp_path / "db_2.dump.json").write_text("")
    taken = pg_manifest.names_taken(str(tmp_path))
    assert {"db_1.dump", "db_2.dump"} <= taken


@pytest.mark.parametrize("fmt, compression, external, ext", [
    ("custom", "gzip", False, ".dump"), ("custom", "zstd", True, ".dump.zst"), ("custom", "none", False, ".dump"),
    ("directory", "gzip", False, ".dir"), ("plain", "gzip", True, ".sql.gz"), ("plain", "lz4", True, ".sql.lz4"),
    ("plain", "none", False, ".sql"),
])
def test_extensions(fmt, compression, external, ext):
    assert pg_manifest.extension(fmt, compression, external) == ext


def test_derived_names_stay_within_63_bytes():
    name = derived_db_name("d" * 63, "__restore_20260201_020005")
    assert len(name) == 63 and name.endswith("__restore_20260201_020005")
    assert derived_db_name("app", "__verify_1") == "app__verify_1"


# -- compression plans ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt, compression, level, major, plan", [
    ("custom", "gzip", None, 15, (None, None)),
    ("custom", "gzip", 6, 15, ("6", None)),
    ("custom", "none", None, 15, ("0", None)),
    ("custom", "zstd", None, 15, ("0", "zstd")),
    ("custom", "lz4", 3, 15, ("0", "lz4")),
    ("custom", "zstd", 5, 16, ("zstd:5", None)),
    ("directory", "lz4", None, 16, ("lz4", None)),
    ("plain", "gzip", 9, 15, (None, "gzip")),
    ("plain", "none", None, 15, (None, None)),
])
def test_compression_plan(fmt, compression, level, major, plan):
    assert pg_archive.compression_plan(fmt, compression, level, major) == plan


def test_directory_zstd_needs_pg_dump_16():
    with pytest.raises(pg_archive.PlanError, match="format=directory with compression=zstd needs pg_dump 16"):
        pg_archive.compression_plan("directory", "zstd", None, 15)


def test_compression_level_range_is_named():
    with pytest.raises(pg_archive.PlanError, match="compression_level=12 is out of range for gzip"):
        pg_archive.compression_plan("custom", "gzip", 12, 15)


# -- exact argv ----------------------------------------------------------------------------------
def test_pg_dump_argv_custom():
    assert pg_archive.pg_dump_argv("/usr/bin/pg_dump", "appdb", "custom", "/b/appdb_1.dump.partial", None, 1,
                                   "00000004-00000002-1") == [
        "/usr/bin/pg_dump", "--format=custom", "--no-password", "--file=/b/appdb_1.dump.partial",
        "--snapshot=00000004-00000002-1", "--dbname=appdb"]


def test_pg_dump_argv_directory_parallel_and_stdout():
    assert pg_archive.pg_dump_argv("pg_dump", "appdb", "directory", "/b/x.dir.partial", "5", 4, "S") == [
        "pg_dump", "--format=directory", "--no-password", "--file=/b/x.dir.partial", "--compress=5",
        "--jobs=4", "--snapshot=S", "--dbname=appdb"]
    assert pg_archive.pg_dump_argv("pg_dump", "appdb", "custom", None, "0", 1, "S") == [
        "pg_dump", "--format=custom", "--no-password", "--compress=0", "--snapshot=S", "--dbname=appdb"]


def test_compressor_argv():
    assert pg_archive.compress_argv("/usr/bin/zstd", "zstd", 3) == ["/usr/bin/zstd", "-q", "-c", "-T0", "-3"]
    assert pg_archive.compress_argv("/usr/bin/gzip", "gzip") == ["/usr/bin/gzip", "-c"]
    assert pg_archive.decompress_argv("zstd", "zstd", "/b/x.zst") == ["zstd", "-q", "-d", "-c", "/b/x.zst"]
    assert pg_archive.test_argv("gzip", "gzip", "/b/x.gz") == ["gzip", "-t", "/b/x.gz"]
    assert pg_archive.test_argv("lz4", "lz4", "/b/x.lz4") == ["lz4", "-q", "-t", "/b/x.lz4"]


def test_read_check_argv_reads_everything_not_just_the_list():
    assert pg_archive.pg_restore_read_argv("pg_restore", "/b/x.dump") == ["pg_restore", "--file=/dev/null",
                                                                           "/b/x.dump"]


def test_pg_restore_argv():
    assert pg_archive.pg_restore_argv("pg_restore", "app__restore_1", "/b/x.dump") == [
        "pg_restore", "--dbname=app__restore_1", "--exit-on-error", "--no-password", "--single-transaction",
        "/b/x.dump"]
    assert pg_archive.pg_restore_argv("pg_restore", "s", "/b/x.dir", jobs=3, portable=True) == [
        "pg_restore", "--dbname=s", "--exit-on-error", "--no-password", "--jobs=3", "--no-owner",
        "--no-privileges", "/b/x.dir"]


def test_psql_restore_stops_at_the_first_error_in_one_transaction():
    assert pg_archive.psql_restore_argv("psql", "app__restore_1", "/b/x.sql") == [
        "psql", "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1", "--single-transaction",
        "--dbname=app__restore_1", "--file=/b/x.sql"]


def test_read_check_runs_pg_restore_with_the_password_only_in_the_environment():
    module = FakeModule([(0, "", "")])
    runner = Runner(module, environ={"PGPASSWORD": "s3cret", "PGUSER": "app"}, secrets=["s3cret"])
    pg_archive.read_check(runner, pg_archive.Tools(runner), "/b/x.dump", "custom", None)
    assert module.calls[0]["args"] == ["/usr/bin/pg_restore", "--file=/dev/null", "/b/x.dump"]
    assert module.calls[0]["environ_update"] == {"PGPASSWORD": "s3cret", "PGUSER": "app", "LC_ALL": "C"}


def test_read_check_of_plain_dump_wants_the_trailer(tmp_path):
    good = tmp_path / "a.sql"
    good.write_bytes(b"CREATE TABLE t ();\n--\n-- PostgreSQL database dump complete\n--\n")
    cut = tmp_path / "b.sql"
    cut.write_bytes(b"CREATE TABLE t ();\nCOPY t FROM stdin;\n1\n")
    runner = Runner(FakeModule([]))
    pg_archive.read_check(runner, pg_archive.Tools(runner), str(good), "plain", None)
    with pytest.raises(ValueError, match="truncated"):
        pg_archive.read_check(runner, pg_archive.Tools(runner), str(cut), "plain", None)


def test_row_count_differences_are_spelled_out():
    assert compare_counts({"public.a": 1}, {"public.a": 1}) == []
    assert compare_counts({"public.a": 2, "public.b": 1}, {"public.a": 1, "public.c": 0}) == [
        "public.a has 1 rows, expected 2", "public.b missing (expected 1 rows)", "public.c unexpected (0 rows)"]


# -- manifests and retention ---------------------------------------------------------------------
def make_backup(directory, db, created, name=None, tool=pg_manifest.TOOL, verify="read"):
    name = name or "%s_%s.dump" % (db, created.strftime("%Y%m%d_%H%M%S"))
    (directory / name).write_bytes(b"archive")
    (directory / (name + ".json")).write_text(json.dumps(dict(
        tool=tool, db=db, file=name, created_at=pg_manifest.iso(created), verify=verify)))
    return str(directory / name)


NOW = datetime.datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def days_ago(n):
    return NOW - datetime.timedelta(days=n)


def test_find_backups_sees_only_our_manifests_of_that_db(tmp_path):
    mine = [make_backup(tmp_path, "app", days_ago(n)) for n in (1, 5, 3)]
    make_backup(tmp_path, "other", days_ago(2))
    make_backup(tmp_path, "app", days_ago(4), name="app_foreign.dump", tool="someone.else")
    (tmp_path / "app_20200101_000000.dump").write_bytes(b"no manifest")
    (tmp_path / "stray.json").write_text("{not json")
    found = [d["_path"] for d in pg_manifest.find_backups(str(tmp_path), "app")]
    assert found == [mine[0], mine[2], mine[1]]


def test_manifest_must_describe_its_neighbour(tmp_path):
    make_backup(tmp_path, "app", days_ago(1), name="app_1.dump")
    data = json.loads((tmp_path / "app_1.dump.json").read_text())
    data["file"] = "../etc/passwd"
    (tmp_path / "app_1.dump.json").write_text(json.dumps(data))
    assert pg_manifest.read_manifest(str(tmp_path / "app_1.dump.json")) is None


def test_latest_verified_skips_unverified(tmp_path):
    older = make_backup(tmp_path, "app", days_ago(3))
    make_backup(tmp_path, "app", days_ago(1), verify="none")
    assert pg_manifest.latest_verified(str(tmp_path), "app")["_path"] == older


def test_keep_last_counts_the_new_backup_and_never_prunes_it(tmp_path):
    paths = [make_backup(tmp_path, "app", days_ago(n)) for n in (0, 1, 2, 3)]
    backups = pg_manifest.find_backups(str(tmp_path), "app")
    doomed = pg_manifest.select_prunable(backups, keep_last=2, now=NOW, exclude={paths[0]})
    assert [d["_path"] for d in doomed] == paths[2:]
    doomed = pg_manifest.select_prunable(backups, keep_last=1, now=NOW, exclude={paths[1]})
    assert paths[1] not in [d["_path"] for d in doomed]


def test_max_age_prunes_only_older_backups(tmp_path):
    paths = [make_backup(tmp_path, "app", days_ago(n)) for n in (0, 10, 29, 40)]
    backups = pg_manifest.find_backups(str(tmp_path), "app")
    doomed = pg_manifest.select_prunable(backups, max_age_days=28, now=NOW, exclude={paths[0]})
    assert [d["_path"] for d in doomed] == paths[2:]


def test_no_retention_option_prunes_nothing(tmp_path):
    for n in range(5):
        make_backup(tmp_path, "app", days_ago(n * 100))
    assert pg_manifest.select_prunable(pg_manifest.find_backups(str(tmp_path), "app"), now=NOW) == []


def test_remove_backup_removes_backup_and_manifest_only(tmp_path):
    path = make_backup(tmp_path, "app", days_ago(1))
    (tmp_path / "unrelated.txt").write_text("keep")
    pg_manifest.remove_backup(pg_manifest.read_manifest(path + ".json"))
    assert sorted(os.listdir(tmp_path)) == ["unrelated.txt"]


def test_manifest_is_written_0600(tmp_path):
    target = str(tmp_path / "x.dump.json")
    pg_manifest.write_manifest(target, {"a": 1})
    assert os.stat(target).st_mode & 0o777 == 0o600
    assert json.loads(open(target).read()) == {"a": 1}
    assert os.listdir(tmp_path) == ["x.dump.json"]


def test_directory_checksum_depends_on_content_and_names(tmp_path):
    d = tmp_path / "x.dir"
    d.mkdir()
    (d / "toc.dat").write_bytes(b"toc")
    (d / "3001.dat.gz").write_bytes(b"data")
    first = pg_manifest.sha256_of(str(d))
    (d / "3001.dat.gz").write_bytes(b"dat4")
    assert pg_manifest.sha256_of(str(d)) != first


def test_backup_info_lists_the_newest_first_without_private_keys(tmp_path):
    from ansible_collections.maestro.deploy.plugins.modules.pg_backup_info import listing
    paths = [make_backup(tmp_path, "app", days_ago(n)) for n in (2, 0, 1)]
    make_backup(tmp_path, "app", days_ago(3), verify="none")
    found = pg_manifest.find_backups(str(tmp_path), "app")
    two = listing(found, 2)
    assert [b["path"] for b in two] == [paths[1], paths[2]]
    assert all(b["verified"] is True and not any(k.startswith("_") for k in b) for b in two)
    everything = listing(found, 0)
    assert len(everything) == 4 and everything[-1]["verified"] is False
