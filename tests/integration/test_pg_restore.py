"""pg_restore against the real cluster: identical content after a swap, damaged backups refused."""

import json
import os
import shutil

import psycopg
import pytest

from tests.support.modrun import conn_args, run_module


def from_backup(cluster, db, path, **extra):
    """pg_restore's arguments for the backup at `path`, in the backup directory it was made in."""
    return conn_args(cluster, db, src=path, src_dir=os.path.dirname(path), **extra)


def fill(cluster, db, rows=1000):
    with psycopg.connect(**cluster.conninfo(db), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL, notes text)")
        conn.execute("INSERT INTO items SELECT g, md5(g::text), CASE WHEN g %% 3 = 0 THEN 'n' || g END "
                     "FROM generate_series(1, %s) g", (rows,))
        conn.execute("CREATE TABLE tags (item_id int REFERENCES items(id), tag text)")
        conn.execute("INSERT INTO tags SELECT g, 't' || (g %% 7) FROM generate_series(1, %s, 2) g", (rows,))
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0002')")


def fingerprint(cluster, db):
    """Per-table row counts and a checksum of every table's rows in primary-key order."""
    with psycopg.connect(**cluster.conninfo(db), autocommit=True) as conn:
        return {
            "items": conn.execute("SELECT count(*), md5(string_agg(i::text, '|' ORDER BY id)) FROM items i")
            .fetchone(),
            "tags": conn.execute("SELECT count(*), md5(string_agg(t::text, '|' ORDER BY item_id, tag)) FROM tags t")
            .fetchone(),
            "alembic_version": conn.execute("SELECT count(*), string_agg(version_num, ',') FROM alembic_version")
            .fetchone(),
        }


def databases(cluster, prefix):
    return cluster.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database "
                        "WHERE datname LIKE '%s%%'" % prefix.replace("_", "\\_")).split(",")


def drop_leftovers(cluster, db):
    for name in databases(cluster, db):
        if name and name != db:
            cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % name)


@pytest.fixture
def backed_up(pg_cluster, pg_db, tmp_path):
    """pg_db with data, a restore-verified backup of it, and its fingerprint at backup time."""
    fill(pg_cluster, pg_db)
    out = tmp_path / "backups"
    out.mkdir()
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), verify="restore"), tmp_path)
    assert not run.failed, run.result
    yield run.result, fingerprint(pg_cluster, pg_db)
    drop_leftovers(pg_cluster, pg_db)


def change_live(cluster, db):
    with psycopg.connect(**cluster.conninfo(db), autocommit=True) as conn:
        conn.execute("DELETE FROM tags WHERE item_id < 100")
        conn.execute("UPDATE items SET name = 'changed' WHERE id % 10 = 0")
        conn.execute("INSERT INTO items VALUES (100000, 'after the backup', NULL)")
        conn.execute("UPDATE alembic_version SET version_num = '0003'")


def test_swap_restores_identical_content_and_keeps_the_previous_db(pg_cluster, pg_db, tmp_path, backed_up):
    backup, at_backup = backed_up
    change_live(pg_cluster, pg_db)
    changed = fingerprint(pg_cluster, pg_db)
    assert changed != at_backup
    live_conn = psycopg.connect(**pg_cluster.conninfo(pg_db))  # an app still connected: it is terminated
    live_conn.execute("SELECT 1")
    try:
        run = run_module("pg_restore", from_backup(pg_cluster, pg_db, backup["path"]), tmp_path)
    finally:
        live_conn.close()
    assert not run.failed, run.result
    assert fingerprint(pg_cluster, pg_db) == at_backup
    assert run["db"] == pg_db and run["restored_from"] == backup["path"] and run["schema_version"] == "0002"
    previous = run["previous_db"]
    assert previous.startswith(pg_db[:30]) and "__pre_restore_" in previous
    assert fingerprint(pg_cluster, previous) == changed  # nothing written since the backup is lost
    owners = pg_cluster.psql("SELECT string_agg(DISTINCT pg_get_userbyid(datdba), ',') FROM pg_database "
                             "WHERE datname IN ('%s', '%s')" % (pg_db, previous))
    assert owners == pg_cluster.app_user
    assert pg_cluster.psql("SELECT datallowconn FROM pg_database WHERE datname = '%s'" % previous) == "t"
    assert not [d for d in databases(pg_cluster, pg_db) if "__restore_" in d]


