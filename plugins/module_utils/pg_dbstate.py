# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What a database holds, as far as backups care: its tables, their row counts, its schema version.

Used on both sides of a backup: counted inside the snapshot pg_dump uses, and again in the
restored copy, so the two can be compared. Identifiers are composed with psycopg.sql, never
with string formatting.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Ordinary tables whose data pg_dump writes: not catalogs, not temp, not members of an extension.
USER_TABLES = """
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = 'r' AND c.relpersistence = 'p'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%'
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_depend d
                  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
ORDER BY 1, 2
"""

SCHEMA_PROBE = ("SELECT to_regclass('alembic_version') IS NOT NULL "
                "AND has_table_privilege('alembic_version', 'SELECT'), "
                "to_regclass('_prisma_migrations') IS NOT NULL "
                "AND has_table_privilege('_prisma_migrations', 'SELECT')")
ALEMBIC_VERSION = "SELECT version_num FROM alembic_version ORDER BY version_num"
# Prisma marks a migration applied with finished_at and a rolled-back one with rolled_back_at.
PRISMA_VERSION = ("SELECT migration_name FROM _prisma_migrations "
                  "WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL "
                  "ORDER BY finished_at DESC, migration_name DESC LIMIT 1")


def user_tables(conn):
    return [(r[0], r[1]) for r in conn.execute(USER_TABLES).fetchall()]


def table_key(schema, table):
    return "%s.%s" % (schema, table)


def row_counts(conn):
    """{'schema.table': rows} for every user table (exact count(*), in the connection's snapshot)."""
    from psycopg import sql

    counts = {}
    for schema, table in user_tables(conn):
        query = sql.SQL("SELECT count(*) FROM {}.{}").format(sql.Identifier(schema), sql.Identifier(table))
        counts[table_key(schema, table)] = conn.execute(query).fetchone()[0]
    return counts


def schema_version(conn):
    """(version, source): Alembic's version_num(s), else the latest applied Prisma migration; (None, None)."""
    has_alembic, has_prisma = conn.execute(SCHEMA_PROBE).fetchone()
    if has_alembic:
        rows = conn.execute(ALEMBIC_VERSION).fetchall()
        if rows:
            return ",".join(r[0] for r in rows), "alembic"
    if has_prisma:
        row = conn.execute(PRISMA_VERSION).fetchone()
        if row:
            return row[0], "prisma"
    return None, None


def compare_counts(expected, actual):
    """Differences between two {table: rows} maps as readable strings (empty when equal)."""
    problems = []
    for key in sorted(set(expected) | set(actual)):
        if key not in actual:
            problems.append("%s missing (expected %s rows)" % (key, expected[key]))
        elif key not in expected:
            problems.append("%s unexpected (%s rows)" % (key, actual[key]))
        elif expected[key] != actual[key]:
            problems.append("%s has %s rows, expected %s" % (key, actual[key], expected[key]))
    return problems


def derived_db_name(db, suffix):
    """`<db><suffix>` within PostgreSQL's 63-byte limit (the db part is shortened, never the suffix)."""
    return db[: 63 - len(suffix)] + suffix
