# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The release history of an app host: what was deployed, how it went, what to roll back to.

The history file (JSON, `<app_root>/history.json`) is the only source of rollback targets:
never directory mtimes. A release whose deploy failed is `failed`: never a target and it does
not count toward keep_releases. The release that served last before the current one is never
pruned, nor one whose backup is still on disk.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import fcntl
import json
import os
import re
import stat
import tempfile
import time

RELEASE_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
SERVED = ("success", "rolled_back")  # releases that served successfully at some point


class HistoryError(Exception):
    pass


def current_target(app_root):
    """(name, resolved target) of the app root's `current` link; (None, None) when it is not a link.
    The name is the release id only if the target is in releases/: callers that trust it check."""
    link = os.path.join(app_root, "current")
    if not os.path.islink(link):
        return None, None
    target = os.path.realpath(link)
    return os.path.basename(target.rstrip("/")), target


def check_release_id(value, option="release_id"):
    if not isinstance(value, str) or not RELEASE_ID_RE.fullmatch(value) or ".." in value:
        raise HistoryError("%s=%r is not a valid release id: letters, digits, '.', '_' and '-' only, "
                           "no path separators or '..'" % (option, value))
    return value


def empty(app=None):
    return {"app": app, "releases": [], "events": []}


def load(path):
    """The history in `path` (empty when there is none); raises HistoryError naming the file and the fault.

    The file is untrusted input (the app user may be able to write it): it is read without
    following a symbolic link and its shape is checked before anything uses it.
    """
    advice = (": nothing was changed; fix it or move it aside (a new history then starts, and the releases "
              "in the old one are no longer rollback targets)")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return empty()
    except OSError as exc:
        if os.path.islink(path):
            raise HistoryError("release history %s is a symbolic link: refusing to follow it%s"
                               % (path, advice)) from None
        raise HistoryError("cannot read release history %s: %s%s" % (path, exc.strerror or exc, advice)) from None
    try:
        with os.fdopen(fd) as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
                raise HistoryError("cannot read release history %s: not a regular file%s" % (path, advice))
            data = json.load(fh)
    except ValueError as exc:
        raise HistoryError("release history %s is not valid JSON (%s)%s" % (path, exc, advice)) from None
    except OSError as exc:
        raise HistoryError("cannot read release history %s: %s%s" % (path, exc.strerror or exc, advice)) from None
    problem = shape_problem(data)
    if problem:
        raise HistoryError("release history %s %s%s" % (path, problem, advice))
    data.setdefault("releases", [])
    data.setdefault("events", [])
    return data


def shape_problem(data):
    """What is wrong with a parsed history (as 'is ...' / 'has ...' words), or None."""
    if not isinstance(data, dict):
        return "is not a JSON object (found a %s)" % type(data).__name__
    releases = data.get("releases", [])
    if not isinstance(releases, list):
        return "is malformed: 'releases' is not a list"
    if not isinstance(data.get("events", []), list):
        return "is malformed: 'events' is not a list"
    for number, entry in enumerate(releases, 1):
        if not isinstance(entry, dict):
            return "is malformed: release #%d is not an object" % number
        try:
            check_release_id(entry.get("id"))
        except HistoryError:
            return "is malformed: release #%d has no valid id (%r)" % (number, entry.get("id"))
        for key in ("status", "backup_path"):
            if entry.get(key) is not None and not isinstance(entry[key], str):
                return "is malformed: release %s: %s is not a string (%r)" % (entry["id"], key, entry[key])
        if entry.get("restore_point") is not None and not isinstance(entry["restore_point"], dict):
            return "is malformed: release %s: restore_point is not an object (%r)" % (
                entry["id"], entry["restore_point"])
    return None


