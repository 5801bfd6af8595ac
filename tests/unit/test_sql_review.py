"""The SQL review and the rollback classifier: a table of statements with their findings and class."""

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils.sql_review import (
    classify, classify_migration, classify_with_reasons, review, split_statements)

# (sql, expected rules in order, expected class)
CASES = [
    # plain additive changes
    ('CREATE TABLE "items" ("id" SERIAL NOT NULL, "name" TEXT NOT NULL, CONSTRAINT "items_pkey" PRIMARY KEY ("id"));',
     [], "additive"),
    ('ALTER TABLE "items" ADD COLUMN "notes" TEXT;', [], "additive"),
    ("ALTER TABLE items ADD COLUMN qty integer NOT NULL DEFAULT 0;", [], "additive"),
    ("ALTER TABLE items ADD COLUMN id2 bigserial NOT NULL;", [], "additive"),
    ("CREATE INDEX CONCURRENTLY items_name_idx ON items (name);", [], "additive"),
    ("CREATE TYPE mood AS ENUM ('sad', 'ok');", [], "additive"),
    ("ALTER TYPE mood ADD VALUE 'happy';", [], "additive"),
    ("CREATE VIEW v AS SELECT 1;", [], "additive"),
    ("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1 $$ LANGUAGE sql;", [], "additive"),
    ("BEGIN; CREATE TABLE t (id int); COMMIT;", [], "additive"),
    # the review's risks
    ("DROP TABLE items;", ["drop-table"], "destructive"),
    ('ALTER TABLE "items" DROP COLUMN "notes";', ["drop-column"], "destructive"),
    ("ALTER TABLE items DROP notes;", ["drop-column"], "destructive"),
    ("ALTER TABLE items DROP CONSTRAINT items_fk;", [], "destructive"),
    ("ALTER TABLE items ADD COLUMN qty integer NOT NULL;", ["not-null-without-default"], "destructive"),
    ("ALTER TABLE items ALTER COLUMN name SET NOT NULL;", ["not-null-without-default"], "destructive"),
    ("CREATE INDEX items_name_idx ON items (name);", ["index-without-concurrently"], "additive"),
    ('CREATE UNIQUE INDEX "items_name_key" ON "items"("name");', ["index-without-concurrently"], "additive"),
    ("ALTER TABLE items RENAME TO things;", ["rename"], "destructive"),
    ('ALTER TABLE "items" RENAME COLUMN "notes" TO "note";', ["rename"], "destructive"),
    ("ALTER TABLE items ALTER COLUMN qty TYPE bigint;", ["alter-column-type"], "destructive"),
    ("ALTER TABLE items ALTER COLUMN qty SET DATA TYPE text USING qty::text;", ["alter-column-type"],
     "destructive"),
    ("ALTER TABLE orders ADD CONSTRAINT orders_item_fk FOREIGN KEY (item_id) REFERENCES items(id);",
     ["foreign-key-without-not-valid"], "additive"),
    ("ALTER TABLE orders ADD CONSTRAINT orders_item_fk FOREIGN KEY (item_id) REFERENCES items(id) NOT VALID;",
     [], "additive"),
    ("ALTER TABLE orders ADD COLUMN item_id int REFERENCES items(id);", ["foreign-key-without-not-valid"],
     "additive"),
    ("TRUNCATE items;", ["deletes-data"], "destructive"),
    ("DELETE FROM items WHERE id > 3;", ["deletes-data"], "destructive"),
    ("UPDATE items SET name = 'x';", [], "destructive"),
    # several actions in one ALTER TABLE
    ("ALTER TABLE items ADD COLUMN a text, DROP COLUMN b;", ["drop-column"], "destructive"),
    # what a DROP in a comment or a string literal must not do
    ("-- DROP TABLE items;\nCREATE TABLE t (id int);", [], "additive"),
    ("/* ALTER TABLE items DROP COLUMN notes; /* nested */ still a comment */ CREATE TABLE t (id int);", [],
     "additive"),
    ("INSERT INTO audit (note) VALUES ('DROP TABLE items; it''s fine');", [], "additive"),
    ("INSERT INTO audit (note) VALUES (E'it\\'s; DROP TABLE items');", [], "additive"),
    ('CREATE TABLE "drop table items" (id int);', [], "additive"),
    ("COMMENT ON TABLE items IS 'we will DROP COLUMN notes later';", [], "additive"),
    # DO blocks: opaque procedural code, never split at its inner semicolons, never additive
    ("DO $$ BEGIN EXECUTE 'DROP TABLE items'; END $$;", ["do-block"], "destructive"),
    ("DO $body$ BEGIN IF true THEN CREATE TABLE t (id int); END IF; END $body$ LANGUAGE plpgsql;",
     ["do-block"], "destructive"),
    # indexes and foreign keys on a table created in the same migration are not findings (Prisma's init)
    ('CREATE TABLE "orders" ("id" SERIAL, "item_id" INT);\n'
     'CREATE INDEX "orders_item_idx" ON "orders"("item_id");\n'
     'ALTER TABLE "orders" ADD CONSTRAINT "orders_item_fkey" FOREIGN KEY ("item_id") REFERENCES "items"("id");',
     [], "additive"),
    # anything not understood is destructive
    ("SELECT do_something_clever();", [], "destructive"),
    ("CREATE OR REPLACE VIEW v AS SELECT 2;", [], "destructive"),
]


