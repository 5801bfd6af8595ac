"""Realistic rows for the backup/restore benchmark: an `orders` table of random-ish numbers and
text (not pgbench's tables, which compress 50:1) with a primary key and two secondary indexes."""

import time

WORDS = ("pending shipped delivered cancelled returned widget gadget bolt panel cable sensor motor "
         "frame valve pump filter gear spring lens casing hinge bracket washer seal rotor").split()

TABLE = """
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    sku text NOT NULL,
    quantity integer NOT NULL,
    unit_price numeric(10,2) NOT NULL,
    status text NOT NULL,
    note text,
    created_at timestamptz NOT NULL
)"""

# ~210 bytes per row with indexes: numbers, a short hex token and a few words (about 3:1 with gzip).
FILL = """
INSERT INTO orders
SELECT g,
       (random() * 2000000)::int,
       'SKU-' || lpad(((random() * 99999)::int)::text, 5, '0') || '-' || substr(md5(g::text), 1, 6),
       1 + (random() * 40)::int,
       round((random() * 900 + 1)::numeric, 2),
       (ARRAY['pending','shipped','delivered','cancelled','returned'])[1 + (g % 5)],
       W[1 + (random() * {last})::int] || ' ' || W[1 + (random() * {last})::int] || ' '
         || W[1 + (random() * {last})::int] || ' ' || W[1 + (random() * {last})::int]
         || ' ' || substr(md5(random()::text), 1, 12) || ' ' || (random() * 1e9)::bigint,
       timestamptz '2025-01-01' + (g % 31536000) * interval '1 second' + random() * interval '1 hour'
FROM generate_series({lo}, {hi}) AS g, (SELECT ARRAY[{words}] AS W) AS dict
"""

ROWS_PER_MB = 4700  # rows per MiB of table + indexes on PostgreSQL 15; the real size is reported


def generate(cluster, db, target_mb, batch=500000):
    """Fill `db` (owned by the app role) with ~target_mb of orders; returns a description."""
    import psycopg

    rows = max(1000, int(target_mb * ROWS_PER_MB))
    words = ",".join("'%s'" % w for w in WORDS)
    start = time.monotonic()
    with psycopg.connect(**cluster.conninfo(db), autocommit=True) as conn:
        conn.execute(TABLE)
        fill = FILL.replace("{words}", words).replace("{last}", str(len(WORDS) - 1))
        for lo in range(1, rows + 1, batch):
            conn.execute(fill.replace("{lo}", str(lo)).replace("{hi}", str(min(rows, lo + batch - 1))))
        conn.execute("CREATE INDEX orders_customer_idx ON orders (customer_id)")
        conn.execute("CREATE INDEX orders_created_idx ON orders (created_at)")
        conn.execute("VACUUM ANALYZE orders")
        size = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
        table = conn.execute("SELECT pg_total_relation_size('orders')").fetchone()[0]
    return {"rows": rows, "db_bytes": size, "table_bytes_with_indexes": table,
            "generate_s": round(time.monotonic() - start, 2), "indexes": ["orders_pkey", "orders_customer_idx",
                                                                         "orders_created_idx"]}
