# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup names, the JSON manifest beside each backup, checksums and retention.

A backup is only ever recognised through its manifest `<backup>.json` (written by pg_backup,
tool = maestro.deploy.pg_backup): retention and `src: latest` never judge a file by its name
alone, so nothing that this module did not make is pruned or restored.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import hashlib
import json
import os
import shutil
import stat
import tempfile

TOOL = "maestro.deploy.pg_backup"
MANIFEST_VERSION = 1
PARTIAL_SUFFIX = ".partial"
TIMESTAMP_FORMAT = "%Y%m%d_%H%M%S"
UNVERIFIED = "none"

# (format, compression) -> extension. gzip is pg_dump's own compression for custom/directory,
# so their archives keep the plain extension; an external compressor adds its own suffix.
FORMAT_EXT = {"custom": ".dump", "directory": ".dir", "plain": ".sql"}
COMPRESSOR_EXT = {"gzip": ".gz", "zstd": ".zst", "lz4": ".lz4"}


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text):
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=datetime.timezone.utc)


def extension(fmt, compression, external):
    """File extension of a backup; `external` says the compression is a separate compressor process."""
    ext = FORMAT_EXT[fmt]
    if external and compression in COMPRESSOR_EXT:
        ext += COMPRESSOR_EXT[compression]
    return ext


def backup_name(db, moment, ext, taken=()):
    """`<db>_<YYYYmmdd_HHMMSS><ext>` (the manual procedure's name); `_2`, `_3`... when that second is taken."""
    stem = "%s_%s" % (db, moment.strftime(TIMESTAMP_FORMAT))
    name, n = stem + ext, 1
    while name in taken:
        n += 1
        name = "%s_%d%s" % (stem, n, ext)
    return name


def names_taken(dest_dir):
    """Every name in dest_dir that a new backup must not collide with (including manifests/partials)."""
    taken = set()
    for entry in os.listdir(dest_dir):
        taken.add(entry)
        for suffix in (".json", PARTIAL_SUFFIX, ".json" + PARTIAL_SUFFIX):
            if entry.endswith(suffix):
                taken.add(entry[: -len(suffix)])
    return taken


def manifest_path(backup_path):
    return backup_path + ".json"


def sha256_of(path, chunk=1 << 20):
    """sha256 of a file, or for a directory-format backup a digest over `<sha256>  <relpath>` lines."""
    if os.path.isdir(path):
        lines = []
        for root, dirs, files in os.walk(path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                lines.append("%s  %s\n" % (sha256_of(full, chunk), os.path.relpath(full, path)))
        return hashlib.sha256("".join(sorted(lines)).encode("utf-8")).hexdigest()
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def size_of(path):
    if os.path.isdir(path):
        return sum(os.path.getsize(os.path.join(root, f)) for root, _dirs, files in os.walk(path) for f in files)
    return os.path.getsize(path)


def write_manifest(path, data, mode=0o600):
    """Write JSON to a new temporary file beside `path`, fsync, then rename: complete or absent.

    The temporary file is created by mkstemp (O_CREAT|O_EXCL|O_NOFOLLOW, mode 0600, a random name),
    so nothing planted in the directory under a predictable name is followed or overwritten.
    """
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), suffix=PARTIAL_SUFFIX, dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            if mode != 0o600:
                os.fchmod(fh.fileno(), mode)
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.rename(tmp, path)
    except Exception:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        raise


def load_manifest(path):
    """The manifest dict of the backup beside it; raises ValueError naming the file and what is wrong.

    The file is untrusted input: it is read without following a symbolic link, must be a JSON
    object written by pg_backup and must describe the file it sits beside, by a bare name.
    """
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        if os.path.islink(path):
            raise ValueError("manifest %s is a symbolic link: refusing to follow it" % path) from None
        raise ValueError("cannot read manifest %s: %s" % (path, exc.strerror or exc)) from None
    try:
        with os.fdopen(fd) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise ValueError("manifest %s is not a regular file" % path)
            data = json.load(fh)
    except ValueError as exc:
        if str(exc).startswith("manifest "):
            raise
        raise ValueError("manifest %s is not valid JSON (%s)" % (path, exc)) from None
    if not isinstance(data, dict):
        raise ValueError("manifest %s is not a JSON object (found %s)" % (path, type(data).__name__))
    if data.get("tool") != TOOL:
        raise ValueError("manifest %s was not written by pg_backup (tool=%r, expected %r)"
                         % (path, data.get("tool"), TOOL))
    name = data.get("file")
    # The manifest must describe the file it sits beside, by a bare name (no path tricks).
    if not isinstance(name, str) or "/" in name or name in ("", ".", "..") \
            or os.path.basename(path) != name + ".json":
        raise ValueError("manifest %s describes file=%r, not the file beside it" % (path, name))
    try:
        data["_created"] = parse_iso(data["created_at"])
    except (KeyError, TypeError, ValueError):
        raise ValueError("manifest %s has no valid created_at (%r)" % (path, data.get("created_at"))) from None
    data["_manifest_path"] = path
    data["_path"] = os.path.join(os.path.dirname(path), name)
    return data


