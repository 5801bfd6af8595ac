#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_restore
short_description: Restore a pg_backup backup beside the live database and swap it in
description:
  - Restores a backup made by M(maestro.deploy.pg_backup) into the database O(db).
  - The backup's sha256 is checked against its manifest first; a mismatch is refused, naming both sums. A backup
    without a manifest, or one made with C(verify=false), is refused too.
  - In O(mode=swap) (the default) the backup is restored into a new database C(<db>__restore_<ts>) owned by the
    live database's owner, with its encoding and locale. It is checked (restore exit code 0, the number of tables
    and, when the backup recorded them, the per-table row counts). Only then, in one short step, new connections
    to the live database are blocked, open ones terminated, and in one transaction the live database is renamed
    to C(<db>__pre_restore_<ts>) and the restored one to O(db). The live database is untouched until the restored
    copy is complete; a failure anywhere before the swap drops the restored copy and leaves O(db) as it was.
  - Backups and manifests are untrusted input (a release history names them). Only a backup directly inside
    O(src_dir) is read (judged by real path; symbolic links and C(..) are refused), and the backup, its manifest
    and O(src_dir) must be owned by the user running the module, by root or by O(backup_owner), and not be
    writable by group or others. The manifest must be one of M(maestro.deploy.pg_backup)'s, for the same O(db)
    (and O(label), when given).
  - The programs that read a backup come from a fixed table (C(pg_restore), and C(gzip), C(zstd) or C(lz4)
    found in PATH for an externally compressed archive), never from the manifest; a manifest naming any other
    C(external_compressor) is refused before anything runs.
  - Plain SQL backups (C(format=plain)) are refused, because C(psql) would execute any meta-command in the file
    (C(\!) runs a shell command). Restore such a dump by hand after reading it, into a scratch database, and take
    a C(format=custom) backup of that. Custom and directory archives are restored by
    C(pg_restore --exit-on-error) (in one transaction unless O(jobs) > 1).
  - O(mode=replace) is the manual procedure (drop the live database, create it, restore). It reads the whole
    archive back before dropping anything, but a failure during the restore leaves no database; use it only
    when there is no room for a second copy.
version_added: "1.0.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment: [maestro.deploy.postgres]
options:
  db:
    description: The database to restore (the live one, replaced by the backup's content).
    type: str
    required: true
  src:
    description:
      - Path of the backup (its manifest C(<src>.json) must sit beside it), or V(latest) for the newest verified
        backup of O(db) in O(src_dir), by the manifests' C(created_at). A relative path is taken inside O(src_dir).
    type: str
    required: true
  src_dir:
    description:
      - The backup directory. The backup must sit directly in it; it is also the directory searched when
        O(src=latest).
    type: path
    required: true
  label:
    description:
      - The label the backup's manifest must carry (the deploy labels each backup with its release id). With
        O(src=latest), the newest verified backup with this label.
    type: str
  backup_owner:
    description:
      - A user whose backups are trusted besides the user running the module and root (the
        O(maestro.deploy.pg_backup#module:owner) the backups were made with).
    type: str
  mode:
    description: V(swap) restores beside the live database and renames; V(replace) drops and recreates it.
    type: str
    choices: [swap, replace]
    default: swap
  jobs:
    description: Parallel C(pg_restore) workers (custom and directory archives). A compressed custom archive is
      decompressed to a temporary file beside the backup first, because a parallel restore needs to seek.
    type: int
    default: 1
  keep_previous:
    description: Keep the old live database as C(<db>__pre_restore_<ts>) (returned as RV(previous_db)).
      With V(false) it is dropped after a successful swap.
    type: bool
    default: true
  terminate_connections:
    description: Block new connections to the live database and terminate the open ones just before the rename
      (or the drop in O(mode=replace)). With V(false) the module fails if anything is still connected.
    type: bool
    default: true
  maintenance_db:
    description: Database the module connects to for creating, renaming and dropping databases.
    type: str
    default: postgres
  bin_dir:
    description: Directory holding C(pg_restore). Defaults to the one in PATH.
    type: path
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: Verifies the backup's checksum against its manifest and reports what it would rename; creates,
      renames and drops nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
notes:
  - The connecting role needs CREATEDB, must own the live database (or be a superuser) and must be able to create
    databases owned by the live database's owner.
  - Database-level settings (C(ALTER DATABASE ... SET)), comments and grants on the database itself are not part
    of a C(pg_dump) archive made without C(--create); the restored database starts with the defaults.
seealso:
  - module: maestro.deploy.pg_backup
  - name: pg_restore
    description: PostgreSQL's restore tool.
    link: https://www.postgresql.org/docs/15/app-pgrestore.html
"""

EXAMPLES = r"""
- name: Roll the database back to the backup taken before the release
  maestro.deploy.pg_restore:
    db: manumaestro_db
    host: 127.0.0.1
    user: manumaestro
    password: "{{ db_password }}"
    src: "{{ backup_result.path }}"
    src_dir: /var/backups/manumaestro
    label: "{{ release_id }}"
  register: restore

- name: Restore the newest verified backup, dropping the old database after the swap
  maestro.deploy.pg_restore:
    db: manumaestro_db
    src: latest
    src_dir: /var/backups/manumaestro
    keep_previous: false
"""

RETURN = r"""
db:
  description: The restored database.
  returned: always
  type: str
restored_from:
  description: The backup that was restored.
  returned: always
  type: str
previous_db:
  description: The kept pre-restore copy of the live database, or null.
  returned: always
  type: str
  sample: manumaestro_db__pre_restore_20260201_101500
renames:
  description: The renames done (in check mode, those that would be done).
  returned: always
  type: list
  elements: dict
duration_s:
  description: Seconds the restore took.
  returned: always
  type: float
schema_version:
  description: Schema version of the restored data (Alembic revision or latest Prisma migration), or null.
    In check mode, the one recorded in the manifest.
  returned: always
  type: str
schema_version_source:
  description: V(alembic), V(prisma) or null.
  returned: always
  type: str
sha256:
  description: The verified sha256 of the backup.
  returned: always
  type: str
mode:
  description: The restore mode used.
  returned: always
  type: str
restored_tables:
  description: Number of tables in the restored database.
  returned: success
  type: int
commands:
  description: The commands that ran (argv, rc, duration), secrets removed.
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pg_restore_core import (  # noqa: E402
    RestoreRun,
    argument_spec,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.exit_json(**RestoreRun(module).run())


if __name__ == "__main__":
    main()
