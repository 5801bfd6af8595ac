"""pm2_process's decisions without PM2: jlist parsing, the action per state, the exact argv,
the stability window, the release check and log tails."""

import json

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import pm2
from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import (
    Pm2OutputError,
    StabilityWatch,
    app_processes,
    app_status,
    daemon_app_lines,
    forget_deploy_session_name,
    decide,
    parse_jlist,
    pm2_argv,
    release_mismatches,
    script_config,
    summarize,
    tail_lines,
)


def proc(pm_id, status="online", pid=100, restarts=0, name="app", exec_mode="cluster_mode", cwd="/srv/app/current"):
    return {
        "name": name, "pm_id": pm_id, "pid": pid, "monit": {"memory": 1024, "cpu": 0},
        "pm2_env": {"status": status, "restart_time": restarts, "unstable_restarts": 0, "pm_uptime": 1000,
                    "exec_mode": exec_mode, "pm_cwd": cwd, "pm_exec_path": cwd + "/dist/server.js",
                    "pm_err_log_path": "/pm2/logs/app-error-%s.log" % pm_id,
                    "env": {"DATABASE_URL": "postgresql://u:s3cret@h/db"}},
    }


def inst(pm_id, status="online", pid=100, restarts=0, exec_mode="cluster", cwd="/srv/app/releases/B"):
    return dict(pm_id=pm_id, pid=pid, status=status, restarts=restarts, exec_mode=exec_mode, cwd=cwd, alive=True)


# -- jlist ------------------------------------------------------------------------------------
def test_parse_jlist_plain_and_after_daemon_notice():
    procs = [proc(0), proc(1)]
    assert parse_jlist(json.dumps(procs)) == procs
    noisy = "[PM2] Spawning PM2 daemon with pm2_home=/x\n[PM2] PM2 Successfully daemonized\n" + json.dumps(procs)
    assert parse_jlist(noisy) == procs
    assert parse_jlist("") == []


@pytest.mark.parametrize("text", ["not json at all", "[PM2] oops\n{\"a\": 1}", "{\"apps\": []}"])
def test_parse_jlist_rejects_screen_text(text):
    with pytest.raises(Pm2OutputError, match="pm2 jlist"):
        parse_jlist(text)


@pytest.mark.parametrize("text", [
    'oops DATABASE_URL=postgres://u:s3cret@h/db', '[{"pm2_env": {"DB_PASSWORD": "s3cret"}, ', '{"env": "s3cret"}'])
def test_parse_jlist_never_shows_the_text_it_could_not_read(text):
    """A process list holds every app's environment: a failure names its length, never its text."""
    with pytest.raises(Pm2OutputError) as err:
        parse_jlist(text)
    assert "s3cret" not in str(err.value) and "%d characters" % len(text.strip()) in str(err.value)


def test_app_processes_filters_by_name_and_orders_old_workers_last():
    procs = [proc(1), proc("_old_0"), proc(0), proc(2, name="other")]
    assert [p["pm_id"] for p in app_processes(procs, "app")] == [0, 1, "_old_0"]


def test_summarize_keeps_no_environment():
    summary = summarize(proc(0, restarts=3), now_ms=6000, running_dir="/srv/app/releases/B", alive=True)
    assert summary["restarts"] == 3 and summary["uptime_ms"] == 5000 and summary["memory"] == 1024
    assert summary["exec_mode"] == "cluster" and summary["cwd"] == "/srv/app/releases/B"
    assert "s3cret" not in json.dumps(summary)
    assert summarize(proc(0, status="stopped", pid=0), now_ms=6000)["uptime_ms"] == 0


# -- decisions ----------------------------------------------------------------------------------
ONLINE = [inst(0), inst(1)]
STOPPED = [inst(0, "stopped", 0), inst(1, "stopped", 0)]
ERRORED = [inst(0, "errored", 0), inst(1)]
FORK = [inst(0, exec_mode="fork")]


@pytest.mark.parametrize("state, instances, action", [
    ("started", [], "start"), ("started", ONLINE, None), ("started", STOPPED, "start"), ("started", ERRORED, "start"),
    ("stopped", [], None), ("stopped", ONLINE, "stop"), ("stopped", STOPPED, None), ("stopped", ERRORED, "stop"),
    ("restarted", [], "start"), ("restarted", ONLINE, "restart"), ("restarted", STOPPED, "restart"),
    ("reloaded", [], "start"), ("reloaded", ONLINE, "reload"), ("reloaded", FORK, "restart"),
    ("absent", [], None), ("absent", ONLINE, "delete"), ("absent", STOPPED, "delete"),
])
def test_decide(state, instances, action):
    assert decide(state, instances)[0] == action


