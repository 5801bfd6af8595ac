"""Bad input to the modules' arguments: database names with quotes, semicolons or spaces and
release ids with `../` are refused with a message naming the option and the value, before
any connection is made or any file is written. Accepted names are quoted as identifiers."""

import json
import os

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.maestro.deploy.plugins.module_utils import pg_connection, pg_manifest
from ansible_collections.maestro.deploy.plugins.module_utils import release_history as rh
from ansible_collections.maestro.deploy.plugins.modules import (
    pg_backup,
    pg_info,
    pg_lost_rows,
    pg_restore,
    release_history,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg import sql

GOOD_NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_$-]{0,40}", fullmatch=True)
DANGEROUS = st.sampled_from(["'", '"', ";", " ", "/", "\\", "\n", "\t", "$$'", "\x00"])
BAD_NAME = st.builds(lambda a, bad, b: a + bad + b, GOOD_NAME, DANGEROUS, st.text(max_size=12))
BAD_RELEASE_ID = st.one_of(
    st.builds(lambda a, b: a + "../" + b, st.text(max_size=8), st.text(max_size=8)),
    st.builds(lambda a: "../" + a, st.from_regex(r"[a-z0-9]{0,10}", fullmatch=True)),
    st.builds(lambda a, b: a + "/" + b, st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True),
              st.from_regex(r"[a-z0-9]{1,8}", fullmatch=True)),
    st.just(".."), st.just("."), st.just(""), st.just("r1\n"),
)
NO_DB = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class Failed(Exception):
    def __init__(self, result):
        super().__init__(result.get("msg"))
        self.result = result


class FailModule:
    def fail_json(self, **kwargs):
        raise Failed(kwargs)


@given(BAD_NAME)
@settings(max_examples=200)
def test_check_db_name_refuses_quotes_semicolons_spaces_naming_the_value(name):
    with pytest.raises(Failed) as err:
        pg_connection.check_db_name(FailModule(), name, option="db_name")
    assert err.value.result["msg"].startswith("db_name=%r " % name)


@given(GOOD_NAME)
def test_accepted_names_are_quoted_as_identifiers(name):
    assert pg_connection.check_db_name(FailModule(), name) == name
    assert sql.Identifier(name).as_string(None) == '"%s"' % name  # nothing in it needs escaping
    assert "/" not in pg_manifest.backup_name(name, pg_manifest.utcnow(), ".dump")


@given(BAD_RELEASE_ID)
@settings(max_examples=200)
def test_release_ids_with_path_parts_are_refused_naming_the_value(release_id):
    with pytest.raises(rh.HistoryError) as err:
        rh.check_release_id(release_id, "release.id")
    assert "release.id=%r" % (release_id,) in str(err.value)


def run_module(module, args, monkeypatch, capsys):
    """Run a module's main() with these arguments; no database may be reached on the way."""
    import psycopg

    def no_connection(*a, **k):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(psycopg, "connect", no_connection)
    with patch_module_args(args), pytest.raises(SystemExit) as done:
        module.main()
    result = json.loads(capsys.readouterr().out)
    assert done.value.code == 1 and result.get("failed"), result
    return result


CONNECTION = dict(host="127.0.0.1", port=1, user="app", password="not-used")


@pytest.mark.parametrize("module, option, extra", [
    (pg_info, "db", {}),
    (pg_lost_rows, "db", {"previous_db": "kept_copy"}),
    (pg_lost_rows, "previous_db", {"db": "live"}),
    (pg_restore, "db", {"src": "/nonexistent/backup.dump", "src_dir": "/nonexistent"}),
    (pg_backup, "db", {"dest_dir": "/nonexistent-backups"}),
])
@given(name=BAD_NAME)
@NO_DB
def test_modules_refuse_bad_database_names_before_connecting(module, option, extra, name, monkeypatch, capsys):
    args = dict(CONNECTION, **extra)
    args[option] = name
    result = run_module(module, args, monkeypatch, capsys)
    assert "%s=%r" % (option, name) in result["msg"]
    assert "not-used" not in json.dumps(result)


@pytest.mark.parametrize("args, named", [
    ({"state": "present", "release": {"id": "../x", "status": "pending"}}, "release.id='../x'"),
    ({"state": "present", "release": {"id": "a/../../etc", "status": "pending"}}, "release.id='a/../../etc'"),
    ({"state": "query", "rollback_to": "../x"}, "rollback_to='../x'"),
])
def test_release_history_refuses_path_like_release_ids_and_writes_nothing(args, named, tmp_path, monkeypatch,
                                                                         capsys):
    app_root = tmp_path / "app"
    app_root.mkdir()
    result = run_module(release_history, dict(args, app_root=str(app_root)), monkeypatch, capsys)
    assert named in result["msg"]
    assert os.listdir(app_root) == []


def test_release_history_refuses_the_filesystem_root(monkeypatch, capsys):
    result = run_module(release_history, {"app_root": "/", "state": "query"}, monkeypatch, capsys)
    assert "app_root='/'" in result["msg"]


@pytest.mark.parametrize("keep", [0, -1])
def test_pruning_to_fewer_than_one_release_is_refused(keep, tmp_path, monkeypatch, capsys):
    app_root = tmp_path / "app"
    app_root.mkdir()
    result = run_module(release_history, {"app_root": str(app_root), "state": "pruned", "keep": keep},
                        monkeypatch, capsys)
    assert "keep_releases=%d" % keep in result["msg"]


class RecordingConnection:
    def __init__(self):
        self.executed = []

    def execute(self, query, params=None):
        self.executed.append(query)


@given(st.text(min_size=1, max_size=20).filter(lambda s: s != "public" and "\x00" not in s))
def test_prisma_schema_names_are_quoted_as_identifiers(schema):
    from ansible_collections.maestro.deploy.plugins.module_utils import prisma_native

    conn = RecordingConnection()
    prisma_native.create_table(conn, schema)
    create_schema = conn.executed[0]
    assert isinstance(create_schema, sql.Composable)
    assert create_schema.as_string(None) == 'CREATE SCHEMA IF NOT EXISTS "%s"' % schema.replace('"', '""')
