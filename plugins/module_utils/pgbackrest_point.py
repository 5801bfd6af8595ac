# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A deploy's backup as a pgBackRest restore point (backup_method: pgbackrest), as pure functions:
its name, the SQL and argv that make it and wait until its WAL is archived, the record the
release history keeps, and the checks that record passes when it is read back (a history file
on the host is untrusted input: every value goes into an argv or the server's configuration)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import STANZA, base_argv, current_db_id
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (
    LABEL,
    RESTORE_POINT,
    epoch_iso,
    good_backups,
    parse_time,
    repo_of,
)

PREFIX = "maestro-"
LSN = re.compile(r"^[0-9A-F]{1,8}/[0-9A-F]{1,8}\Z")
# the point, the server's clock when it was made (UTC, microseconds) and whether it is a standby
CREATE_SQL = ("SELECT pg_create_restore_point(%s)::text, "
              "to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')")


class PointError(Exception):
    """A restore point that cannot be made or used."""


def point_name(label):
    """The restore point of a deploy labelled `label` (its release id): maestro-<label>, the label's
    characters outside [A-Za-z0-9._-] replaced, cut to PostgreSQL's 63 bytes."""
    name = PREFIX + re.sub(r"[^A-Za-z0-9._-]", "-", label or "")[:63 - len(PREFIX)]
    if not RESTORE_POINT.match(name) or name == PREFIX:
        raise PointError("label=%r gives no restore point name" % (label,))
    return name


def check_argv(pgbackrest, stanza, config, archive_timeout):
    """`pgbackrest check`: switches the WAL and waits until the segment (so the restore point
    before it) is in every repository, at most `archive_timeout` seconds."""
    return base_argv(pgbackrest, stanza, config) + ["--archive-timeout=%d" % archive_timeout, "check"]


def base_backup(entry):
    """The newest good backup of the stanza's current database (the one a recovery to a point made
    now starts from; a backup from before a stanza-upgrade is of another cluster)."""
    current = current_db_id(entry)
    backups = [b for b in good_backups(entry) if (b.get("database") or {}).get("id") == current]
    if not backups and good_backups(entry):
        raise PointError(
            "stanza %s has no backup of its current database (id %s; the backups there are of an earlier one, as "
            "after a stanza-upgrade): a restore point could not be recovered. Take a full backup (pgbackrest "
            "--stanza=%s --type=full backup) or use backup_method: dump. Nothing was changed"
            % (entry.get("name"), current, entry.get("name")))
    if not backups:
        raise PointError(
            "stanza %s has no backup: a restore point can only be recovered from a backup taken before it. "
            "Take one (pgbackrest --stanza=%s --type=full backup, or the schedule of playbooks/pgbackrest.yml) or "
            "use backup_method: dump. Nothing was changed" % (entry.get("name"), entry.get("name")))
    return backups[-1]


def record(stanza, name, lsn, made_at, backup):
    """What the release history keeps of the point (see record_problems)."""
    return dict(method="pgbackrest", stanza=stanza, name=name, lsn=lsn, time=made_at,
                set=backup.get("label"), repo=repo_of(backup),
                set_stop=epoch_iso((backup.get("timestamp") or {}).get("stop")))


def record_problems(point):
    """Why `point` (read back from a history) is not a restore point record we made, [] when it is one."""
    if not isinstance(point, dict):
        return ["restore_point is not an object (%r)" % (point,)]
    found = []
    if point.get("method") != "pgbackrest":
        found.append("method=%r (pgbackrest)" % (point.get("method"),))
    if not STANZA.match(str(point.get("stanza") or "")):
        found.append("stanza=%r (letters, digits, _ and -)" % (point.get("stanza"),))
    name = str(point.get("name") or "")
    if not (name.startswith(PREFIX) and RESTORE_POINT.match(name)):
        found.append("name=%r (maestro-<release id>)" % (point.get("name"),))
    if parse_time(str(point.get("time") or "")) is None:
        found.append("time=%r (an ISO 8601 time with a timezone)" % (point.get("time"),))
    if point.get("set") not in (None, "") and not LABEL.match(str(point["set"])):
        found.append("set=%r (a pgBackRest backup label)" % (point.get("set"),))
    if point.get("lsn") not in (None, "") and not LSN.match(str(point["lsn"])):
        found.append("lsn=%r (a WAL location such as 0/3000060)" % (point.get("lsn"),))
    return found
