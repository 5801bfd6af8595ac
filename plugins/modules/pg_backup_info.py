#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_backup_info
short_description: List the backups M(maestro.deploy.pg_backup) made of one database, newest first
description:
  - Reads the manifests in O(dir) the way M(maestro.deploy.pg_restore) and the retention of
    M(maestro.deploy.pg_backup) do; a file that is not a manifest of pg_backup's for O(db), or
    whose backup is missing, is not listed. Manifests are read without following symbolic links.
  - Runs no program and connects to no database.
version_added: "0.2.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.read_only
options:
  dir:
    description: The backup directory (C(backup_dir)).
    type: path
    required: true
  db:
    description: The database whose backups are listed.
    type: str
    required: true
  limit:
    description: At most this many backups, the newest; 0 lists them all.
    type: int
    default: 5
seealso:
  - module: maestro.deploy.pg_backup
  - module: maestro.deploy.pg_restore
"""

EXAMPLES = r"""
- name: Find the latest backups of the app's database
  maestro.deploy.pg_backup_info:
    dir: /var/backups/manumaestro
    db: manumaestro
    limit: 3
  register: backups
"""

RETURN = r"""
backups:
  description: The backups, newest first, each as its manifest says (no secrets are kept in one).
  returned: always
  type: list
  elements: dict
  contains:
    path: {description: The backup file or directory., type: str}
    file: {description: Its name., type: str}
    size_bytes: {description: Its size., type: int}
    created_at: {description: "When it was taken (UTC, ISO 8601).", type: str}
    label: {description: The label it was taken with (a deploy's release id)., type: str}
    schema_version: {description: The schema version it holds., type: str}
    verified: {description: Whether its verification passed., type: bool}
  sample:
    - {path: /var/backups/manumaestro/manumaestro_20261201_020000.dump, file: manumaestro_20261201_020000.dump,
       size_bytes: 1048576, created_at: "2026-12-01T02:00:00Z", label: scheduled,
       schema_version: "20260201090000_add_item_notes", verified: true}
total:
  description: How many backups of O(db) there are in O(dir), listed or not.
  returned: always
  type: int
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

from ansible_collections.maestro.deploy.plugins.module_utils.pg_manifest import find_backups, is_verified, public  # noqa: E402


def listing(found, limit):
    """The newest `limit` backups (all when 0) as the result lists them."""
    chosen = found if limit == 0 else found[:limit]
    return [dict(public(data), path=data["_path"], verified=is_verified(data)) for data in chosen]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            db=dict(type="str", required=True),
            limit=dict(type="int", default=5),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["limit"] < 0:
        module.fail_json(msg="limit must be 0 (all) or more, not %d" % p["limit"])
    found = find_backups(p["dir"], p["db"])
    module.exit_json(changed=False, backups=listing(found, p["limit"]), total=len(found))


if __name__ == "__main__":
    main()
