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
    """Write JSON to `<path>.partial` (0600), fsync, then rename: a manifest is complete or absent."""
    tmp = path + PARTIAL_SUFFIX
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_manifest(path):
    """The manifest dict, or None when the file is not a readable manifest of ours."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("tool") != TOOL:
        return None
    name = data.get("file")
    # The manifest must describe the file it sits beside, by a bare name (no path tricks).
    if not isinstance(name, str) or "/" in name or name in ("", ".", "..") \
            or os.path.basename(path) != name + ".json":
        return None
    try:
        data["_created"] = parse_iso(data["created_at"])
    except (KeyError, TypeError, ValueError):
        return None
    data["_manifest_path"] = path
    data["_path"] = os.path.join(os.path.dirname(path), name)
    return data


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


def latest_verified(directory, db):
    for data in find_backups(directory, db):
        if is_verified(data):
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
