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


def test_fail_is_the_result_then_the_command_then_extra_with_secrets_masked():
    module = FakeModule([(1, "", "FATAL: role app with s3cret\n")])
    runner = Runner(module, secrets=["s3cret"])
    with pytest.raises(CommandError) as err:
        runner.run(["/usr/bin/psql", "-c", "select 1"], what="psql")
    with pytest.raises(AssertionError) as raised:  # FakeModule.fail_json raises with what it got
        runner.fail("restore failed: %s (was s3cret)" % err.value.msg, error=err.value,
                    result={"changed": True, "rc": 0, "target": "db"}, stdout="left s3cret")
    (failed,) = raised.value.args
    assert failed["msg"] == "restore failed: psql failed (rc=1): FATAL: role app with ******** (was ********)"
    assert (failed["rc"], failed["cmd"], failed["changed"], failed["target"]) == (
        1, ["/usr/bin/psql", "-c", "select 1"], True, "db")
    assert failed["stdout"] == "left ********" and "s3cret" not in failed["stderr"]
    assert failed["commands"] == runner.history


def test_a_pipeline_names_the_stage_that_failed_not_the_one_it_killed(tmp_path):
    runner = Runner(FakeModule([]), environ={"TOKEN": "s3cret"}, secrets=["s3cret"])
    with pytest.raises(CommandError) as err:
        runner.pipeline([["yes"], ["sh", "-c", 'head -c 10 >/dev/null; echo "bad $TOKEN" >&2; exit 3']],
                        what="copy")
    assert err.value.msg == "copy: sh failed (rc=3): bad ********"
    assert [h["rc"] for h in runner.history] == [-13, 3]  # yes got SIGPIPE; sh is the culprit
    with open(tmp_path / "out", "wb") as out:
        assert runner.pipeline([["printf", "a\\nb\\n"], ["sort", "-r"]], stdout=out) == [0, 0]
    assert (tmp_path / "out").read_text() == "b\na\n"