def test_latest_zstd_backup_restores_without_keeping_previous(pg_cluster, pg_db, tmp_path):
    fill(pg_cluster, pg_db, rows=300)
    out = tmp_path / "backups"
    out.mkdir()
    made = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), format="custom",
                                             compression="zstd"), tmp_path)
    assert not made.failed, made.result
    at_backup = fingerprint(pg_cluster, pg_db)
    change_live(pg_cluster, pg_db)
    try:
        run = run_module("pg_restore", conn_args(pg_cluster, pg_db, src="latest", src_dir=str(out),
                                                 keep_previous=False), tmp_path)
        assert not run.failed, run.result
        assert run["restored_from"] == made["path"] and run["previous_db"] is None
        assert fingerprint(pg_cluster, pg_db) == at_backup
        assert databases(pg_cluster, pg_db) == [pg_db]
    finally:
        drop_leftovers(pg_cluster, pg_db)


@pytest.mark.parametrize("mode", ["swap", "replace"])
def test_corrupted_backup_is_refused_and_live_db_unchanged(pg_cluster, pg_db, tmp_path, backed_up, mode):
    backup, _ = backed_up
    change_live(pg_cluster, pg_db)
    live = fingerprint(pg_cluster, pg_db)
    with open(backup["path"], "r+b") as fh:  # flip one byte in the middle
        fh.seek(os.path.getsize(backup["path"]) // 2)
        byte = fh.read(1)
        fh.seek(-1, os.SEEK_CUR)
        fh.write(bytes([byte[0] ^ 0xFF]))
    run = run_module("pg_restore", from_backup(pg_cluster, pg_db, backup["path"], mode=mode), tmp_path)
    assert run.failed
    assert "is damaged" in run["msg"] and backup["sha256"] in run["msg"] and "refusing to restore" in run["msg"]
    assert fingerprint(pg_cluster, pg_db) == live
    assert databases(pg_cluster, pg_db) == [pg_db]


def test_unverified_backup_is_refused(pg_cluster, pg_db, tmp_path):
    fill(pg_cluster, pg_db, rows=10)
    out = tmp_path / "backups"
    out.mkdir()
    made = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), verify=False), tmp_path)
    for mode in ("swap", "replace"):
        run = run_module("pg_restore", from_backup(pg_cluster, pg_db, made["path"], mode=mode), tmp_path)
        assert run.failed and "is unverified" in run["msg"]
    run = run_module("pg_restore", conn_args(pg_cluster, pg_db, src="latest", src_dir=str(out)), tmp_path)
    assert run.failed and "no verified backup of %s" % pg_db in run["msg"]
    assert databases(pg_cluster, pg_db) == [pg_db]


def test_check_mode_verifies_and_reports_renames_touching_nothing(pg_cluster, pg_db, tmp_path, backed_up):
    backup, _ = backed_up
    change_live(pg_cluster, pg_db)
    live = fingerprint(pg_cluster, pg_db)
    run = run_module("pg_restore", from_backup(pg_cluster, pg_db, backup["path"]), tmp_path, check=True)
    assert not run.failed, run.result
    assert run["changed"] is True and run["sha256"] == backup["sha256"]
    assert [r["from"] for r in run["renames"]] == [pg_db, run["renames"][1]["from"]]
    assert run["renames"][0]["to"] == run["previous_db"] and run["renames"][1]["to"] == pg_db
    assert fingerprint(pg_cluster, pg_db) == live and databases(pg_cluster, pg_db) == [pg_db]


def test_replace_mode_restores_in_place(pg_cluster, pg_db, tmp_path, backed_up):
    backup, at_backup = backed_up
    change_live(pg_cluster, pg_db)
    run = run_module("pg_restore", from_backup(pg_cluster, pg_db, backup["path"], mode="replace"), tmp_path)
    assert not run.failed, run.result
    assert run["previous_db"] is None and fingerprint(pg_cluster, pg_db) == at_backup
    assert databases(pg_cluster, pg_db) == [pg_db]


