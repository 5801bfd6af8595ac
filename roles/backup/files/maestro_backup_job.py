# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The scheduled backup of maestro.deploy, as cron runs it on the db host.

Installed by the backup role (roles/backup/tasks/schedule.yml) beside the collection's own
module_utils it needs, in a root-owned directory nobody else can write, and run by the job's
script as the database-side user with the host's python3 (`python3 -I`: no PYTHONPATH, no user
site-packages). It makes the same verified, atomic backup as pg_backup (its BackupRun), without
ansible on the host. Usage: python3 -I maestro_backup_job.py '<json config>' | --self-test

It keeps out of a deploy's way (issue 15):
  1. it opens a session named `maestro.backup:scheduled` and keeps it for the whole job, so a
     deploy's preflight that finds it waits (preflight_backup_wait) and then fails naming it;
  2. only then it reads the deploy lock (<app_root>/.deploy.lock, read-only; an unreadable lock
     counts as held) and looks for a deploy's database sessions (`maestro.deploy:<release id>`);
     when a deploy is on, it makes no backup, logs "skipped: deploy <release id> holds the lock"
     and exits 75 (EX_TEMPFAIL). A deploy takes its lock before it looks for this session, and
     this job opens its session before it reads the lock, so one of them always sees the other.
Exit codes: 0 backed up, 75 skipped for a deploy, 1 failed (the log says why), 2 bad usage.
"""

from __future__ import absolute_import, division, print_function

import errno
import json
import os
import pwd
import grp
import shutil
import socket
import subprocess
import sys
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I does not add the script's dir

EX_TEMPFAIL = 75
SESSION_NAME = "maestro.backup:scheduled"
LOCK_FILE = ".deploy.lock"


def log(message):
    print("%s %s" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), message), flush=True)


class JobFailed(Exception):
    def __init__(self, msg, details):
        super(JobFailed, self).__init__(msg)
        self.msg = msg
        self.details = details


class JobModule(object):
    """The part of AnsibleModule that BackupRun and its helpers use, for a run without ansible."""

    check_mode = False

    def __init__(self, params, spec):
        self.params = dict((name, opt.get("default")) for name, opt in spec.items())
        self.params.update(params)

    def fail_json(self, msg, **details):
        raise JobFailed(msg, details)

    def warn(self, message):
        log("warning: %s" % message)

    def get_bin_path(self, name, required=False, opt_dirs=None):
        search = list(opt_dirs or []) + os.environ.get("PATH", os.defpath).split(os.pathsep) + \
            ["/usr/local/sbin", "/usr/sbin", "/sbin"]
        found = shutil.which(name, path=os.pathsep.join(d for d in search if d))
        if found is None and required:
            self.fail_json(msg="Failed to find required executable %s in paths: %s" % (name, os.pathsep.join(search)))
        return found

    def run_command(self, args, data=None, cwd=None, environ_update=None, binary_data=False, check_rc=False):
        env = dict(os.environ)
        env.update(environ_update or {})
        stdin = None
        if data is not None:
            stdin = (data if binary_data else data + "\n")
            stdin = stdin if isinstance(stdin, bytes) else stdin.encode("utf-8")
        done = subprocess.run([str(a) for a in args], input=stdin, cwd=cwd, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
        out = done.stdout.decode("utf-8", "surrogateescape")
        err = done.stderr.decode("utf-8", "surrogateescape")
        if check_rc and done.returncode != 0:
            self.fail_json(msg=err.strip() or out.strip(), rc=done.returncode, cmd=args)
        return done.returncode, out, err

    def set_mode_if_different(self, path, mode, changed):
        mode = int(mode, 8) if isinstance(mode, str) else int(mode)
        if (os.lstat(path).st_mode & 0o7777) != mode:
            os.chmod(path, mode)
            return True
        return changed

    def set_owner_if_different(self, path, owner, changed):
        uid = int(owner) if str(owner).isdigit() else pwd.getpwnam(owner).pw_uid
        if os.lstat(path).st_uid != uid:
            os.lchown(path, uid, -1)
            return True
        return changed

    def set_group_if_different(self, path, group, changed):
        gid = int(group) if str(group).isdigit() else grp.getgrnam(group).gr_gid
        if os.lstat(path).st_gid != gid:
            os.lchown(path, -1, gid)
            return True
        return changed


def lock_holder(app_root):
    """The release id of the deploy holding <app_root>/.deploy.lock; None when there is no lock.
    The file is read only (never written, never removed); unknown keys are ignored, and a lock
    that cannot be read or understood counts as held."""
    path = os.path.join(app_root, LOCK_FILE)
    try:
        with open(path) as fh:
            raw = fh.read(1 << 16)
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        return "unknown (cannot read %s: %s)" % (path, exc.strerror)
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if not isinstance(data, dict):
        return "unknown (unreadable lock file %s)" % path
    release = data.get("release_id") or data.get("token")
    if not isinstance(release, str) or not release:
        return "unknown (lock file %s names no release)" % path
    return "".join(c if c.isprintable() else "?" for c in release)[:120]


def deploy_sessions(conn):
    """Sessions of a deploy or rollback at work on the database (named maestro.deploy:<release id>)."""
    return conn.execute(
        "SELECT pid, application_name FROM pg_stat_activity "
        "WHERE application_name LIKE 'maestro.deploy:%' AND pid <> pg_backend_pid() ORDER BY backend_start"
    ).fetchall()


def connect_marker(args):
    import psycopg

    kwargs = dict(dbname=args["db"], application_name=SESSION_NAME, autocommit=True)
    for key in ("host", "port", "user", "sslmode", "connect_timeout"):
        if args.get(key) not in (None, ""):
            kwargs[key] = args[key]
    kwargs.setdefault("connect_timeout", 10)
    return psycopg.connect(**kwargs)  # the password comes from PGPASSFILE, never from here


def self_test():
    import psycopg  # noqa: F401 - the host's python3 must have it
    from ansible_collections.maestro.deploy.plugins.module_utils.pg_backup_core import BackupRun  # noqa: F401

    print("maestro backup job: python %s, psycopg %s, code in %s" % (
        sys.version.split()[0], psycopg.__version__, os.path.dirname(os.path.abspath(__file__))))
    return 0


def main(argv):
    if len(argv) == 2 and argv[1] == "--self-test":
        return self_test()
    if len(argv) != 2:
        print("usage: python3 -I %s '<json config>' | --self-test" % argv[0], file=sys.stderr)
        return 2
    config = json.loads(argv[1])
    os.environ.pop("PGAPPNAME", None)  # the backup's own sessions are plain maestro.deploy ones
    started = time.time()
    rc, outcome = backup(config["args"], config.get("app_root") or "")
    if config.get("notify_url") or config.get("heartbeat_url"):
        from ansible_collections.maestro.deploy.plugins.module_utils import job_notify

        outcome.update(job="scheduled backup", db=config["args"]["db"], host=socket.getfqdn(), exit_code=rc,
                       duration_s=round(time.time() - started, 1), app=config.get("app") or None)
        job_notify.send(config.get("notify_url"), config.get("heartbeat_url"), outcome, log)
    return rc


def backup(args, app_root):
    """The job itself: (exit code, {"outcome": success|skipped|failed, "message": ..., ...}), logged."""
    from ansible_collections.maestro.deploy.plugins.module_utils.pg_backup_core import BackupRun, argument_spec

    def ended(rc, outcome, message, **extra):
        log(message)
        return rc, dict(extra, outcome=outcome, message=message)

    try:
        marker = connect_marker(args)
    except Exception as exc:  # psycopg.Error and friends: say it the way pg_backup would
        return ended(1, "failed", "FAILED: cannot connect to database %s: %s" % (args["db"], str(exc).strip()))
    try:
        holder = lock_holder(app_root) if app_root else None
        if holder is not None:
            return ended(EX_TEMPFAIL, "skipped", "skipped: deploy %s holds the lock (%s); no backup made, the next "
                         "scheduled run tries again (exit %d)" % (holder, os.path.join(app_root, LOCK_FILE),
                                                                   EX_TEMPFAIL))
        busy = deploy_sessions(marker)
        if busy:
            return ended(EX_TEMPFAIL, "skipped", "skipped: deploy %s is at work on the database (session pid %s); no "
                         "backup made, the next scheduled run tries again (exit %d)" % (
                             busy[0][1].split(":", 1)[1], busy[0][0], EX_TEMPFAIL))
        try:
            result = BackupRun(JobModule(args, argument_spec())).run()
        except JobFailed as exc:
            stderr = (exc.details.get("stderr") or "").strip().splitlines()
            return ended(1, "failed", "FAILED: %s%s" % (exc.msg, (" (%s)" % stderr[-1]) if stderr else ""))
        return ended(0, "success", "made %s (%s bytes, sha256 %s, verify=%s, schema %s)%s" % (
            result.get("path"), result.get("size_bytes"), result.get("sha256"), result.get("verify"),
            result.get("schema_version") or "none",
            (", pruned " + ", ".join(result["pruned"])) if result.get("pruned") else ""),
            path=result.get("path"), size_bytes=result.get("size_bytes"))
    except Exception:  # an unexpected error: its traceback goes to the log, the exit code says failed
        log("FAILED: unexpected error\n" + traceback.format_exc())
        return 1, {"outcome": "failed", "message": "FAILED: unexpected error (the job's log has the traceback)"}
    finally:
        marker.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
