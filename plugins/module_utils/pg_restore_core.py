# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pg_restore does: check the backup, restore beside the live database, then swap names.

The manual procedure drops the live database before restoring; a bad backup then destroys the
only good copy. Here the backup's sha256 must match its manifest, the archive is restored into
`<db>__restore_<ts>` and checked (tables, row counts recorded by the backup), and only then, in
one transaction, the live database is renamed to `<db>__pre_restore_<ts>` and the restored one
to `<db>`. Until that instant the live database is untouched.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import time

from ansible_collections.maestro.deploy.plugins.module_utils import pg_archive, pg_dbstate, pg_manifest
from ansible_collections.maestro.deploy.plugins.module_utils.pg_connection import (
    check_db_name,
    connect,
    connection_argument_spec,
    libpq_env,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner

LIVE_DB = """
SELECT pg_get_userbyid(d.datdba), pg_encoding_to_char(d.encoding), d.datcollate, d.datctype,
       d.datlocprovider, d.daticulocale
FROM pg_database d WHERE d.datname = %s
"""
TERMINATE = ("SELECT count(pg_terminate_backend(pid, 5000)) FROM pg_stat_activity "
             "WHERE datname = %s AND pid <> pg_backend_pid() AND backend_type = 'client backend'")
SWAP_ATTEMPTS = 10


def argument_spec():
    return connection_argument_spec(
        db=dict(type="str", required=True),
        src=dict(type="str", required=True),
        src_dir=dict(type="path", required=True),
        label=dict(type="str"),
        backup_owner=dict(type="str"),
        mode=dict(type="str", default="swap", choices=["swap", "replace"]),
        jobs=dict(type="int", default=1),
        keep_previous=dict(type="bool", default=True),
        terminate_connections=dict(type="bool", default=True),
        maintenance_db=dict(type="str", default="postgres"),
        bin_dir=dict(type="path"),
    )


def stamp(moment):
    return moment.strftime(pg_manifest.TIMESTAMP_FORMAT)


def default_owners(backup_owner=None):
    """uids whose backups are trusted: whoever runs the restore, root, and pg_backup's `owner`."""
    owners = {0, os.geteuid()}
    if backup_owner not in (None, ""):
        import pwd

        try:
            owners.add(int(backup_owner) if str(backup_owner).isdigit() else pwd.getpwnam(backup_owner).pw_uid)
        except KeyError:
            raise ValueError("backup_owner=%r is not a user on this host" % (backup_owner,)) from None
    return owners


def resolve_source(src, src_dir, db, owners=None, label=None):
    """(path, manifest) of the backup to restore, or raise ValueError saying why there is none.

    Backups and manifests are untrusted input (a history file names them, and whoever can write
    there chooses): only a backup directly inside src_dir (by real path, no symbolic links, no
    '..'), owned by one of `owners` and not writable by group or others, with a manifest of ours
    for the same database (and label, when given), is ever read.
    """
    owners = default_owners() if owners is None else set(owners)
    if not src_dir:
        raise ValueError("src_dir is required: the directory holding the backups of %s (only backups in it "
                         "are restored)" % db)
    if not os.path.isdir(src_dir):
        raise ValueError("src_dir %s does not exist or is not a directory" % src_dir)
    real_dir = os.path.realpath(src_dir)
    problem = pg_manifest.trust_problem(real_dir, owners, "backup directory")
    if problem:
        raise ValueError(problem + "; refusing to restore from it")
    if src == "latest":
        data = pg_manifest.latest_verified(real_dir, db, label)
        if not data:
            raise ValueError("no verified backup of %s%s made by pg_backup in %s"
                             % (db, "" if label is None else " labelled %r" % label, src_dir))
        path = data["_path"]
    else:
        if ".." in src.split(os.sep):
            raise ValueError("src %s contains '..': name a backup inside %s" % (src, src_dir))
        path = src if os.path.isabs(src) else os.path.join(src_dir, src)
        parent = os.path.realpath(os.path.dirname(path))
        if parent != real_dir:
            raise ValueError("src %s is not in the backup directory %s (only backups pg_backup wrote there are "
                             "restored); nothing was touched" % (src, src_dir))
        path = os.path.join(real_dir, os.path.basename(path))
        if not os.path.lexists(path):
            raise ValueError("src %s does not exist" % src)
    problem = pg_manifest.trust_problem(path, owners)
    if problem:
        raise ValueError(problem + "; refusing to restore it, nothing was touched")
    manifest = pg_manifest.manifest_path(path)
    if not os.path.lexists(manifest):
        raise ValueError("src %s has no manifest %s written by pg_backup: refusing an unverified backup"
                         % (src, manifest))
    problem = pg_manifest.trust_problem(manifest, owners, "manifest")
    if problem:
        raise ValueError(problem + "; refusing to restore %s, nothing was touched" % path)
    data = pg_manifest.load_manifest(manifest)
    if data.get("db") != db:
        raise ValueError("%s is a backup of %s, not of %s: refusing to restore it into %s"
                         % (path, data.get("db"), db, db))
    if label is not None and data.get("label") != label:
        raise ValueError("%s has label %r, not %r (the backup taken for that release): refusing to restore it"
                         % (path, data.get("label"), label))
    return path, data


def check_manifest(path, data):
    """Refuse what cannot be restored safely, unverified backups and those whose checksum does not match."""
    if not pg_manifest.is_verified(data):
        raise ValueError("backup %s is unverified (made with verify=%s): refusing to restore it"
                         % (path, data.get("verify")))
    fmt = data.get("format")
    if fmt not in pg_archive.FORMATS:
        raise ValueError("backup %s has an unknown format %r in its manifest" % (path, fmt))
    compression, external = data.get("compression"), data.get("external_compressor")
    if external is not None:
        if external not in pg_archive.COMPRESSORS:
            raise ValueError("backup %s: its manifest names external_compressor=%r, which is not one of %s; "
                             "refusing to restore it (the program that reads a backup is chosen by the "
                             "collection, never by a manifest), nothing was touched"
                             % (path, external, ", ".join(pg_archive.COMPRESSORS)))
        if external != compression:
            raise ValueError("backup %s: its manifest's external_compressor=%r does not match compression=%r; "
                             "refusing to restore it, nothing was touched" % (path, external, compression))
    if fmt == "plain":
        raise ValueError("backup %s is a plain SQL dump: pg_restore does not run plain dumps, because psql "
                         "executes any meta-command in the file (\\! runs a shell command). Nothing was "
                         "touched. Read the dump, restore it by hand with psql into a scratch database, and "
                         "take a pg_backup of that with format=custom (the default) to restore from; make "
                         "the backups meant for restores with format=custom or directory." % path)
    actual = pg_manifest.sha256_of(path)
    if actual != data.get("sha256"):
        raise ValueError("backup %s is damaged: its sha256 is %s but the manifest records %s; refusing to restore"
                         % (path, actual, data.get("sha256")))
    return actual


def create_database_sql(name, live):
    """CREATE DATABASE for the restore target, with the live database's owner, encoding and locale."""
    from psycopg import sql

    parts = [sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(name))]
    if live:
        owner, encoding, collate, ctype, provider, icu = live
        parts.append(sql.SQL("OWNER {} ENCODING {} LC_COLLATE {} LC_CTYPE {}").format(
            sql.Identifier(owner), sql.Literal(encoding), sql.Literal(collate), sql.Literal(ctype)))
        if provider == "i" and icu:
            parts.append(sql.SQL("LOCALE_PROVIDER icu ICU_LOCALE {}").format(sql.Literal(icu)))
    return sql.SQL(" ").join(parts)


