#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_info
short_description: Read what a deploy needs to know about a PostgreSQL database
version_added: "0.1.0"
description:
  - Connects to a database and returns its server version, size, the role's C(CREATEDB) and
    superuser attributes, schema version (the
    Alembic revision or the latest applied Prisma migration) and, when asked, the free space
    of a directory, so a preflight can check that a backup fits before taking it.
  - When asked, also the sessions of one application name, so a run can tell whether a lost
    run's database work (a migration, a dump or a restore) still goes on before it breaks that
    run's deploy lock.
  - Reads only; never changes anything.
extends_documentation_fragment:
  - maestro.deploy.read_only
  - maestro.deploy.postgres
options:
  db:
    description: Database name.
    type: str
    required: true
  space_dir:
    description: A directory whose free space is reported (for example the backup directory).
    type: path
  sessions_named:
    description:
      - Report the server's sessions whose C(application_name) is exactly this (the deploy and
        rollback playbooks name theirs C(maestro.deploy:<release id>)), other than this one.
      - Sessions of other roles show only to a superuser or a member of C(pg_read_all_stats).
    type: str
seealso:
  - module: maestro.deploy.pg_backup
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Check the database and the room for a backup
  maestro.deploy.pg_info:
    db: manumaestro_db
    host: 127.0.0.1
    user: manumaestro
    password: "{{ db_password }}"
    space_dir: /var/backups/manumaestro
  register: db_info

- name: Look for database sessions of a lost run
  maestro.deploy.pg_info:
    db: manumaestro_db
    host: 127.0.0.1
    user: manumaestro
    password: "{{ db_password }}"
    sessions_named: maestro.deploy:20261125T234300Z-v2
  register: lost_run_db
"""

RETURN = r"""
server_version:
  description: The server's version string.
  returned: always
  type: str
size_bytes:
  description: pg_database_size of the database.
  returned: always
  type: int
schema_version:
  description: Alembic revision or latest applied Prisma migration; null when neither table exists.
  returned: always
  type: str
schema_source:
  description: V(alembic), V(prisma) or null.
  returned: always
  type: str
role:
  description: The role the module connected as.
  returned: always
  type: str
role_createdb:
  description: Whether that role may create databases (C(CREATEDB)); a swap restore needs it.
  returned: always
  type: bool
role_superuser:
  description: Whether that role is a superuser (which may create databases too).
  returned: always
  type: bool
space_free_bytes:
  description: Free bytes in O(space_dir) (its nearest existing parent).
  returned: when space_dir is set
  type: int
sessions:
  description: The sessions named O(sessions_named) (no query text).
  returned: when sessions_named is set
  type: list
  elements: dict
  sample:
    - pid: 4242
      datname: manumaestro_db
      application_name: maestro.deploy:20261125T234300Z-v2
      state: active
      backend_start: "2026-11-25T23:43:09+00:00"
      state_change: "2026-11-25T23:43:09+00:00"
      wait_event_type: Lock
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import pg_connection  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pg_dbstate import schema_version  # noqa: E402


def free_space(path):
    while path and not os.path.exists(path):
        path = os.path.dirname(path)
    st = os.statvfs(path or "/")
    return st.f_bavail * st.f_frsize


SESSIONS = """
SELECT pid, datname, application_name, state, backend_start, state_change, wait_event_type
FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid() ORDER BY backend_start
"""


def sessions_named(conn, name):
    def when(value):
        return value.isoformat() if value is not None else None

    return [dict(pid=pid, datname=datname, application_name=app, state=state, backend_start=when(started),
                 state_change=when(changed), wait_event_type=waiting)
            for pid, datname, app, state, started, changed, waiting in conn.execute(SESSIONS, (name,)).fetchall()]


def main():
    module = AnsibleModule(
        argument_spec=pg_connection.connection_argument_spec(
            db=dict(type="str", required=True),
            space_dir=dict(type="path"),
            sessions_named=dict(type="str"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    pg_connection.check_db_name(module, p["db"])
    conn = pg_connection.connect(module, p, p["db"])
    with conn:
        server_version = conn.execute("SHOW server_version").fetchone()[0]
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        version, source = schema_version(conn)
        role, createdb, superuser = conn.execute(
            "SELECT rolname, rolcreatedb, rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()
        # the server keeps the first 63 bytes of an application_name (NAMEDATALEN - 1)
        sessions = sessions_named(conn, p["sessions_named"][:63]) if p["sessions_named"] else None
    result = dict(changed=False, db=p["db"], server_version=server_version, size_bytes=size,
                  schema_version=version, schema_source=source, role=role, role_createdb=bool(createdb),
                  role_superuser=bool(superuser))
    if sessions is not None:
        result["sessions"] = sessions
    if p["space_dir"]:
        result["space_free_bytes"] = free_space(p["space_dir"])
    module.exit_json(**result)


if __name__ == "__main__":
    main()
