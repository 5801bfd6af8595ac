"""pg_backup against the real throwaway cluster: atomic on failure, secrets kept out, retention."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import psycopg
import pytest

from tests.support.modrun import conn_args, finish_module, run_module, start_module


def fill(cluster, db, rows=2000):
    with psycopg.connect(**cluster.conninfo(db), autocommit=True) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, md5(g::text) FROM generate_series(1, %s) g", (rows,))
        conn.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('0002')")


def dest(tmp_path, name="backups"):
    path = tmp_path / name
    path.mkdir()
    return path


def find_pg_dump(db):
    """pids of pg_dump processes dumping `db` (from /proc, like ps)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                argv = fh.read().split(b"\0")
        except OSError:
            continue
        if argv and os.path.basename(argv[0]) == b"pg_dump" and ("--dbname=%s" % db).encode() in argv:
            pids.append(int(entry))
    return pids


def wait_for(predicate, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError("timed out waiting")


class TableLock:
    """Hold ACCESS EXCLUSIVE on a table so pg_dump blocks on it (deterministic 'mid-way')."""

    def __init__(self, cluster, db, table="items", **who):
        self.conn = psycopg.connect(**cluster.conninfo(db, **who))
        self.conn.execute("LOCK TABLE %s IN ACCESS EXCLUSIVE MODE" % table)

    def release(self):
        self.conn.rollback()
        self.conn.close()


def test_backup_writes_0600_archive_and_manifest(pg_cluster, pg_db, tmp_path):
    fill(pg_cluster, pg_db)
    out = dest(tmp_path)
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), label="rel-42"), tmp_path)
    assert not run.failed, run.result
    path = run["path"]
    assert os.path.basename(path).startswith(pg_db + "_") and path.endswith(".dump")
    assert sorted(os.listdir(out)) == [os.path.basename(path), os.path.basename(path) + ".json"]
    assert os.stat(path).st_mode & 0o777 == 0o600
    assert os.stat(run["manifest_path"]).st_mode & 0o777 == 0o600
    manifest = json.loads(open(run["manifest_path"]).read())
    assert manifest["db"] == pg_db and manifest["label"] == "rel-42" and manifest["verify"] == "read"
    assert manifest["schema_version"] == "0002" and manifest["schema_version_source"] == "alembic"
    assert manifest["sha256"] == run["sha256"] and manifest["size_bytes"] == os.path.getsize(path)
    assert manifest["table_count"] == 2 and manifest["server_version"].startswith("15")
    assert run["pruned"] == [] and run["verified"] is True


def test_truncated_custom_dump_passes_list_but_fails_the_read_check(pg_cluster, pg_db, tmp_path):
    """Why verify=read exists: pg_restore --list accepts a truncated archive, reading it all does not."""
    fill(pg_cluster, pg_db, rows=20000)
    out = dest(tmp_path)
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), verify="checksum",
                                            compression="none"), tmp_path)
    assert not run.failed, run.result
    cut = str(tmp_path / "cut.dump")
    with open(run["path"], "rb") as src, open(cut, "wb") as dst:
        dst.write(src.read(os.path.getsize(run["path"]) // 2))
    listing = subprocess.run(["pg_restore", "--list", cut], capture_output=True)
    assert listing.returncode == 0
    from tests.support.realmodule import read_check
    with pytest.raises(Exception, match="read check") as err:
        read_check(cut, "custom")
    assert "end of file" in str(err.value)
    read_check(run["path"], "custom")  # the complete archive passes


def test_killed_pg_dump_leaves_nothing_that_looks_like_a_backup(pg_cluster, pg_db, tmp_path):
    fill(pg_cluster, pg_db)
    out = dest(tmp_path)
    lock = TableLock(pg_cluster, pg_db)
    try:
        proc = start_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out)), tmp_path)
        pids = wait_for(lambda: find_pg_dump(pg_db))
        assert any(name.endswith(".partial") for name in os.listdir(out))  # it was writing
        os.kill(pids[0], signal.SIGKILL)
        run = finish_module(proc)
    finally:
        lock.release()
    assert run.failed
    assert "backup of %s failed, nothing was kept" % pg_db in run["msg"]
    assert "pg_dump failed (killed by signal 9)" in run["msg"]
    assert os.listdir(out) == []


def test_canary_password_never_in_argv_output_or_manifest(pg_cluster, tmp_path):
    canary = "Canary-" + os.urandom(6).hex() + "-pw"
    role, db = "canary_" + os.urandom(3).hex(), "canary_db_" + os.urandom(3).hex()
    pg_cluster.psql("CREATE ROLE %s LOGIN CREATEDB PASSWORD '%s'" % (role, canary))
    pg_cluster.create_database(db, owner=role)
    try:
        with psycopg.connect(**pg_cluster.conninfo(db, user=role, password=canary), autocommit=True) as conn:
            conn.execute("CREATE TABLE items (id int PRIMARY KEY)")
            conn.execute("INSERT INTO items SELECT generate_series(1, 100)")
        out = dest(tmp_path)
        lock = TableLock(pg_cluster, db, user=role, password=canary)
        seen, leaked, stop = [], [], threading.Event()

        def sample():
            while not stop.is_set():
                for entry in os.listdir("/proc"):
                    if not entry.isdigit():
                        continue
                    try:
                        with open("/proc/%s/cmdline" % entry, "rb") as fh:
                            cmdline = fh.read()
                    except OSError:
                        continue
                    if canary.encode() in cmdline:
                        leaked.append(cmdline)
                    if b"pg_dump" in cmdline and db.encode() in cmdline:
                        seen.append(cmdline)
                time.sleep(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        try:
            args = dict(db=db, host="127.0.0.1", port=pg_cluster.port, user=role, password=canary,
                        dest_dir=str(out))
            proc = start_module("pg_backup", args, tmp_path)
            wait_for(lambda: seen)  # pg_dump is running (blocked on the lock) while we sample
            time.sleep(0.2)
            lock.release()
            run = finish_module(proc)
        finally:
            stop.set()
            sampler.join()
        assert not run.failed, run.result
        assert seen and leaked == []
        assert canary not in run.stdout and canary not in run.stderr
        assert canary not in open(run["manifest_path"]).read()
        # a failing run does not echo it either
        wrong = run_module("pg_backup", dict(args, db="no_such_db_" + os.urandom(2).hex()), tmp_path)
        assert wrong.failed and canary not in wrong.stdout + wrong.stderr
    finally:
        pg_cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % db)
        pg_cluster.psql("DROP ROLE IF EXISTS %s" % role)


