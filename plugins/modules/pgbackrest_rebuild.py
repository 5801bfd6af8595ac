#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pgbackrest_rebuild
short_description: Rebuild a lost PostgreSQL cluster from its pgBackRest repository and start it
description:
  - The disaster restore - the data directory O(pg_path) is gone, damaged or on a new host - rebuilt with
    C(pgbackrest restore) from a backup of O(stanza), recovered to the target (by default the end of the archived
    WAL), started with O(start_command) and waited for until it has promoted.
  - Never stops or replaces a running server. When a server answers on O(socket_dir) and O(port), or
    C(postmaster.pid) in O(pg_path) names a live process, the module fails and changes nothing - unless that
    server is a rebuild this module made (its marker C(maestro-rebuild.json) in O(pg_path), same stanza) and has
    promoted, which is success with nothing to do.
  - Never deletes. A data directory that is not empty (what is left of the lost cluster) is moved aside to
    C(<pg_path>.before-rebuild-<UTC time>) first; an absent one is created (0700, O(os_user)'s).
  - The rebuilt cluster keeps C(archive_mode) as the backup had it, so after promotion (onto a new timeline) it
    goes on archiving into the same repository and continuous backup carries on.
  - The backup set is chosen from C(pgbackrest info) as by M(maestro.deploy.pgbackrest_restore) and passed with
    C(--set), so the plan shown in check mode is what runs. Tablespaces are restored where they were.
  - pgBackRest and C(psql) run as O(os_user) (through C(runuser) when the module runs as root); O(start_command)
    runs as the module's user, without a shell.
version_added: "0.5.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.pgbackrest
  - maestro.deploy.pgbackrest.target
options:
  pg_path:
    description:
      - The cluster's data directory (pgBackRest's C(pg1-path)); its parent must exist. An absolute, normalised
        path of letters, digits, C(_), C(.), C(-) and C(/).
    type: path
    required: true
  port:
    description: The server's port, to tell whether it runs and when it has promoted.
    type: int
    default: 5432
  socket_dir:
    description: The server's unix socket directory.
    type: path
    default: /var/run/postgresql
  start_command:
    description:
      - The argv that starts the server, run without a shell - C([systemctl, start, postgresql@15-main]) on
        Debian, or C(pg_ctl start) for a cluster without a service.
    type: list
    elements: str
    required: true
  aside_path:
    description:
      - Where a data directory that is not empty is moved (renamed) before the restore; another name in the same
        directory as O(pg_path). Default C(<pg_path>.before-rebuild-<UTC time>).
    type: path
  log_file:
    description: The server's log, quoted (what this start wrote) when the server does not come up.
    type: path
  bin_dir:
    description: Directory of C(psql); default C(psql) from PATH.
    type: path
attributes:
  check_mode:
    support: full
    description: Reads C(pgbackrest info), the data directory and whether a server runs, and returns the plan
      (backup set, WAL range, size, recovery point, where a directory in the way would be moved); changes nothing.
  diff_mode:
    support: none
    description: No diff; RV(plan) says what would be done.
seealso:
  - module: maestro.deploy.pgbackrest_restore
  - name: pgBackRest restore command
    description: The command this module runs.
    link: https://pgbackrest.org/command.html#command-restore
"""

EXAMPLES = r"""
- name: Rebuild the lost cluster from the repository, up to the last archived WAL
  maestro.deploy.pgbackrest_rebuild:
    stanza: manumaestro
    pg_path: /var/lib/postgresql/15/main
    start_command: [systemctl, start, postgresql@15-main]
    log_file: /var/log/postgresql/postgresql-15-main.log
  register: rebuilt
"""

RETURN = r"""
plan:
  description: What the rebuild uses and recovers to.
  returned: always
  type: dict
  contains:
    stanza: {description: The stanza., type: str}
    target: {description: The target type., type: str}
    target_value: {description: "The value given to C(--target) (a time in UTC), or null.", type: str}
    recovery_point: {description: The expected recovery point in words., type: str}
    backup:
      description: The backup set (label, type, start, stop, size_bytes, repo_size_bytes, wal_start, wal_stop).
      type: dict
    wal: {description: "The archive of the backup's database: archive_id, min, max.", type: dict}
    pg_path: {description: The data directory rebuilt., type: str}
    moved_aside_to: {description: Where what was in O(pg_path) goes (null when it was absent or empty)., type: str}
  sample:
    stanza: manumaestro
    target: latest
    target_value: null
    recovery_point: the end of the archived WAL (00000001000000000000000C)
    backup: {label: 20261201-234005F, type: full, start: "2026-12-01T23:40:05Z", stop: "2026-12-01T23:40:21Z",
             size_bytes: 22992679, repo_size_bytes: 3044086, wal_start: "000000010000000000000002",
             wal_stop: "000000010000000000000002"}
    wal: {archive_id: "15-1", min: "000000010000000000000001", max: "00000001000000000000000C"}
    pg_path: /var/lib/postgresql/15/main
    moved_aside_to: /var/lib/postgresql/15/main.before-rebuild-20261203T071500Z
