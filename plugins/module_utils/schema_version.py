# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which schema version a database is at: the Alembic revision or the latest Prisma migration."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

PROBE = ("SELECT to_regclass('public.alembic_version') IS NOT NULL, "
         "to_regclass('public._prisma_migrations') IS NOT NULL")
ALEMBIC = "SELECT version_num FROM alembic_version ORDER BY version_num"
PRISMA = ("SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL "
          "AND rolled_back_at IS NULL ORDER BY migration_name DESC LIMIT 1")


def read_schema_version(conn):
    """(version, source) from an open psycopg connection; (None, None) when there is no history."""
    has_alembic, has_prisma = conn.execute(PROBE).fetchone()
    if has_prisma:
        row = conn.execute(PRISMA).fetchone()
        if row:
            return row[0], "prisma"
    if has_alembic:
        rows = conn.execute(ALEMBIC).fetchall()
        if rows:
            return ",".join(r[0] for r in rows), "alembic"
    return None, None
