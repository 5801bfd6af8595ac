"""The module's run against a fake AnsibleModule: the exact pm2 argv, the environment only in
environ_update, secrets masked, check mode running nothing but jlist."""

import json

import pytest
from ansible_collections.maestro.deploy.plugins.modules import pm2_process

ECO = "/srv/app/current/ecosystem.config.js"


class Exit(Exception):
    pass


class FakeModule:
    def __init__(self, params, jlists, check_mode=False, tmpdir="/tmp"):
        defaults = dict(state="started", ecosystem=None, script=None, cwd=None, exec_mode=None, instances=None,
                        env={}, secret_env={}, expected_cwd=None, pm2="/opt/pm2", pm2_home="/srv/app/.pm2",
                        wait_online=5, stable_for=0, save=False, log_lines=5)
        self.params = dict(defaults, **params)
        self.jlists = list(jlists)
        self.check_mode = check_mode
        self._diff = False
        self.tmpdir = tmpdir
        self.calls = []
        self.result = None

    def run_command(self, args, **kwargs):
        self.calls.append(dict(args=args, environ_update=kwargs.get("environ_update")))
        if args[1] == "jlist":
            return 0, json.dumps(self.jlists.pop(0) if len(self.jlists) > 1 else self.jlists[0]), ""
        return 0, "[PM2] done with postgresql://u:s3cret@h/db\n", ""

    def get_bin_path(self, name, required=False, opt_dirs=None):
        raise AssertionError("pm2 was given explicitly")

    def exit_json(self, **kwargs):
        self.result = kwargs
        raise Exit()

    def fail_json(self, **kwargs):
        self.result = dict(kwargs, failed=True)
        raise Exit()


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
