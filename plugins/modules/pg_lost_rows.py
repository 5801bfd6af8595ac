#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_lost_rows
short_description: Count the rows a restore set aside, per table
version_added: "0.1.0"
description:
  - After M(maestro.deploy.pg_restore) in swap mode, the database as it was before the restore
    is kept under another name. This module counts, per table and by primary key, the rows
    that copy holds and the restored database does not. Those are the writes made since the
    backup, still recoverable by hand from that copy.
  - Reads only.
extends_documentation_fragment:
  - maestro.deploy.read_only
  - maestro.deploy.postgres
options:
  db:
    description: The restored (live) database.
    type: str
    required: true
  previous_db:
    description: The pre-restore copy, as returned by M(maestro.deploy.pg_restore) in C(previous_db).
    type: str
    required: true
seealso:
  - module: maestro.deploy.pg_restore
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Count the rows written since the backup
  maestro.deploy.pg_lost_rows:
    db: manumaestro_db
    previous_db: "{{ restore.previous_db }}"
    host: 127.0.0.1
    user: manumaestro
    password: "{{ db_password }}"
"""

RETURN = r"""
tables:
  description: Table name to the number of rows only the pre-restore copy holds.
  returned: always
  type: dict
total:
  description: Sum over the tables.
  returned: always
  type: int
notes:
  description: How tables without a primary key or missing from the restored database were counted.
  returned: always
  type: list
"""

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import pg_connection  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.lost_rows import lost_rows  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=pg_connection.connection_argument_spec(
            db=dict(type="str", required=True),
            previous_db=dict(type="str", required=True),
        ),
        supports_check_mode=True,
    )
    p = module.params
    pg_connection.check_db_name(module, p["db"], "db")
    pg_connection.check_db_name(module, p["previous_db"], "previous_db")
    from psycopg import sql

    kept = pg_connection.connect(module, p, p["previous_db"])
    restored = pg_connection.connect(module, p, p["db"])
    with kept, restored:
        tables, notes = lost_rows(kept, restored, sql)
    module.exit_json(changed=False, db=p["db"], previous_db=p["previous_db"], tables=tables,
                     total=sum(tables.values()), notes=notes)


if __name__ == "__main__":
    main()
