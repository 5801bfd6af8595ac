# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disaster rebuild of a whole cluster from pgBackRest, as pure functions: where a data
directory that is in the way is moved (never deleted), what the module does given the cluster's
state, and the marker that tells a rebuilt, running cluster from one this module never touched.

Unlike the scratch copy of pgbackrest_restore, the rebuilt cluster is the live one: it keeps
archive_mode as the backup had it, so after promotion it goes on archiving (on a new timeline)
into the same repository and continuous backup carries on.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import RestoreError, SAFE_PATH

MARKER = "maestro-rebuild.json"
TOOL = "maestro.deploy.pgbackrest_rebuild"
STAMP = re.compile(r"^[0-9]{8}T[0-9]{6}Z\Z")


def pg_path_problem(pg_path):
    """Why `pg_path` may not be rebuilt, or None: it must be an absolute, normalised path two
    levels deep at least (never `/` or `/var`)."""
    if not SAFE_PATH.match(pg_path or "") or os.path.normpath(pg_path) != pg_path:
        return "pg_path=%s: an absolute, normalised path of letters, digits, '_', '.', '-' and '/'" % (
            pg_path or "(empty)")
    if pg_path.count("/") < 2:
        return "pg_path=%s: not a top-level directory; the cluster's own data directory" % pg_path
    return None


def aside_path(pg_path, stamp):
    """Where a data directory in the way is moved by default: beside it, named after the rebuild's time."""
    if not STAMP.match(stamp or ""):
        raise RestoreError("stamp %r is not YYYYMMDDTHHMMSSZ" % (stamp,))
    return "%s.before-rebuild-%s" % (pg_path, stamp)


def aside_problem(aside, pg_path):
    """Why `aside` may not receive what is in `pg_path`, or None: a new name in the same directory
    (a rename, so nothing is copied and the disk's space is not needed twice)."""
    if not SAFE_PATH.match(aside or "") or os.path.normpath(aside) != aside:
        return "aside_path=%s: an absolute, normalised path of letters, digits, '_', '.', '-' and '/'" % (
            aside or "(empty)")
    if os.path.dirname(aside) != os.path.dirname(pg_path) or aside == pg_path:
        return "aside_path=%s: another name beside pg_path, in %s" % (aside, os.path.dirname(pg_path))
    return None


def marker_text(stanza, plan_, created_at, aside):
    return json.dumps(dict(tool=TOOL, stanza=stanza, created_at=created_at, moved_aside=aside, plan=plan_),
                      indent=2, sort_keys=True) + "\n"


def read_marker(text, stanza):
    """The marker's content when it is ours and for `stanza`, else None."""
    try:
        data = json.loads(text or "")
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("tool") == TOOL and data.get("stanza") == stanza:
        return data
    return None


def decide(state):
    """'none', 'restore' (into an absent or empty data directory) or 'aside' (move what is there
    aside, then restore), given the cluster's `state`: path, running (a server answers or holds
    postmaster.pid with a live process), promoted, marker (ours or None), entries (names in the
    data directory, None when it does not exist). Raises RestoreError when the server runs: a
    running cluster is never stopped or replaced."""
    if state.get("running"):
        if state.get("marker") and state.get("promoted"):
            return "none"
        raise RestoreError(
            "PostgreSQL is running on %s%s: a disaster rebuild replaces a cluster that is lost or stopped and never "
            "stops a running one. Nothing was changed. To bring back one database with the site up use "
            "restore_mode=database; to replace this cluster, stop it first and rerun." % (
                state.get("path"), " (a rebuild of ours, still recovering)" if state.get("marker") else ""))
    entries = state.get("entries")
    if not entries:
        return "restore"
    return "aside"


def pid_alive(pid_text):
    """True when the first line of postmaster.pid names a process that exists."""
    first = (pid_text or "").split("\n", 1)[0].strip()
    if not first.isdigit() or int(first) <= 1:
        return False
    return os.path.exists("/proc/%s" % first)
