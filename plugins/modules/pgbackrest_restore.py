#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pgbackrest_restore
short_description: Point-in-time recovery of a pgBackRest stanza into a scratch cluster beside the live one
description:
  - With O(state=present), restores a backup of O(stanza) with C(pgbackrest restore) into a fresh directory
    O(scratch_dir) (never the live data directory; C(--pg1-path=<scratch_dir>/data), tablespaces under
    C(<scratch_dir>/tablespaces)), recovers it to the target (O(target) V(time), V(xid), V(name) or
    V(immediate) with C(--target-action=promote); V(latest) to the end of the archived WAL), starts it with
    C(pg_ctl) on O(port) and waits until it has promoted.
  - The scratch cluster never archives WAL, so the copy (which promotes onto a new timeline) pushes nothing into
    the live stanza's repository - C(--archive-mode=off) writes C(archive_mode = 'off') into its
    C(postgresql.auto.conf), and it is started with C(-c archive_mode=off) too.
  - It listens on no TCP address, only on a unix socket inside O(scratch_dir) (0700, O(os_user)'s), with its own
    C(postgresql.conf), C(pg_hba.conf) (the superuser by peer authentication) and C(pg_ident.conf) in
    O(scratch_dir), so O(port) collides with nothing and no password is involved.
  - The backup set is chosen from C(pgbackrest info) - O(set) when given; for a time target the newest backup that
    stopped before it; otherwise the newest - and passed with C(--set), so the plan shown in check mode is
    what runs.
  - With O(state=absent), stops the scratch server (C(pg_ctl stop -m fast), then C(immediate)) and removes
    O(scratch_dir); only a directory holding the marker file C(maestro-pitr.json) this module writes (or an
    empty one) is removed.
  - pgBackRest, C(pg_ctl) and C(psql) run as O(os_user) (through C(runuser) when the module runs as root). The
    server binaries are those of the restored data directory's C(PG_VERSION) under C(/usr/lib/postgresql/<major>/bin)
    unless O(bin_dir) is given.
version_added: "0.4.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.pgbackrest
  - maestro.deploy.pgbackrest.target
options:
  scratch_dir:
    description:
      - The scratch cluster's directory, created by the module (its parent must exist and O(os_user) must reach
        it). An absolute, normalised path of letters, digits, C(_), C(.), C(-) and C(/).
    type: path
    required: true
  live_pg_path:
    description: The live cluster's data directory; O(scratch_dir) may not be it, inside it or hold it.
    type: path
  port:
    description: The scratch server's port (its socket is C(<scratch_dir>/.s.PGSQL.<port>); no TCP).
    type: int
    default: 55432
  state:
    description: V(present) restored, running and promoted; V(absent) stopped and removed.
    type: str
    choices: [present, absent]
    default: present
  bin_dir:
    description: Directory of C(pg_ctl) and C(psql); default from the restored C(PG_VERSION).
    type: path
attributes:
  check_mode:
    support: full
    description: Reads C(pgbackrest info) and the scratch directory and returns the plan (backup set, WAL range,
      size, recovery point, scratch directory and port); creates, starts and removes nothing.
  diff_mode:
    support: none
    description: No diff; RV(plan) says what would be done.
seealso:
  - module: maestro.deploy.pgbackrest_info
  - name: pgBackRest restore command
    description: The command this module runs.
    link: https://pgbackrest.org/command.html#command-restore
"""

EXAMPLES = r"""
- name: Recover the cluster as it was before the bad change, beside the live one
  maestro.deploy.pgbackrest_restore:
    stanza: manumaestro
    scratch_dir: /var/backups/manumaestro/pitr-20261201T234500Z
    live_pg_path: /var/lib/postgresql/15/main
    target: time
    time: "2026-12-01T23:40:32Z"
  register: pitr

- name: Stop and remove the scratch cluster
  maestro.deploy.pgbackrest_restore:
    stanza: manumaestro
    scratch_dir: /var/backups/manumaestro/pitr-20261201T234500Z
    state: absent
"""

RETURN = r"""
plan:
  description: What the restore uses and recovers to (with O(state=present)).
  returned: when state is present
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
    scratch_dir: {description: The scratch directory., type: str}
    data_dir: {description: The scratch data directory., type: str}
    port: {description: The scratch port., type: int}
  sample:
    stanza: manumaestro
    target: time
    target_value: "2026-12-01 23:40:32.000000+00"
    recovery_point: time 2026-12-01 23:40:32.000000+00
    backup: {label: 20261201-234005F, type: full, start: "2026-12-01T23:40:05Z", stop: "2026-12-01T23:40:21Z",
             size_bytes: 22992679, repo_size_bytes: 3044086, wal_start: "000000010000000000000002",
             wal_stop: "000000010000000000000002"}
    wal: {archive_id: "15-1", min: "000000010000000000000001", max: "000000010000000000000003"}
    scratch_dir: /var/backups/manumaestro/pitr-20261201T234500Z
    data_dir: /var/backups/manumaestro/pitr-20261201T234500Z/data
    port: 55432
