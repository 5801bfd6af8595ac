# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy lock: one JSON file per app host, created atomically (O_EXCL).

Two deploys (or a deploy and a rollback) must never run at once on a host, and a lock left by
a killed run must not block an incident forever: a lock older than `stale_after` seconds may
be broken, but only when the operator asks for it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os
import time


class LockHeld(Exception):
    """Somebody else holds the lock; `holder` says who, when and what."""

    def __init__(self, holder, age_s, stale):
        self.holder = holder
        self.age_s = age_s
        self.stale = stale
        super(LockHeld, self).__init__(describe(holder, age_s))


def describe(holder, age_s):
    return "held by %s since %s (%ss ago) for %s %s (release %s, pid %s)" % (
        holder.get("who", "?"), holder.get("since", "?"), int(age_s), holder.get("action", "deploy"),
        holder.get("version", "?"), holder.get("release_id", "?"), holder.get("pid", "?"))


def read(path):
    """The holder recorded in the lock file, or None when there is no lock."""
    try:
        with open(path) as fh:
            data = json.load(fh)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    except ValueError:
        data = {"who": "unknown (unreadable lock file)"}
    data.setdefault("since_epoch", os.path.getmtime(path))
    return data


def age_of(holder, now=None):
    return max(0.0, (now or time.time()) - float(holder.get("since_epoch", 0)))


def acquire(path, holder, stale_after, break_stale=False, now=None):
    """Take the lock. Returns (acquired, broken_holder). Raises LockHeld when it cannot.

    Re-acquiring a lock we already hold (same token) is a no-op, so a rerun is idempotent.
    """
    now = now or time.time()
    current = read(path)
    if current is not None:
        if current.get("token") and current.get("token") == holder.get("token"):
            return False, None
        age = age_of(current, now)
        stale = age >= stale_after
        if not (stale and break_stale):
            raise LockHeld(current, age, stale)
        os.unlink(path)
    record = dict(holder, since_epoch=now,
                  since=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)))
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except OSError as exc:
        if exc.errno == errno.EEXIST:
            other = read(path) or {}
            raise LockHeld(other, age_of(other, now), False) from None
        raise
    with os.fdopen(fd, "w") as fh:
        json.dump(record, fh, indent=2, sort_keys=True)
    return True, current


def release(path, token=None, force=False):
    """Remove the lock when it is ours (same token) or when forced. Returns True if removed."""
    current = read(path)
    if current is None:
        return False
    if not force and token and current.get("token") not in (None, token):
        raise LockHeld(current, age_of(current), False)
    os.unlink(path)
    return True
