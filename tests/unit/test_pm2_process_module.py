"""The module's run against a fake AnsibleModule: the exact pm2 argv, the environment only in
environ_update, secrets masked, check mode running nothing but jlist."""

import json
import os

import pytest
from ansible_collections.maestro.deploy.plugins.modules import pm2_process

from tests.unit.fakes import Exit, ModuleRun

ECO = "/srv/app/current/ecosystem.config.js"


class FakeModule(ModuleRun):
    def __init__(self, params, jlists, check_mode=False, tmpdir="/tmp"):
        defaults = dict(state="started", ecosystem=None, script=None, cwd=None, exec_mode=None, instances=None,
                        env={}, secret_env={}, expected_cwd=None, pm2="/opt/pm2", pm2_home="/srv/app/.pm2",
                        wait_online=5, stable_for=0, save=False, log_lines=5,
                        start=None, interpreter=None, args=[], probe_seconds=5)
        super().__init__(dict(defaults, **params), check_mode=check_mode)
        self.jlists = list(jlists)
        self.tmpdir = tmpdir

    def run_command(self, args, **kwargs):
        self.calls.append(dict(args=args, environ_update=kwargs.get("environ_update"), cwd=kwargs.get("cwd")))
        if args[1] == "jlist":
            return 0, json.dumps(self.jlists.pop(0) if len(self.jlists) > 1 else self.jlists[0]), ""
        return 0, "[PM2] done with postgresql://u:s3cret@h/db\n", ""

    def get_bin_path(self, name, required=False, opt_dirs=None):
        raise AssertionError("pm2 was given explicitly")


def proc(pm_id, restarts=0, pid=None, name="app"):
    return {"name": name, "pm_id": pm_id, "pid": pid or 4000 + pm_id + 10 * restarts, "monit": {"memory": 1},
            "pm2_env": {"status": "online", "restart_time": restarts, "pm_uptime": 1, "exec_mode": "cluster_mode",
                        "pm_cwd": "/srv/app/current", "pm_exec_path": "/srv/app/current/pm2-start.js",
                        "env": {"DATABASE_URL": "postgresql://u:s3cret@h/db"}}}


@pytest.fixture(autouse=True)
def fake_host(monkeypatch, tmp_path):
    eco = tmp_path / "ecosystem.config.js"
    eco.write_text("module.exports = {apps: []};\n")
    monkeypatch.setattr(pm2_process.os.path, "isfile", lambda p: p in (ECO, "/opt/pm2") or p == str(eco))
    monkeypatch.setattr(pm2_process.os, "access", lambda p, mode: True)
    monkeypatch.setattr(pm2_process, "running_dir", lambda pid, pm_cwd: "/srv/app/releases/B")
    monkeypatch.setattr(pm2_process, "pid_alive", lambda pid: True)


def run(module):
    with pytest.raises(Exit):
        pm2_process.Pm2App(module).run()
    return module.result


def test_reload_runs_exact_argv_with_env_only_in_environment():
    module = FakeModule(dict(name="app", state="reloaded", ecosystem=ECO, env={"PORT": 3000},
                             secret_env={"DATABASE_URL": "postgresql://u:s3cret@h/db"}),
                        jlists=[[proc(0), proc(1)], [proc(0, 1), proc(1, 1)]])
    result = run(module)
    assert [c["args"] for c in module.calls] == [
        ["/opt/pm2", "jlist"],
        ["/opt/pm2", "reload", ECO, "--only", "app", "--update-env"],
        ["/opt/pm2", "jlist"],
    ]
    assert module.calls[0]["environ_update"] == {"PM2_HOME": "/srv/app/.pm2", "LC_ALL": "C"}
    assert module.calls[1]["environ_update"] == {
        "PM2_HOME": "/srv/app/.pm2", "LC_ALL": "C", "PORT": "3000", "DATABASE_URL": "postgresql://u:s3cret@h/db"}
    assert result["changed"] is True and result["action"] == "reload"
    assert [i["restarts"] for i in result["instances"]] == [1, 1]
    assert "s3cret" not in json.dumps(result)


def test_check_mode_runs_only_jlist():
    module = FakeModule(dict(name="app", state="restarted", ecosystem=ECO), jlists=[[proc(0)]], check_mode=True)
    result = run(module)
    assert [c["args"] for c in module.calls] == [["/opt/pm2", "jlist"]]
    assert result["changed"] is True and result["action"] == "restart"


def test_started_when_online_changes_nothing_but_checks_the_release(monkeypatch):
    module = FakeModule(dict(name="app", ecosystem=ECO, expected_cwd="/srv/app/releases/A"), jlists=[[proc(0)]])
    monkeypatch.setattr(pm2_process.os.path, "isdir", lambda p: p == "/srv/app/releases/A")
    result = run(module)
    assert result["failed"] and "do not run from expected_cwd /srv/app/releases/A" in result["msg"]
    assert "cwd=/srv/app/releases/B" in result["msg"]


def test_stopped_on_an_absent_app_is_no_change():
    module = FakeModule(dict(name="app", state="stopped"), jlists=[[proc(0, name="other")]])
    result = run(module)
    assert result["changed"] is False and "nothing to stop" in result["note"]


