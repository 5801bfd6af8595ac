"""maestro.deploy.pm2_process against real PM2 (node_modules/.bin/pm2), the example app and
PostgreSQL, run through `ansible localhost -m`: idempotent states, a zero-downtime reload from
release A to B under load (and back), a crash at start, and bad input."""

import json
import os
import subprocess
import time
import types

import psycopg
import pytest

from tests.support.adhoc import run_module
from tests.support.http import wait_for_health
from tests.support.paths import PM2
from tests.support.pgcluster import free_port
from tests.support.releases import LoadLoop, make_release, switch_current, write_shared_env

MODULE = "maestro.deploy.pm2_process"


@pytest.fixture
def app_root(tmp_path, pg_cluster, pg_db, pm2_home):
    """<root>/releases/A (1.0.0) and B (2.0.0), shared/.env with DATABASE_URL, current -> A."""
    with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, notes text,"
                     " created_at timestamp DEFAULT now())")
    root = tmp_path / "app"
    root.mkdir()
    write_shared_env(str(root), DATABASE_URL=pg_cluster.url(pg_db))
    releases = {rid: make_release(str(root), rid, ver) for rid, ver in (("A", "1.0.0"), ("B", "2.0.0"))}
    current = switch_current(str(root), "A")
    port = free_port()
    return types.SimpleNamespace(
        root=str(root), releases=releases, current=current, port=port, pm2_home=pm2_home,
        url=f"http://127.0.0.1:{port}/health", ecosystem=os.path.join(current, "ecosystem.config.js"),
        name="pm2-test-" + os.urandom(3).hex(), database_url=pg_cluster.url(pg_db),
    )


def module_args(app, **overrides):
    args = dict(name=app.name, ecosystem=app.ecosystem, pm2=PM2, pm2_home=app.pm2_home,
                env={"PORT": str(app.port), "APP_NAME": app.name}, wait_online=20, stable_for=1)
    args.update(overrides)
    return args


def jlist(app):
    out = subprocess.run([PM2, "jlist"], env=dict(os.environ, PM2_HOME=app.pm2_home), capture_output=True,
                         text=True, check=True).stdout
    return [p for p in json.loads(out[out.index("["):]) if p["name"] == app.name]


def proc_cwds(app):
    return sorted(os.path.realpath(os.readlink(f"/proc/{p['pid']}/cwd")) for p in jlist(app))


def served_by(app, requests=40):
    loop = LoadLoop(app.url, interval=0.01, max_requests=requests)
    loop.run()
    assert loop.failures == []
    return loop.seen_cwds


def test_started_stopped_absent_are_idempotent(app_root, pg_cluster):
    app = app_root
    secret = pg_cluster.app_password
    with open(os.path.join(app.root, "shared", ".env"), "w") as fh:
        fh.write("")  # the database URL comes from secret_env only in this test
    args = module_args(app, secret_env={"DATABASE_URL": app.database_url})

    first = run_module(MODULE, dict(args, state="started", expected_cwd=app.releases["A"]), diff=True)
    assert not first.failed, first.stdout
    assert first.result["changed"] is True and first.result["action"] == "start"
    assert first.result["diff"]["before"]["status"] == "absent"
    assert first.result["diff"]["after"]["status"] == "online"
    assert [i["status"] for i in first.result["instances"]] == ["online", "online"]
    assert {i["cwd"] for i in first.result["instances"]} == {app.releases["A"]}
    assert wait_for_health(app.url)["version"] == "1.0.0"
    assert secret not in first.stdout + first.stderr + json.dumps(first.result)

    again = run_module(MODULE, dict(args, state="started"))
    assert not again.failed and again.result["changed"] is False and again.result["action"] == "none"

    would = run_module(MODULE, dict(args, state="reloaded"), check=True)
    assert would.result["changed"] is True and would.result["action"] == "reload"
    assert [p["pm2_env"]["restart_time"] for p in jlist(app)] == [0, 0]  # check mode ran nothing

    stopped = run_module(MODULE, dict(args, state="stopped"))
    assert stopped.result["changed"] is True and stopped.result["status"] == "stopped"
    assert {p["pm2_env"]["status"] for p in jlist(app)} == {"stopped"}
    assert run_module(MODULE, dict(args, state="stopped")).result["changed"] is False

    gone = run_module(MODULE, dict(args, state="absent"))
    assert gone.result["changed"] is True and jlist(app) == []
    assert run_module(MODULE, dict(args, state="absent")).result["changed"] is False


