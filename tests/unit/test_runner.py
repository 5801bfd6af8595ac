"""The in-house command runner: argv as given, LC_ALL=C, secrets only in the environment."""

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner
from tests.unit.fakes import FakeModule


def test_runs_argv_with_secret_in_environment_only():
    module = FakeModule([(0, "ok", "")])
    runner = Runner(module, environ={"PGPASSWORD": "s3cret"}, secrets=["s3cret"])
    rc, out, _ = runner.run(["/usr/bin/pg_dump", "--format=custom", "appdb"])
    assert (rc, out) == (0, "ok")
    call = module.calls[0]
    assert call["args"] == ["/usr/bin/pg_dump", "--format=custom", "appdb"]
    assert call["environ_update"] == {"PGPASSWORD": "s3cret", "LC_ALL": "C"}
    assert call["check_rc"] is False
    assert runner.history == [dict(cmd=["/usr/bin/pg_dump", "--format=custom", "appdb"], rc=0,
                                   duration_s=runner.history[0]["duration_s"])]


def test_failure_masks_secret_and_names_tool():
    module = FakeModule([(1, "", "FATAL: password authentication failed for s3cret\n")])
    runner = Runner(module, secrets=["s3cret"])
    with pytest.raises(CommandError) as err:
        runner.run(["/usr/bin/psql", "-c", "select 1"], what="psql")
    assert err.value.rc == 1
    assert "s3cret" not in err.value.msg and "s3cret" not in err.value.stderr
    assert err.value.msg == "psql failed (rc=1): FATAL: password authentication failed for ********"
    assert err.value.as_result()["cmd"] == ["/usr/bin/psql", "-c", "select 1"]


def test_unchecked_failure_returns_rc():
    runner = Runner(FakeModule([(3, "", "nope")]))
    assert runner.run(["/bin/false"], check=False) == (3, "", "nope")


def test_explicit_binary_must_exist():
    runner = Runner(FakeModule([]))
    with pytest.raises(AssertionError, match="not found or not executable: /nope/pm2"):
        runner.bin("pm2", explicit="/nope/pm2")
