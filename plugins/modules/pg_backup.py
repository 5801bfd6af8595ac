#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup
short_description: Verified, atomic PostgreSQL backups with a manifest and retention
description:
  - Dumps one database with C(pg_dump) into O(dest_dir) as C(<db>_<YYYYmmdd_HHMMSS>.<ext>) (UTC time).
  - The archive is written as C(<name>.partial) and renamed to its real name only after C(pg_dump) exited 0
    and the verification chosen with O(verify) passed, so a killed or failed run never leaves a file that looks
    like a good backup. The partial file is removed when the run fails.
  - A JSON manifest C(<backup>.json) (mode 0600) is written beside each backup with db, format, compression,
    size_bytes, sha256, created_at, duration_s, label, server and pg_dump versions, the number of tables, and the
    schema version when a migration table is found (C(alembic_version.version_num), or the latest applied,
    not rolled back C(_prisma_migrations.migration_name)).
  - The dump runs in a snapshot exported from a REPEATABLE READ transaction (C(pg_dump --snapshot)), so the
    schema version and row counts in the manifest describe exactly the data in the archive.
  - Before writing, the database size (C(pg_database_size)) is compared with the free space of O(dest_dir);
    the module fails early, with both numbers, when the backup cannot fit.
  - The password is passed to the tools only through the environment of the child process, never on a command
    line, and never appears in the result, the manifest or error messages.