def test_wrong_password_fails_naming_it_and_leaves_nothing(pg_cluster, pg_db, tmp_path):
    out = dest(tmp_path)
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), password="wrong-pw"), tmp_path)
    assert run.failed and "password authentication failed" in run["msg"] and pg_db in run["msg"]
    assert "wrong-pw" not in run.stdout and os.listdir(out) == []


def test_unknown_database_fails_naming_it(pg_cluster, tmp_path):
    out = dest(tmp_path)
    run = run_module("pg_backup", conn_args(pg_cluster, "no_such_db", dest_dir=str(out)), tmp_path)
    assert run.failed and 'database "no_such_db" does not exist' in run["msg"]
    assert os.listdir(out) == []


def test_unwritable_dest_dir_fails_naming_it(pg_cluster, pg_db, tmp_path):
    missing = tmp_path / "missing"
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(missing)), tmp_path)
    assert run.failed and run["msg"] == "dest_dir %s does not exist or is not a directory" % missing
    if not shutil.which("chattr"):
        pytest.skip("chattr not available to make a directory unwritable for root")
    out = dest(tmp_path, "readonly")
    if subprocess.run(["chattr", "+i", str(out)], capture_output=True).returncode != 0:
        pytest.skip("this filesystem does not support the immutable attribute")
    try:
        run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out)), tmp_path)
    finally:
        subprocess.run(["chattr", "-i", str(out)], check=True)
    assert run.failed and str(out) in run["msg"] and ("not writable" in run["msg"] or "cannot write" in run["msg"])
    assert os.listdir(out) == []


def test_retention_prunes_only_our_backups_of_that_db_and_check_mode_changes_nothing(pg_cluster, pg_db, tmp_path):
    fill(pg_cluster, pg_db, rows=10)
    other = pg_cluster.create_database(pg_db[:40] + "_other")
    try:
        out = dest(tmp_path)
        base = conn_args(pg_cluster, pg_db, dest_dir=str(out), verify="checksum")
        made = [run_module("pg_backup", base, tmp_path)["path"] for _ in range(3)]
        theirs = run_module("pg_backup", conn_args(pg_cluster, other, dest_dir=str(out), verify="checksum"),
                            tmp_path)["path"]
        stray = out / (os.path.basename(made[0]).replace(".dump", "_copy.dump"))
        stray.write_bytes(b"a file someone put here")
        # age the first backup by 40 days (its manifest is what retention reads)
        manifest = json.loads(open(made[0] + ".json").read())
        manifest["created_at"] = "2000-01-01T00:00:00Z"
        open(made[0] + ".json", "w").write(json.dumps(manifest))
        before = sorted(os.listdir(out))

        check = run_module("pg_backup", dict(base, keep_last=2), tmp_path, check=True)
        assert not check.failed and check["changed"] is True
        assert sorted(check["pruned"]) == sorted([made[0], made[1]])
        assert sorted(os.listdir(out)) == before  # check mode wrote and deleted nothing

        aged = run_module("pg_backup", dict(base, max_age_days=30), tmp_path)
        assert aged["pruned"] == [made[0]]
        kept = run_module("pg_backup", dict(base, keep_last=2), tmp_path)
        assert sorted(kept["pruned"]) == sorted([made[1], made[2]])
        left = set(os.listdir(out))
        names = {os.path.basename(p) for p in (kept["path"], aged["path"], theirs)} | {stray.name}
        assert left == names | {n + ".json" for n in names if n != stray.name}
    finally:
        pg_cluster.psql('DROP DATABASE IF EXISTS "%s" WITH (FORCE)' % other)


@pytest.mark.parametrize("fmt, compression", [("plain", "zstd"), ("custom", "zstd"), ("directory", "gzip")])
def test_formats_verified_by_restore(pg_cluster, pg_db, tmp_path, fmt, compression):
    fill(pg_cluster, pg_db, rows=500)
    out = dest(tmp_path)
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), format=fmt,
                                            compression=compression, verify="restore"), tmp_path)
    assert not run.failed, run.result
    assert run["row_counts"] == {"public.items": 500, "public.alembic_version": 1}
    leftover = pg_cluster.psql("SELECT count(*) FROM pg_database WHERE datname LIKE '%%__verify_%%'")
    assert leftover == "0"
    assert sorted(os.listdir(out)) == [os.path.basename(run["path"]), os.path.basename(run["path"]) + ".json"]


def test_unverified_backup_says_so(pg_cluster, pg_db, tmp_path):
    out = dest(tmp_path)
    run = run_module("pg_backup", conn_args(pg_cluster, pg_db, dest_dir=str(out), verify=False), tmp_path)
    assert not run.failed and run["verified"] is False and run["verify"] == "none"
    assert any("UNVERIFIED" in str(w) for w in run.result.get("warnings", []))
