# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: deploy_report
type: aggregate
short_description: Report the state a deploy or rollback left on hosts that became unreachable
version_added: "0.1.0"
description:
  - When a host becomes UNREACHABLE mid-deploy, the deploy's rescue does not run on it, so it
    cannot say what it left behind. At the end of the run this callback prints, for each such host,
    the stage and task where the connection dropped, Ansible's message, and what the run had done
    there by then (deploy lock taken, switch started, release recorded as pending).
  - It knows only what it saw in task results on the controller (the run's state, the fact
    C(deploy_run) of C(deploy.yml), that is its id, stage, switched and migration_started and the
    path of its backup; results of M(maestro.deploy.deploy_lock) and
    M(maestro.deploy.release_history)); it prints no other result data.
  - It prints nothing when no host was lost. For C(rollback.yml) the report says ROLLBACK LOST.
requirements:
  - "enable it in ansible.cfg: callbacks_enabled = maestro.deploy.deploy_report"
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

import os  # noqa: E402

from ansible import constants as C  # noqa: E402
from ansible.module_utils.parsing.convert_bool import boolean  # noqa: E402
from ansible.plugins.callback import CallbackBase  # noqa: E402

MSG_MAX = 400


def one_line(text):
    """Ansible's unreachable message on one line, cut to a readable length."""
    text = " ".join(str(text or "no message").split())
    text = text[len("Task failed: "):] if text.startswith("Task failed: ") else text  # ansible-core 2.19's prefix
    return text if len(text) <= MSG_MAX else text[:MSG_MAX - 3] + "..."


class CallbackModule(CallbackBase):
    """Remembers per host what the run did, and reports the hosts it lost."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "maestro.deploy.deploy_report"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self._what = "DEPLOY"
        self._run_release_id = None  # a run_once set_fact reaches every host, its result names one
        self._run = {}  # run-wide: whether the migrations started (they run once), the backup
        self._hosts = {}

    def _state(self, host):
        return self._hosts.setdefault(host, {})

    def _release_id(self, host):
        return self._state(host).get("release_id") or self._run_release_id

    def v2_playbook_on_start(self, playbook):
        name = os.path.basename(getattr(playbook, "_file_name", "") or "")
        self._what = "ROLLBACK" if name.startswith("rollback") else "DEPLOY"

    def v2_runner_on_ok(self, result):
        host, res = result._host.get_name(), result._result
        if res.get("failed"):
            return
        for item in [res] + [r for r in res.get("results") or [] if isinstance(r, dict)]:
            self._note_facts(host, item.get("ansible_facts") or {})
        action = str(getattr(result._task, "action", "") or "")
        if action.endswith("deploy_lock"):
            self._note_lock(host, res, self._module_state(result))
        elif action.endswith("release_history"):
            self._note_history(host, res)

    def v2_runner_on_unreachable(self, result):
        state = self._state(result._host.get_name())
        state["lost"] = dict(what=self._what, task=result._task.get_name(), msg=one_line(result._result.get("msg")))

    def v2_playbook_on_stats(self, stats):
        for host in sorted(self._hosts):
            # an unreachable result under ignore_unreachable is not counted as unreachable: not lost
            if "lost" in self._hosts[host] and stats.summarize(host).get("unreachable"):
                self._display.display(self.report(host), color=C.COLOR_ERROR)

    @staticmethod
    def _module_state(result):
        """deploy_lock's `state` option, from the result's invocation or the task's arguments."""
        args = (result._result.get("invocation") or {}).get("module_args") or getattr(result._task, "args", None) or {}
        return args.get("state", "present")

    def _note_facts(self, host, facts):
        """deploy.yml's run state, the fact deploy_run (set whole each time a stage changes it)."""
        run = facts.get("deploy_run")
        if not isinstance(run, dict):
            return
        state = self._state(host)
        if "stage" in run:
            state["stage"] = str(run["stage"])
        if run.get("id"):
            state["release_id"] = self._run_release_id = str(run["id"])
        if "switched" in run:
            state["switched"] = boolean(run["switched"], strict=False)
        if boolean(run.get("migration_started", False), strict=False):
            self._run["migration_started"] = True
        backup = run.get("backup")
        if isinstance(backup, dict) and backup.get("path"):
            self._run["backup"] = str(backup["path"])

    def _note_lock(self, host, res, module_state):
        if module_state == "query":  # reports whoever holds the lock, maybe another run
            return
        if "held_by" in res or res.get("msg"):  # an attempt that failed (failed_when: false): another run's lock
            return
        holder = res.get("holder")
        if isinstance(holder, dict):
            self._state(host).update(lock=dict(path=str(res.get("path")), release_id=holder.get("release_id")),
                                     released=False)
        elif holder is None and self._state(host).pop("lock", None):
            self._state(host)["released"] = True

    def _note_history(self, host, res):
        release_id = self._release_id(host)
        for release in res.get("releases") or []:
            if release_id and isinstance(release, dict) and release.get("id") == release_id:
                self._state(host)["pending"] = release.get("status") == "pending"

    def report(self, host):
        """The report for a lost host: where it was lost, and what this run had done there."""
        state = self._state(host)
        lost, release_id, lock = state["lost"], self._release_id(host), state.get("lock")
        rollback = lost["what"] == "ROLLBACK"
        stage = " in stage %s" % state["stage"] if state.get("stage") else ""
        lines = ['%s LOST %s%s (task "%s"): %s' % (lost["what"], host, stage, lost["task"], lost["msg"]),
                 "State left (the %s could not run on a host it cannot reach):" % ("unlock" if rollback else "rescue")]
        if lock:
            held_by = ("this rollback (to release %s)" if rollback else "release %s of this run") % lock["release_id"]
            lines.append("- the deploy lock %s stays held by %s;" % (lock["path"], held_by))
        else:
            lines.append("- this run had released the deploy lock;" if state.get("released")
                         else "- this run had not taken the deploy lock yet;")
        if state.get("switched"):
            lines.append("- current and PM2 may already serve release %s (the switch had started):"
                         " check what serves;" % release_id)
        elif "switched" in state:
            lines.append("- current and PM2 were not touched by this run;")
        elif rollback and lock:
            lines.append("- current, PM2 and the database may be partly rolled back: check what serves;")
        if self._run.get("migration_started") and not rollback:
            backup = self._run.get("backup")
            lines.append("- the migration stage had started: the database may carry this release's migrations%s;"
                         % (" (the backup from before them is %s)" % backup if backup else ""))
        if state.get("pending") and release_id:
            history = os.path.join(os.path.dirname(lock["path"]), "history.json") if lock else "the release history"
            lines.append('- release %s stays "pending" in %s;' % (release_id, history))
        lines[-1] = lines[-1][:-1] + "."
        if lock:
            lines.append("When the host answers again: run deploy.yml again, or rollback.yml, with"
                         " -e deploy_break_lock=true; the lock of a run that has ended may then be broken"
                         ' (see README, "Deploy lock").')
        else:
            lines.append("When the host answers again: run %s again." % ("rollback.yml" if rollback else "deploy.yml"))
        return "\n".join(lines)
