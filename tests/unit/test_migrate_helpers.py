"""Pure parts of the migration modules: URL parsing, Alembic output parsing and argv, Prisma bookkeeping."""

import datetime
import hashlib

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import alembic_cli
from ansible_collections.maestro.deploy.plugins.module_utils import prisma_native as pn
from ansible_collections.maestro.deploy.plugins.module_utils.database_url import (
    DatabaseUrlError, describe, parse_database_url)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import Runner
from tests.unit.fakes import FakeModule

OFFLINE = """BEGIN;

CREATE TABLE alembic_version (
    version_num VARCHAR(32) NOT NULL,
    CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num)
);

-- Running upgrade  -> 0001_init

CREATE TABLE items (
    id SERIAL NOT NULL,
    PRIMARY KEY (id)
);

INSERT INTO alembic_version (version_num) VALUES ('0001_init') RETURNING alembic_version.version_num;

COMMIT;

BEGIN;

-- Running upgrade 0001_init -> 0002_add_item_notes

ALTER TABLE items ADD COLUMN notes TEXT;

UPDATE alembic_version SET version_num='0002_add_item_notes' WHERE alembic_version.version_num = '0001_init';

COMMIT;
"""


def test_offline_sql_is_split_per_revision_without_bookkeeping():
    assert alembic_cli.split_offline(OFFLINE) == [
        ("upgrade", "", "0001_init", "CREATE TABLE items (\n    id SERIAL NOT NULL,\n    PRIMARY KEY (id)\n);"),
        ("upgrade", "0001_init", "0002_add_item_notes", "ALTER TABLE items ADD COLUMN notes TEXT;"),
    ]


def test_pass_only_downgrade_has_no_statements():
    text = ("BEGIN;\n\n-- Running downgrade 0003_bad -> 0002_add_item_notes\n\n"
            "UPDATE alembic_version SET version_num='0002_add_item_notes' WHERE alembic_version.version_num = "
            "'0003_bad';\n\nCOMMIT;\n")
    assert alembic_cli.split_offline(text) == [("downgrade", "0003_bad", "0002_add_item_notes", "")]


def test_current_and_heads_output():
    assert alembic_cli.parse_revisions("0002_add_item_notes (head)\n") == ["0002_add_item_notes"]
    assert alembic_cli.parse_revisions("0003_a (head)\n0003_b (head)\n") == ["0003_a", "0003_b"]
    assert alembic_cli.parse_revisions("") == []


def test_alembic_argv_for_executable_or_python():
    assert alembic_cli.alembic_argv("/srv/venv/bin/alembic") == ["/srv/venv/bin/alembic"]
    assert alembic_cli.alembic_argv("/srv/venv/bin/python3.11") == ["/srv/venv/bin/python3.11", "-m", "alembic"]


def test_failed_revision_and_db_error_from_traceback(tmp_path):
    rev = tmp_path / "0003_bad.py"
    rev.write_text('revision = "0003_bad"\ndown_revision = "0002"\n')
    stderr = (f'Traceback (most recent call last):\n  File "{rev}", line 10, in upgrade\n'
              '    op.execute("ALTER TABLE nope ADD COLUMN x int")\n'
              'sqlalchemy.exc.ProgrammingError: (psycopg.errors.UndefinedTable) relation "nope" does not exist\n'
              "[SQL: ALTER TABLE nope ADD COLUMN x int]\n(Background on this error at: https://sqlalche.me/e/21/f405)\n")
    assert alembic_cli.failed_revision(stderr) == "0003_bad"
    assert alembic_cli.db_error(stderr) == ('sqlalchemy.exc.ProgrammingError: (psycopg.errors.UndefinedTable) '
                                            'relation "nope" does not exist [SQL: ALTER TABLE nope ADD COLUMN x int]')
    assert alembic_cli.db_error("", "FAILED: Can't locate revision identified by 'bogus'\n") == \
        "FAILED: Can't locate revision identified by 'bogus'"


def test_alembic_runs_with_config_and_url_only_in_environment():
    """The exact argv the module gives run_command: the URL is in the environment, never in argv."""
    from ansible_collections.maestro.deploy.plugins.modules.alembic_migrate import Alembic

    url = "postgresql://app:s3cret@db:5432/app"
    module = FakeModule([(0, "0001_init (head)\n", ""), (0, OFFLINE, "")])
    module.params = {"config": "alembic.ini", "project_dir": "/srv/app"}
    alembic = Alembic(module, Runner(module, environ={"DATABASE_URL": url}, secrets=[url]),
                      ["/srv/venv/bin/python", "-m", "alembic"])
    assert alembic.current() == ["0001_init"]
    alembic.offline("upgrade", "0001_init:head")
    assert [c["args"] for c in module.calls] == [
        ["/srv/venv/bin/python", "-m", "alembic", "-c", "alembic.ini", "current"],
        ["/srv/venv/bin/python", "-m", "alembic", "-c", "alembic.ini", "upgrade", "--sql", "0001_init:head"],
    ]
    assert all(c["cwd"] == "/srv/app" and c["environ_update"] == {"DATABASE_URL": url, "LC_ALL": "C"}
               for c in module.calls)
    assert not any("s3cret" in a for c in module.calls for a in c["args"])


