# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One small command runner for every module: argv lists only, never a shell string.

Binaries are found with get_bin_path (an explicit path wins), every command runs with
LC_ALL=C so messages can be matched, secrets travel only through `environ_update`, and each
call is recorded (argv, rc, duration) so a module can return what it ran. Secrets that reach
stdout/stderr are masked before anything is returned or raised.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
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
