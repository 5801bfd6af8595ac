# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy lock: one JSON file per app host, created atomically (O_EXCL).

Two deploys (or a deploy and a rollback) must never run at once on a host, and a lock left by
a killed run (or by one whose SSH connection dropped) must not block an incident: it may be
broken, but only when the operator asks for it, and only when it is older than `stale_after`
seconds or the run that holds it is known to have ended (its controller said so).

A lock belongs to the run whose token it holds: a random token each run draws once (the
controller_run lookup), never a release id and never a variable. An empty or missing token is
nobody's, so a run that took no lock (refused in preflight) can release none. Whose lock it is
is decided under the guard, on what the file holds then. The file is untrusted: whatever it
holds (not JSON, not an object, odd fields) it reads as held by an unknown run.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import fcntl
import json
import math
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
    if holder.get("malformed"):
        return "held by %s since %s (%ss ago): the lock file is malformed (%s)" % (
            holder.get("who", "an unknown run"), holder.get("since", "?"), int(age_s), holder["malformed"])
    return "held by %s since %s (%ss ago) for %s %s (release %s, %s)" % (
        holder.get("who", "?"), holder.get("since", "?"), int(age_s), holder.get("action", "deploy"),
        holder.get("version", "?"), holder.get("release_id", "?"), describe_run(holder))


def owns(holder, token):
    """Whether `holder` is the lock of the run whose token is `token`. An empty or missing token,
    on either side, is nobody's: it matches nothing."""
    mine = holder.get("token") if isinstance(holder, dict) else None
    return isinstance(token, str) and bool(token) and isinstance(mine, str) and mine == token


def releasable(holder, token, force=False):
    """Whether a run with `token` may remove the lock `holder` (forced: whoever holds it)."""
    return holder is not None and (force or owns(holder, token))


def describe_run(holder):
    """Which run holds the lock: its ansible-playbook on its controller, when recorded."""
    if holder.get("controller") and holder.get("controller_pid"):
        return "ansible-playbook pid %s on %s" % (holder["controller_pid"], holder["controller"])
    return "pid %s" % holder.get("pid", "?")


def breakable(age_s, stale_after, holder_ended):
    """A held lock may be broken (when asked) if its run has ended, or, when nobody can tell
    whether it still runs, once it is stale. A run known to be going is never broken."""
    if holder_ended is None:
        return age_s >= stale_after
    return bool(holder_ended)


def hint(age_s, stale_after, holder_ended):
    """What the operator can do about a lock held by another run."""
    if holder_ended:
        return "That run has ended: rerun with -e deploy_break_lock=true to break the lock."
    if holder_ended is False:
        return ("That run is still going: wait for it to finish (a lock whose run is going is not broken, "
                "whatever its age).")
    if age_s >= stale_after:
        return "It is stale (older than %ss): rerun with -e deploy_break_lock=true to break it." % stale_after
    return "Wait for that run to finish; a lock becomes breakable after %ss, or at once when its run has ended." % (
        stale_after)


def judged(holder_ended, ended_token, holder):
    """What is known of `holder`'s run: `holder_ended` when it was found about this holder (its
    token is `ended_token`, or no token was named); nothing (None) when the lock changed hands."""
    if ended_token is not None and (holder or {}).get("token") != ended_token:
        return None
    return holder_ended