plan_lines:
  description: The plan's backup set and archived WAL in words (what the playbooks show).
  returned: when a plan was made
  type: list
  elements: str
action:
  description: V(restore) (into an absent or empty directory), V(aside) (moved aside, then restored) or V(none).
  returned: always
  type: str
recovery:
  description: What the server's log says (stopped, last_transaction, new_timeline, fatal); nulls without O(log_file).
  returned: when a rebuild ran
  type: dict
timeline:
  description: The cluster's timeline after promotion.
  returned: when the server runs
  type: int
seconds:
  description: Seconds the restore and the recovery took (restore, recovery).
  returned: when a rebuild ran
  type: dict
commands:
  description: What ran (argv, rc, duration).
  returned: always
  type: list
  elements: dict
"""

import datetime  # noqa: E402
import getpass  # noqa: E402
import os  # noqa: E402
import pwd  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import (  # noqa: E402
    InfoError,
    argument_spec,
    read_info,
    run_as,
    stanza_problem,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_rebuild import (  # noqa: E402
    MARKER,
    aside_path,
    aside_problem,
    decide,
    marker_text,
    pg_path_problem,
    pid_alive,
    read_marker,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (  # noqa: E402
    RestoreError,
    choose_for,
    log_tail,
    params_target,
    plan_lines,
    parse_probe,
    probe_argv,
    read_text,
    recovery_argv,
    recovery_from_log,
    recovery_plan,
    target_spec,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402


class Cluster:
    """The cluster at pg_path on this host: reads its state, moves a lost one aside, restores and starts it."""

    def __init__(self, module, runner, as_user):
        self.p = module.params
        self.runner = runner
        self.as_user = as_user
        self.path = self.p["pg_path"]
        self.user = self.p["os_user"] or getpass.getuser()
        self.psql = os.path.join(self.p["bin_dir"], "psql") if self.p["bin_dir"] else runner.bin("psql")

    def probe(self):
        rc, out, _err = self.runner.run(self.as_user(probe_argv(self.psql, self.p["socket_dir"], self.p["port"],
                                                                self.user)), check=False, what="psql (server state)")
        return parse_probe(rc, out)

    def pid_alive(self):
        return pid_alive(read_text(os.path.join(self.path, "postmaster.pid")))

    def state(self):
        exists = os.path.isdir(self.path)
        probed = self.probe()
        return dict(path=self.path, entries=sorted(os.listdir(self.path)) if exists else None,
                    running=bool(probed) or (exists and self.pid_alive()),
                    promoted=bool(probed) and probed.get("in_recovery") is False,
                    timeline=(probed or {}).get("timeline"),
                    marker=read_marker(read_text(os.path.join(self.path, MARKER)), self.p["stanza"]) if exists
                    else None)

    def prepare(self, aside):
        """Move what is in pg_path aside (rename: nothing is copied or deleted) and make it afresh."""
        pw = pwd.getpwnam(self.user)
        if aside:
            os.rename(self.path, aside)
        if not os.path.isdir(self.path):
            if not os.path.isdir(os.path.dirname(self.path)):
                raise RestoreError("the parent of pg_path, %s, does not exist" % os.path.dirname(self.path))
            os.mkdir(self.path, 0o700)
            if os.geteuid() == 0:
                os.chown(self.path, pw.pw_uid, pw.pw_gid)
        return pw

    def write_marker(self, text, pw):
        """The marker, afresh: a backup taken after an earlier rebuild restores that rebuild's marker."""
        path = os.path.join(self.path, MARKER)
        if os.path.lexists(path):
            os.unlink(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        if os.geteuid() == 0:
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def start_and_wait(self, start_command):
        """Start the server and wait until it has promoted; the log written meanwhile and the probe."""
        log = self.p["log_file"]
        offset = os.path.getsize(log) if log and os.path.exists(log) else 0
        rc, _out, _err = self.runner.run(start_command, check=False, what="start PostgreSQL")
        started = time.time()
        deadline = started + self.p["timeout"]
        while True:
            probed = self.probe()
            if probed and probed.get("in_recovery") is False:
                return probed, read_text(log, offset) if log else ""
            up = self.pid_alive()
            # a start command may return before the server writes postmaster.pid: 30 s of grace
            if (not up and (rc != 0 or time.time() - started > 30)) or time.time() > deadline:
                text = (read_text(log, offset) if log else "") or ""
                rec = recovery_from_log(text)
                why = ("did not promote within %ds" % self.p["timeout"]) if up else (
                    "is not running (start rc=%s)%s" % (rc, (": " + rec["fatal"]) if rec["fatal"] else ""))
                raise RestoreError(
                    "the rebuilt cluster in %s %s. The restored files are left in %s as they are, nothing else was "
                    "changed; read the server's log%s, fix the cause and start it, or rerun (what is there is moved "
                    "aside again).%s" % (self.path, why, self.path, (" (%s)" % log) if log else "",
                                         (" Its log ends: " + " | ".join(log_tail(text, 8))) if text else ""))
            time.sleep(0.5)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(**target_spec(
            pg_path=dict(type="path", required=True),
            port=dict(type="int", default=5432),
            socket_dir=dict(type="path", default="/var/run/postgresql"),
            start_command=dict(type="list", elements="str", required=True),
            aside_path=dict(type="path"),
            log_file=dict(type="path"),
            bin_dir=dict(type="path"),
        )),
        supports_check_mode=True,
    )
    p = module.params
    for problem in (stanza_problem(p["stanza"]), pg_path_problem(p["pg_path"]),
                    None if 0 < p["port"] < 65536 else "port=%d: a port number, 1-65535" % p["port"],
                    None if p["start_command"] and all(p["start_command"]) else
                    "start_command: the argv that starts the server, a non-empty list of non-empty strings",
                    aside_problem(p["aside_path"], p["pg_path"]) if p["aside_path"] else None):
        if problem:
            module.fail_json(msg=problem)
    runner = Runner(module)
    result = dict(changed=False, commands=runner.history)
    try:
        problems, text = params_target(p)
        if problems:
            module.fail_json(msg="; ".join(problems), **result)
        as_user = run_as(runner, p["os_user"], os.geteuid(), getpass.getuser())
        cluster = Cluster(module, runner, as_user)
        pgbackrest = runner.bin("pgbackrest", explicit=p["pgbackrest"])
        start_command = [runner.bin(p["start_command"][0]) if "/" not in p["start_command"][0]
                         else p["start_command"][0]] + p["start_command"][1:]
        entry = read_info(runner, as_user, pgbackrest, p["stanza"], p["config"])
        backup = choose_for(entry, p)
        state = cluster.state()
        action = decide(state)
        now = datetime.datetime.now(datetime.timezone.utc)
        aside = (p["aside_path"] or aside_path(p["pg_path"], now.strftime("%Y%m%dT%H%M%SZ"))) if action == "aside" \
            else None
        the_plan = dict(recovery_plan(entry, p["target"], text, backup), pg_path=p["pg_path"], moved_aside_to=aside)
        result.update(plan=the_plan, plan_lines=plan_lines(the_plan), action=action)
        if aside and os.path.lexists(aside):
            raise RestoreError("%s already exists: what is in %s would be moved there; nothing was changed. Give "
                               "another aside_path or move it away" % (aside, p["pg_path"]))
        if action == "none":
            module.exit_json(timeline=state["timeline"], **result)
        result["changed"] = True
        if module.check_mode:
            module.exit_json(**result)
        pw = cluster.prepare(aside)
        began = time.time()
        runner.run(as_user(recovery_argv(pgbackrest, p["stanza"], p["config"], p["pg_path"], p["target"], text,
                                         backup["label"], the_plan["backup"]["repo"])), what="pgbackrest restore")
        restored = time.time()
        cluster.write_marker(marker_text(p["stanza"], the_plan, now.strftime("%Y-%m-%dT%H:%M:%SZ"), aside), pw)
        probed, log_text = cluster.start_and_wait(start_command)
        result.update(recovery=recovery_from_log(log_text), timeline=probed.get("timeline"),
                      seconds=dict(restore=round(restored - began, 2), recovery=round(time.time() - restored, 2)))
        module.exit_json(**result)
    except CommandError as exc:
        runner.fail(error=exc, result=result)
    except (InfoError, RestoreError, OSError) as exc:
        last = runner.history[-1] if runner.history else {}
        runner.fail(to_native(exc), result=result, cmd=last.get("cmd"), rc=last.get("rc"), stderr="")


if __name__ == "__main__":
    main()