def read_manifest(path):
    """The manifest dict, or None when the file is not a readable manifest of ours."""
    try:
        return load_manifest(path)
    except ValueError:
        return None


def trust_problem(path, owners, what="backup"):
    """Why `path` (not followed if a link) is not to be trusted, or None.

    Trusted: a regular file or directory, not a symbolic link, owned by one of the uids in
    `owners` and not writable by group or others (so nobody else can change it between the
    checks and its use). A directory is checked with everything in it.
    """
    try:
        st = os.lstat(path)
    except OSError as exc:
        return "%s %s cannot be examined: %s" % (what, path, exc.strerror or exc)
    if stat.S_ISLNK(st.st_mode):
        return "%s %s is a symbolic link: only files pg_backup wrote are restored" % (what, path)
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
        return "%s %s is not a regular file or directory" % (what, path)
    if st.st_uid not in owners:
        return "%s %s is owned by uid %d, not by %s" % (
            what, path, st.st_uid, " or ".join("uid %d" % uid for uid in sorted(owners)))
    if st.st_mode & 0o022:
        return "%s %s is writable by group or others (mode %04o): anyone in them could change it" % (
            what, path, stat.S_IMODE(st.st_mode))
    if stat.S_ISDIR(st.st_mode) and what != "backup directory":
        for entry in sorted(os.listdir(path)):
            problem = trust_problem(os.path.join(path, entry), owners, what)
            if problem:
                return problem
    return None


def find_backups(directory, db):
    """Backups of `db` made by pg_backup in `directory`, newest first (manifest and backup both present)."""
    found = []
    try:
        entries = os.listdir(directory)
    except OSError:
        return found
    for entry in entries:
        if not entry.endswith(".json"):
            continue
        data = read_manifest(os.path.join(directory, entry))
        if data and data.get("db") == db and os.path.exists(data["_path"]):
            found.append(data)
    found.sort(key=lambda m: (m["_created"], m["file"]), reverse=True)
    return found


def is_verified(data):
    return bool(data.get("verify")) and data.get("verify") != UNVERIFIED


def latest_verified(directory, db, label=None):
    """The newest verified backup of db (with that label, when given), or None."""
    for data in find_backups(directory, db):
        if is_verified(data) and (label is None or data.get("label") == label):
            return data
    return None


def select_prunable(backups, keep_last=None, max_age_days=None, now=None, exclude=()):
    """Which of `backups` (newest first) retention removes.

    A backup goes when it is not among the newest `keep_last` or is older than `max_age_days`;
    paths in `exclude` (the backup just made) never go. With neither option set nothing goes.
    The newest-first ranking counts excluded backups, so keep_last=3 keeps the new one and two more.
    """
    now = now or utcnow()
    doomed = []
    for rank, data in enumerate(backups):
        if data["_path"] in exclude:
            continue
        too_many = keep_last is not None and rank >= keep_last
        too_old = max_age_days is not None and now - data["_created"] > datetime.timedelta(days=max_age_days)
        if too_many or too_old:
            doomed.append(data)
    return doomed


def remove_backup(data):
    """Delete one backup (file or directory) and then its manifest."""
    path = data["_path"]
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path)
    elif os.path.exists(path):
        os.unlink(path)
    os.unlink(data["_manifest_path"])


def public(data):
    """A manifest without the private `_` keys added while reading it."""
    return dict((k, v) for k, v in data.items() if not k.startswith("_"))
