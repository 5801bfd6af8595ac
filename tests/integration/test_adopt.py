"""Issue 13: never cause an outage. A failed first deploy leaves no `current` and removes only
the processes it started; a hand-made install (a git clone started with `pm2 start npm -- start`)
is refused without deploy_adopt and left serving; the no-op deploy starts the live release when
PM2 lost it."""

import os
import subprocess

from tests.integration.test_deploy_flow import assert_ok, deploy_env  # noqa: F401 (fixture)
from tests.support.apprepo import make_variant
from tests.support.paths import PM2


def pm2(env, *args):
    return subprocess.run([PM2, *args], env=dict(os.environ, PM2_HOME=env.vars["pm2_home"]),
                          capture_output=True, text=True, timeout=60)


def pm2_names(env):
    import json
    out = pm2(env, "jlist").stdout
    start = out.find("[")
    return [p["name"] for p in json.loads(out[start:])] if start >= 0 else []


def test_failed_first_deploy_leaves_no_current_and_no_process(deploy_env):  # noqa: F811
    env = deploy_env
    make_variant(env.repo, "v4-crash-first", files={
        "src/server.js": lambda text: "throw new Error('cannot start');\n" + text})
    run = env.deploy("v4-crash-first")
    assert not run.ok
    assert "DEPLOY FAILED in stage switch" in run.stdout
    # current is not left on the failed release (the next deploy's rescue went back onto it)
    assert not os.path.lexists(os.path.join(env.app_root, "current")), run.stdout[-3000:]
    assert "was removed (this run had created it)" in run.stdout
    assert env.vars["app_name"] not in pm2_names(env)
    assert env.history()["releases"][-1]["status"] == "failed"

    run = env.deploy("v2")  # the failed release had migrated to v2's schema (additive: kept)
    assert_ok(run)
    assert "Previous release (rollback target): none" in run.stdout
    assert env.health()["revision"] == env.shas["v2"]


def test_noop_deploy_starts_the_live_release_when_pm2_lost_it(deploy_env):  # noqa: F811
    # make demo; make demo-stop; make demo failed in the smoke test ("Connection refused") with
    # "State left: ... still serves": the no-op path never checked that PM2 runs the live release
    env = deploy_env
    assert_ok(env.deploy("v1"))
    assert pm2(env, "kill").returncode == 0
    run = env.deploy("v1")
    assert_ok(run)
    assert "No change" in run.stdout and "PM2 was not running it" in run.stdout and "it was started" in run.stdout
    assert env.health()["revision"] == env.shas["v1"]
    assert len(env.history()["releases"]) == 1