class RestoreRun:
    """One invocation of pg_restore."""

    def __init__(self, module):
        self.module = module
        self.params = module.params
        self.password = self.params.get("password")
        self.runner = Runner(module, environ=libpq_env(self.params), secrets=[self.password])
        self.tools = pg_archive.Tools(self.runner, self.params.get("bin_dir"))
        self.result = dict(changed=False)

    def fail(self, msg, **extra):
        """The runner's one failure path: msg, stdout and stderr masked, the commands that ran."""
        self.runner.fail(msg, **extra)

    def run(self):
        p = self.params
        db = check_db_name(self.module, p["db"])
        check_db_name(self.module, p["maintenance_db"], "maintenance_db")
        if p["jobs"] < 1:
            self.fail("jobs=%s must be at least 1" % p["jobs"])
        if db == p["maintenance_db"]:
            self.fail("db=%s is the maintenance_db; restore into another database" % db)
        started = time.time()
        try:
            owners = default_owners(p.get("backup_owner"))
            path, data = resolve_source(p["src"], p["src_dir"], db, owners, p.get("label"))
            sha = check_manifest(path, data)
            fmt, external = data["format"], data.get("external_compressor")
            if external:
                self.tools[external]  # noqa: B018 - fail before touching anything when the compressor is missing
            self.tools["pg_restore"]  # noqa: B018
        except ValueError as exc:
            self.fail(str(exc))

        moment = pg_manifest.utcnow()
        restore_db = pg_dbstate.derived_db_name(db, "__restore_%s" % stamp(moment))
        pre_db = pg_dbstate.derived_db_name(db, "__pre_restore_%s" % stamp(moment))
        conn = connect(self.module, p, p["maintenance_db"])
        try:
            live = conn.execute(LIVE_DB, (db,)).fetchone()
            self.result.update(db=db, restored_from=path, sha256=sha, mode=p["mode"], format=fmt,
                               backup_created_at=data.get("created_at"), backup_label=data.get("label"))
            if p["mode"] == "swap":
                renames = ([{"from": db, "to": pre_db}] if live else []) + [{"from": restore_db, "to": db}]
                previous = pre_db if live and p["keep_previous"] else None
            else:
                renames, previous = [], None
            self.result.update(renames=renames, previous_db=previous)
            if self.module.check_mode:
                self.result.update(changed=True, schema_version=data.get("schema_version"),
                                   schema_version_source=data.get("schema_version_source"),
                                   duration_s=round(time.time() - started, 3))
                return self.result
            if p["mode"] == "swap":
                self._swap(conn, db, restore_db, pre_db, live, path, data)
            else:
                self._replace(conn, db, live, path, data)
        finally:
            conn.close()
        self.result.update(changed=True, duration_s=round(time.time() - started, 3), commands=self.runner.history)
        return self.result

    # -- the two modes ---------------------------------------------------------------------------
    def _swap(self, conn, db, restore_db, pre_db, live, path, data):
        from psycopg import sql

        if conn.execute("SELECT 1 FROM pg_database WHERE datname IN (%s, %s)", (restore_db, pre_db)).fetchone():
            self.fail("%s or %s already exists; not touching it (retry in a second)" % (restore_db, pre_db))
        conn.execute(create_database_sql(restore_db, live))
        swapped = False
        try:
            self._restore_and_check(restore_db, path, data)
            if live:
                self._rename_live(conn, db, restore_db, pre_db)
            else:
                conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                    sql.Identifier(restore_db), sql.Identifier(db)))
            swapped = True
        finally:
            if not swapped:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(restore_db)))
        if live and not self.params["keep_previous"]:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(pre_db)))

    def _rename_live(self, conn, db, restore_db, pre_db):
        """Block new connections, end the open ones, rename both databases in one transaction."""
        import psycopg
        from psycopg import sql

        terminate = self.params["terminate_connections"]
        if terminate:
            conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS false").format(sql.Identifier(db)))
        renamed = False
        try:
            for attempt in range(SWAP_ATTEMPTS):
                try:
                    if terminate:
                        conn.execute(TERMINATE, (db,))
                    with conn.transaction():
                        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(db), sql.Identifier(pre_db)))
                        conn.execute(sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                            sql.Identifier(restore_db), sql.Identifier(db)))
                    renamed = True
                    break
                except psycopg.errors.ObjectInUse as exc:
                    if not terminate or attempt == SWAP_ATTEMPTS - 1:
                        self.fail("cannot rename %s: %s; the restored copy is discarded and %s is unchanged%s"
                                  % (db, str(exc).strip(), db,
                                     "" if terminate else " (terminate_connections=false)"))
                    time.sleep(0.2)
                except psycopg.Error as exc:  # not the owner, no right to end a session, ...
                    self.fail("cannot swap %s with its restored copy: %s; the restored copy is discarded and %s is "
                              "unchanged" % (db, str(exc).strip(), db))
        finally:
            target = pre_db if renamed else db
            if terminate:
                conn.execute(sql.SQL("ALTER DATABASE {} WITH ALLOW_CONNECTIONS true").format(sql.Identifier(target)))

    def _replace(self, conn, db, live, path, data):
        """The manual procedure (drop, create, restore), after reading the whole archive back first."""
        from psycopg import sql

        fmt, external = data["format"], data.get("external_compressor")
        try:
            pg_archive.read_check(self.runner, self.tools, path, fmt, external)
        except (CommandError, ValueError) as exc:
            self.fail("backup %s failed its read check; %s was not touched: %s"
                      % (path, db, getattr(exc, "msg", exc)))
        if live:
            force = sql.SQL(" WITH (FORCE)") if self.params["terminate_connections"] else sql.SQL("")
            try:
                conn.execute(sql.SQL("DROP DATABASE {}{}").format(sql.Identifier(db), force))
            except Exception as exc:  # psycopg.Error: still in use, not the owner...
                self.fail("cannot drop %s for mode=replace: %s" % (db, str(exc).strip()))
        conn.execute(create_database_sql(db, live))
        self._restore_and_check(db, path, data, replaced=True)

    # -- restore and check -----------------------------------------------------------------------
    def _restore_and_check(self, target, path, data, replaced=False):
        fmt, external = data["format"], data.get("external_compressor")
        lost = " (mode=replace: the old database is already gone)" if replaced else ""
        try:
            pg_archive.restore_archive(self.runner, self.tools, target, path, fmt, external, jobs=self.params["jobs"])
        except CommandError as exc:
            detail = {key: value for key, value in exc.as_result().items() if key != "msg"}
            self.fail("restoring %s into %s failed%s: %s" % (path, target, lost, exc.msg), **detail)
        restored = connect(self.module, self.params, target)
        try:
            tables = pg_dbstate.user_tables(restored)
            expected_tables = data.get("table_count")
            if expected_tables is not None and len(tables) != expected_tables:
                self.fail("restored %s has %d tables, the backup recorded %d%s"
                          % (target, len(tables), expected_tables, lost))
            if data.get("row_counts") is not None:
                problems = pg_dbstate.compare_counts(data["row_counts"], pg_dbstate.row_counts(restored))
                if problems:
                    self.fail("restored %s differs from the backup's snapshot%s: %s"
                              % (target, lost, "; ".join(problems)))
            version, source = pg_dbstate.schema_version(restored)
        finally:
            restored.close()
        self.result.update(schema_version=version, schema_version_source=source, restored_tables=len(tables))