@pytest.mark.parametrize("url,kwargs,schema", [
    ("postgresql://app:p%40ss@db.example:6432/shop?schema=sales&sslmode=require&connection_limit=5",
     dict(host="db.example", port=6432, user="app", password="p@ss", dbname="shop", sslmode="require",
          options="-c search_path=sales"), "sales"),
    ("postgres://app@localhost/shop", dict(host="localhost", user="app", dbname="shop"), "public"),
    ("postgresql:///shop?host=/var/run/postgresql", dict(host="/var/run/postgresql", dbname="shop"), "public"),
])
def test_database_url_to_psycopg_kwargs(monkeypatch, url, kwargs, schema):
    monkeypatch.delenv("PGAPPNAME", raising=False)
    parsed, got_schema = parse_database_url(url)
    expected = dict(kwargs, connect_timeout=10, application_name="maestro.deploy")
    assert parsed == expected and got_schema == schema


@pytest.mark.parametrize("url,message", [
    ("not a url", "not a URL"),
    ("mysql://u:secretpw@h/db", "scheme 'mysql' is not supported"),
    ("postgresql://u:secretpw@h:99999/db", "cannot be parsed"),
    ("postgresql://u:secretpw@h:5432/", "names no database"),
])
def test_bad_database_url_is_named_without_its_password(url, message):
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url(url)
    assert message in str(err.value) and "secretpw" not in str(err.value)


def test_describe_has_no_password():
    kwargs, _ = parse_database_url("postgresql://app:pw@db:5432/shop")
    assert describe(kwargs) == "app@db:5432/shop"


def test_local_migrations_in_name_order_with_prisma_checksum(tmp_path):
    for name, sql in [("20260201_b", "SELECT 2;\n"), ("20260101_a", "SELECT 1;\n")]:
        (tmp_path / name).mkdir()
        (tmp_path / name / "migration.sql").write_bytes(sql.encode())
    (tmp_path / "migration_lock.toml").write_text('provider = "postgresql"\n')
    found = pn.local_migrations(str(tmp_path))
    assert [m["name"] for m in found] == ["20260101_a", "20260201_b"]
    assert found[0]["checksum"] == hashlib.sha256(b"SELECT 1;\n").hexdigest()


def row(name, checksum="c", finished=True, rolled_back=False, logs=None):
    t = datetime.datetime(2026, 3, 1, tzinfo=datetime.timezone.utc)
    return dict(id=name, migration_name=name, checksum=checksum, finished_at=t if finished else None,
                rolled_back_at=t if rolled_back else None, started_at=t, logs=logs, applied_steps_count=1)


def test_status_applied_pending_failed_modified_missing():
    local = [dict(name=n, checksum="c") for n in ("a", "b", "c", "d")]
    local[1]["checksum"] = "edited"
    rows = [row("a"), row("b"), row("c", finished=False, logs="boom"), row("d", finished=False, rolled_back=True),
            row("gone")]
    state = pn.status(local, rows)
    assert state["applied"] == ["a", "b"] and state["modified"] == ["b"]
    assert [f["name"] for f in state["failed"]] == ["c"] and state["failed"][0]["logs"] == "boom"
    assert state["pending"] == ["d"]  # rolled back: deploy applies it again
    assert state["missing"] == ["gone"]
    assert pn.current_version(rows) == "gone"
    assert pn.status(local, None)["pending"] == ["a", "b", "c", "d"]


def test_failed_message_is_prismas_p3009_with_the_way_out():
    msg = pn.failed_message([dict(name="20260301_x", started_at="2026-03-01T00:00:00+00:00", logs="")])
    assert "P3009" in msg and "The `20260301_x` migration started at 2026-03-01T00:00:00+00:00 failed" in msg
    assert "resolve_rolled_back=20260301_x" in msg and "prisma migrate resolve --rolled-back 20260301_x" in msg


def test_scripts_that_cannot_run_in_a_transaction():
    assert pn.needs_no_transaction('CREATE INDEX CONCURRENTLY "i" ON "t"("c");')
    assert pn.needs_no_transaction("BEGIN; CREATE TABLE t (id int); COMMIT;")
    assert not pn.needs_no_transaction("CREATE TABLE t (id int); -- CREATE INDEX CONCURRENTLY later")


