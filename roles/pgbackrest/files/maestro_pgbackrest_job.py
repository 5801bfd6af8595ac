# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A scheduled pgBackRest job (backup, verify) that reports its outcome, as cron runs it on the db
host when pgbackrest_notify_url or pgbackrest_heartbeat_url is set (issue 16 item 5).

    python3 -I maestro_pgbackrest_job.py <settings file> <what> pgbackrest <pgbackrest options...>

It runs pgBackRest (the only program it runs: the third argument must be `pgbackrest`, found on
cron's PATH) with the options of the cron line, passes its output through (cron mails it, as for
the plain line), then POSTs the outcome to the notify URL and, after a success, fetches the
heartbeat URL (module_utils/job_notify.py, installed beside this file). The URLs come from the
settings file (JSON, written by the role, root's and readable by the job's group only), never from
the command line; an unreadable file is reported on stderr and the job still runs. The exit code is
pgBackRest's (2 for bad usage here).
"""

from __future__ import absolute_import, division, print_function

import json
import os
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I does not add the script's dir

PROGRAM = "pgbackrest"


def log(message):
    print("%s maestro pgbackrest job: %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message),
          file=sys.stderr, flush=True)


def settings(path):
    try:
        with open(path) as fh:
            data = json.load(fh)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError) as exc:
        log("cannot read %s (%s): nothing will be reported" % (path, getattr(exc, "strerror", None) or exc))
        return {}


def main(argv):
    if len(argv) < 4 or argv[3] != PROGRAM:
        print("usage: python3 -I %s <settings file> <what> pgbackrest <options...>" % argv[0], file=sys.stderr)
        return 2
    config, what, program = settings(argv[1]), argv[2], shutil.which(PROGRAM)
    started = time.time()
    if program is None:
        rc, message = 127, "pgbackrest not found on PATH %s" % os.environ.get("PATH", "")
        log(message)
    else:
        done = subprocess.run([program] + argv[4:], stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        sys.stdout.write(done.stdout.decode("utf-8", "replace"))
        sys.stderr.write(done.stderr.decode("utf-8", "replace"))
        rc = done.returncode
        lines = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
        message = "pgbackrest %s %s" % (what, "succeeded" if rc == 0 else "FAILED (rc=%d): %s" % (
            rc, lines[-1] if lines else "no output"))
    from job_notify import send

    payload = dict(job="pgbackrest " + what, outcome="success" if rc == 0 else "failed", exit_code=rc,
                   message=message, stanza=config.get("stanza"), app=config.get("app") or None,
                   host=socket.getfqdn(), duration_s=round(time.time() - started, 1))
    send(config.get("notify_url"), config.get("heartbeat_url"), payload, log)
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv))