def test_fork_reload_says_it_restarted():
    assert "fell back to restart" in decide("reloaded", FORK)[1]
    assert decide("reloaded", ONLINE)[1] is None


def test_app_status():
    assert [app_status(x) for x in ([], ONLINE, STOPPED, ERRORED)] == ["absent", "online", "stopped", "mixed"]


# -- argv -------------------------------------------------------------------------------------
def test_argv_per_action():
    eco = "/srv/app/current/ecosystem.config.js"
    assert pm2_argv("/bin/pm2", "start", "app", eco) == [
        "/bin/pm2", "start", eco, "--only", "app", "--update-env"]
    assert pm2_argv("/bin/pm2", "reload", "app", eco) == [
        "/bin/pm2", "reload", eco, "--only", "app", "--update-env"]
    assert pm2_argv("/bin/pm2", "restart", "app", eco) == [
        "/bin/pm2", "restart", eco, "--only", "app", "--update-env"]
    assert pm2_argv("/bin/pm2", "stop", "app") == ["/bin/pm2", "stop", "app"]
    assert pm2_argv("/bin/pm2", "delete", "app") == ["/bin/pm2", "delete", "app"]
    assert pm2_argv("/bin/pm2", "jlist", "app") == ["/bin/pm2", "jlist"]
    with pytest.raises(ValueError):
        pm2_argv("/bin/pm2", "reload", "app")


def test_script_config_has_no_environment():
    assert script_config("w", "dist/w.js", "/srv/w/current", "cluster", 2) == {
        "apps": [{"name": "w", "script": "dist/w.js", "cwd": "/srv/w/current", "exec_mode": "cluster",
                  "instances": 2}]}
    assert script_config("w", "w.js", "/srv", None, None)["apps"][0]["exec_mode"] == "fork"


# -- stability ----------------------------------------------------------------------------------
def test_stable_after_the_window():
    watch = StabilityWatch(started=0, wait_online=10, stable_for=3)
    assert watch.observe(0.5, [inst(0, "launching", 0)])[0] == "wait"
    assert watch.observe(1, ONLINE)[0] == "wait"
    assert watch.observe(3.5, ONLINE)[0] == "wait"
    assert watch.observe(4, ONLINE) == ("ok", "online and stable for 3s")


def test_a_restart_in_the_window_starts_it_again_and_a_crash_loop_times_out():
    watch = StabilityWatch(started=0, wait_online=5, stable_for=3)
    assert watch.observe(1, ONLINE)[0] == "wait"
    assert watch.observe(3, [inst(0, pid=200, restarts=1), inst(1)])[0] == "wait"
    assert watch.observe(5, [inst(0, pid=300, restarts=2), inst(1)])[0] == "wait"
    verdict, reason = watch.observe(8, [inst(0, pid=400, restarts=3), inst(1)])
    assert verdict == "failed" and "instance(s) 0 kept restarting" in reason


def test_errored_or_stopped_fails_at_once():
    assert StabilityWatch(0, 30, 5).observe(1, ERRORED) == ("failed", "instance 0 is errored")
    assert StabilityWatch(0, 30, 5).observe(1, [inst(0, "stopped", 0)])[0] == "failed"


def test_never_online_fails_after_wait_online():
    watch = StabilityWatch(started=0, wait_online=2, stable_for=5)
    assert watch.observe(1, [inst(0, "launching", 0)])[0] == "wait"
    verdict, reason = watch.observe(2.5, [inst(0, "launching", 0)])
    assert verdict == "failed" and "wait_online=2s" in reason


def test_online_with_a_dead_pid_or_a_draining_old_worker_is_not_up():
    dead = [dict(inst(0), alive=False)]
    watch = StabilityWatch(0, 2, 1)
    assert watch.observe(1, dead)[0] == "wait"
    assert watch.observe(3, dead)[0] == "failed"
    draining = StabilityWatch(0, 10, 1)
    assert draining.observe(1, ONLINE + [inst("_old_0", cwd="/srv/app/releases/A")])[0] == "wait"
    assert draining.observe(2.5, ONLINE + [inst("_old_0")])[0] == "wait"
    assert draining.observe(3, ONLINE)[0] == "wait"
    assert draining.observe(4, ONLINE)[0] == "ok"


def test_expected_instance_count():
    watch = StabilityWatch(0, 2, 1, expected_count=2)
    assert watch.observe(1, [inst(0)])[0] == "wait"
    verdict, reason = watch.observe(3.5, [inst(0)])
    assert verdict == "failed" and "1 instance(s) running, 2 expected" in reason


