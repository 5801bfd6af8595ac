# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_backup does: dump in an exported snapshot, verify, then publish atomically.

The archive is written as `<name>.partial` and only renamed to its real name after pg_dump
exited 0 and the chosen verification passed; the manifest is written last. A run that is
killed or fails therefore never leaves anything that retention or `src: latest` (which both go
by manifests) would take for a backup. The snapshot is exported from a REPEATABLE READ
transaction that stays open while pg_dump runs, so row counts and the schema version recorded
in the manifest describe exactly the data in the archive.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import time

from ansible_collections.maestro.deploy.plugins.module_utils import pg_archive, pg_dbstate, pg_manifest
from ansible_collections.maestro.deploy.plugins.module_utils.pg_connection import (
    check_db_name,
    connect,
    connection_argument_spec,
    libpq_env,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner, describe_rc

VERIFY_LEVELS = ("checksum", "read", "restore", "none")
FALSE_WORDS = ("false", "no", "off", "0", "none")


def argument_spec():
    return connection_argument_spec(
        db=dict(type="str", required=True),
        dest_dir=dict(type="path", required=True),
        format=dict(type="str", default="custom", choices=list(pg_archive.FORMATS)),
        compression=dict(type="str", default="gzip", choices=list(pg_archive.COMPRESSIONS)),
        compression_level=dict(type="int"),
        jobs=dict(type="int", default=1),
        label=dict(type="str"),
        verify=dict(type="raw", default="read"),
        keep_last=dict(type="int"),
        max_age_days=dict(type="int"),
        bin_dir=dict(type="path"),
        owner=dict(type="str"),
        group=dict(type="str"),
        mode=dict(type="raw", default="0600"),
    )


def normalize_verify(value):
    """'checksum' | 'read' | 'restore' | 'none'; YAML false (or 'no', 'none') means none."""
    if value is False or value is None:
        return "none"
    text = str(value).strip().lower()
    if text in FALSE_WORDS:
        return "none"
    if text not in VERIFY_LEVELS:
        raise ValueError("verify=%r is not one of checksum, read, restore or false" % (value,))
    return text


def check_options(params):
    """Problems with the options, as messages naming the bad values (empty list when fine)."""
    problems = []
    if params["jobs"] < 1:
        problems.append("jobs=%s must be at least 1" % params["jobs"])
    elif params["jobs"] > 1 and params["format"] != "directory":
        problems.append("jobs=%s needs format=directory (pg_dump writes other formats with one process), "
                        "got format=%s" % (params["jobs"], params["format"]))
    if params.get("keep_last") is not None and params["keep_last"] < 1:
        problems.append("keep_last=%s must be at least 1 (the new backup is always kept)" % params["keep_last"])
    if params.get("max_age_days") is not None and params["max_age_days"] < 0:
        problems.append("max_age_days=%s must not be negative" % params["max_age_days"])
    return problems


def explain(exc):
    """A CommandError's message, with 'killed by signal N' instead of a negative rc."""
    return exc.msg.replace("(rc=%s)" % exc.rc, "(%s)" % describe_rc(exc.rc))


def server_major(version_num):
    return int(version_num) // 10000


def tool_major(runner, tool):
    """Major version of a PostgreSQL client tool from `--version` ('pg_dump (PostgreSQL) 15.18 ...')."""
    _rc, out, _err = runner.run([tool, "--version"], what="%s --version" % os.path.basename(tool))
    words = out.split()
    for word in words:
        head = word.split(".")[0]
        if head.isdigit():
            return int(head), out.strip()
    return 0, out.strip()


def free_space_problem(db, db_size, dest_dir, free):
    if db_size > free:
        return ("database %s is %d bytes (pg_database_size) but %s has only %d bytes free: "
                "the backup cannot fit" % (db, db_size, dest_dir, free))
    return None


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.unlink(path)


def _fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class BackupRun:
    """One invocation of pg_backup."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.password = self.params.get("password")
        self.runner = Runner(module, environ=libpq_env(self.params), secrets=[self.password])
        self.tools = pg_archive.Tools(self.runner, self.params.get("bin_dir"))
        self.result = dict(changed=False)
        self.cleanup = []  # paths to remove if the run does not finish
        self.scratch_db = None

    def fail(self, msg, **extra):
        """The runner's one failure path: msg, stdout and stderr masked, the commands that ran."""
        self.runner.fail(msg, **extra)

    def run(self):
        p = self.params
        db = check_db_name(self.module, p["db"])
        try:
            verify = normalize_verify(p["verify"])
        except ValueError as exc:
            self.fail(str(exc))
        problems = check_options(p)
        try:
            self.mode = parse_mode(p["mode"])
        except ValueError as exc:
            problems.append(str(exc))
        if problems:
            self.fail("; ".join(problems))
        dest_dir = p["dest_dir"]
        if not os.path.isdir(dest_dir):
            self.fail("dest_dir %s does not exist or is not a directory" % dest_dir)
        if not os.access(dest_dir, os.W_OK | os.X_OK):
            self.fail("dest_dir %s is not writable by %s" % (dest_dir, os.getuid()))

        pg_dump = self.tools["pg_dump"]
        dump_major, dump_version = tool_major(self.runner, pg_dump)
        try:
            native, external = pg_archive.compression_plan(p["format"], p["compression"], p["compression_level"],
                                                           dump_major)
        except pg_archive.PlanError as exc:
            self.fail(str(exc))
        if external:
            self.tools[external]  # noqa: B018 - fail now, before anything is written, when it is missing
        if verify in ("read", "restore") and p["format"] != "plain":
            self.tools["pg_restore"]  # noqa: B018
        if verify == "restore" and p["format"] == "plain":
            self.tools["psql"]  # noqa: B018

        conn = connect(self.module, p, db)
        try:
            return self._run_connected(conn, db, verify, native, external, dump_version)
        finally:
            if self.scratch_db:
                self._drop_scratch(conn)
            conn.close()
            for path in self.cleanup:
                _remove(path)

    def _run_connected(self, conn, db, verify, native, external, dump_version):
        p = self.params
        dest_dir = p["dest_dir"]
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        server_num = conn.execute("SHOW server_version_num").fetchone()[0]
        db_size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        free = shutil.disk_usage(dest_dir).free
        problem = free_space_problem(db, db_size, dest_dir, free)
        if problem:
            self.fail(problem, db_size_bytes=db_size, free_bytes=free)

        now = pg_manifest.utcnow()
        ext = pg_manifest.extension(p["format"], p["compression"], bool(external))
        name = pg_manifest.backup_name(db, now, ext, pg_manifest.names_taken(dest_dir))
        path = os.path.join(dest_dir, name)
        partial = path + pg_manifest.PARTIAL_SUFFIX
        existing = pg_manifest.find_backups(dest_dir, db)
        # Retention as if the new backup were already there (it ranks first and is never pruned).
        ranked = [dict(_path=path, _created=now)] + existing
        doomed = pg_manifest.select_prunable(ranked, p.get("keep_last"), p.get("max_age_days"), now, {path})
        self.result.update(
            path=path, manifest_path=pg_manifest.manifest_path(path), format=p["format"],
            compression=p["compression"], verify=verify, verified=verify != "none",
            db_size_bytes=db_size, server_version=server_version, pg_dump_version=dump_version,
        )
        if self.module.check_mode:
            version, source = pg_dbstate.schema_version(conn)
            self.result.update(changed=True, pruned=[d["_path"] for d in doomed], schema_version=version,
                               schema_version_source=source, size_bytes=None, sha256=None, duration_s=0)
            return self.result

        started = time.time()
        manifest = self._dump(db, path, partial, verify, native, external, server_num)
        self._verify(db, partial, verify, external, manifest, conn)
        manifest["sha256"] = pg_manifest.sha256_of(partial)
        manifest["size_bytes"] = pg_manifest.size_of(partial)
        self._publish(partial, path)
        manifest.update(duration_s=round(time.time() - started, 3), server_version=server_version,
                        pg_dump_version=dump_version)
        pg_manifest.write_manifest(pg_manifest.manifest_path(path), manifest)
        self.cleanup = []
        self._set_attributes(path)
        self._set_attributes(pg_manifest.manifest_path(path), manifest_file=True)
        _fsync_dir(dest_dir)

        pruned = []
        for data in doomed:
            pg_manifest.remove_backup(data)
            pruned.append(data["_path"])
        self.result.update(
            changed=True, size_bytes=manifest["size_bytes"], sha256=manifest["sha256"],
            duration_s=manifest["duration_s"], schema_version=manifest["schema_version"],
            schema_version_source=manifest["schema_version_source"], pruned=pruned,
            row_counts=manifest.get("row_counts"), created_at=manifest["created_at"], label=p.get("label"),
            commands=self.runner.history,
        )
        if verify == "none":
            self.module.warn("backup %s is UNVERIFIED (verify=false): pg_restore will refuse it" % path)
        if p["format"] == "plain":
            self.module.warn("backup %s is a plain SQL dump: pg_restore refuses plain dumps (psql would run any "
                             "meta-command in them); use format=custom for backups meant to be restored" % path)
        return self.result

    def _dump(self, db, path, partial, verify, native, external, server_num):
        """Run pg_dump in an exported snapshot; returns the manifest (without checksum yet)."""
        import psycopg

        p = self.params
        snap = connect(self.module, p, db, autocommit=False)
        try:
            snap.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
            snap.read_only = True
            snapshot = snap.execute("SELECT pg_export_snapshot()").fetchone()[0]
            version, source = pg_dbstate.schema_version(snap)
            tables = pg_dbstate.user_tables(snap)
            counts = pg_dbstate.row_counts(snap) if verify == "restore" else None
            created = pg_manifest.utcnow()
            self.cleanup.append(partial)
            try:
                if p["format"] == "directory":
                    argv = pg_archive.pg_dump_argv(self.tools["pg_dump"], db, "directory", partial, native,
                                                   p["jobs"], snapshot)
                    self.runner.run(argv, what="pg_dump")
                else:
                    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as out:
                        if external:
                            self.runner.pipeline([
                                pg_archive.pg_dump_argv(self.tools["pg_dump"], db, p["format"], None, native,
                                                        1, snapshot),
                                pg_archive.compress_argv(self.tools[external], external, p["compression_level"]),
                            ], stdout=out, what="backup of %s" % db)
                            out.flush()
                            os.fsync(out.fileno())
                        else:
                            out.close()
                            argv = pg_archive.pg_dump_argv(self.tools["pg_dump"], db, p["format"], partial,
                                                           native, 1, snapshot)
                            self.runner.run(argv, what="pg_dump")
            except CommandError as exc:
                self.fail("backup of %s failed, nothing was kept (the partial file is removed): %s"
                          % (db, explain(exc)), **self._error_detail(exc))
            except OSError as exc:
                self.fail("cannot write %s: %s" % (partial, exc))
        finally:
            snap.rollback()
            snap.close()
        return dict(
            tool=pg_manifest.TOOL, manifest_version=pg_manifest.MANIFEST_VERSION, db=db,
            file=os.path.basename(path), format=p["format"], compression=p["compression"],
            compression_level=p["compression_level"], external_compressor=external,
            created_at=pg_manifest.iso(created), label=p.get("label"), verify=verify,
            schema_version=version, schema_version_source=source, table_count=len(tables),
            row_counts=counts, server_version_num=int(server_num), snapshot=snapshot,
        )

    def _error_detail(self, exc):
        return {key: value for key, value in exc.as_result().items() if key != "msg"}

    def _verify(self, db, partial, verify, external, manifest, conn):
        if verify in ("none", "checksum"):
            return
        fmt = self.params["format"]
        try:
            pg_archive.read_check(self.runner, self.tools, partial, fmt, external)
        except CommandError as exc:
            self.fail("backup of %s failed its read check, nothing was kept: %s" % (db, exc.msg),
                      **self._error_detail(exc))
        except ValueError as exc:
            self.fail("backup of %s failed its read check, nothing was kept: %s" % (db, exc))
        if verify != "restore":
            return
        from psycopg import sql

        stamp = manifest["created_at"].replace("-", "").replace(":", "").replace("T", "_").rstrip("Z")
        self.scratch_db = pg_dbstate.derived_db_name(db, "__verify_%s" % stamp)
        conn.execute(sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(self.scratch_db)))
        try:
            pg_archive.restore_archive(self.runner, self.tools, self.scratch_db, partial, fmt, external,
                                       jobs=self.params["jobs"], portable=True)
        except CommandError as exc:
            self.fail("backup of %s could not be restored into the scratch database %s, nothing was kept: %s"
                      % (db, self.scratch_db, exc.msg), **self._error_detail(exc))
        scratch = connect(self.module, self.params, self.scratch_db)
        try:
            restored = pg_dbstate.row_counts(scratch)
        finally:
            scratch.close()
        problems = pg_dbstate.compare_counts(manifest["row_counts"], restored)
        if problems:
            self.fail("backup of %s restored with different row counts than its snapshot, nothing was kept: %s"
                      % (db, "; ".join(problems)))
        manifest["verified_restore_into"] = self.scratch_db
        self._drop_scratch(conn)

    def _drop_scratch(self, conn):
        from psycopg import sql

        name, self.scratch_db = self.scratch_db, None
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))

    def _publish(self, partial, path):
        """Rename `.partial` to the real name without ever replacing something already there."""
        if os.path.lexists(path):
            self.fail("%s appeared while the backup ran; not overwriting it (the new backup is discarded)" % path)
        if os.path.isdir(partial):
            os.rename(partial, path)
        else:
            os.link(partial, path)  # fails if path exists: no silent overwrite
            os.unlink(partial)

    def _set_attributes(self, path, manifest_file=False):
        """mode/owner/group on the backup (a directory gets x where it has r), manifest always 0600."""
        mode = 0o600 if manifest_file else self.mode
        if os.path.isdir(path):
            for root, _dirs, files in os.walk(path):
                for name in files:
                    self._apply(os.path.join(root, name), mode)
            self._apply(path, mode | ((mode & 0o444) >> 2))
            return
        self._apply(path, mode)

    def _apply(self, path, mode):
        self.module.set_mode_if_different(path, mode, False)
        if self.params.get("owner"):
            self.module.set_owner_if_different(path, self.params["owner"], False)
        if self.params.get("group"):
            self.module.set_group_if_different(path, self.params["group"], False)


