"""Run this repository's playbooks through ansible-runner, as CI and ops would."""

import os

import ansible_runner

from .paths import ANSIBLE_CFG, REPO, VENV_BIN


class PlaybookRun:
    """What a playbook run did: status, rc, the events, and the text a person would read."""

    def __init__(self, runner):
        self.status = runner.status
        self.rc = runner.rc
        self.events = list(runner.events)
        self.stdout = runner.stdout.read()

    @property
    def ok(self):
        return self.status == "successful" and self.rc == 0

    def task_results(self, task_name=None, ran=False):
        """Per-host results of finished tasks (ok, changed, failed or skipped), in order; with
        `ran`, only those that ran (a task file included for another phase skips the rest)."""
        wanted = ("runner_on_ok", "runner_on_failed") + (() if ran else ("runner_on_skipped",))
        out = []
        for ev in self.events:
            if ev.get("event") not in wanted:
                continue
            data = ev.get("event_data", {})
            if task_name is None or data.get("task") == task_name:
                out.append(dict(task=data.get("task"), host=data.get("host"), event=ev["event"],
                                res=data.get("res", {})))
        return out

    def failed_tasks(self):
        return [r for r in self.task_results() if r["event"] == "runner_on_failed"
                and not r["res"].get("_ansible_ignore_errors")]


def run_playbook(playbook, inventory, private_dir, extravars=None, check=False, diff=False, verbosity=0,
                 envvars=None):
    """Run playbooks/<playbook> with the repo's ansible.cfg; `inventory` is a path or a dict."""
    os.makedirs(private_dir, exist_ok=True)
    cmdline = []
    if check:
        cmdline.append("--check")
    if diff:
        cmdline.append("--diff")
    env = {
        "ANSIBLE_CONFIG": ANSIBLE_CFG,
        "PATH": VENV_BIN + os.pathsep + os.environ.get("PATH", ""),
        "ANSIBLE_LOCAL_TEMP": os.path.join(private_dir, "tmp"),
        "ANSIBLE_HOME": os.path.join(private_dir, "ansible-home"),
        "ANSIBLE_NOCOLOR": "1",
    }
    env.update(envvars or {})
    runner = ansible_runner.run(
        private_data_dir=private_dir,
        project_dir=REPO,
        playbook=os.path.join(REPO, "playbooks", playbook),
        inventory=inventory,
        extravars=extravars or {},
        envvars=env,
        cmdline=" ".join(cmdline) or None,
        verbosity=verbosity,
        quiet=True,
    )
    return PlaybookRun(runner)
