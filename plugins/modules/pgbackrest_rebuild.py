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
  - Never stops or replaces a running server. When a server answers on O(socket_dir) and O(port) (or answers but
    refuses the check), or C(postmaster.pid) in O(pg_path) names a live postgres process, the module fails and
    changes nothing - unless the server answering serves O(pg_path), has the backup's system identifier, has
    promoted and O(pg_path) holds this module's marker C(maestro-rebuild.json) - success with nothing to do.
  - Never replaces a stopped cluster that looks intact (C(global/pg_control) present) unless O(replace_intact),
    nor a O(pg_path) that is a symlink or a mount point with files in it. O(pg_path) must be the stanza's
    C(pg1-path) in O(config).
  - Never deletes. A data directory that is not empty (what is left of the lost cluster) is moved aside to
    C(<pg_path>.before-rebuild-<UTC time>) first; an absent one is created (0700, O(os_user)'s).
  - The rebuilt cluster keeps C(archive_mode) as the backup had it, so after promotion (onto a new timeline) it
    goes on archiving into the same repository and continuous backup carries on.
  - The backup set is chosen from C(pgbackrest info) as by M(maestro.deploy.pgbackrest_restore) and passed with
    C(--set), so the plan shown in check mode is what runs. Tablespaces are restored where they were.
  - pgBackRest and C(psql) run as O(os_user) (through C(runuser) when the module runs as root), which must reach the
    server over its socket as a superuser role of its name (the server's own user, C(postgres)); O(start_command)
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
  replace_intact:
    description:
      - Rebuild also when O(pg_path) holds a stopped cluster that looks intact (it is moved aside, not deleted).
        Starting it may recover everything, while a rebuild loses what was never archived; try that first.
    type: bool
    default: false
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
from ansible_collections.maestro.deploy.plugins.module_utils.owned_paths import make_dir, write_new_file  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_rebuild import (  # noqa: E402
    MARKER,
    aside_path,
    aside_problem,
    config_pg_path,
    decide,
    is_postgres,
    marker_text,
    pg_path_problem,
    postmaster_pid,
    read_marker,
    system_id,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (  # noqa: E402
    RestoreError,
    choose_for,
    log_tail,
    nothing_listens,
    params_target,
    plan_lines,
    parse_probe,
    probe_argv,
    read_text,
    recovery_argv,
    recovery_from_log,
    STARTING,
    recovery_plan,
    repo_to_pin,
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
        """(the server's answer or None, psql's error when a server answered but refused, else None)."""
        rc, out, err = self.runner.run(self.as_user(probe_argv(self.psql, self.p["socket_dir"], self.p["port"],
                                                               self.user)), check=False, what="psql (server state)")
        answer = parse_probe(rc, out)
        said = (err or "").strip().splitlines()
        refused = None if answer or nothing_listens(rc, err) else (said[-1] if said else "psql rc=%s" % rc)
        return answer, refused

    def serves_here(self, answer):
        return bool(answer) and os.path.realpath(answer.get("data_directory") or "/nonexistent") == \
            os.path.realpath(self.path)

    def live_pid(self):
        """The pid in postmaster.pid when it is a running postgres, else None."""
        pid = postmaster_pid(read_text(os.path.join(self.path, "postmaster.pid"), limit=4096))
        if pid and is_postgres(read_text("/proc/%d/cmdline" % pid, limit=4096)):
            return pid
        return None

    def state(self, system):
        kind = "absent"
        if os.path.islink(self.path):
            kind = "symlink"
        elif os.path.isdir(self.path):
            kind = "mount" if os.path.ismount(self.path) else "dir"
        elif os.path.lexists(self.path):
            kind = "other"
        inside = kind in ("dir", "mount")
        answer, refused = self.probe()
        return dict(path=self.path, kind=kind, entries=sorted(os.listdir(self.path)) if inside else None,
                    answered=answer, refused=refused, pid=self.live_pid() if inside else None,
                    serves_here=self.serves_here(answer),
                    same_system=bool(answer) and str(answer.get("system_identifier")) == str(system),
                    intact=inside and os.path.isfile(os.path.join(self.path, "global", "pg_control")),
                    replace_intact=self.p["replace_intact"],
                    marker=read_marker(read_text(os.path.join(self.path, MARKER)), self.p["stanza"]) if inside
                    else None, timeline=(answer or {}).get("timeline"))

    def prepare(self, aside, pw):
        """Move what is in pg_path aside (rename: nothing is copied or deleted) and make it afresh."""
        if aside:
            os.rename(self.path, aside)
        if not os.path.isdir(self.path):
            if not os.path.isdir(os.path.dirname(self.path)):
                raise RestoreError("the parent of pg_path, %s, does not exist" % os.path.dirname(self.path))
            make_dir(self.path, pw.pw_uid, pw.pw_gid)

    def write_marker(self, text, pw):
        """The marker, afresh: a backup taken after an earlier rebuild restores that rebuild's marker."""
        path = os.path.join(self.path, MARKER)
        if os.path.lexists(path):
            os.unlink(path)
        write_new_file(path, text, pw.pw_uid, pw.pw_gid)

    def start_and_wait(self, start_command, system):
        """Start the server and wait until it has promoted; the log written meanwhile and the probe."""
        log = self.p["log_file"]
        offset = os.path.getsize(log) if log and os.path.isfile(log) else 0
        rc, _out, _err = self.runner.run(start_command, check=False, what="start PostgreSQL")
        started = time.time()
        deadline = started + self.p["timeout"]
        refused_since = None
        while True:
            answer, refused = self.probe()
            # up but refusing the check for another reason than starting (pg_hba, a missing role): no use waiting
            lasting = refused and not any(words in refused for words in STARTING)
            refused_since = (refused_since or time.time()) if lasting else None
            if refused_since and time.time() - refused_since > 30:
                raise RestoreError(
                    "the rebuilt cluster in %s runs but refuses the check for 30 s: %s. It is left running as it is; "
                    "let os_user connect over the socket (pg_hba.conf) and rerun, which then finds it promoted."
                    % (self.path, refused))
            if answer and answer.get("in_recovery") is False:
                if not self.serves_here(answer) or str(answer.get("system_identifier")) != str(system):
                    raise RestoreError(
                        "a server answers on %s port %s, but it serves %s (system %s), not the rebuilt %s (system %s): "
                        "restore_start_command started another cluster. The restored files are left in %s, not "
                        "running; fix the start command (or pg_path) and rerun." % (
                            self.p["socket_dir"], self.p["port"], answer.get("data_directory"),
                            answer.get("system_identifier"), self.path, system, self.path))
                return answer, read_text(log, offset, tail=True) if log else ""
            up = self.live_pid()
            # a start command may return before the server writes postmaster.pid: 30 s of grace
            if (not up and (rc != 0 or time.time() - started > 30)) or time.time() > deadline:
                text = (read_text(log, offset, tail=True) if log else "") or ""
                rec = recovery_from_log(text)
                if up:
                    why = ("is still recovering after %ds (process %s): let it finish, a rerun then finds it "
                           "promoted and does nothing; or read its log%s" % (
                               self.p["timeout"], up, (" (%s)" % log) if log else ""))
                else:
                    why = ("is not running (start rc=%s%s): the restored files are left in %s as they are; read the "
                           "server's log%s, fix the cause and start it, or rebuild again with replace_intact=true "
                           "(-e restore_replace_intact=true: what is there is moved aside again)" % (
                               rc, (", " + rec["fatal"]) if rec["fatal"] else "", self.path,
                               (" (%s)" % log) if log else ""))
                raise RestoreError("the rebuilt cluster in %s %s.%s" % (
                    self.path, why, (" Its log ends: " + " | ".join(log_tail(text, 8))) if text else ""))
            time.sleep(0.5)


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(**target_spec(
            pg_path=dict(type="path", required=True),
            port=dict(type="int", default=5432),
            socket_dir=dict(type="path", default="/var/run/postgresql"),
            start_command=dict(type="list", elements="str", required=True),
            aside_path=dict(type="path"),
            replace_intact=dict(type="bool", default=False),
            log_file=dict(type="path"),
            bin_dir=dict(type="path"),
        )),
        supports_check_mode=True,
    )
    p = module.params
    for problem in (stanza_problem(p["stanza"]), pg_path_problem(p["pg_path"]),
                    None if 0 < p["port"] < 65536 else "port=%d: a port number, 1-65535" % p["port"],
                    None if p["timeout"] > 0 else "timeout=%d: seconds, more than 0" % p["timeout"],
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
        user = p["os_user"] or getpass.getuser()
        try:
            pw = pwd.getpwnam(user)
        except KeyError:
            module.fail_json(msg="os_user=%s: no such user on this host" % user, **result)
        configured = config_pg_path(read_text(p["config"] or "/etc/pgbackrest/pgbackrest.conf"), p["stanza"])
        if configured and os.path.normpath(configured) != p["pg_path"]:
            module.fail_json(msg="pg_path=%s is not the stanza's pg1-path (%s in %s): the rebuild goes where "
                                 "pgBackRest backs up from. Nothing was changed." % (
                                     p["pg_path"], configured, p["config"] or "/etc/pgbackrest/pgbackrest.conf"),
                             **result)
        as_user = run_as(runner, p["os_user"], os.geteuid(), getpass.getuser())
        cluster = Cluster(module, runner, as_user)
        pgbackrest = runner.bin("pgbackrest", explicit=p["pgbackrest"])
        start_command = [runner.bin(p["start_command"][0]) if "/" not in p["start_command"][0]
                         else p["start_command"][0]] + p["start_command"][1:]
        entry = read_info(runner, as_user, pgbackrest, p["stanza"], p["config"])
        backup = choose_for(entry, p)
        system = system_id(entry, backup)
        state = cluster.state(system)
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
        cluster.prepare(aside, pw)
        began = time.time()
        repo = repo_to_pin(p["repo"], the_plan["backup"]["repo"])
        try:
            runner.run(as_user(recovery_argv(pgbackrest, p["stanza"], p["config"], p["pg_path"], p["target"], text,
                                             backup["label"], repo)), what="pgbackrest restore")
        except CommandError as exc:
            exc.msg = "%s. State left: %s holds what pgBackRest restored before it failed (not started)%s; rerun " \
                      "once the cause is fixed (it is moved aside again)" % (
                          exc.msg, p["pg_path"], ("; what was there is in %s" % aside) if aside else "")
            raise
        restored = time.time()
        cluster.write_marker(marker_text(p["stanza"], the_plan, now.strftime("%Y-%m-%dT%H:%M:%SZ"), aside), pw)
        answer, log_text = cluster.start_and_wait(start_command, system)
        result.update(recovery=recovery_from_log(log_text), timeline=answer.get("timeline"),
                      seconds=dict(restore=round(restored - began, 2), recovery=round(time.time() - restored, 2)))
        module.exit_json(**result)
    except CommandError as exc:
        runner.fail(error=exc, result=result)
    except (InfoError, RestoreError, OSError) as exc:
        last = runner.history[-1] if runner.history else {}
        runner.fail(to_native(exc), result=result, cmd=last.get("cmd"), rc=last.get("rc"), stderr="")


if __name__ == "__main__":
    main()