@contextlib.contextmanager
def guarded(path):
    """Serialise taking, breaking and releasing the lock on this host (flock on a sidecar file),
    so two runs breaking the same lock cannot both end up holding it."""
    parent = os.path.dirname(path)
    if parent and not os.path.isdir(parent):
        os.makedirs(parent, 0o755)
    fd = os.open(path + ".guard", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def read(path):
    """The holder recorded in the lock file, or None when there is no lock. A file that is not a
    lock this module wrote reads as held by an unknown run (`malformed` says why), since its
    modification time. Errors other than a missing file (a directory there, no permission) raise."""
    try:
        with os.fdopen(os.open(path, os.O_RDONLY | os.O_NOFOLLOW), "rb") as fh:  # a symlink there is refused
            raw = fh.read(1 << 20)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise
    try:
        data = json.loads(raw.decode("utf-8"))
        malformed = None if isinstance(data, dict) else "JSON %s, not an object" % JSON_KINDS.get(
            type(data), type(data).__name__)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError too
        data, malformed = {}, "not JSON: %s" % (str(exc).splitlines() or ["too deeply nested"])[0][:200]
    if malformed:
        data = {"who": "an unknown run", "malformed": malformed}
    since = data.get("since_epoch")
    if not stamp(since):
        if "since_epoch" in data:
            data["malformed"] = "since_epoch is %s, not a time" % json.dumps(since)[:40]
        try:
            since = os.path.getmtime(path)
        except OSError:  # removed since it was read
            since = time.time()
        data["since_epoch"] = since
    if not isinstance(data.get("since"), str):
        data["since"] = stamp(since)
    return data


JSON_KINDS = {list: "array", str: "string", type(None): "null", int: "number", float: "number", bool: "true/false"}


def stamp(epoch):
    """`epoch` as the lock shows it (UTC), or None when it is not a time."""
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or not math.isfinite(epoch) or epoch < 0:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    except (OverflowError, ValueError, OSError):
        return None


def age_of(holder, now=None):
    since = holder.get("since_epoch", 0)
    if not (isinstance(since, (int, float)) and math.isfinite(since)):
        since = 0
    return max(0.0, (now or time.time()) - float(since))


def acquire_decision(current, token, now, stale_after, break_stale=False, holder_ended=None, ended_token=None):
    """What taking the lock does, from what the file holds: "free" (no lock), "own" (this run's
    already) or "break" (a lock that may be broken); raises LockHeld when it may not be taken.
    acquire() decides with it under the guard; check mode decides with it without."""
    if current is None:
        return "free"
    if owns(current, token):
        return "own"
    age = age_of(current, now)
    if not (break_stale and breakable(age, stale_after, judged(holder_ended, ended_token, current))):
        raise LockHeld(current, age, age >= stale_after)
    return "break"


def acquire(path, holder, stale_after, break_stale=False, now=None, holder_ended=None, ended_token=None):
    """Take the lock. Returns (acquired, broken_holder). Raises LockHeld when it cannot.

    Re-acquiring a lock this run already holds (its token) is a no-op, so a retry is idempotent;
    a lock held under any other token is another run's, whatever its release id. A holder
    without a token can take no lock (it could release none).
    `holder_ended`: what the caller found about the run holding the lock (True ended, False
    going, None unknown); with `break_stale` an ended run's lock is broken whatever its age, a
    going one's never. It is about the lock of `ended_token`: when the lock has changed hands
    since the caller looked, nothing is known of the new holder.
    """
    if not owns(holder, holder.get("token")):
        raise ValueError("taking the deploy lock needs this run's token (none was given)")
    now = now or time.time()
    with guarded(path):
        current = read(path)
        decision = acquire_decision(current, holder.get("token"), now, stale_after, break_stale, holder_ended,
                                    ended_token)
        if decision == "own":
            return False, None
        if decision == "break":
            os.unlink(path)
        record = dict(holder, since_epoch=now, since=stamp(now))
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
    """Remove the lock when it is this run's (`token`, which must not be empty) or when forced,
    deciding under the guard on what the file holds then. Returns the holder removed, or None
    when there was no lock. Raises LockHeld, leaving the file as it is, when another run (or an
    unknown one) holds it."""
    if read(path) is None:
        return None  # no lock: nothing to decide (and no guard file to create)
    with guarded(path):
        current = read(path)
        if current is None:
            return None
        if not releasable(current, token, force):
            raise LockHeld(current, age_of(current), False)
        os.unlink(path)
    return current
