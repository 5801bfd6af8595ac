# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options of the PostgreSQL modules, documented once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  host:
    description:
      - Database server host name or address, or a directory holding its unix socket.
      - Defaults to libpq's default (the local socket).
    type: str
  port:
    description: Database server port.
    type: int
    default: 5432
  user:
    description: Role to connect as. Defaults to libpq's default (the OS user).
    type: str
  password:
    description:
      - Password of O(user). Passed to the tools through the environment of the child
        process (C(PGPASSWORD)), never on a command line, and never returned or logged.
    type: str
  sslmode:
    description: libpq C(sslmode).
    type: str
    choices: [disable, allow, prefer, require, verify-ca, verify-full]
  connect_timeout:
    description: Seconds to wait for a connection.
    type: int
    default: 10
requirements:
  - psycopg >= 3 on the managed host
  - PostgreSQL client tools (pg_dump, pg_restore, psql) matching the server's major version
"""
