# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Count, per table, the rows of one database that another lacks, by primary key.

After a swap restore the database as it was before the restore is kept aside; the rows it
holds that the restored database does not are the writes the restore set aside. PostgreSQL
cannot join across databases, so both sides stream their keys in order and are merged here:
memory stays flat whatever the table size.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.maestro.deploy.plugins.module_utils.pg_dbstate import user_tables

PRIMARY_KEY = """
SELECT a.attname
FROM pg_index i
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %s::regclass AND i.indisprimary
ORDER BY array_position(i.indkey, a.attnum)
"""

SKIP_TABLES = {("public", "_prisma_migrations"), ("public", "alembic_version")}


def count_missing(left_keys, right_keys):
    """Keys in the sorted iterable left that are not in the sorted iterable right."""
    missing = 0
    right = iter(right_keys)
    current = next(right, None)
    for key in left_keys:
        while current is not None and current < key:
            current = next(right, None)
        if current is None or current != key:
            missing += 1
    return missing


def _keys(conn, sql_module, schema, table, columns, batch=5000):
    ident = sql_module.Identifier
    query = sql_module.SQL("SELECT {cols} FROM {tbl} ORDER BY {cols}").format(
        cols=sql_module.SQL(", ").join(ident(c) for c in columns), tbl=ident(schema, table))
    with conn.cursor(name="maestro_keys_%d" % (abs(hash((schema, table))) % 10 ** 8)) as cur:
        cur.itersize = batch
        cur.execute(query)
        for row in cur:
            yield tuple(row)


def lost_rows(kept_conn, restored_conn, sql_module):
    """{schema.table: rows in kept_conn's db missing from restored_conn's db}, plus notes."""
    report, notes = {}, []
    restored_tables = set(user_tables(restored_conn))
    for schema, table in user_tables(kept_conn):
        if (schema, table) in SKIP_TABLES:
            continue
        name = "%s.%s" % (schema, table)
        count_sql = sql_module.SQL("SELECT count(*) FROM {}").format(sql_module.Identifier(schema, table))
        if (schema, table) not in restored_tables:
            report[name] = kept_conn.execute(count_sql).fetchone()[0]
            notes.append("%s exists only in the pre-restore copy: all its rows are counted" % name)
            continue
        quoted = '"%s"."%s"' % (schema.replace('"', '""'), table.replace('"', '""'))
        pk = [r[0] for r in restored_conn.execute(PRIMARY_KEY, (quoted,)).fetchall()]
        if not pk:
            kept = kept_conn.execute(count_sql).fetchone()[0]
            restored = restored_conn.execute(count_sql).fetchone()[0]
            report[name] = max(0, kept - restored)
            notes.append("%s has no primary key: counted as the difference in row counts" % name)
            continue
        kept_conn.execute("BEGIN")
        restored_conn.execute("BEGIN")
        try:
            report[name] = count_missing(_keys(kept_conn, sql_module, schema, table, pk),
                                         _keys(restored_conn, sql_module, schema, table, pk))
        finally:
            kept_conn.execute("COMMIT")
            restored_conn.execute("COMMIT")
    return report, notes
