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
    aside, then restore), given the cluster's `state`:

    path; kind (absent, dir, mount, symlink, other); entries (names in it); answered (the probe's
    answer from the socket, or None); refused (psql's error when a server answered but refused);
    pid (a live postgres process named by postmaster.pid, or None); marker (ours or None);
    serves_here (the answering server's data directory is pg_path); same_system (its system
    identifier is the backup's); intact (global/pg_control is there); replace_intact (allowed).

    Raises RestoreError, saying that nothing was changed, for every state where the rebuild could
    stop, replace or lose something: a server answers or runs, pg_path is a symlink or not a
    directory, a mount point with files in it, a stopped cluster that looks intact."""
    path = state.get("path")
    kind = state.get("kind")
    if kind == "symlink":
        raise RestoreError("pg_path %s is a symlink: give the directory itself (the rebuild never moves a link "
                           "aside). Nothing was changed." % path)
    if kind == "other":
        raise RestoreError("pg_path %s exists and is not a directory. Nothing was changed." % path)
    answered = state.get("answered")
    if answered is not None:
        if (state.get("marker") and answered.get("in_recovery") is False and state.get("serves_here")
                and state.get("same_system")):
            return "none"
        where = answered.get("data_directory") or "?"
        raise RestoreError(
            "PostgreSQL is running (it answers on the socket, serving %s%s): a disaster rebuild replaces a cluster "
            "that is lost or stopped and never stops a running one. Nothing was changed. To bring back one database "
            "with the site up use restore_mode=database; to replace this cluster, stop it first and rerun." % (
                where, ", a rebuild of ours still recovering" if state.get("marker") and state.get("serves_here")
                else ""))
    if state.get("refused"):
        raise RestoreError("a server answers on the socket but refused the check (%s): it counts as running, and a "
                           "running server is never replaced. Nothing was changed." % state["refused"])
    if state.get("pid"):
        raise RestoreError("postmaster.pid in %s names process %s, a running postgres: a running server is never "
                           "replaced. Nothing was changed; stop it first if it is to be replaced." % (
                               path, state["pid"]))
    entries = [e for e in state.get("entries") or [] if not (kind == "mount" and e == "lost+found")]
    if not entries:
        return "restore"
    if kind == "mount":
        raise RestoreError("pg_path %s is a mount point with files in it (%s): a mount point cannot be moved aside. "
                           "Nothing was changed; move what is in it elsewhere and rerun." % (
                               path, ", ".join(entries[:5])))
    if state.get("intact") and not state.get("replace_intact"):
        raise RestoreError(
            "pg_path %s holds a stopped cluster that looks intact (global/pg_control is there): starting it may "
            "recover everything, while a rebuild loses what was never archived. Nothing was changed. Start it "
            "(restore_start_command) and see; if it is damaged, rerun with replace_intact=true "
            "(-e restore_replace_intact=true): it is moved aside, not deleted." % path)
    return "aside"


def postmaster_pid(pid_text):
    """The pid on postmaster.pid's first line, or None."""
    first = (pid_text or "").split("\n", 1)[0].strip()
    return int(first) if first.isdigit() and int(first) > 0 else None


def is_postgres(cmdline):
    """True when a /proc/<pid>/cmdline is a PostgreSQL server's."""
    argv0 = (cmdline or "").split("\0", 1)[0]
    return os.path.basename(argv0) in ("postgres", "postmaster") or argv0.startswith("postgres:")


def config_pg_path(text, stanza):
    """pg1-path of [stanza] in a pgBackRest configuration file's text, or None."""
    section = None
    for line in (text or "").splitlines():
        line = line.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
        elif section == stanza and "=" in line and line.split("=", 1)[0].strip() == "pg1-path":
            return line.split("=", 1)[1].strip()
    return None


def system_id(entry, backup):
    """The system identifier (as text) of the backup's database in `pgbackrest info`, or None."""
    db = backup.get("database") or {}
    for known in entry.get("db") or []:
        if (known.get("id"), known.get("repo-key", 1)) == (db.get("id"), db.get("repo-key", 1)) \
                and "system-id" in known:
            return str(known["system-id"])
    return None