def test_the_operator_environment_never_reaches_pm2():
    """PM2 stores its caller's whole environment in the app (issue 14): the module process keeps
    PATH and HOME, and sets PM2_HOME and LC_ALL, nothing else."""
    environ = {"PATH": "/usr/bin:/bin", "HOME": "/home/deploy", "AWS_SECRET_ACCESS_KEY": "k", "SSH_AUTH_SOCK": "/s",
               "ANSIBLE_CONFIG": "/x", "PGAPPNAME": "maestro.deploy:1", "PM2_HOME": "/old"}
    pm2_process.isolate_environment(environ, "/srv/app/.pm2")
    assert environ == {"PATH": "/usr/bin:/bin", "HOME": "/home/deploy", "PM2_HOME": "/srv/app/.pm2", "LC_ALL": "C"}


def started_proc(pm_id, exec_mode="fork_mode", status="online", script="/srv/app/current/server.js"):
    p = proc(pm_id)
    p["pm2_env"].update(exec_mode=exec_mode, status=status, pm_exec_path=script, pm_err_log_path="/nonexistent.log")
    return p


def test_start_npm_start_runs_the_package_json_script_through_a_generated_definition(monkeypatch, tmp_path):
    cwd = tmp_path / "current"
    cwd.mkdir()
    (cwd / "package.json").write_text(json.dumps({"scripts": {"start": "node --enable-source-maps server.js"}}))
    (cwd / "server.js").write_text("")
    monkeypatch.setattr(pm2_process.os.path, "isfile", lambda p: p == "/opt/pm2" or os.path.exists(p))
    written = {}
    real_dump = pm2_process.json.dump

    def keep(obj, fh):
        written.update(obj)
        real_dump(obj, fh)

    monkeypatch.setattr(pm2_process.json, "dump", keep)
    module = FakeModule(dict(name="app", state="started", start="npm start", cwd=str(cwd), exec_mode="fork",
                             instances=1), jlists=[[], [started_proc(0)]], tmpdir=str(tmp_path))
    result = run(module)
    assert not result.get("failed"), result.get("msg")
    start = module.calls[1]["args"]
    assert start[:2] == ["/opt/pm2", "start"] and start[3:] == ["--only", "app", "--update-env"]
    assert written == {"apps": [{"name": "app", "script": "server.js", "cwd": str(cwd), "exec_mode": "fork",
                                 "instances": 1, "interpreter": "node", "node_args": ["--enable-source-maps"]}]}
    assert result["start"]["via"] == "package.json scripts.start: node --enable-source-maps server.js"


@pytest.mark.parametrize("command, why", [
    ("node server.js; rm -rf /", "shell syntax"),
    ("npm start > /tmp/log", "shell syntax"),
    ("FOO=1 node server.js", "variable assignment"),
    ("node ../other/server.js", "not a path inside the release"),
    ("npm run serve", "no scripts.serve"),
])
def test_start_commands_that_need_a_shell_or_leave_the_release_are_refused(tmp_path, command, why):
    (tmp_path / "package.json").write_text(json.dumps({"scripts": {"start": "node server.js"}}))
    module = FakeModule(dict(name="app", start=command, cwd=str(tmp_path)), jlists=[[]])
    result = run(module)
    assert result["failed"] and why in result["msg"], result["msg"]
    assert module.calls == []


def test_a_cluster_start_up_crash_with_empty_logs_shows_the_apps_own_error(monkeypatch, tmp_path):
    """PM2 writes nothing for a cluster worker that dies while loading (issue 13, item 12): the
    module runs the entry once outside PM2 and shows what it printed."""
    script = tmp_path / "server.js"
    script.write_text("throw new Error('boom')")
    errored = started_proc(0, exec_mode="cluster_mode", status="errored", script=str(script))
    errored["pm2_env"]["pm_cwd"] = str(tmp_path)
    monkeypatch.setattr(pm2_process.os.path, "isfile", lambda p: p in (ECO, "/opt/pm2", str(script)))
    module = FakeModule(dict(name="app", state="restarted", ecosystem=ECO, pm2_home=str(tmp_path / "pm2"),
                             secret_env={"DATABASE_URL": "postgresql://u:s3cret@h/db"}),
                        jlists=[[proc(0)], [errored]])
    module.get_bin_path = lambda name, required=False, opt_dirs=None: "/usr/bin/" + name
    answers = {"start-up": (1, "", "/srv/app/current/server.js:1\nError: cannot connect to postgresql://u:s3cret@h/db\n")}

    def run_command(args, **kwargs):
        module.calls.append(dict(args=args, environ_update=kwargs.get("environ_update"), cwd=kwargs.get("cwd")))
        if args[0] == "/usr/bin/timeout":
            return answers["start-up"]
        if args[1] == "jlist":
            return 0, json.dumps(module.jlists.pop(0) if len(module.jlists) > 1 else module.jlists[0]), ""
        return 0, "", ""

    module.run_command = run_command
    result = run(module)
    probe = [c for c in module.calls if c["args"][0] == "/usr/bin/timeout"]
    assert [c["args"] for c in probe] == [["/usr/bin/timeout", "-k", "2", "5", "/usr/bin/node", str(script)]]
    assert probe[0]["cwd"] == str(tmp_path)
    assert probe[0]["environ_update"]["DATABASE_URL"] == "postgresql://u:s3cret@h/db"
    assert result["failed"] and "is errored" in result["msg"]
    assert "Error: cannot connect to ********" in result["msg"]
    assert "s3cret" not in json.dumps(result)
    assert result["startup_probe"]["rc"] == 1
