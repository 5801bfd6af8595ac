# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The exact command lines for writing, reading back and restoring archives.

Pure functions returning argv lists (unit-tested as data), plus the few helpers that run them
for the read check and for restores. pg_dump 15 compresses custom/directory archives with zlib
only; zstd and lz4 come from an external compressor process (pg_dump -Z0 | zstd), and
pg_dump 16+ does them itself. A compressed custom archive is decompressed into pg_restore's
stdin, or into a temporary file when a parallel restore (-j) needs a seekable one.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import shutil
import tempfile


FORMATS = ("custom", "directory", "plain")
COMPRESSIONS = ("gzip", "zstd", "lz4", "none")
# The only programs this collection runs for archives, by the name a manifest or an option may use.
# A manifest names a compression; the program comes from here (found with get_bin_path), never from
# the manifest's text.
COMPRESSORS = ("gzip", "zstd", "lz4")
CLIENT_TOOLS = ("pg_dump", "pg_restore", "psql")
LEVELS = {"gzip": (1, 9), "zstd": (1, 19), "lz4": (1, 12)}
PLAIN_TRAILER = b"-- PostgreSQL database dump complete"


class PlanError(ValueError):
    """An option combination that cannot work; the message names the values."""


def compression_plan(fmt, compression, level, pg_dump_major):
    """How to compress: (native, external) where native is pg_dump's --compress value or None
    (pg_dump's default) and external the compressor to pipe through or None."""
    if level is not None:
        if compression == "none":
            raise PlanError("compression_level=%s makes no sense with compression=none" % level)
        low, high = LEVELS[compression]
        if not low <= level <= high:
            raise PlanError("compression_level=%s is out of range for %s (%d-%d)" % (level, compression, low, high))
    if fmt == "plain":
        return None, (None if compression == "none" else compression)
    if compression == "none":
        return "0", None
    if compression == "gzip":
        return (str(level) if level is not None else None), None
    if pg_dump_major >= 16:
        return (compression if level is None else "%s:%d" % (compression, level)), None
    if fmt == "custom":
        return "0", compression
    raise PlanError("format=directory with compression=%s needs pg_dump 16 or later (this pg_dump is %s); "
                    "use compression=gzip, or format=custom" % (compression, pg_dump_major))


def pg_dump_argv(pg_dump, db, fmt, out_path=None, native=None, jobs=1, snapshot=None):
    """pg_dump's argv; without out_path the archive goes to stdout (into a compressor)."""
    argv = [pg_dump, "--format=%s" % fmt, "--no-password"]
    if out_path:
        argv.append("--file=%s" % out_path)
    if native is not None:
        argv.append("--compress=%s" % native)
    if fmt == "directory" and jobs and jobs > 1:
        argv.append("--jobs=%d" % jobs)
    if snapshot:
        argv.append("--snapshot=%s" % snapshot)
    argv.append("--dbname=%s" % db)
    return argv


def compress_argv(tool, compression, level=None):
    argv = [tool, "-c"]
    if compression in ("zstd", "lz4"):
        argv.insert(1, "-q")
    if compression == "zstd":
        argv.append("-T0")
    if level is not None:
        argv.append("-%d" % level)
    return argv


def decompress_argv(tool, compression, path):
    argv = [tool, "-d", "-c", path]
    if compression in ("zstd", "lz4"):
        argv.insert(1, "-q")
    return argv


def test_argv(tool, compression, path):
    """The compressor's own integrity test: reads and checks the whole stream."""
    argv = [tool, "-t", path]
    if compression in ("zstd", "lz4"):
        argv.insert(1, "-q")
    return argv


def pg_restore_read_argv(pg_restore, path=None):
    """Read the whole archive and throw the SQL away (pg_restore --list alone misses a truncated file)."""
    argv = [pg_restore, "--file=/dev/null"]
    if path:
        argv.append(path)
    return argv


