"""What a person checks after a fault, as functions: the rows written before it (count and
ordered checksum per table), the backup directory (nothing partial, every backup with its
manifest), the deploy lock, and processes found or watched through /proc."""

import glob
import hashlib
import json
import os
import signal
import subprocess
import threading
import time

import psycopg
from psycopg import sql

from .paths import ANSIBLE_CFG, REPO, VENV_BIN

# Migration bookkeeping changes on purpose during a deploy; the app's rows must not.
BOOKKEEPING = ("_prisma_migrations", "alembic_version")

USER_TABLES = """
SELECT table_schema, table_name FROM information_schema.tables
WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1, 2
"""
COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position
"""


def table_snapshot(conninfo, columns=None):
    """{"schema.table": {"columns", "count", "md5"}} of the app's tables.

    The checksum is md5 over the rows in order, built from `columns` (a previous snapshot's
    column lists) when given, so an added column does not count as a change of old rows.
    """
    out = {}
    with psycopg.connect(**conninfo) as conn:
        for schema, table in conn.execute(USER_TABLES).fetchall():
            if table in BOOKKEEPING:
                continue
            key = "%s.%s" % (schema, table)
            cols = (columns or {}).get(key) or [r[0] for r in conn.execute(COLUMNS, (schema, table)).fetchall()]
            fields = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            query = sql.SQL(
                "SELECT count(*), md5(coalesce(string_agg(row({f})::text, '|' ORDER BY {f}), '')) FROM {t}"
            ).format(f=fields, t=sql.Identifier(schema, table))
            count, digest = conn.execute(query).fetchone()
            out[key] = {"columns": cols, "count": count, "md5": digest}
    return out


def assert_rows_kept(conninfo, before):
    """Every table of `before` still holds exactly the same rows (in its columns of then)."""
    after = table_snapshot(conninfo, columns={k: v["columns"] for k, v in before.items()})
    for key, snap in before.items():
        assert key in after, "table %s is gone" % key
        assert (after[key]["count"], after[key]["md5"]) == (snap["count"], snap["md5"]), (key, snap, after[key])
    return after


def sha256_of(path):
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def backup_files(backup_dir):
    """Backups (files or directory archives) in backup_dir, without manifests."""
    if not os.path.isdir(backup_dir):
        return []
    return sorted(os.path.join(backup_dir, n) for n in os.listdir(backup_dir)
                  if not n.endswith(".json") and not n.startswith("."))


def assert_backups_whole(backup_dir, check_sums=True):
    """No `*.partial` anywhere; every backup has its manifest, is 0600 and matches its sha256."""
    partial = glob.glob(os.path.join(backup_dir, "**", "*.partial*"), recursive=True)
    assert not partial, "partial backup files left: %s" % partial
    backups = backup_files(backup_dir)
    for path in backups:
        manifest = path + ".json"
        assert os.path.isfile(manifest), "backup %s has no manifest" % path
        with open(manifest) as fh:
            data = json.load(fh)
        if os.path.isfile(path):
            assert os.stat(path).st_mode & 0o777 == 0o600, path
            if check_sums:
                assert sha256_of(path) == data["sha256"], "backup %s does not match its manifest" % path
    return backups


def lock_path(app_root):
    return os.path.join(app_root, ".deploy.lock")


def assert_lock_free(app_root):
    path = lock_path(app_root)
    assert not os.path.exists(path), "deploy lock still held: %s" % open(path).read()


def read_lock(app_root):
    try:
        with open(lock_path(app_root)) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def wait_for(predicate, timeout=120, interval=0.05, what="condition"):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s" % what)


def proc_environ(pid):
    try:
        with open("/proc/%s/environ" % pid, "rb") as fh:
            raw = fh.read()
    except OSError:
        return {}
    return dict(item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)


def find_processes(comm, env_match, argv_has=b""):
    """pids whose command name is `comm`, whose environment holds every item of env_match and
    whose argv contains `argv_has`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/comm" % entry) as fh:
                if fh.read().strip() != comm:
                    continue
        except OSError:
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as fh:
                if argv_has not in fh.read():
                    continue
        except OSError:
            continue
        env = proc_environ(entry)
        if all(env.get(k.encode()) == str(v).encode() for k, v in env_match.items()):
            found.append(int(entry))
    return found


