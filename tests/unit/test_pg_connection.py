"""libpq environment and database-name checks shared by the PostgreSQL modules."""

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import pg_connection


class FailModule:
    def fail_json(self, **kwargs):
        raise ValueError(kwargs["msg"])


def test_libpq_env_maps_options_and_skips_empty(monkeypatch):
    monkeypatch.delenv("PGAPPNAME", raising=False)
    params = dict(host="db.internal", port=5432, user="app", password="pw", sslmode=None, connect_timeout=10)
    assert pg_connection.libpq_env(params, dbname="appdb") == {
        "PGHOST": "db.internal", "PGPORT": "5432", "PGUSER": "app", "PGPASSWORD": "pw",
        "PGCONNECT_TIMEOUT": "10", "PGDATABASE": "appdb", "PGAPPNAME": "maestro.deploy",
    }


@pytest.mark.parametrize("env, expected", [
    (None, "maestro.deploy"),
    ("maestro.deploy:20261125T234300Z-v2", "maestro.deploy:20261125T234300Z-v2"),  # the run's name, from the play
    ("psql", "maestro.deploy"),  # somebody else's PGAPPNAME on the host is not ours to use
    ("maestro.deploy:" + "x" * 60, "maestro.deploy:" + "x" * 48),  # what the server keeps: 63 bytes
])
def test_sessions_are_named_after_the_run_when_the_play_says_so(monkeypatch, env, expected):
    if env is None:
        monkeypatch.delenv("PGAPPNAME", raising=False)
    else:
        monkeypatch.setenv("PGAPPNAME", env)
    assert pg_connection.application_name() == expected
    assert pg_connection.libpq_env({}, "db")["PGAPPNAME"] == expected
    assert pg_connection.psycopg_kwargs({}, "db")["application_name"] == expected


@pytest.mark.parametrize("name", ["app_db", "manumaestro_db", "_x", "a-b", "db$1"])
def test_accepts_ordinary_names(name):
    assert pg_connection.check_db_name(FailModule(), name) == name


@pytest.mark.parametrize("name", ['a"b', "a;drop", "a b", "../x", "", "1abc", "x" * 64, "a'b", "a/b"])
def test_rejects_names_naming_the_value(name):
    with pytest.raises(ValueError) as err:
        pg_connection.check_db_name(FailModule(), name, option="db_name")
    assert f"db_name={name!r}" in str(err.value)


def test_mask():
    assert pg_connection.mask("FATAL for pw123", "pw123") == "FATAL for ********"
    assert pg_connection.mask("text", None) == "text"
