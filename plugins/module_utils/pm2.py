# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What pm2_process decides and checks, kept free of I/O so it can be unit-tested.

- `parse_jlist` / `summarize`: PM2's own JSON (`pm2 jlist`), never its screen tables.
- `decide`: which PM2 action a wanted state needs, given the app's processes.
- `pm2_argv`: the exact argv of each action.
- `StabilityWatch`: success only when every instance is online *and* its restart counter and
  pid stay unchanged for `stable_for` seconds (PM2 reports `online` after a failed `wait_ready`,
  pm2#4355, and a failed reload still prints success, pm2#1155); errored/stopped fail at once.
- `release_mismatches`: which instances do not run from the expected release directory.
- `pm2_environment`: the only environment PM2 (and so the app) gets from a run.
- `resolve_start`: what PM2 runs for a start command such as `npm start` or `node server.js`.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import posixpath
import shlex

STATES = ("started", "stopped", "restarted", "reloaded", "absent")
TERMINAL_STATUSES = ("errored", "stopped")


class Pm2OutputError(Exception):
    """`pm2 jlist` printed something that is not its JSON process list."""


def forget_deploy_session_name(environ):
    """The deploy names its own database sessions (PGAPPNAME `maestro.deploy:<release id>` in the
    task environment). PM2 hands its caller's environment to the app, whose driver reads
    PGAPPNAME: the app's sessions would then pass for the deploy's work, which keeps a lost
    deploy's lock (roles/preflight/tasks/lock.yml). So that name goes before PM2 runs."""
    if environ.get("PGAPPNAME", "").startswith("maestro.deploy"):
        del environ["PGAPPNAME"]


# What PM2 gets from the caller's environment: PM2 stores its caller's whole environment in the
# app's process definition at the first start (and hands it to the app), so the operator's
# variables (tokens, SSH agent, Ansible's own) would end up in the app and in `pm2 jlist`.
PM2_ENV_KEEP = ("PATH", "HOME")


def pm2_environment(environ, pm2_home=None, app_env=None):
    """The whole environment for pm2 commands: PATH and HOME from `environ`, PM2_HOME, LC_ALL=C
    and the app's own variables; nothing else of the operator's session."""
    env = dict((k, environ[k]) for k in PM2_ENV_KEEP if environ.get(k))
    env.setdefault("PATH", "/usr/local/bin:/usr/bin:/bin")
    if pm2_home:
        env["PM2_HOME"] = pm2_home
    elif environ.get("PM2_HOME"):
        env["PM2_HOME"] = environ["PM2_HOME"]
    env["LC_ALL"] = "C"
    env.update(app_env or {})
    return env


class StartError(Exception):
    """A start command that cannot be run without a shell, or does not resolve in the release."""


# Characters that only mean something to a shell: a start command is run as argv, never by sh.
START_METACHARS = set("|&;<>()$`\\\n*?{}[]~!#")
NODE_OPTS_WITH_VALUE = ("-r", "--require", "--import", "--loader", "--experimental-loader", "--env-file",
                        "--env-file-if-exists", "--title")
NODE_EXTENSIONS = (".js", ".cjs", ".mjs")


def split_start(command):
    """argv of a start command (shlex rules, no shell): refuses shell syntax, naming it."""
    if not isinstance(command, str) or not command.strip():
        raise StartError("the start command is empty")
    bad = sorted(set(c for c in command if c in START_METACHARS))
    if bad:
        raise StartError("%r holds shell syntax (%s): it runs without a shell; put a pipeline or "
                         "redirection in a package.json script or a file of the app" % (command, " ".join(bad)))
    try:
        argv = shlex.split(command)
    except ValueError as exc:
        raise StartError("%r cannot be split into words: %s" % (command, exc)) from None
    if not argv:
        raise StartError("the start command is empty")
    if "=" in argv[0]:
        raise StartError("%r starts with a variable assignment: give the variable in app_env" % command)
    return argv


def release_path(rel, what):
    """A path inside the release (relative, no `..`), normalised; else StartError."""
    norm = posixpath.normpath(rel)
    if rel.startswith("/") or norm == ".." or norm.startswith("../"):
        raise StartError("%s %r is not a path inside the release" % (what, rel))
    return norm


def resolve_start(command, scripts=None, exists=None, _depth=0):
    """What PM2 runs for `command` in a release; pure (package.json's scripts and a file test are given).

    Returns dict(script, args, interpreter, node_args, via):
    - `npm start` / `npm run <name>`: the package.json script, resolved in turn when it is a plain
      command (so PM2 runs the app itself, which cluster mode and graceful restarts need); when it
      uses shell syntax, PM2 runs npm (fork mode only), as `npm start` would.
    - `node [node options] <file> [args]`: the file, run by node.
    - `<file>` (a path in the release) or `<name>` found in node_modules/.bin (as npm scripts find it).
    """
    scripts = scripts if isinstance(scripts, dict) else {}
    exists = exists or (lambda rel: True)
    argv = split_start(command)
    head, rest = argv[0], argv[1:]
    if head == "npm":
        if rest[:1] == ["start"]:
            name, extra = "start", rest[1:]
        elif rest[:1] in (["run"], ["run-script"]) and len(rest) >= 2:
            name, extra = rest[1], rest[2:]
        else:
            raise StartError("%r: only `npm start` and `npm run <script>` are understood" % command)
        if extra[:1] == ["--"]:
            extra = extra[1:]
        line = scripts.get(name)
        if line is None and name == "start" and exists("server.js"):
            line = "node server.js"  # what npm itself does without a start script
        if not isinstance(line, str) or not line.strip():
            raise StartError("package.json has no scripts.%s (and %r needs one): add it or set app_start"
                             % (name, command))
        if _depth == 0:
            try:
                resolved = resolve_start(line, scripts, exists, _depth=1)
                resolved["args"] = resolved["args"] + extra
                resolved["via"] = "package.json scripts.%s: %s" % (name, line)
                return resolved
            except StartError:
                pass
        return dict(script="npm", args=rest, interpreter="none", node_args=[],
                    via="npm (package.json scripts.%s runs through a shell: %s)" % (name, line))
    if head in ("node", "nodejs"):
        node_args = []
        i = 0
        while i < len(rest) and rest[i].startswith("-"):
            node_args.append(rest[i])
            if rest[i] in NODE_OPTS_WITH_VALUE and i + 1 < len(rest):
                node_args.append(rest[i + 1])
                i += 1
            i += 1
        if i >= len(rest):
            raise StartError("%r names no script for node to run" % command)
        script = release_path(rest[i], "script")
        if not exists(script):
            raise StartError("%r: %s is not in the release" % (command, script))
        return dict(script=script, args=rest[i + 1:], interpreter="node", node_args=node_args, via=command)
    if "/" in head:
        script = release_path(head, "program")
        if not exists(script):
            raise StartError("%r: %s is not in the release" % (command, script))
        interpreter = "node" if script.endswith(NODE_EXTENSIONS) else "none"
        return dict(script=script, args=rest, interpreter=interpreter, node_args=[], via=command)
    local = "node_modules/.bin/" + head
    if exists(local):
        # npm links a package's bin (a Node.js script) there: node runs it, in cluster mode too
        return dict(script=local, args=rest, interpreter="node", node_args=[], via=command)
    raise StartError("%r: %s is not npm, node, a file of the release or in its node_modules/.bin"
                     % (command, head))


def parse_jlist(text):
    """The process list from `pm2 jlist` output; PM2 may print notices before the JSON array."""
    text = (text or "").strip()
    if not text:
        return []
    data = None
    # Daemon start notices ("[PM2] Spawning PM2 daemon ...") may come before the array: try
    # the text from each line start in turn.
    starts = [0] + [i + 1 for i, c in enumerate(text) if c == "\n"]
    last_error = None
    for start in starts:
        if not text.startswith("[", start):
            continue
        try:
            data = json.loads(text[start:])
            break
        except ValueError as exc:
            last_error = exc
    # Never the text itself: a process list holds every app's environment, secrets included.
    unshown = "%d characters, not shown: they may hold the apps' environment" % len(text)
    if data is None:
        if last_error is None:
            raise Pm2OutputError("pm2 jlist did not print a JSON list (%s)" % unshown)
        line = getattr(last_error, "lineno", 0)
        raise Pm2OutputError("pm2 jlist printed invalid JSON at line %d (%s)" % (line, unshown))
    if not isinstance(data, list):
        raise Pm2OutputError("pm2 jlist did not print a JSON list (%s)" % unshown)
    return data


def app_processes(procs, name):
    """The processes of app `name`, ordered by pm_id."""
    def order(proc):
        pm_id = proc.get("pm_id")
        return (0, pm_id, "") if isinstance(pm_id, int) else (1, 0, str(pm_id))

    return sorted((p for p in procs if p.get("name") == name), key=order)


def summarize(proc, now_ms, running_dir=None, alive=None):
    """One instance as returned to the user: no environment (it may hold secrets)."""
    env = proc.get("pm2_env") or {}
    monit = proc.get("monit") or {}
    status = env.get("status", "unknown")
    pid = proc.get("pid") or 0
    uptime = env.get("pm_uptime")
    return dict(
        pm_id=proc.get("pm_id"),
        pid=pid,
        status=status,
        restarts=env.get("restart_time", 0),
        unstable_restarts=env.get("unstable_restarts", 0),
        uptime_ms=max(0, int(now_ms - uptime)) if status == "online" and uptime else 0,
        memory=monit.get("memory", 0),
        exec_mode=(env.get("exec_mode") or "").replace("_mode", ""),
        pm_cwd=env.get("pm_cwd"),
        exec_path=env.get("pm_exec_path"),
        cwd=running_dir,
        alive=alive,
        err_log=env.get("pm_err_log_path"),
    )


def app_status(instances):
    """One word for the app: absent, online, stopped, or mixed (some other combination)."""
    if not instances:
        return "absent"
    statuses = set(i["status"] for i in instances)
    if statuses == set(["online"]):
        return "online"
    if statuses == set(["stopped"]):
        return "stopped"
    return "mixed"


def decide(state, instances):
    """(action, note) for the wanted state; action is None when nothing needs to run.

    Actions: start, restart, reload, stop, delete. `reloaded` in fork mode becomes `restart`
    (PM2 can only reload cluster-mode workers one by one) and says so in the note.
    """
    status = app_status(instances)
    if state == "absent":
        return (None, None) if status == "absent" else ("delete", None)
    if state == "stopped":
        if status == "absent":
            return None, "the app is not in PM2's process list: nothing to stop"
        return (None, None) if status == "stopped" else ("stop", None)
    if status == "absent":
        return "start", None
    if state == "started":
        return (None, None) if status == "online" else ("start", None)
    if state == "restarted":
        return "restart", None
    if state == "reloaded":
        if any(i["exec_mode"] != "cluster" for i in instances):
            return "restart", "fork mode: reload fell back to restart (PM2 reloads only cluster-mode workers)"
        return "reload", None
    raise ValueError("unknown state %r" % (state,))


def pm2_argv(pm2, action, name, config_file=None):
    """argv for one action. start/restart/reload go through the config file (ecosystem or the
    generated one) with --only, so PM2 applies the file's script/cwd and --update-env hands the
    new environment to the workers (PM2 freezes it at start otherwise)."""
    if action in ("start", "restart", "reload"):
        if not config_file:
            raise ValueError("%s needs an ecosystem file or script" % action)
        return [pm2, action, config_file, "--only", name, "--update-env"]
    if action in ("stop", "delete"):
        return [pm2, action, name]
    if action in ("jlist", "save"):
        return [pm2, action]
    raise ValueError("unknown action %r" % (action,))


def script_config(name, script, cwd, exec_mode, instances, args=None, interpreter=None, node_args=None):
    """A one-app PM2 config for `script` + `cwd` (no environment: that travels in the CLI env)."""
    app = dict(name=name, script=script, cwd=cwd, exec_mode=exec_mode or "fork")
    if instances is not None:
        app["instances"] = instances
    if args:
        app["args"] = list(args)
    if interpreter:
        app["interpreter"] = interpreter
    if node_args:
        app["node_args"] = list(node_args)
    return dict(apps=[app])


class StabilityWatch:
    """Feeds on successive instance snapshots; says when the app is up for good or has failed.

    `observe(now, instances)` returns ("wait" | "ok" | "failed", reason). Every instance must be
    `online` with a live pid; then its (restarts, pid) must stay the same for `stable_for`
    seconds. A change restarts the window; everything must be done by started + wait_online +
    stable_for. `errored` or `stopped` fail at once.
    """

    def __init__(self, started, wait_online, stable_for, expected_count=None):
        self.started = started
        self.wait_online = wait_online
        self.stable_for = stable_for
        self.expected_count = expected_count
        self.deadline = started + wait_online + stable_for
        self.window_start = None
        self.baseline = None
        self.first_baseline = None
        self.online_at = None

    @staticmethod
    def _key(instances):
        return dict((i["pm_id"], (i["restarts"], i["pid"])) for i in instances)

    def observe(self, now, instances):
        for inst in instances:
            if inst["status"] in TERMINAL_STATUSES:
                return "failed", "instance %s is %s" % (inst["pm_id"], inst["status"])
        if not instances:
            if now >= self.deadline:
                return "failed", "no instance of the app is in PM2's process list"
            return "wait", "no instance yet"
        # a worker being replaced by a reload is listed as "_old_<id>" until it has exited
        all_up = all(isinstance(i["pm_id"], int) and i["status"] == "online" and i["pid"]
                     and i.get("alive") is not False for i in instances)
        count_ok = self.expected_count is None or len(instances) == self.expected_count
        if all_up and count_ok:
            key = self._key(instances)
            if self.online_at is None:
                self.online_at = now
                self.first_baseline = key
            if self.baseline != key:
                self.baseline = key
                self.window_start = now
            if now - self.window_start >= self.stable_for:
                return "ok", "online and stable for %ss" % self.stable_for
        else:
            self.window_start = None
            self.baseline = None
        if now >= self.deadline:
            return "failed", self._timeout_reason(instances, all_up, count_ok)
        if self.online_at is None and now >= self.started + self.wait_online:
            return "failed", self._timeout_reason(instances, all_up, count_ok)
        return "wait", "waiting"

    def _timeout_reason(self, instances, all_up, count_ok):
        if not count_ok:
            return "%d instance(s) running, %d expected, after %ss" % (
                len(instances), self.expected_count, self.wait_online + self.stable_for)
        if self.online_at is None:
            return "not every instance was online within wait_online=%ss" % self.wait_online
        restarted = [pm_id for pm_id, (restarts, _pid) in self._key(instances).items()
                     if pm_id in (self.first_baseline or {}) and restarts != self.first_baseline[pm_id][0]]
        if restarted:
            return "instance(s) %s kept restarting: not stable for %ss within %ss (crash loop?)" % (
                ", ".join(str(i) for i in sorted(restarted)), self.stable_for, self.wait_online + self.stable_for)
        if not all_up:
            return "instances went down again and were not stable for %ss within %ss" % (
                self.stable_for, self.wait_online + self.stable_for)
        return "not stable for %ss within %ss" % (self.stable_for, self.wait_online + self.stable_for)


def is_within(path, directory):
    """True when real path `path` is `directory` or below it (both already resolved)."""
    if not path or not directory:
        return False
    directory = directory.rstrip(os.sep) or os.sep
    return path == directory or path.startswith(directory + os.sep)


def release_mismatches(instances, expected_dir):
    """Instances whose running directory is not expected_dir (or below it)."""
    return [i for i in instances if not is_within(i.get("cwd"), expected_dir)]


def describe_instances(instances):
    """One line per instance, for messages."""
    return "; ".join(
        "pm_id=%s pid=%s status=%s restarts=%s cwd=%s" % (
            i["pm_id"], i["pid"], i["status"], i["restarts"], i.get("cwd"))
        for i in instances
    ) or "no instances"


def tail_lines(path, count, max_bytes=256 * 1024):
    """The last `count` lines of a text file (reads at most max_bytes from its end); [] if unreadable."""
    if not path or count <= 0:
        return []
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - max_bytes))
            data = fh.read()
    except (IOError, OSError):
        return []
    lines = data.decode("utf-8", "replace").splitlines()
    if size > max_bytes and lines:
        lines = lines[1:]  # the first line is probably cut
    return lines[-count:]