def parse_mode(value):
    """The backup's mode as int, from an octal string such as '0600'; raises ValueError naming it.

    Backups hold every row of the database, so by policy only their owner may read them: a mode with
    group or other bits, or setuid/setgid/sticky bits, is refused. A number is refused too: YAML reads
    `mode: 644` as the integer 644 (0o1204), never what was meant; the mode must be a quoted string.
    """
    policy = "backups are owner-only by policy: use mode '0600' or '0400'"
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError("mode=%r is a number, not an octal string: YAML reads an unquoted mode as a decimal "
                         "integer (%d is 0o%o as a mode); quote it; %s" % (value, value, value, policy)
                         if isinstance(value, int) and not isinstance(value, bool) else
                         "mode=%r is not an octal file mode such as '0600'" % (value,))
    text = value.strip()
    try:
        mode = int(text[2:] if text.lower().startswith("0o") else text, 8)
    except ValueError:
        raise ValueError("mode=%r is not an octal file mode such as '0600'" % (value,)) from None
    if not 0 <= mode <= 0o7777:
        raise ValueError("mode=%r is not an octal file mode such as '0600'" % (value,))
    if mode & 0o7000:
        raise ValueError("mode=%r has setuid, setgid or sticky bits; %s" % (value, policy))
    if mode & 0o077:
        raise ValueError("mode=%r lets group or others at the backup; %s" % (value, policy))
    if not mode & 0o400:
        raise ValueError("mode=%r does not let the owner read the backup; %s" % (value, policy))
    return mode