socket_dir:
  description: Where the scratch server's socket is (connect with host=socket_dir, port, user postgres).
  returned: always
  type: str
recovery:
  description: What the scratch server's log says (stopped, last_transaction, new_timeline, fatal).
  returned: when state is present and not in check mode
  type: dict
  sample: {stopped: 'recovery stopping before commit of transaction 741, time 2026-12-01 23:40:33.1+00',
           last_transaction: '2026-12-01 23:40:31.9+00', new_timeline: 2, fatal: null}
timeline:
  description: The scratch cluster's timeline after promotion.
  returned: when state is present and not in check mode
  type: int
plan_lines:
  description: The plan's backup set and archived WAL in words (what the playbooks show).
  returned: when a plan was made
  type: list
  elements: str
action:
  description: V(create), V(remove) or V(none).
  returned: always
  type: str
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
import shutil  # noqa: E402
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
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (  # noqa: E402
    RestoreError,
    choose_for,
    config_files,
    decide,
    free_space,
    layout,
    log_tail,
    marker_text,
    params_target,
    plan_lines,
    parse_probe,
    pg_bindir,
    pg_ctl_start_argv,
    pg_ctl_status_argv,
    pg_ctl_stop_argv,
    plan,
    probe_argv,
    read_marker,
    read_text,
    recovery_from_log,
    repo_to_pin,
    restore_argv,
    room_problem,
    scratch_problem,
    stopped_at_point,
    target_spec,
)
from ansible_collections.maestro.deploy.plugins.module_utils.owned_paths import make_dir, write_new_file  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402