def daemon_app_lines(lines, name):
    """Lines of PM2's daemon log (pm2.log) about app `name` ("App [name:0] ...", "app=name ...")."""
    markers = ("[%s:" % name, "app=%s " % name, "name:%s " % name, "app:%s " % name)
    return [line for line in lines if any(m in line for m in markers)]


def running_dir(pid, pm_cwd):
    """Where a PM2 process really runs: /proc/<pid>/cwd (Linux), else PM2's cwd resolved."""
    if pid:
        try:
            return os.path.realpath(os.readlink("/proc/%d/cwd" % pid))
        except (OSError, ValueError):
            pass
    return os.path.realpath(pm_cwd) if pm_cwd else None


def pid_alive(pid):
    """Whether a process of this pid exists (one of another user's counts too)."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except PermissionError:
        return True
    except OSError:
        return False
    return True


def daemon_running(home):
    """Whether a PM2 daemon runs in `home` (its pid file names a live process); never starts one."""
    try:
        with open(os.path.join(home, "pm2.pid")) as fh:
            pid = int(fh.read().strip())
    except (IOError, OSError, ValueError):
        return False
    return pid_alive(pid)


def describe(proc):
    """One instance of `pm2 jlist` as the _info modules return it: no environment."""
    env = proc.get("pm2_env") or {}
    pid = proc.get("pid") or 0
    args = env.get("args") or []
    return dict(pm_id=proc.get("pm_id"), pid=pid, status=env.get("status", "unknown"),
                restarts=env.get("restart_time", 0),
                exec_mode=(env.get("exec_mode") or "").replace("_mode", ""),
                cwd=running_dir(pid, env.get("pm_cwd")), pm_cwd=env.get("pm_cwd"),
                exec_path=env.get("pm_exec_path"), args=[str(a) for a in args] if isinstance(args, list) else [])