def test_resolve_rolled_back_refuses_applied_or_unknown():
    with pytest.raises(pn.PrismaMigrateError) as err:
        pn.resolve_rolled_back(None, "a", [row("a")])
    assert err.value.code == "P3012"
    with pytest.raises(pn.PrismaMigrateError) as err:
        pn.resolve_rolled_back(None, "zzz", [row("a")])
    assert err.value.code == "P3011"
    assert pn.resolve_rolled_back(None, "d", [row("d", finished=False, rolled_back=True)]) is False


def test_checksum_matches_the_way_prisma_compares_line_endings():
    """Prisma's script_matches_checksum: the file as is, with CRLF turned into LF, or LF into CRLF."""
    lf, crlf = "CREATE TABLE a (id int);\nSELECT 1;\n", "CREATE TABLE a (id int);\r\nSELECT 1;\r\n"
    recorded_lf = hashlib.sha256(lf.encode()).hexdigest()
    recorded_crlf = hashlib.sha256(crlf.encode()).hexdigest()
    assert pn.checksum_matches(crlf, recorded_lf) and pn.checksum_matches(lf, recorded_crlf)
    assert pn.checksum_matches(lf, recorded_lf)
    assert not pn.checksum_matches(lf + "-- edited\n", recorded_lf)
    assert not pn.checksum_matches("SELECT 1;", hashlib.sha256(b"SELECT 1;\n").hexdigest())
    # rows written by an old schema engine hold hex without zero padding (prisma-engines#1887)
    digest = hashlib.sha256(b"hello").digest()
    assert pn.checksum_matches("hello", "".join("%x" % b for b in digest))


def test_status_does_not_call_a_crlf_checkout_modified(tmp_path):
    (tmp_path / "20260101_a").mkdir()
    (tmp_path / "20260101_a" / "migration.sql").write_bytes(b"SELECT 1;\r\nSELECT 2;\r\n")
    local = pn.local_migrations(str(tmp_path))
    state = pn.status(local, [row("20260101_a", checksum=hashlib.sha256(b"SELECT 1;\nSELECT 2;\n").hexdigest())])
    assert state["applied"] == ["20260101_a"] and state["modified"] == []


def test_leading_bom_is_not_executed_but_is_in_the_checksum(tmp_path):
    (tmp_path / "20260101_a").mkdir()
    data = b"\xef\xbb\xbfCREATE TABLE a (id int);\n"
    (tmp_path / "20260101_a" / "migration.sql").write_bytes(data)
    found = pn.local_migrations(str(tmp_path))[0]
    assert found["sql"] == "CREATE TABLE a (id int);\n"
    assert found["checksum"] == hashlib.sha256(data).hexdigest()


def test_lock_timeout_grammar_and_backoff():
    from ansible_collections.maestro.deploy.plugins.module_utils import pg_locks

    assert [pg_locks.parse_duration(v, "lock_timeout") for v in ("3s", "500ms", "1min", "10", 7)] == [
        3000, 500, 60000, 10000, 7000]
    for bad in ("0", "3 s", "3s; DROP TABLE x", "-1s", "1h", "", None, "1.5s", "3s\n;"):
        with pytest.raises(ValueError) as err:
            pg_locks.parse_duration(bad, "lock_timeout")
        assert "lock_timeout=" in str(err.value)
    assert pg_locks.pg_duration(3000) == "3000ms"
    assert pg_locks.delays(7) == [1, 2, 4, 8, 16, 30, 30] and pg_locks.delays(0) == []


def test_lock_retry_retries_only_lock_timeouts_and_names_the_blockers():
    class Exc(Exception):
        def __init__(self, sqlstate):
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    class Watch:
        blockers = [dict(pid=42, application_name="psql", state="idle in transaction", seconds=9,
                         query="SELECT *\n  FROM items")]

    slept = []
    retry = pn.LockRetry([1, 2], Watch(), "1s", sleep=slept.append)
    assert retry.give_up(Exc("55P03"), 0) is False and retry.give_up(Exc("55P03"), 1) is False
    assert retry.give_up(Exc("55P03"), 2) is True and slept == [1, 2]
    assert pn.LockRetry([1], None, "1s", sleep=slept.append).give_up(Exc("42P01"), 0) is True and slept == [1, 2]
    retry.attempts = 3
    assert retry.why() == ("lock_timeout 1s was reached on each of 3 attempts (pauses of 1, 2 s between them); "
                           "blocked by: pid 42 (application_name 'psql', state 'idle in transaction', for 9 s): "
                           "SELECT * FROM items")
