"""The deploy_report callback: what it prints for hosts lost (UNREACHABLE) mid-deploy, from tiny fake results."""

import pytest
from ansible import constants as C
from ansible_collections.maestro.deploy.plugins.callback.deploy_report import CallbackModule, one_line

LOCK = "/var/www/app/.deploy.lock"
RID = "20260301T101500Z-v2"
SSH_MSG = "Failed to connect to the host via ssh: ssh: connect to host 10.0.0.5 port 22:\n Connection timed out"


class FakeHost:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeTask:
    def __init__(self, name, action="ansible.builtin.set_fact", args=None):
        self.name, self.action, self.args = name, action, args or {}

    def get_name(self):
        return self.name


class FakeResult:
    def __init__(self, host, task, result):
        self._host, self._task, self._result = FakeHost(host), task, result


class FakeDisplay:
    verbosity = 0

    def __init__(self):
        self.shown = []

    def display(self, msg, color=None, **kwargs):
        self.shown.append((msg, color))


class FakeStats:
    def __init__(self, unreachable=()):
        self.unreachable = set(unreachable)

    def summarize(self, host):
        return dict(ok=1, changed=0, unreachable=int(host in self.unreachable), failures=0, skipped=0)


class FakePlaybook:
    def __init__(self, file_name):
        self._file_name = file_name


class Run:
    """Drives the callback the way a playbook run would."""

    def __init__(self, playbook="playbooks/deploy.yml"):
        self.display = FakeDisplay()
        self.cb = CallbackModule(display=self.display)
        self.cb.v2_playbook_on_start(FakePlaybook(playbook))
        self.run_states = {}

    def facts(self, host, **facts):
        self.cb.v2_runner_on_ok(FakeResult(host, FakeTask("Set facts"), {"ansible_facts": facts, "changed": False}))

    def state(self, host, run_once_for=(), **changes):
        """deploy.yml's set_fact of deploy_run: the whole state, changed (run_states: each host's so far).

        run_once_for: the hosts a run_once set_fact also hands it to (its result names only host)."""
        for each in (host,) + tuple(run_once_for):
            self.run_states.setdefault(each, {}).update(changes)
        self.facts(host, deploy_run=dict(self.run_states[host]))

    def lock(self, host, holder, state="present", failed=False, **extra):
        res = dict({"path": LOCK, "holder": holder, "changed": False, "failed": failed,
                    "invocation": {"module_args": {"path": LOCK, "state": state, "token": "t"}}}, **extra)
        self.cb.v2_runner_on_ok(FakeResult(host, FakeTask("Take the deploy lock", "maestro.deploy.deploy_lock"), res))

    def history(self, host, status):
        res = {"releases": [{"id": "old", "status": "success"}, {"id": RID, "status": status}], "changed": True}
        task = FakeTask("Record the release", "maestro.deploy.release_history")
        self.cb.v2_runner_on_ok(FakeResult(host, task, res))

    def unreachable(self, host, task, msg=SSH_MSG):
        self.cb.v2_runner_on_unreachable(FakeResult(host, FakeTask(task), {"unreachable": True, "msg": msg}))

    def end(self, *unreachable):
        self.cb.v2_playbook_on_stats(FakeStats(unreachable))
        return [msg for msg, _ in self.display.shown]


def deploy_until_switch(run, hosts=("app1", "app2")):
    # run_once: every host has it, the result is reported for the first host only
    run.state(hosts[0], run_once_for=hosts[1:], id=RID, stage="start", switched=False)
    for host in hosts:
        run.state(host, stage="preflight")
        run.lock(host, {"who": "ops", "action": "deploy", "release_id": RID, "token": RID, "pid": 42})
        run.history(host, "pending")
        run.state(host, stage="switch")


def test_host_lost_mid_stage_with_the_lock_taken():
    run = Run()
    deploy_until_switch(run)
    run.unreachable("app2", "Run the before hook of the stage switch")
    assert run.end("app2") == [
        'DEPLOY LOST app2 in stage switch (task "Run the before hook of the stage switch"): Failed to connect to the'
        " host via ssh: ssh: connect to host 10.0.0.5 port 22: Connection timed out\n"
        "State left (the rescue could not run on a host it cannot reach):\n"
        f"- the deploy lock {LOCK} stays held by release {RID} of this run;\n"
        "- current and PM2 were not touched by this run;\n"
        f'- release {RID} stays "pending" in /var/www/app/history.json.\n'
        "When the host answers again: run deploy.yml again, or rollback.yml, with -e deploy_break_lock=true;"
        ' the lock of a run that has ended may then be broken (see README, "Deploy lock").']
    assert run.display.shown[0][1] == C.COLOR_ERROR  # visible, like an error


def test_host_lost_after_the_switch_started_says_so():
    run = Run()
    deploy_until_switch(run, hosts=("app1",))
    run.state("app1", switched=True)
    run.unreachable("app1", "pm2_app : Reload the app")
    report = run.end("app1")[0]
    assert f"- current and PM2 may already serve release {RID} (the switch had started): check what serves;" in report
    assert "not touched" not in report


def test_host_lost_after_the_migrations_started_names_the_backup():
    run = Run()
    deploy_until_switch(run, hosts=("app1",))
    run.state("app1", backup={"path": "/var/backups/app/app_20260301.dump", "sha256": "ab"})
    run.state("app1", migration_started=True)
    run.unreachable("app1", "Run the before hook of the stage switch")
    report = run.end("app1")[0]
    assert ("- the migration stage had started: the database may carry this release's migrations"
            " (the backup from before them is /var/backups/app/app_20260301.dump);") in report
    assert "sha256" not in report