version_added: "1.0.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment: [maestro.deploy.postgres]
options:
  db:
    description: Database to back up.
    type: str
    required: true
  dest_dir:
    description: Existing directory the backup and its manifest are written to.
    type: path
    required: true
  format:
    description:
      - C(pg_dump) archive format. V(custom) (one file, C(.dump)) is restorable selectively and in parallel;
        V(directory) (C(.dir)) can be dumped in parallel with O(jobs); V(plain) is an SQL script (C(.sql)).
      - M(maestro.deploy.pg_restore) refuses V(plain) backups (C(psql) would run any meta-command in them);
        they are for reading and for restoring by hand.
    type: str
    choices: [custom, directory, plain]
    default: custom
  compression:
    description:
      - V(gzip) is C(pg_dump)'s own compression for V(custom) and V(directory) archives.
      - V(zstd) and V(lz4) need C(pg_dump) 16 or later for native compression; with C(pg_dump) 15 a V(custom)
        archive is written uncompressed by C(pg_dump) and piped through the external compressor
        (C(.dump.zst), C(.dump.lz4)), and V(directory) is refused.
      - For V(plain) every compression is an external compressor (C(.sql.gz), C(.sql.zst), C(.sql.lz4)).
      - The compressor's binary must be installed; the module fails before writing anything when it is not.
    type: str
    choices: [gzip, zstd, lz4, none]
    default: gzip
  compression_level:
    description: Compression level (gzip 1-9, zstd 1-19, lz4 1-12). Defaults to the tool's default.
    type: int
  jobs:
    description: Parallel C(pg_dump) workers; only with O(format=directory).
    type: int
    default: 1
  label:
    description: Free text stored in the manifest, such as the release id the backup was taken for.
    type: str
  verify:
    description:
      - V(checksum) only records the sha256.
      - V(read) (default) reads the whole archive back (C(pg_restore --file=/dev/null) for custom and directory
        archives, the compressor's own test for compressed plain dumps, the completion trailer for plain ones).
        C(pg_restore --list) alone would accept a truncated archive.
      - V(restore) also restores the archive into a scratch database C(<db>__verify_<ts>) and compares
        per-table row counts with counts taken in the very snapshot the dump used; the scratch database is
        dropped afterwards. The connecting role needs CREATEDB.
      - V(false) skips verification; the result and the manifest say the backup is unverified and
        M(maestro.deploy.pg_restore) refuses it.
    type: raw
    default: read
  keep_last:
    description:
      - Retention. Keep this many of the newest backups of O(db) in O(dest_dir) (the new one included).
      - Only backups of the same O(db) made by this module (recognised by their manifest) are ever removed;
        other files are never touched, nor is the backup just made.
    type: int
  max_age_days:
    description:
      - Retention. Remove backups of O(db) made by this module whose manifest C(created_at) is older than this.
      - With both options, a backup goes when either rule says so.
    type: int
  bin_dir:
    description: Directory holding C(pg_dump), C(pg_restore) and C(psql) (for example C(/usr/lib/postgresql/15/bin)).
      Defaults to the ones in PATH.
    type: path
  owner:
    description: Owner of the backup file (and of a directory backup's files).
    type: str
  group:
    description: Group of the backup file.
    type: str
  mode:
    description:
      - Mode of the backup file, as a quoted octal string. A directory backup gets the execute bits matching its
        read bits. The manifest is always 0600.
      - Backups hold every row of the database, so only owner bits are accepted (V(0600) or V(0400)); a mode
        with group or other bits, setuid/setgid/sticky bits or given as a number (YAML reads an unquoted C(644)
        as the integer 644, that is 0o1204 as a mode) is refused. Use O(owner) to give the backups to the user
        that restores them.
    type: raw
    default: "0600"
attributes:
  check_mode:
    support: full
    description: Can run in check_mode and return changed status prediction without modifying target.
    details: Connects and reports the path it would write and the backups retention would prune; writes and
      deletes nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
notes:
  - The retention rules are evaluated after the new backup has been written and verified; a failed run prunes
    nothing.
seealso:
  - module: maestro.deploy.pg_restore
  - name: pg_dump
    description: PostgreSQL's dump tool.
    link: https://www.postgresql.org/docs/15/app-pgdump.html
"""

EXAMPLES = r"""
- name: Back up the application database before a release
  maestro.deploy.pg_backup:
    db: manumaestro_db
    host: 127.0.0.1
    user: manumaestro
    password: "{{ db_password }}"
    dest_dir: /var/backups/manumaestro
    label: "{{ release_id }}"
  register: backup

- name: Nightly backup as compressed SQL, restore-verified, keeping 28 days
  maestro.deploy.pg_backup:
    db: manumaestro_db
    dest_dir: /var/backups/manumaestro
    format: plain
    compression: zstd
    verify: restore
    max_age_days: 28
"""

RETURN = r"""
path:
  description: The backup (a file, or a directory for O(format=directory)).
  returned: always
  type: str
  sample: /var/backups/manumaestro/manumaestro_db_20260201_020000.dump
manifest_path:
  description: The JSON manifest beside the backup.
  returned: always
  type: str
  sample: /var/backups/manumaestro/manumaestro_db_20260201_020000.dump.json
size_bytes:
  description: Size of the backup (null in check mode).
  returned: always
  type: int
sha256:
  description: sha256 of the file; for a directory backup, of its sorted C(<sha256>  <relative path>) lines.
  returned: always
  type: str
duration_s:
  description: Seconds spent dumping and verifying.
  returned: always
  type: float
format:
  description: The archive format.
  returned: always
  type: str
  sample: custom
compression:
  description: The compression.
  returned: always
  type: str
verify:
  description: The verification level applied (V(none) when unverified).
  returned: always
  type: str
verified:
  description: Whether any verification was applied.
  returned: always
  type: bool
schema_version:
  description: Alembic revision or latest applied Prisma migration in the dumped snapshot, or null.
  returned: always
  type: str
  sample: 20260201090000_add_item_notes
schema_version_source:
  description: V(alembic), V(prisma) or null.
  returned: always
  type: str
row_counts:
  description: Per-table row counts in the dump's snapshot, when O(verify=restore).
  returned: success
  type: dict
pruned:
  description: Backups removed by retention (in check mode, those that would be).
  returned: always
  type: list
  elements: str
created_at:
  description: When the dump's snapshot was taken (UTC, ISO 8601).
  returned: success
  type: str
server_version:
  description: The server's version.
  returned: always
  type: str
pg_dump_version:
  description: Output of C(pg_dump --version).
  returned: always
  type: str
commands:
  description: The commands that ran (argv, rc, duration), secrets removed.
  returned: success
  type: list
  elements: dict
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pg_backup_core import (  # noqa: E402
    BackupRun,
    argument_spec,
)


def main():
    module = AnsibleModule(argument_spec=argument_spec(), supports_check_mode=True)
    module.exit_json(**BackupRun(module).run())


if __name__ == "__main__":
    main()