@pytest.mark.parametrize("sql,rules,cls", CASES, ids=[c[0][:50] for c in CASES])
def test_review_and_class(sql, rules, cls):
    assert [f["rule"] for f in review(sql, "m1")] == rules
    assert classify(sql) == cls


def test_finding_names_migration_statement_and_why():
    sql = '-- AlterTable\nALTER TABLE "items" DROP COLUMN "notes";\n'
    (finding,) = review(sql, "20260301_drop_notes")
    assert finding["migration"] == "20260301_drop_notes"
    assert finding["statement"] == 'ALTER TABLE "items" DROP COLUMN "notes";'.rstrip(";")
    assert finding["rule"] == "drop-column" and finding["data_loss"] is True and finding["line"] == 2
    assert "deletes the column's data" in finding["why"]


def test_split_respects_literals_comments_dollar_quotes_and_begin_atomic():
    sql = ("CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; SELECT 2; $fn$ LANGUAGE sql;\n"
           "SELECT 'a;b', \"x;y\" FROM t; -- c;d\n"
           "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END;\n"
           "SELECT $1;")
    texts = [s.text for s in split_statements(sql)]
    assert texts == [
        "CREATE FUNCTION f() RETURNS int AS $fn$ SELECT 1; SELECT 2; $fn$ LANGUAGE sql",
        "SELECT 'a;b', \"x;y\" FROM t",
        "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT 2; END",
        "SELECT $1",
    ]
    assert [s.line for s in split_statements(sql)] == [1, 2, 3, 4]


def test_empty_and_comment_only_sql_is_additive():
    assert classify("") == "additive"
    assert classify("-- This is an empty migration.") == "additive"
    assert review("-- DROP TABLE x;") == []


def test_reasons_name_the_statement():
    cls, reasons = classify_with_reasons("CREATE TABLE t (id int);\nALTER TABLE items ADD COLUMN q int NOT NULL;")
    assert cls == "destructive"
    assert reasons == ["ALTER TABLE items ADD COLUMN q int NOT NULL: adds a NOT NULL column without a DEFAULT: "
                       "the previous release's INSERTs fail"]


@pytest.mark.parametrize("sql,has_downgrade,expected", [
    ("ALTER TABLE items ADD COLUMN notes text;", True, "additive"),
    ("ALTER TABLE items RENAME COLUMN notes TO note;", True, "reversible"),
    ("ALTER TABLE items RENAME COLUMN notes TO note;", False, "destructive"),
    ("ALTER TABLE items DROP COLUMN notes;", True, "destructive"),
    ("ALTER TABLE items ADD COLUMN q int NOT NULL;", True, "reversible"),
    ("DO $$ BEGIN NULL; END $$;", True, "destructive"),
])
def test_classify_migration_decides_reversible_with_the_callers_downgrade(sql, has_downgrade, expected):
    assert classify_migration(sql, has_downgrade=has_downgrade)["class"] == expected