def pg_restore_argv(pg_restore, db, path=None, jobs=1, portable=False):
    """Restore into db, stop at the first error; one transaction unless parallel."""
    argv = [pg_restore, "--dbname=%s" % db, "--exit-on-error", "--no-password"]
    if jobs and jobs > 1:
        argv.append("--jobs=%d" % jobs)
    else:
        argv.append("--single-transaction")
    if portable:
        argv += ["--no-owner", "--no-privileges"]
    if path:
        argv.append(path)
    return argv


def psql_restore_argv(psql, db, path=None):
    """Run a plain SQL dump: stop at the first error, all or nothing (one transaction)."""
    argv = [psql, "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
            "--single-transaction", "--dbname=%s" % db]
    if path:
        argv.append("--file=%s" % path)
    return argv


class Tools:
    """Resolved paths of the client tools, found lazily (only what a run needs must exist)."""

    def __init__(self, runner, bin_dir=None):
        self.runner = runner
        self.bin_dir = bin_dir
        self._paths = {}

    def __getitem__(self, name):
        if name not in CLIENT_TOOLS and name not in COMPRESSORS:
            raise ValueError("%r is not a program this collection runs (only %s)"
                             % (name, ", ".join(CLIENT_TOOLS + COMPRESSORS)))
        if name not in self._paths:
            if name in CLIENT_TOOLS and self.bin_dir:
                self._paths[name] = self.runner.bin(name, explicit=os.path.join(self.bin_dir, name))
            else:
                found = self.runner.module.get_bin_path(name, required=False)
                if not found:
                    self.runner.module.fail_json(
                        msg="%s is needed for this backup but was not found in PATH: install it or choose "
                        "another compression" % name)
                self._paths[name] = found
        return self._paths[name]


def read_check(runner, tools, path, fmt, external):
    """Read the complete archive back; raises CommandError or ValueError when it is damaged."""
    if fmt == "plain":
        if external:
            runner.run(test_argv(tools[external], external, path), what="%s integrity test" % external)
            return
        with open(path, "rb") as fh:
            fh.seek(max(0, os.path.getsize(path) - 4096))
            if PLAIN_TRAILER not in fh.read():
                raise ValueError("%s does not end with pg_dump's completion trailer: the dump is truncated" % path)
        return
    if external:
        runner.pipeline([decompress_argv(tools[external], external, path),
                         pg_restore_read_argv(tools["pg_restore"])], what="read check")
    else:
        runner.run(pg_restore_read_argv(tools["pg_restore"], path), what="read check (pg_restore)")


def restore_archive(runner, tools, db, path, fmt, external, jobs=1, portable=False):
    """Restore an archive made by pg_backup into the existing database `db`."""
    if fmt == "plain":
        if external:
            runner.pipeline([decompress_argv(tools[external], external, path),
                             psql_restore_argv(tools["psql"], db)], what="restore")
        else:
            runner.run(psql_restore_argv(tools["psql"], db, path), what="restore (psql)")
        return
    if not external:
        runner.run(pg_restore_argv(tools["pg_restore"], db, path, jobs, portable), what="restore (pg_restore)")
        return
    if jobs and jobs > 1:
        # pg_restore -j seeks in the archive: give it an uncompressed copy beside the backup.
        scratch = tempfile.mkdtemp(prefix=".restore-", dir=os.path.dirname(os.path.abspath(path)))
        try:
            plain_copy = os.path.join(scratch, "archive.dump")
            fd = os.open(plain_copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                runner.pipeline([decompress_argv(tools[external], external, path)], stdout=out,
                                what="decompress")
            runner.run(pg_restore_argv(tools["pg_restore"], db, plain_copy, jobs, portable),
                       what="restore (pg_restore)")
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return
    runner.pipeline([decompress_argv(tools[external], external, path),
                     pg_restore_argv(tools["pg_restore"], db, None, jobs, portable)], what="restore")