class Killer(threading.Thread):
    """Kill (SIGKILL) the first process named `comm` with env_match (and `argv_has` in its argv)
    as soon as it appears."""

    def __init__(self, comm, env_match, argv_has=b"", timeout=120):
        super().__init__(daemon=True)
        self.comm, self.env_match, self.argv_has, self.timeout = comm, env_match, argv_has, timeout
        self.killed = None
        self.stop = threading.Event()

    def run(self):
        deadline = time.time() + self.timeout
        while not self.stop.is_set() and time.time() < deadline:
            for pid in find_processes(self.comm, self.env_match, self.argv_has):
                try:
                    os.kill(pid, signal.SIGKILL)
                    self.killed = pid
                    return
                except ProcessLookupError:
                    pass
            time.sleep(0.01)


class ArgvSampler(threading.Thread):
    """Read every process's argv (/proc/*/cmdline) in a loop; keep those holding `needle` (a string,
    or a list of strings: any of them)."""

    def __init__(self, needle, interval=0.03):
        super().__init__(daemon=True)
        self.needles = [n.encode() for n in ([needle] if isinstance(needle, str) else needle)]
        self.interval = interval
        self.hits = []
        self.samples = 0
        self.stop = threading.Event()

    def run(self):
        while not self.stop.is_set():
            for path in glob.glob("/proc/[0-9]*/cmdline"):
                try:
                    with open(path, "rb") as fh:
                        argv = fh.read()
                except OSError:
                    continue
                if any(n in argv for n in self.needles):
                    self.hits.append((path, argv.replace(b"\0", b" ").decode(errors="replace")))
            self.samples += 1
            time.sleep(self.interval)

    def finish(self):
        self.stop.set()
        self.join(10)
        return self.hits


def write_inventory(path, inventory):
    """Write an inventory dict as a YAML (JSON is YAML) file for ansible-playbook."""
    with open(path, "w") as fh:
        json.dump(inventory, fh, indent=1)
    return path


def start_playbook(name, inventory_path, extravars, workdir, log_path):
    """ansible-playbook as its own process group (so it can be SIGKILLed like a lost terminal)."""
    os.makedirs(workdir, exist_ok=True)
    extra = os.path.join(workdir, "extravars.json")
    with open(extra, "w") as fh:
        json.dump(extravars, fh)
    env = dict(os.environ, ANSIBLE_CONFIG=ANSIBLE_CFG, PATH=VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
               ANSIBLE_LOCAL_TEMP=os.path.join(workdir, "tmp"), ANSIBLE_HOME=os.path.join(workdir, "home"),
               ANSIBLE_NOCOLOR="1")
    log = open(log_path, "wb")
    try:
        return subprocess.Popen(
            [os.path.join(VENV_BIN, "ansible-playbook"), "-i", inventory_path,
             os.path.join(REPO, "playbooks", name), "-e", "@" + extra],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    finally:
        log.close()


def flip_byte(path, offset=None):
    """Invert one byte in the middle of a file (returns the offset, to flip it back)."""
    size = os.path.getsize(path)
    offset = size // 2 if offset is None else offset
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)
        fh.seek(offset)
        fh.write(bytes([byte[0] ^ 0xFF]))
    return offset


def main(argv=None):
    """The same checks for a Molecule scenario (molecule/ssh/side_effect.yml), which is YAML:
    `snapshot` prints the rows of now as JSON; `check` exits non-zero with the reason when a row
    of that snapshot changed, a backup is partial, or (with --lock-free) the deploy lock is held."""
    import argparse
    import sys

    from .pgcluster import Cluster

    parser = argparse.ArgumentParser(description=main.__doc__.splitlines()[0])
    parser.add_argument("action", choices=["snapshot", "check"])
    parser.add_argument("cluster", help="the cluster's directory (tests.support.pgcluster)")
    parser.add_argument("db")
    parser.add_argument("--before", help="check: the snapshot taken before the fault")
    parser.add_argument("--backups", help="check: the backup directory")
    parser.add_argument("--lock-free", metavar="APP_ROOT", help="check: no deploy lock under APP_ROOT")
    args = parser.parse_args(argv)
    conninfo = Cluster(args.cluster).conninfo(args.db)
    if args.action == "snapshot":
        print(json.dumps(table_snapshot(conninfo)))
        return 0
    try:
        with open(args.before) as fh:
            after = assert_rows_kept(conninfo, json.load(fh))
        if args.backups:
            assert assert_backups_whole(args.backups), "no backup in %s" % args.backups
        if args.lock_free:
            assert_lock_free(args.lock_free)
    except AssertionError as failed:
        print("CHECK FAILED: %s" % failed, file=sys.stderr)
        return 1
    print(json.dumps({"rows": {k: v["count"] for k, v in after.items()}, "backups": "whole"}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
