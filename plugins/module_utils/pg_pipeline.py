# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Two or more commands joined by pipes (pg_dump | zstd, zstd -dc | pg_restore), without a shell.

run_command() cannot stream one process into another, and writing an uncompressed dump to disk
only to compress it afterwards doubles the I/O and the space needed. Each stage is an argv list;
the environment (and so PGPASSWORD) is the Runner's, stderr goes to an unnamed temp file (no
pipe to fill up), every stage is recorded in runner.history and any failing stage raises the
same CommandError as Runner.run, secrets masked.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess
import tempfile
import time

from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError


def describe_rc(rc):
    """'rc=1' or 'killed by signal 9' (subprocess reports a signal as a negative rc)."""
    if rc is not None and rc < 0:
        return "killed by signal %d" % -rc
    return "rc=%s" % rc


def run_pipeline(runner, stages, stdout=None, environ=None, what=None):
    """Run stages[0] | stages[1] | ...; the last stage writes to `stdout` (a file object) or nowhere.

    Returns the list of return codes. Raises CommandError naming the first stage that failed
    (a stage killed by SIGPIPE because a later one died is not the culprit).
    """
    env = dict(os.environ)
    env.update(runner.environ)
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
        texts.append(runner.mask(err.read().decode("utf-8", "replace")))
        err.close()
    for index, argv in enumerate(stages):
        runner.history.append(dict(cmd=runner.mask([str(a) for a in argv]), rc=rcs[index], duration_s=duration))
    failed = [i for i, rc in enumerate(rcs) if rc != 0]
    if failed:
        culprit = next((i for i in failed if rcs[i] != -13), failed[0])
        detail = texts[culprit].strip().splitlines()
        name = os.path.basename(str(stages[culprit][0]))
        if what:
            name = "%s: %s" % (what, name)
        raise CommandError(
            "%s failed (%s): %s" % (name, describe_rc(rcs[culprit]), detail[-1] if detail else "no output"),
            runner.mask([str(a) for a in stages[culprit]]), rcs[culprit], "", texts[culprit],
        )
    return rcs
