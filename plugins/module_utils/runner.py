# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One small command runner for every module: argv lists only, never a shell string.

Binaries are found with get_bin_path (an explicit path wins), every command runs with
LC_ALL=C so messages can be matched, secrets travel only through `environ_update`, and each
call is recorded (argv, rc, duration) so a module can return what it ran. Secrets that reach
stdout/stderr are masked before anything is returned or raised. Pipelines (pg_dump | zstd)
run here too, and `fail()` is the one way a module reports a failure.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import tempfile
import time


class CommandError(Exception):
    """A command failed; carries everything fail_json needs, secrets already masked."""

    def __init__(self, msg, cmd, rc, stdout, stderr):
        super(CommandError, self).__init__(msg)
        self.msg = msg
        self.cmd = cmd
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr

    def as_result(self):
        return dict(msg=self.msg, cmd=self.cmd, rc=self.rc, stdout=self.stdout, stderr=self.stderr)


def describe_rc(rc):
    """'rc=1' or 'killed by signal 9' (subprocess reports a signal as a negative rc)."""
    if rc is not None and rc < 0:
        return "killed by signal %d" % -rc
    return "rc=%s" % rc


class Runner:
    """Runs tools for one module invocation and remembers what ran."""

    def __init__(self, module, environ=None, secrets=()):
        self.module = module
        self.environ = dict(environ or {})
        self.environ.setdefault("LC_ALL", "C")
        self.secrets = [s for s in secrets if s]
        self.history = []

    def bin(self, name, explicit=None, opt_dirs=()):
        """Path of a tool: `explicit` when given (must be executable), else PATH + opt_dirs."""
        if explicit:
            if os.path.isfile(explicit) and os.access(explicit, os.X_OK):
                return explicit
            self.module.fail_json(msg="%s not found or not executable: %s" % (name, explicit))
        return self.module.get_bin_path(name, required=True, opt_dirs=list(opt_dirs))

    def mask(self, text):
        if text is None:
            return text
        if isinstance(text, list):
            return [self.mask(t) for t in text]
        for secret in self.secrets:
            text = text.replace(secret, "********")
        return text

    def run(self, argv, check=True, data=None, cwd=None, environ=None, binary_data=False, what=None):
        """Run argv; returns (rc, stdout, stderr). With check, a non-zero rc raises CommandError."""
        env = dict(self.environ)
        env.update(environ or {})
        started = time.time()
        rc, out, err = self.module.run_command(
            [str(a) for a in argv], data=data, cwd=cwd, environ_update=env,
            binary_data=binary_data, check_rc=False,
        )
        record = dict(cmd=self.mask([str(a) for a in argv]), rc=rc, duration_s=round(time.time() - started, 3))
        self.history.append(record)
        out, err = self.mask(out), self.mask(err)
        if check and rc != 0:
            detail = (err or out or "").strip().splitlines()
            last = detail[-1] if detail else "no output"
            raise CommandError(
                "%s failed (rc=%s): %s" % (what or os.path.basename(str(argv[0])), rc, last),
                record["cmd"], rc, out, err,
            )
        return rc, out, err

    def pipeline(self, stages, stdout=None, environ=None, what=None):
        """Run stages[0] | stages[1] | ... without a shell; the last stage writes to `stdout` (a
        file object) or nowhere. run_command() cannot stream one process into another, and a dump
        written whole before it is compressed doubles the I/O. The environment is this runner's,
        each stage's stderr goes to an unnamed temp file (no pipe to fill up), every stage is
        recorded in history. Returns the return codes; raises CommandError naming the first stage
        that failed (one killed by SIGPIPE because a later one died is not the culprit)."""
        env = dict(os.environ)
        env.update(self.environ)
        env.update(environ or {})
        procs, errs = [], []
        started = time.time()
        previous = None
        try:
            for index, argv in enumerate(stages):
                last = index == len(stages) - 1
                err = tempfile.TemporaryFile()
                errs.append(err)
                proc = subprocess.Popen(
                    [str(a) for a in argv], stdin=previous if previous is not None else subprocess.DEVNULL,
                    stdout=(stdout if stdout is not None else subprocess.DEVNULL) if last else subprocess.PIPE,
                    stderr=err, env=env, close_fds=True,
                )
                if previous is not None:
                    previous.close()  # the next stage owns the read end now; SIGPIPE reaches the writer
                previous = proc.stdout
                procs.append(proc)
            rcs = [p.wait() for p in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        duration = round(time.time() - started, 3)
        texts = []
        for err in errs:
            err.seek(0)
            texts.append(self.mask(err.read().decode("utf-8", "replace")))
            err.close()
        for index, argv in enumerate(stages):
            self.history.append(dict(cmd=self.mask([str(a) for a in argv]), rc=rcs[index], duration_s=duration))
        failed = [i for i, rc in enumerate(rcs) if rc != 0]
        if failed:
            culprit = next((i for i in failed if rcs[i] != -13), failed[0])
            detail = texts[culprit].strip().splitlines()
            name = os.path.basename(str(stages[culprit][0]))
            if what:
                name = "%s: %s" % (what, name)
            raise CommandError(
                "%s failed (%s): %s" % (name, describe_rc(rcs[culprit]), detail[-1] if detail else "no output"),
                self.mask([str(a) for a in stages[culprit]]), rcs[culprit], "", texts[culprit],
            )
        return rcs

    def fail(self, msg=None, error=None, result=None, **extra):
        """Fail the module, the one way: its `result` so far, then what the failed command left
        (`error`, a CommandError: cmd, rc, stdout, stderr), then `extra`; msg defaults to the
        command's; `commands` is what ran unless given; msg, stdout and stderr masked of secrets."""
        out = dict(result or {})
        if error is not None:
            out.update(error.as_result())
        out.update(extra)
        out["msg"] = msg if msg is not None else (error.msg if error is not None else "failed")
        out.setdefault("commands", list(self.history))
        for key in ("msg", "stdout", "stderr"):
            if isinstance(out.get(key), str):
                out[key] = self.mask(out[key])
        self.module.fail_json(**out)