def test_host_lost_before_the_lock():
    run = Run()
    run.state("app1", stage="start", switched=False)
    run.state("app1", id=RID)
    run.state("app1", stage="preflight")
    run.unreachable("app1", "preflight : Check the inventory values a deploy relies on", msg="Connection refused")
    assert run.end("app1") == [
        'DEPLOY LOST app1 in stage preflight (task "preflight : Check the inventory values a deploy relies on"):'
        " Connection refused\n"
        "State left (the rescue could not run on a host it cannot reach):\n"
        "- this run had not taken the deploy lock yet;\n"
        "- current and PM2 were not touched by this run.\n"
        "When the host answers again: run deploy.yml again."]


def test_no_lost_host_prints_nothing():
    run = Run()
    deploy_until_switch(run)
    run.lock("app1", None, state="absent")
    assert run.end() == []


def test_unreachable_ignored_by_the_task_is_not_a_lost_host():
    run = Run()
    deploy_until_switch(run)
    run.unreachable("app1", "Probe with ignore_unreachable")
    assert run.end() == []  # the stats do not count it as unreachable


def test_rollback_wording_without_a_stage():
    run = Run(playbook="/work/main/playbooks/rollback.yml")
    run.facts("app1", rollback_id="rollback-20260301T110000Z")
    run.lock("app1", {"action": "rollback", "release_id": "20260201T090000Z-v1", "token": "rollback-x"})
    run.unreachable("app1", "rollback : Switch current back and reload the app")
    assert run.end("app1") == [
        'ROLLBACK LOST app1 (task "rollback : Switch current back and reload the app"): ' + one_line(SSH_MSG) + "\n"
        "State left (the unlock could not run on a host it cannot reach):\n"
        f"- the deploy lock {LOCK} stays held by this rollback (to release 20260201T090000Z-v1);\n"
        "- current, PM2 and the database may be partly rolled back: check what serves.\n"
        "When the host answers again: run deploy.yml again, or rollback.yml, with -e deploy_break_lock=true;"
        ' the lock of a run that has ended may then be broken (see README, "Deploy lock").']


def test_rollback_lost_before_its_lock():
    run = Run(playbook="rollback.yml")
    run.unreachable("app1", "rollback : Read the release history")
    assert run.end("app1")[0].splitlines()[2:] == [
        "- this run had not taken the deploy lock yet.", "When the host answers again: run rollback.yml again."]


@pytest.mark.parametrize("state, holder, failed", [
    ("query", {"release_id": "someone-else", "token": "other"}, False),  # query reports any holder
    ("present", {"release_id": "someone-else", "token": "other"}, True),  # held by another run: the task failed
])
def test_only_a_lock_this_run_took_counts(state, holder, failed):
    run = Run()
    run.state("app1", stage="preflight")
    run.lock("app1", holder, state=state, failed=failed)
    run.unreachable("app1", "Next task")
    assert "- this run had not taken the deploy lock yet" in run.end("app1")[0]


def test_a_refused_attempt_reported_as_ok_is_not_this_runs_lock():
    """The preflight's first attempt runs with failed_when: false: ok, but holding another run's lock."""
    run = Run()
    run.state("app1", stage="preflight")
    run.lock("app1", {"release_id": "someone-else", "token": "other"}, held_by="held by ops ...",
             msg="deploy lock at /x is held by ops ...")
    run.unreachable("app1", "Next task")
    assert "- this run had not taken the deploy lock yet" in run.end("app1")[0]


def test_released_lock_and_recorded_release_are_not_reported_as_held():
    run = Run()
    deploy_until_switch(run, hosts=("app1",))
    run.state("app1", switched=True, stage="record")
    run.history("app1", "success")
    run.lock("app1", None, state="absent")
    run.unreachable("app1", "Summarise the deploy")
    report = run.end("app1")[0]
    assert "- this run had released the deploy lock;" in report
    assert "pending" not in report and "deploy_break_lock" not in report


def test_facts_set_in_a_loop_are_seen():
    run = Run()
    res = {"results": [{"ansible_facts": {"deploy_run": {"stage": "backup"}}}], "changed": False}
    run.cb.v2_runner_on_ok(FakeResult("app1", FakeTask("Loop"), res))
    run.unreachable("app1", "Take the backup")
    assert run.end("app1")[0].startswith('DEPLOY LOST app1 in stage backup (task "Take the backup")')


def test_prints_nothing_else_from_results():
    run = Run()
    run.facts("app1", deploy_run={"stage": "migrate", "db_password": "s3cret-pw"}, db_password="s3cret-pw")
    run.lock("app1", {"release_id": RID, "token": RID, "who": "ops-secret-user"})
    res = {"unreachable": True, "msg": "ssh: connection closed", "stdout": "s3cret-pw",
           "invocation": {"x": "s3cret-pw"}}
    run.cb.v2_runner_on_unreachable(FakeResult("app1", FakeTask("Apply the migrations"), res))
    report = run.end("app1")[0]
    assert "s3cret" not in report and "ops-secret-user" not in report
    assert "ssh: connection closed" in report


def test_one_line_cuts_long_messages():
    text = one_line("a\n" * 500)
    assert "\n" not in text and len(text) == 400 and text.endswith("...")