# -- release check, logs ---------------------------------------------------------------------------
def test_release_mismatches_compare_real_directories():
    instances = [inst(0, cwd="/srv/app/releases/B"), inst(1, cwd="/srv/app/releases/A"),
                 inst(2, cwd="/srv/app/releases/B2"), inst(3, cwd="/srv/app/releases/B/sub"), inst(4, cwd=None)]
    assert [i["pm_id"] for i in release_mismatches(instances, "/srv/app/releases/B")] == [1, 2, 4]


def test_tail_lines(tmp_path):
    log = tmp_path / "app-error-0.log"
    log.write_text("".join("line %d\n" % n for n in range(100)))
    assert tail_lines(str(log), 3) == ["line 97", "line 98", "line 99"]
    assert tail_lines(str(log), 3, max_bytes=20) == ["line 98", "line 99"]  # the cut line is dropped
    assert tail_lines(str(tmp_path / "missing.log"), 3) == []
    assert tail_lines(str(log), 0) == []


def test_daemon_log_lines_of_one_app():
    lines = ["2026: PM2 log: App [app:0] starting in -cluster mode-",
             "2026: PM2 log: App [application:0] online",
             "2026: PM2 error: app=app id=0 does not have a pid",
             "2026: PM2 log: App name:app id:1 disconnected"]
    assert daemon_app_lines(lines, "app") == [lines[0], lines[2], lines[3]]


@pytest.mark.parametrize("before, after", [
    ({"PGAPPNAME": "maestro.deploy:20261125T234300Z-v2", "PATH": "/bin"}, {"PATH": "/bin"}),
    ({"PGAPPNAME": "reporting", "PATH": "/bin"}, {"PGAPPNAME": "reporting", "PATH": "/bin"}),  # not ours
    ({"PATH": "/bin"}, {"PATH": "/bin"}),
])
def test_the_app_does_not_inherit_the_deploys_session_name(before, after):
    environ = dict(before)
    forget_deploy_session_name(environ)
    assert environ == after


def _exists(*files):
    return lambda rel: rel in files


@pytest.mark.parametrize("command, scripts, files, expected", [
    ("npm start", {"start": "node server.js"}, ("server.js",),
     dict(script="server.js", args=[], interpreter="node", node_args=[])),
    ("npm start", {}, ("server.js",), dict(script="server.js", args=[], interpreter="node", node_args=[])),
    ("npm run serve", {"serve": "next start -p 3000"}, ("node_modules/.bin/next",),
     dict(script="node_modules/.bin/next", args=["start", "-p", "3000"], interpreter="node", node_args=[])),
    ("npm start", {"start": "NODE_ENV=production node server.js"}, ("server.js",),
     dict(script="npm", args=["start"], interpreter="none", node_args=[])),
    ("node --env-file .env -r ./trace.js 'dist/main server.js' --port 3",
     {}, ("dist/main server.js",),
     dict(script="dist/main server.js", args=["--port", "3"], interpreter="node",
          node_args=["--env-file", ".env", "-r", "./trace.js"])),
    ("./bin/www", {}, ("bin/www",), dict(script="bin/www", args=[], interpreter="none", node_args=[])),
])
def test_resolve_start(command, scripts, files, expected):
    got = pm2.resolve_start(command, scripts, _exists(*files))
    assert dict((k, got[k]) for k in expected) == expected


@pytest.mark.parametrize("command, why", [
    ("node server.js | tee log", "shell syntax (|)"),
    ("node $HOME/server.js", "shell syntax ($)"),
    ("node server.js\nrm -rf /", "shell syntax"),
    ("FOO=1 npm start", "variable assignment"),
    ("node /etc/passwd", "not a path inside the release"),
    ("node dist/../../x.js", "not a path inside the release"),
    ("node missing.js", "missing.js is not in the release"),
    ("npm start", "no scripts.start"),
    ("python app.py", "is not npm, node"),
    ("'unclosed", "cannot be split"),
    ("", "empty"),
])
def test_resolve_start_refuses(command, why):
    with pytest.raises(pm2.StartError) as err:
        pm2.resolve_start(command, {}, _exists())
    assert why in str(err.value)


def test_script_config_carries_args_interpreter_and_node_args():
    assert pm2.script_config("a", "npm", "/srv/a/current", "fork", 1, ["start"], "none", None) == {
        "apps": [{"name": "a", "script": "npm", "cwd": "/srv/a/current", "exec_mode": "fork", "instances": 1,
                  "args": ["start"], "interpreter": "none"}]}