def hold_writer_lock(directory, wait_s=20.0):
    """Take an exclusive flock on the app root, held until released by the caller, so that
    writers of the history go one at a time (a read-modify-write never loses another's).

    Returns (fd, warning). Anyone who can open the directory can hold such a lock, so it is
    waited for at most `wait_s`; then, or when it cannot be taken at all, the write goes on
    without it (as before there was one) and the warning says so. fd is None when not held.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except FileNotFoundError:
        return None, None  # no app root yet: nothing else can be writing in it
    except OSError as exc:
        return None, "the history was written without its writer lock: cannot open %s (%s)" % (
            directory, exc.strerror or exc)
    deadline = time.monotonic() + wait_s
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return fd, None
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None, ("the history was written without its writer lock: another process held "
                              "a lock on %s for %ds" % (directory, wait_s))
            time.sleep(0.1)
        except OSError as exc:
            os.close(fd)
            return None, "the history was written without its writer lock: flock on %s failed (%s)" % (
                directory, exc.strerror or exc)


def save(path, data):
    """Write atomically (temp file + rename) so a killed run never leaves half a history."""
    directory = os.path.dirname(path) or "."
    fd, tmp = tempfile.mkstemp(prefix=".history.", dir=directory)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(data, fh, indent=2, sort_keys=True)
            fh.write("\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
    except Exception:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def find(data, release_id):
    for entry in data["releases"]:
        if entry.get("id") == release_id:
            return entry
    return None


def upsert(data, fields):
    """Merge fields into the release with the same id (appending it when new). Returns changed."""
    check_release_id(fields.get("id"), "release.id")
    entry = find(data, fields["id"])
    if entry is None:
        data["releases"].append(dict(fields))
        return True
    merged = dict(entry)
    merged.update(fields)
    if merged == entry:
        return False
    entry.clear()
    entry.update(merged)
    return True


def served(data):
    """Releases that served successfully, oldest first (history order = deploy order)."""
    return [r for r in data["releases"] if r.get("status") in SERVED]


def previous_of(data, current_id):
    """The last release that served before `current_id` (None when there is none)."""
    ids = [r["id"] for r in served(data)]
    if current_id in ids:
        before = ids[:ids.index(current_id)]
    else:
        before = ids
    return find(data, before[-1]) if before else None


def live_release(data, current_id):
    """The release that last served: `current` when it served, else the last release that did
    (a failed first deploy may have left `current` on a failed release: never go back to it)."""
    entry = find(data, current_id) if current_id else None
    if entry is not None and entry.get("status") in SERVED:
        return entry
    good = served(data)
    return good[-1] if good else None


def rollback_target(data, current_id, rollback_to=None):
    """The release to roll back to: the previous served release, `rollback_to` steps back (an
    int or digits), or the release named by id. Failed releases are never targets."""
    candidates = [r for r in served(data) if r["id"] != current_id]
    if current_id in [r["id"] for r in data["releases"]]:
        order = [r["id"] for r in data["releases"]]
        candidates = [r for r in candidates if order.index(r["id"]) < order.index(current_id)]
    live = find(data, current_id) or {}
    if live.get("sha"):
        # A re-deploy of a rolled-back version is the same code: stepping back to it changes nothing.
        candidates = [r for r in candidates if r.get("sha") != live["sha"]]
    if rollback_to in (None, ""):
        steps = 1
    elif isinstance(rollback_to, int) or str(rollback_to).isdigit():
        steps = int(rollback_to)
        if steps < 1:
            raise HistoryError("rollback_to=%r: steps back must be 1 or more" % (rollback_to,))
    else:
        check_release_id(str(rollback_to), "rollback_to")
        entry = find(data, str(rollback_to))
        if entry is None:
            raise HistoryError("rollback_to=%r is not a release in the history (known: %s)" % (
                rollback_to, ", ".join(r["id"] for r in data["releases"]) or "none"))
        if entry.get("status") not in SERVED:
            raise HistoryError("rollback_to=%r is release with status %r: only releases that served "
                               "successfully can be rollback targets" % (rollback_to, entry.get("status")))
        if entry["id"] == current_id:
            raise HistoryError("rollback_to=%r is the release that is live now" % (rollback_to,))
        return entry
    if len(candidates) < steps:
        raise HistoryError("no release to roll back to: %d earlier release(s) served successfully, "
                           "%d step(s) back asked" % (len(candidates), steps))
    return candidates[-steps]


def releases_between(data, target_id, current_id):
    """Releases deployed after the target up to and including the current one (to be undone)."""
    order = [r["id"] for r in data["releases"]]
    if target_id not in order:
        return []
    end = order.index(current_id) if current_id in order else len(order) - 1
    return [r for r in data["releases"][order.index(target_id) + 1:end + 1] if r.get("status") != "failed"]


def prune_plan(data, existing_dirs, keep, current_id, backup_exists):
    """Which release directories to delete, and why the others stay.

    keep counts releases that served (failed ones never count and are removed unless live).
    Never: the current release, the previous served one, one whose backup is still on disk,
    or a directory the history does not know (left alone and reported).
    """
    if keep < 1:
        raise HistoryError("keep_releases=%r: keep at least 1 release" % (keep,))
    known = dict((r["id"], r) for r in data["releases"])
    previous = previous_of(data, current_id)
    protected = {current_id}
    if previous:
        protected.add(previous["id"])
    good = [r["id"] for r in served(data) if r["id"] in existing_dirs]
    kept_good = set(good[-keep:])
    delete, kept, unknown = [], {}, []
    for name in sorted(existing_dirs):
        entry = known.get(name)
        if entry is None:
            unknown.append(name)
            continue
        if name in protected:
            kept[name] = "current" if name == current_id else "previous release"
        elif entry.get("backup_path") and backup_exists(entry["backup_path"]) and entry.get("status") in SERVED:
            kept[name] = "its backup is still kept"
        elif entry.get("status") == "failed":
            delete.append(name)
        elif name in kept_good:
            kept[name] = "within keep_releases"
        elif entry.get("status") in ("pending",):
            kept[name] = "deploy in progress"
        else:
            delete.append(name)
    return delete, kept, unknown