class Scratch:
    """The scratch cluster on this host: reads its state, creates, starts and removes it."""

    def __init__(self, module, runner, as_user):
        self.module = module
        self.p = module.params
        self.runner = runner
        self.as_user = as_user
        self.dir = self.p["scratch_dir"]
        self.where = layout(self.dir)

    def bindir(self):
        return pg_bindir(read_text(os.path.join(self.where["data"], "PG_VERSION")), self.p["bin_dir"])

    def running(self):
        if not os.path.exists(os.path.join(self.where["data"], "postmaster.pid")):
            return False
        rc, _out, _err = self.runner.run(self.as_user(pg_ctl_status_argv(self.bindir(), self.dir)), check=False,
                                         what="pg_ctl status")
        return rc == 0

    def probe(self):
        rc, out, _err = self.runner.run(
            self.as_user(probe_argv(os.path.join(self.bindir(), "psql"), self.where["socket_dir"], self.p["port"],
                                    self.p["os_user"] or getpass.getuser())),
            check=False, what="psql (scratch server state)")
        return parse_probe(rc, out)

    def state(self):
        exists = os.path.isdir(self.dir)
        entries = sorted(os.listdir(self.dir)) if exists else []
        marker = read_marker(read_text(self.where["marker"]) or "") if exists else None
        running = bool(marker) and self.running()
        probed = self.probe() if running else None
        return dict(path=self.dir, exists=exists, entries=entries, marker=marker, running=running,
                    promoted=bool(probed) and probed.get("in_recovery") is False,
                    timeline=(probed or {}).get("timeline"))

    def create(self, the_plan, pgbackrest, target_text):
        user = self.p["os_user"] or getpass.getuser()
        pw = pwd.getpwnam(user)
        parent = os.path.dirname(self.dir)
        if not os.path.isdir(parent):
            raise RestoreError("the parent of scratch_dir, %s, does not exist" % parent)
        make_dir(self.dir, pw.pw_uid, pw.pw_gid)
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        write_new_file(self.where["marker"], marker_text(self.p["stanza"], the_plan, created), pw.pw_uid, pw.pw_gid)
        files = config_files(user, "root" if os.geteuid() == 0 else getpass.getuser())
        for key in ("conf", "hba", "ident"):
            write_new_file(self.where[key], files[key], pw.pw_uid, pw.pw_gid)
        self.runner.run(self.as_user(restore_argv(pgbackrest, self.p["stanza"], self.p["config"], self.dir,
                                                  self.p["target"], target_text, the_plan["backup"]["label"],
                                                  repo_to_pin(self.p["repo"], the_plan["backup"]["repo"]))),
                        what="pgbackrest restore")
        bindir = self.bindir()
        start = pg_ctl_start_argv(bindir, self.dir, self.p["port"], min(self.p["timeout"], 600))
        rc, _out, _err = self.runner.run(self.as_user(start), check=False, what="pg_ctl start")
        deadline = time.time() + self.p["timeout"]
        while True:
            probed = self.probe()
            if probed and probed.get("in_recovery") is False:
                return probed
            if not self.running() or time.time() > deadline:
                text = read_text(self.where["log"], tail=True) or ""
                rec = recovery_from_log(text)
                why = ("did not promote within %ds" % self.p["timeout"]) if self.running() else \
                    ("stopped%s" % ((": " + rec["fatal"]) if rec["fatal"] else ""))
                self.stop()
                raise RestoreError("the scratch server in %s %s (pg_ctl start rc=%s). Its log ends: %s" % (
                    self.dir, why, rc, " | ".join(log_tail(text, 8))))
            time.sleep(1)

    def stop(self):
        if not os.path.exists(os.path.join(self.where["data"], "postmaster.pid")):
            return False
        bindir = self.bindir()
        rc, _o, _e = self.runner.run(self.as_user(pg_ctl_stop_argv(bindir, self.dir, "fast")), check=False,
                                     what="pg_ctl stop")
        if rc != 0 and self.running():
            self.runner.run(self.as_user(pg_ctl_stop_argv(bindir, self.dir, "immediate")), what="pg_ctl stop")
        return True

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(**target_spec(
            scratch_dir=dict(type="path", required=True),
            live_pg_path=dict(type="path"),
            port=dict(type="int", default=55432),
            state=dict(type="str", choices=["present", "absent"], default="present"),
            bin_dir=dict(type="path"),
        )),
        supports_check_mode=True,
    )
    p = module.params
    if stanza_problem(p["stanza"]):
        module.fail_json(msg=stanza_problem(p["stanza"]))
    problem = scratch_problem(p["scratch_dir"], [p["live_pg_path"]])
    if problem:
        module.fail_json(msg=problem)
    if not 0 < p["port"] < 65536:
        module.fail_json(msg="port=%d: a port number, 1-65535" % p["port"])
    runner = Runner(module)
    as_user = run_as(runner, p["os_user"], os.geteuid(), getpass.getuser())
    scratch = Scratch(module, runner, as_user)
    result = dict(changed=False, socket_dir=scratch.where["socket_dir"], commands=runner.history)
    try:
        if p["state"] == "absent":
            action = decide(scratch.state(), present=False)
            if action == "remove" and not module.check_mode:
                scratch.remove()
            result.update(action=action, changed=action == "remove")
            module.exit_json(**result)

        problems, text = params_target(p)
        if problems:
            module.fail_json(msg="; ".join(problems), **result)
        pgbackrest = runner.bin("pgbackrest", explicit=p["pgbackrest"])
        entry = read_info(runner, as_user, pgbackrest, p["stanza"], p["config"])
        backup = choose_for(entry, p)
        the_plan = plan(entry, p["target"], text, backup, p["scratch_dir"], p["port"])
        state = scratch.state()
        action = decide(state, present=True)
        result.update(plan=the_plan, plan_lines=plan_lines(the_plan), action=action)
        if action == "none":
            module.exit_json(timeline=state["timeline"], **result)
        result["changed"] = True
        parent = os.path.dirname(p["scratch_dir"].rstrip("/"))
        if os.path.isdir(parent):
            problem = room_problem(parent, the_plan["backup"]["size_bytes"], *free_space(parent),
                                   what="the scratch cluster (the backup's size)")
            if problem:
                module.fail_json(msg=problem, **result)
        if module.check_mode:
            module.exit_json(**result)
        probed = scratch.create(the_plan, pgbackrest, text)
        result.update(recovery=recovery_from_log(read_text(scratch.where["log"]) or ""),
                      timeline=probed.get("timeline"))
        if p["target"] == "name" and not stopped_at_point(result["recovery"], text):
            scratch.remove()
            module.fail_json(msg="the scratch copy promoted without reaching restore point %s (%s), so it is not the "
                             "database at that point; it was removed and nothing else was changed" % (
                                 text, result["recovery"].get("stopped") or "the log names no stop"), **result)
        module.exit_json(**result)
    except CommandError as exc:
        runner.fail(error=exc, result=result)
    except (InfoError, RestoreError, OSError) as exc:
        last = runner.history[-1] if runner.history else {}
        runner.fail(to_native(exc), result=result, cmd=last.get("cmd"), rc=last.get("rc"), stderr="")


if __name__ == "__main__":
    main()
