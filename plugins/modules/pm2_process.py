#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pm2_process
short_description: Start, stop, restart or reload a PM2 app and wait until it is really up
description:
  - Manages one app (all instances of one name) under L(PM2,https://pm2.keymetrics.io/).
  - The state comes from C(pm2 jlist) (PM2's JSON), never from its screen tables.
  - After a start, restart or reload the task succeeds only when every instance is C(online)
    with a live pid and its restart counter and pid stay unchanged for O(stable_for) seconds.
    PM2 can report C(online) after a failed C(wait_ready) (pm2#4355) and prints success for a
    reload whose new workers crash (pm2#1155). A crash loop, an C(errored) or C(stopped)
    instance, or a timeout fails the task with each instance's status and the last
    O(log_lines) lines of its error log, in the message and in RV(log_tail).
  - C(reloaded) runs C(pm2 reload) (in cluster mode one worker at a time, each replaced only
    after its successor is ready, so no request is dropped when the app signals C(ready) and
    closes gracefully). In fork mode PM2 cannot do that; the module restarts and says so.
  - "Releases layout (C(releases/<id>), C(current) symlink): PM2 records the script path and
    cwd at start and reuses them for every reload, and a path taken from a resolved symlink
    keeps pointing at the old release (pm2#1663, pm2#2963). Point PM2 at the C(current) path
    (the example app's C(ecosystem.config.js) does this itself) and give O(expected_cwd): after
    every start, restart and reload the module checks each instance's real working directory
    (C(/proc/<pid>/cwd), else the resolved C(pm_cwd)) and fails when one runs another release."
  - Start, restart and reload pass C(--update-env), so the workers get O(env) and O(secret_env)
    (PM2 otherwise freezes a process's environment at its first start).
  - "Every pm2 command runs with a minimal environment: C(PATH), C(HOME), C(PM2_HOME), C(LC_ALL=C)
    and O(env)/O(secret_env). PM2 stores its caller's environment in the process definition and
    hands it to the app, so nothing else of the operator's session (tokens, C(SSH_AUTH_SOCK),
    Ansible's variables) reaches the app or C(pm2 jlist)."
  - "A start-up crash in cluster mode often leaves the error log empty (a worker that dies while
    loading loses its buffered output). Then the module runs the instance's script once with
    C(node) outside PM2 (same cwd and environment, at most O(probe_seconds) seconds) and puts the
    first lines it printed in the message, in RV(startup_probe)."
version_added: "0.1.0"
author: maestro.deploy contributors (!UNKNOWN)
options:
  name:
    description: Name of the app in PM2 (with O(ecosystem), the C(name) of one of its apps).
    type: str
    required: true
  state:
    description:
      - C(started) starts the app when it is absent or not online (already online - no change).
      - C(stopped) stops it (already stopped or absent - no change).
      - C(restarted) always restarts it (starts it when absent).
      - C(reloaded) always reloads it (zero-downtime in cluster mode; fork mode falls back to
        restart, see RV(note)); starts it when absent.
      - C(absent) deletes it from PM2's process list.
    type: str
    choices: [started, stopped, restarted, reloaded, absent]
    default: started
  ecosystem:
    description:
      - Path of a PM2 ecosystem file (C(.config.js), C(.json), C(.yml)) defining O(name).
        Used with C(--only <name>) for start, restart and reload.
      - Required to start an app that is not running, unless O(script) is given.
    type: path
  script:
    description:
      - Script to run when there is no ecosystem file (relative to O(cwd)). The module writes
        a one-app PM2 config with O(name), O(script), O(cwd), O(exec_mode) and O(instances).
    type: str
  start:
    description:
      - "A start command, as the app is started by hand: C(npm start), C(npm run serve),
        C(node --enable-source-maps server.js), C(node_modules/.bin/next start) or C(next start).
        Split into words like a shell would (quotes), but never run by a shell: pipes,
        redirections, C($), globs and the like are refused."
      - The module resolves it in O(cwd) and writes the PM2 process definition itself (as for
        O(script)). C(npm start) / C(npm run <name>) use the script from O(cwd)'s C(package.json);
        when that is a plain command (C(node server.js), C(next start)) PM2 runs it directly, so
        signals reach the app and cluster mode works; when it uses shell syntax PM2 runs C(npm)
        itself (fork mode only). What it resolved to is in RV(start).
    type: str
  interpreter:
    description: PM2 interpreter for O(script) (C(node), or C(none) for an executable).
    type: str
  args:
    description: Arguments for O(script).
    type: list
    elements: str
    default: []
  cwd:
    description:
      - Working directory for O(script). Give the C(current) symlink path (not a resolved
        release path) so that reloads pick up the release it points to.
    type: path
  exec_mode:
    description: PM2 exec mode for O(script) (with O(ecosystem), set it in the file).
    type: str
    choices: [fork, cluster]
  instances:
    description:
      - Number of instances for O(script) (with O(ecosystem), set it in the file). Also the
        number of instances the success check expects.
    type: int
  env:
    description:
      - Environment for the app, given to PM2 with C(--update-env) on start, restart and reload.
        Values are returned nowhere by this module; use O(secret_env) for values that must also
        be masked in command output and logs.
    type: dict
    default: {}
  secret_env:
    description:
      - Like O(env), for secrets (database URLs with passwords, tokens). C(no_log); the values
        are masked in everything the module returns (command output, log tails).
      - PM2 itself keeps every environment variable of a process in its daemon (and in its
        dump file with O(save)); anyone who can read O(pm2_home) can read them. A C(.env) file
        read by the app (mode 0600) keeps them out of PM2 entirely.
    type: dict
    default: {}
  expected_cwd:
    description:
      - Directory every instance must run from (or below) after a start, restart or reload,
        and when C(started) finds the app already online. Compared by real path, so a
        C(current) symlink and the release it points to are the same.
      - The module fails, naming each instance's directory, when an instance runs elsewhere
        (for example the previous release after a reload).
    type: path
  pm2:
    description:
      - Path of the pm2 CLI. Default - C(node_modules/.bin/pm2) next to O(ecosystem) or in
        O(cwd), then C(PATH).
    type: path
  pm2_home:
    description: C(PM2_HOME) for every pm2 command (PM2's default is C(~/.pm2)).
    type: path
  wait_online:
    description: Seconds to wait until every instance reports C(online).
    type: int
    default: 30
  stable_for:
    description:
      - Seconds every instance must then stay online with no new restart before the task
        succeeds. The task fails at the latest O(wait_online) + O(stable_for) seconds after
        the command returned.
    type: int
    default: 5
  save:
    description: Run C(pm2 save) after a change so the process list survives a reboot.
    type: bool
    default: false
  log_lines:
    description: How many lines of each instance's error log to return on failure.
    type: int
    default: 50
  probe_seconds:
    description:
      - When a cluster-mode start fails with empty error logs, run the script outside PM2 for at
        most this many seconds to capture its error (0 - never).
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: Reports the action it would run (RV(action)) and changes nothing.
  diff_mode:
    support: full
    description: Returns each instance's status before and after.
notes:
  - Needs C(node) on the C(PATH) of the target (the pm2 CLI is a Node.js script).
  - Instances whose pm2 C(status) is C(online) but that never signalled C(ready) are not
    detectable here; add an HTTP health check (M(ansible.builtin.uri)) after this task.
seealso:
  - name: PM2 graceful start and shutdown
    description: C(wait_ready), C(listen_timeout), C(kill_timeout) and the C(ready) message.
    link: https://pm2.keymetrics.io/docs/usage/signals-clean-restart/
  - name: PM2 cluster mode and reload
    description: Cluster mode and the zero-downtime C(pm2 reload).
    link: https://pm2.keymetrics.io/docs/usage/cluster-mode/
  - name: docs/pm2.md in this collection
    description: A real reload under load and the measurement of ways to switch releases.
    link: https://github.com/maestro/deploy/blob/main/docs/pm2.md
"""

EXAMPLES = r"""
- name: Start the app on the first deploy
  maestro.deploy.pm2_process:
    name: manumaestro
    state: started
    ecosystem: /srv/manumaestro/current/ecosystem.config.js
    expected_cwd: /srv/manumaestro/releases/20260301120000
    pm2: /srv/manumaestro/current/node_modules/.bin/pm2
    pm2_home: /srv/manumaestro/.pm2
    env:
      PORT: "3000"
      APP_NAME: manumaestro

- name: Reload the app on the new release (current already switched)
  maestro.deploy.pm2_process:
    name: manumaestro
    state: reloaded
    ecosystem: /srv/manumaestro/current/ecosystem.config.js
    expected_cwd: /srv/manumaestro/releases/20260302090000
    pm2_home: /srv/manumaestro/.pm2
    env:
      PORT: "3000"
      APP_NAME: manumaestro
    secret_env:
      DATABASE_URL: "{{ vault_database_url }}"
    wait_online: 30
    stable_for: 5

- name: Run a script without an ecosystem file, two cluster workers
  maestro.deploy.pm2_process:
    name: worker
    script: dist/worker.js
    cwd: /srv/worker/current
    exec_mode: cluster
    instances: 2

- name: Stop it
  maestro.deploy.pm2_process:
    name: manumaestro
    state: stopped
    pm2_home: /srv/manumaestro/.pm2

- name: Remove it from PM2
  maestro.deploy.pm2_process:
    name: manumaestro
    state: absent
    pm2_home: /srv/manumaestro/.pm2
"""

RETURN = r"""
name:
  description: The app's name.
  returned: always
  type: str
  sample: manumaestro
state:
  description: The wanted state.
  returned: always
  type: str
  sample: reloaded
action:
  description: What ran (or would run in check mode) - start, restart, reload, stop, delete or none.
  returned: always
  type: str
  sample: reload
note:
  description: Why the action differs from the state, for example a fork-mode reload that restarted.
  returned: when there is one
  type: str
  sample: "fork mode: reload fell back to restart (PM2 reloads only cluster-mode workers)"
reload_fell_back_to_restart:
  description: True when C(reloaded) had to restart because the app runs in fork mode.
  returned: always
  type: bool
status:
  description: The app's status afterwards - absent, online, stopped or mixed.
  returned: always
  type: str
  sample: online
instances:
  description: Each instance afterwards (before, in check mode). No environment.
  returned: always
  type: list
  elements: dict
  contains:
    pm_id: {description: PM2 id., type: int}
    pid: {description: OS process id (0 when not running)., type: int}
    status: {description: "PM2 status (online, stopped, errored, launching, ...).", type: str}
    restarts: {description: PM2's restart counter., type: int}
    unstable_restarts: {description: PM2's unstable restart counter., type: int}
    uptime_ms: {description: Milliseconds since the instance started (0 when not online)., type: int}
    memory: {description: Resident memory in bytes., type: int}
    exec_mode: {description: fork or cluster., type: str}
    cwd: {description: "Real directory the process runs from (C(/proc/<pid>/cwd), else resolved C(pm_cwd)).", type: str}
    pm_cwd: {description: The cwd PM2 recorded., type: str}
    exec_path: {description: The script path PM2 recorded., type: str}
  sample:
    - {pm_id: 0, pid: 4242, status: online, restarts: 1, unstable_restarts: 0, uptime_ms: 5312,
       memory: 61214720, exec_mode: cluster, cwd: /srv/app/releases/B, pm_cwd: /srv/app/current,
       exec_path: /srv/app/current/dist/server.js}
start:
  description: What O(start) resolved to (PM2's script, args, interpreter, node_args) and why (C(via)).
  returned: when O(start) is given
  type: dict
  sample: {script: server.js, args: [], interpreter: node, node_args: [],
           via: "package.json scripts.start: node server.js"}
startup_probe:
  description: On a cluster-mode start failure with empty logs, what running the script outside PM2 printed.
  returned: failure, when the probe ran
  type: dict
  contains:
    cmd: {description: The command that ran., type: list, elements: str}
    rc: {description: Its exit code (124 - still running after O(probe_seconds))., type: int}
    lines: {description: "The first lines of its stderr (then stdout), secrets masked.", type: list, elements: str}
log_tail:
  description: On failure, the last O(log_lines) lines of each instance's error log (secrets masked).
  returned: failure after a start, restart or reload
  type: list
  elements: dict
  contains:
    pm_id: {description: PM2 id., type: int}
    path: {description: The error log file., type: str}
    lines: {description: Its last lines., type: list, elements: str}
commands:
  description:
    - The pm2 commands that acted (start, restart, reload, stop, delete, save), with their return
      codes and durations. The C(pm2 jlist) reads are not listed.
  returned: always
  type: list
  elements: dict
  sample:
    - {cmd: [/srv/app/current/node_modules/.bin/pm2, reload, /srv/app/current/ecosystem.config.js,
             --only, app, --update-env], rc: 0, duration_s: 0.61}
diff:
  description: Status and instances before and after (diff mode).
  returned: diff mode
  type: dict
"""

import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import (  # noqa: E402
    Pm2OutputError,
    STATES,
    StabilityWatch,
    StartError,
    app_processes,
    app_status,
    daemon_app_lines,
    decide,
    describe_instances,
    forget_deploy_session_name,
    parse_jlist,
    pm2_argv,
    pm2_environment,
    release_mismatches,
    pid_alive,
    resolve_start,
    running_dir,
    script_config,
    summarize,
    tail_lines,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402

POLL_INTERVAL = 0.5
PREDICTED_STATUS = dict(start="online", restart="online", reload="online", stop="stopped", delete="absent")


class Pm2App:
    """One module run against one app: read, decide, act, wait, verify."""

    def __init__(self, module):
        self.module = module
        self.p = module.params
        self.result = dict(changed=False, name=self.p["name"], state=self.p["state"], action="none",
                           reload_fell_back_to_restart=False, instances=[], commands=[])
        forget_deploy_session_name(os.environ)
        base_env = {"PM2_HOME": self.p["pm2_home"]} if self.p["pm2_home"] else {}
        app_env = dict((k, to_native(v)) for k, v in self.p["env"].items())
        secrets = dict((k, to_native(v)) for k, v in self.p["secret_env"].items())
        app_env.update(secrets)
        app_env.update(base_env)
        # jlist needs no app environment; its output (which holds the env) is never returned.
        self.query = Runner(module, environ=base_env)
        self.ctl = Runner(module, environ=app_env, secrets=list(secrets.values()))
        self.pm2 = None
        self.resolved = None

    # -- helpers ----------------------------------------------------------------------------
    def fail(self, msg, **extra):
        """The runner's one failure path (ctl's: it masks the app's secrets), with both runners' commands."""
        self.ctl.fail(msg, result=self.result, commands=self.commands(), **extra)

    def find_pm2(self):
        project_dir = None
        if self.p["ecosystem"]:
            project_dir = os.path.dirname(self.p["ecosystem"])
        elif self.p["cwd"]:
            project_dir = self.p["cwd"]
        opt_dirs = [os.path.join(project_dir, "node_modules", ".bin")] if project_dir else []
        return self.ctl.bin("pm2", explicit=self.p["pm2"], opt_dirs=opt_dirs)

    def snapshot(self):
        try:
            _rc, out, _err = self.query.run([self.pm2, "jlist"], what="pm2 jlist")
            procs = parse_jlist(out)
        except CommandError as exc:  # not its stdout: a process list holds the apps' environment
            self.fail(exc.msg, rc=exc.rc, cmd=exc.cmd, stderr=exc.stderr)
        except Pm2OutputError as exc:
            self.fail(to_native(exc))
        now_ms = time.time() * 1000
        instances = []
        for proc in app_processes(procs, self.p["name"]):
            pid = proc.get("pid") or 0
            env = proc.get("pm2_env") or {}
            instances.append(summarize(proc, now_ms, running_dir(pid, env.get("pm_cwd")), pid_alive(pid)))
        return instances

    @staticmethod
    def public(instances):
        keep = ("pm_id", "pid", "status", "restarts", "unstable_restarts", "uptime_ms", "memory", "exec_mode",
                "cwd", "pm_cwd", "exec_path")
        return [dict((k, i.get(k)) for k in keep) for i in instances]

    def log_tails(self, instances):
        tails = []
        for inst in instances:
            lines = [self.ctl.mask(line) for line in tail_lines(inst.get("err_log"), self.p["log_lines"])]
            tails.append(dict(pm_id=inst["pm_id"], path=inst.get("err_log"), lines=lines))
        if not any(t["lines"] for t in tails):
            # A cluster worker that dies during start-up can lose its output (PM2 writes worker
            # logs asynchronously); PM2's own log still says what happened to it.
            home = self.p["pm2_home"] or os.path.join(os.path.expanduser("~"), ".pm2")
            daemon_log = os.path.join(home, "pm2.log")
            mine = daemon_app_lines(tail_lines(daemon_log, 2000), self.p["name"])[-self.p["log_lines"]:]
            if mine:
                tails.append(dict(pm_id=None, path=daemon_log, lines=[self.ctl.mask(line) for line in mine]))
        return tails

    def startup_probe(self, instances, tails):
        """Run a failed cluster-mode app's script once outside PM2 to show why it dies at start-up.

        Only when every instance's error log is empty (PM2 writes nothing for a worker that dies
        while loading), with the instance's cwd and the app's environment, for probe_seconds."""
        if self.p["probe_seconds"] <= 0 or any(t["lines"] for t in tails if t["pm_id"] is not None):
            return None
        cluster = [i for i in instances if i.get("exec_mode") == "cluster" and i.get("exec_path")]
        if not cluster:
            return None
        script, cwd = cluster[0]["exec_path"], cluster[0].get("pm_cwd")
        if not os.path.isfile(script) or not (cwd and os.path.isdir(cwd)):
            return None
        node = self.module.get_bin_path("node")
        timeout = self.module.get_bin_path("timeout")
        if not node or not timeout:
            return None
        argv = [timeout, "-k", "2", str(self.p["probe_seconds"]), node, script]
        rc, out, err = self.ctl.run(argv, check=False, cwd=cwd, what="start-up probe")
        lines = [line for line in (err or "").splitlines() + (out or "").splitlines() if line.strip()]
        return dict(cmd=argv, rc=rc, lines=lines[:self.p["log_lines"] or 20])

    def config_file(self, action):
        """The file start/restart/reload go through, or None to act by name."""
        if self.p["ecosystem"]:
            if not os.path.isfile(self.p["ecosystem"]):
                self.fail("ecosystem file not found: %s" % self.p["ecosystem"])
            return self.p["ecosystem"]
        if self.p["script"] or self.resolved:
            if self.resolved:
                r = self.resolved
                config = script_config(self.p["name"], r["script"], self.p["cwd"], self.p["exec_mode"],
                                       self.p["instances"], r["args"], r["interpreter"], r["node_args"])
            else:
                config = script_config(self.p["name"], self.p["script"], self.p["cwd"], self.p["exec_mode"],
                                       self.p["instances"], self.p["args"], self.p["interpreter"])
            fd, path = tempfile.mkstemp(prefix="pm2-%s-" % self.p["name"], suffix=".json",
                                        dir=self.module.tmpdir)
            with os.fdopen(fd, "w") as fh:
                json.dump(config, fh)
            return path
        if action == "start" and not self.result["instances"]:
            self.fail("%s is not in PM2's process list: give ecosystem or script (and cwd) to start it"
                      % self.p["name"])
        return None

    def argv(self, action, config):
        if config is None:
            # restart/reload of an existing app by name, env still updated
            return [self.pm2, action, self.p["name"], "--update-env"]
        return pm2_argv(self.pm2, action, self.p["name"], config)

    # -- the run ------------------------------------------------------------------------------
    def validate(self):
        p = self.p
        for option in ("wait_online", "stable_for", "log_lines", "probe_seconds"):
            if p[option] < 0:
                self.fail("%s must be 0 or more, got %s" % (option, p[option]))
        if p["instances"] is not None and p["instances"] < 1:
            self.fail("instances must be 1 or more, got %s" % p["instances"])
        if p["script"] and not p["cwd"]:
            self.fail("script %s needs cwd (the directory to run it from)" % p["script"])
        if p["start"] is not None:
            self.resolve(p)
        both = sorted(set(p["env"]) & set(p["secret_env"]))
        if both:
            self.fail("variables given in both env and secret_env: %s" % ", ".join(both))
        if p["state"] in ("started", "restarted", "reloaded") and p["ecosystem"] and not os.path.isfile(
                p["ecosystem"]):
            self.fail("ecosystem file not found: %s" % p["ecosystem"])
        if p["expected_cwd"] and not os.path.isdir(p["expected_cwd"]):
            self.fail("expected_cwd is not a directory: %s" % p["expected_cwd"])

    def resolve(self, p):
        """Turn the start command into what PM2 runs, in cwd; package.json is read as untrusted data."""
        if not p["cwd"]:
            self.fail("start %r needs cwd (the release directory, through the current link)" % p["start"])
        scripts = {}
        pkg = os.path.join(p["cwd"], "package.json")
        if os.path.isfile(pkg):
            try:
                with open(pkg) as fh:
                    data = json.load(fh)
                found = data.get("scripts") if isinstance(data, dict) else None
                if isinstance(found, dict):
                    scripts = dict((k, v) for k, v in found.items() if isinstance(k, str) and isinstance(v, str))
            except (IOError, OSError, ValueError) as exc:
                self.fail("start %r: cannot read %s: %s" % (p["start"], pkg, to_native(exc)))

        def exists(rel):
            return os.path.isfile(os.path.join(p["cwd"], rel))

        try:
            self.resolved = resolve_start(p["start"], scripts, exists)
        except StartError as exc:
            self.fail("start: %s (in %s)" % (to_native(exc), p["cwd"]))
        if self.resolved["interpreter"] == "none" and (p["exec_mode"] == "cluster"):
            self.fail("start %r runs %s, which PM2 can only run in fork mode: set exec_mode fork, or make the "
                      "start command name the Node.js entry (node server.js)" % (p["start"], self.resolved["via"]))
        self.result["start"] = self.resolved

    def verify_release(self, instances, when):
        expected = self.p["expected_cwd"]
        if not expected:
            return
        expected_real = os.path.realpath(expected)
        wrong = release_mismatches(instances, expected_real)
        if wrong:
            self.fail(
                "%s: %d of %d instance(s) of %s do not run from expected_cwd %s (%s): %s"
                % (when, len(wrong), len(instances), self.p["name"], expected, expected_real,
                   "; ".join("pm_id=%s pid=%s cwd=%s pm_cwd=%s exec_path=%s" % (
                       i["pm_id"], i["pid"], i["cwd"], i["pm_cwd"], i["exec_path"]) for i in wrong)),
                instances=self.public(instances))

    def wait_until_stable(self, action):
        watch = StabilityWatch(time.time(), self.p["wait_online"], self.p["stable_for"],
                               expected_count=self.p["instances"])
        while True:
            instances = self.snapshot()
            verdict, reason = watch.observe(time.time(), instances)
            if verdict == "ok":
                return instances
            if verdict == "failed":
                tails = self.log_tails(instances)
                logs = "".join(
                    "\n--- error log of instance %s (%s), last %d lines:\n%s" % (
                        t["pm_id"], t["path"], len(t["lines"]), "\n".join(t["lines"]))
                    for t in tails)
                extra = {}
                probe = self.startup_probe(instances, tails)
                if probe:
                    # first: it is the app's own error, and a rescue message keeps only its start
                    extra["startup_probe"] = probe
                    logs = "\n--- the error logs are empty; %s run outside PM2 for up to %ss (rc=%s) printed:\n%s%s" % (
                        probe["cmd"][-1], self.p["probe_seconds"], probe["rc"],
                        "\n".join(probe["lines"]) or "(nothing)", logs)
                self.fail("%s of %s failed: %s. Instances: %s%s" % (
                    action, self.p["name"], reason, describe_instances(instances), logs),
                    instances=self.public(instances), log_tail=tails, **extra)
            time.sleep(POLL_INTERVAL)

    def run(self):
        self.validate()
        self.pm2 = self.find_pm2()
        before = self.snapshot()
        self.result["instances"] = self.public(before)
        action, note = decide(self.p["state"], before)
        if note:
            self.result["note"] = note
        if action == "restart" and self.p["state"] == "reloaded":
            self.result["reload_fell_back_to_restart"] = True
        if action in ("start", "restart", "reload") and self.p["ecosystem"] and not os.path.isfile(
                self.p["ecosystem"]):
            self.fail("ecosystem file not found: %s" % self.p["ecosystem"])
        self.result["action"] = action or "none"
        self.result["changed"] = action is not None
        diff_before = dict(status=app_status(before), instances=self.public(before))

        if action is None or self.module.check_mode:
            if action is None and self.p["state"] == "started":
                self.verify_release(before, "already online")
            self.result["status"] = app_status(before)
            predicted = diff_before if action is None else dict(status=PREDICTED_STATUS[action])
            return self.finish(diff_before, predicted)

        config = self.config_file(action)
        try:
            self.ctl.run(self.argv(action, config), what="pm2 %s" % action)
        except CommandError as exc:
            self.fail(exc.msg, rc=exc.rc, cmd=exc.cmd, stdout=exc.stdout, stderr=exc.stderr,
                      instances=self.public(self.snapshot()))

        if action in ("start", "restart", "reload"):
            after = self.wait_until_stable(action)
            self.verify_release(after, "after %s" % action)
        else:
            after = self.snapshot()
            wanted = "absent" if action == "delete" else "stopped"
            if app_status(after) != wanted:
                self.fail("pm2 %s ran but %s is %s: %s" % (action, self.p["name"], app_status(after),
                                                           describe_instances(after)),
                          instances=self.public(after))
        if self.p["save"]:
            try:
                self.ctl.run([self.pm2, "save"], what="pm2 save")
            except CommandError as exc:
                self.fail(exc.msg, rc=exc.rc, cmd=exc.cmd, stdout=exc.stdout, stderr=exc.stderr)
        self.result["instances"] = self.public(after)
        self.result["status"] = app_status(after)
        return self.finish(diff_before, dict(status=app_status(after), instances=self.public(after)))

    def commands(self):
        """The pm2 commands that act (the jlist reads, one per poll, are left out)."""
        return [h for h in self.query.history + self.ctl.history if h["cmd"][1:2] != ["jlist"]]

    def finish(self, diff_before, diff_after):
        self.result["commands"] = self.commands()
        if self.module._diff:
            self.result["diff"] = dict(before=diff_before, after=diff_after)
        self.module.exit_json(**self.result)


def isolate_environment(environ, pm2_home):
    """Reduce the module process's environment (which run_command starts every command from) to
    pm2_environment's: PM2 stores its caller's environment in the app's process definition and
    hands it to the app, so the operator's session must not be that environment."""
    minimal = pm2_environment(environ, pm2_home)
    environ.clear()
    environ.update(minimal)
    return minimal


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", default="started", choices=list(STATES)),
            ecosystem=dict(type="path"),
            script=dict(type="str"),
            start=dict(type="str"),
            interpreter=dict(type="str"),
            args=dict(type="list", elements="str", default=[]),
            cwd=dict(type="path"),
            exec_mode=dict(type="str", choices=["fork", "cluster"]),
            instances=dict(type="int"),
            env=dict(type="dict", default={}),
            secret_env=dict(type="dict", default={}, no_log=True),
            expected_cwd=dict(type="path"),
            pm2=dict(type="path"),
            pm2_home=dict(type="path"),
            wait_online=dict(type="int", default=30),
            stable_for=dict(type="int", default=5),
            save=dict(type="bool", default=False),
            log_lines=dict(type="int", default=50),
            probe_seconds=dict(type="int", default=5),
        ),
        mutually_exclusive=[("ecosystem", "script"), ("ecosystem", "exec_mode"), ("ecosystem", "instances"),
                            ("ecosystem", "start"), ("script", "start")],
        supports_check_mode=True,
    )
    isolate_environment(os.environ, module.params["pm2_home"])
    Pm2App(module).run()


if __name__ == "__main__":
    main()
