# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that run pgBackRest, documented once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  stanza:
    description: The stanza (letters, digits, C(_) and C(-)).
    type: str
    required: true
  config:
    description: pgBackRest's configuration file; default pgBackRest's own (C(/etc/pgbackrest/pgbackrest.conf)).
    type: path
  pgbackrest:
    description: The pgbackrest executable; default C(pgbackrest) from PATH.
    type: path
  os_user:
    description:
      - OS user pgBackRest runs as (the repository's owner), through C(runuser) when the module runs as root;
        empty runs it as the module's user.
    type: str
    default: postgres
requirements:
  - pgBackRest (Debian's C(pgbackrest)) on the managed host
"""

    # The recovery target of the modules that restore (pgbackrest_restore, pgbackrest_rebuild).
    TARGET = r"""
options:
  target:
    description:
      - V(latest) recovers to the end of the archived WAL; V(time), V(xid) and V(name) to O(time), O(xid) or the
        restore point O(name) (C(pg_create_restore_point)), inclusive; V(immediate) to the end of the backup.
    type: str
    choices: [latest, time, xid, name, immediate]
    default: latest
  time:
    description:
      - With O(target=time), an ISO 8601 time with a timezone (C(2026-12-01T23:40:32Z)).
      - With O(target=name), optionally the time the restore point was made, so that the newest backup that
        stopped before it is restored (without it, the newest backup, which may be too recent).
    type: str
  xid:
    description: With O(target=xid), the transaction id.
    type: str
  name:
    description: With O(target=name), the restore point's name.
    type: str
  set:
    description:
      - The backup set (label) to restore. Give it for an xid or a restore point older than the newest backup.
    type: str
  repo:
    description:
      - The repository to restore from (V(2) for repo2); default the one holding the chosen backup set. Given, or
        when that set is not in repo1, it is passed as C(--repo), so a lost repo1 is never read (and the recovery's
        C(restore_command) fetches WAL from that repository only); otherwise pgBackRest searches its repositories
        in order.
    type: int
  timeout:
    description: Seconds to wait for the server to recover and promote.
    type: int
    default: 3600
"""