@pytest.mark.serial  # measures dropped requests: runs alone, after the parallel part of make test
def test_reload_under_load_switches_every_worker_to_the_new_release(app_root, record_property):
    app = app_root
    started = run_module(MODULE, module_args(app, state="started", expected_cwd=app.releases["A"]))
    assert not started.failed, started.stdout
    assert set(served_by(app)) == {app.releases["A"]}

    loop = LoadLoop(app.url, interval=0.02, max_requests=1500)
    loop.start()
    try:
        time.sleep(0.5)
        switch_current(app.root, "B")
        reloaded = run_module(MODULE, module_args(app, state="reloaded", expected_cwd=app.current))
        time.sleep(0.5)
    finally:
        loop.stop()
    assert not reloaded.failed, reloaded.stdout
    assert reloaded.result["action"] == "reload" and reloaded.result["reload_fell_back_to_restart"] is False
    assert loop.ok > 0 and loop.failures == [], loop.failures[:5]
    assert set(loop.seen_cwds) == {app.releases["A"], app.releases["B"]}
    assert set(served_by(app, 60)) == {app.releases["B"]}
    assert proc_cwds(app) == [app.releases["B"], app.releases["B"]]
    assert {i["cwd"] for i in reloaded.result["instances"]} == {app.releases["B"]}
    assert [i["restarts"] for i in reloaded.result["instances"]] == [1, 1]
    record_property("reload_requests", loop.total)
    record_property("reload_failed", len(loop.failures))

    # Rollback: the same call with current pointing back at A.
    switch_current(app.root, "A")
    rolled_back = run_module(MODULE, module_args(app, state="reloaded", expected_cwd=app.releases["A"]))
    assert not rolled_back.failed, rolled_back.stdout
    assert set(served_by(app)) == {app.releases["A"]}

    # restarted, for comparison only: the count is recorded, not asserted.
    switch_current(app.root, "B")
    loop = LoadLoop(app.url, interval=0.02, max_requests=1500)
    loop.start()
    try:
        restarted = run_module(MODULE, module_args(app, state="restarted", expected_cwd=app.releases["B"]))
        time.sleep(0.5)
    finally:
        loop.stop()
    assert not restarted.failed and restarted.result["action"] == "restart"
    record_property("restart_requests", loop.total)
    record_property("restart_failed", len(loop.failures))
    print(f"restarted under load: {len(loop.failures)} failed of {loop.total} requests")


def test_reload_that_keeps_the_old_release_fails(app_root):
    """expected_cwd names a release the workers do not run: the task fails with their paths."""
    app = app_root
    assert not run_module(MODULE, module_args(app, state="started")).failed
    bad = run_module(MODULE, module_args(app, state="reloaded", expected_cwd=app.releases["B"]))
    assert bad.failed
    msg = bad.result["msg"]
    assert "do not run from expected_cwd" in msg
    assert app.releases["A"] in msg and app.releases["B"] in msg


def test_crash_at_start_fails_with_error_log(app_root):
    app = app_root
    args = module_args(app, state="started", wait_online=10, stable_for=2, log_lines=20)
    args["env"] = dict(args["env"], CRASH_ON_START="1")
    began = time.time()
    crashed = run_module(MODULE, args)
    elapsed = time.time() - began
    assert crashed.failed
    msg = crashed.result["msg"]
    print(msg)
    assert "CRASH_ON_START=1: refusing to start" in msg
    assert "status=" in msg
    tails = crashed.result["log_tail"]
    assert tails and any("refusing to start" in line for t in tails for line in t["lines"])
    # bounded by wait_online + stable_for (plus ansible's own start-up), not by PM2's restart loop
    assert elapsed < 10 + 2 + 30


def test_fork_mode_reload_falls_back_to_restart(app_root):
    app = app_root
    args = dict(name=app.name, script="dist/server.js", cwd=app.current, exec_mode="fork", instances=1,
                pm2=PM2, pm2_home=app.pm2_home, env={"PORT": str(app.port)}, wait_online=20, stable_for=1,
                expected_cwd=app.releases["A"])
    started = run_module(MODULE, dict(args, state="started"))
    assert not started.failed, started.stdout
    assert [i["exec_mode"] for i in started.result["instances"]] == ["fork"]
    switch_current(app.root, "B")
    reloaded = run_module(MODULE, dict(args, state="reloaded", expected_cwd=app.releases["B"]))
    assert not reloaded.failed, reloaded.stdout
    assert reloaded.result["action"] == "restart" and reloaded.result["reload_fell_back_to_restart"] is True
    assert "fell back to restart" in reloaded.result["note"]
    assert wait_for_health(app.url)["version"] == "2.0.0"


@pytest.mark.parametrize("overrides, message", [
    ({"ecosystem": "/nonexistent/ecosystem.config.js"}, "ecosystem file not found: /nonexistent/ecosystem.config.js"),
    ({"pm2": "/nonexistent/bin/pm2"}, "pm2 not found or not executable: /nonexistent/bin/pm2"),
    ({"ecosystem": None, "script": "dist/server.js", "cwd": "/tmp", "exec_mode": "forked"},
     "exec_mode must be one of: fork, cluster, got: forked"),
])
def test_bad_input_fails_clearly(tmp_path, pm2_home, overrides, message):
    (tmp_path / "ecosystem.config.js").write_text("module.exports = { apps: [] };\n")
    args = dict(name="never-started", state="started", ecosystem=str(tmp_path / "ecosystem.config.js"),
                pm2=PM2, pm2_home=pm2_home)
    args.update(overrides)
    args = {k: v for k, v in args.items() if v is not None}
    failed = run_module(MODULE, args)
    assert failed.failed
    assert message in failed.result["msg"]