# -- files read back from the host are untrusted (issue 14) -----------------------------------------
def rewrite_manifest(path, **changes):
    with open(path + ".json") as fh:
        data = json.load(fh)
    data.update(changes)
    with open(path + ".json", "w") as fh:
        json.dump(data, fh)


def sha256(path):
    import hashlib

    with open(path, "rb") as fh:
        return hashlib.sha256(fh.read()).hexdigest()


@pytest.mark.parametrize("program", ["script", "/bin/sh"])
def test_a_program_named_by_the_manifest_never_runs(pg_cluster, pg_db, tmp_path, backed_up, program):
    backup, _ = backed_up
    marker = tmp_path / "ran"
    if program == "script":
        program = str(tmp_path / "evil-compressor")
        with open(program, "w") as fh:
            fh.write("#!/bin/sh\ntouch %s\nexec cat \"$4\"\n" % marker)
        os.chmod(program, 0o755)
    else:  # sh -d -c <path>: the shell runs the backup file as a script
        with open(backup["path"], "wb") as fh:
            fh.write(b"touch %s\n" % str(marker).encode())
        rewrite_manifest(backup["path"], sha256=sha256(backup["path"]))
    rewrite_manifest(backup["path"], compression="zstd", external_compressor=program)
    change_live(pg_cluster, pg_db)
    live = fingerprint(pg_cluster, pg_db)
    for mode in ("swap", "replace"):
        run = run_module("pg_restore", conn_args(pg_cluster, pg_db, src=backup["path"],
                                                 src_dir=os.path.dirname(backup["path"]), mode=mode), tmp_path)
        assert run.failed and "external_compressor=%r" % program in run["msg"], run.result
        assert not marker.exists()
    assert fingerprint(pg_cluster, pg_db) == live and databases(pg_cluster, pg_db) == [pg_db]


def test_a_plain_dump_is_never_given_to_psql(pg_cluster, pg_db, tmp_path):
    fill(pg_cluster, pg_db, rows=10)
    out = tmp_path / "backups"
    out.mkdir()
    made = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), format="plain",
                                             compression="none"), tmp_path)
    assert not made.failed, made.result
    marker = tmp_path / "marker"
    with open(made["path"], "rb") as fh:
        dump = fh.read()
    with open(made["path"], "wb") as fh:
        fh.write(b"\\! touch %s\n" % str(marker).encode() + dump)
    rewrite_manifest(made["path"], sha256=sha256(made["path"]))
    change_live(pg_cluster, pg_db)
    live = fingerprint(pg_cluster, pg_db)
    for src in (made["path"], "latest"):
        run = run_module("pg_restore", conn_args(pg_cluster, pg_db, src=src, src_dir=str(out)), tmp_path)
        assert run.failed and "plain SQL dump" in run["msg"] and "format=custom" in run["msg"], run.result
    assert not marker.exists()
    assert fingerprint(pg_cluster, pg_db) == live and databases(pg_cluster, pg_db) == [pg_db]


def test_only_trusted_backups_in_the_backup_directory_are_restored(pg_cluster, pg_db, tmp_path, backed_up):
    backup, _ = backed_up
    backups = os.path.dirname(backup["path"])
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    evil = str(elsewhere / os.path.basename(backup["path"]))
    shutil.copy(backup["path"], evil)
    shutil.copy(backup["path"] + ".json", evil + ".json")
    change_live(pg_cluster, pg_db)
    live = fingerprint(pg_cluster, pg_db)
    cases = [(evil, "is not in the backup directory"),
             (os.path.join(backups, "..", "elsewhere", os.path.basename(evil)), "'..'")]
    for src, why in cases:
        run = run_module("pg_restore", conn_args(pg_cluster, pg_db, src=src, src_dir=backups), tmp_path)
        assert run.failed and why in run["msg"], run.result
    os.chmod(backup["path"], 0o664)
    run = run_module("pg_restore", conn_args(pg_cluster, pg_db, src=backup["path"], src_dir=backups), tmp_path)
    assert run.failed and "writable by group or others" in run["msg"], run.result
    assert fingerprint(pg_cluster, pg_db) == live and databases(pg_cluster, pg_db) == [pg_db]
