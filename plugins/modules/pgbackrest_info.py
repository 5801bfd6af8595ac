#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pgbackrest_info
short_description: Read the state of a pgBackRest stanza for watching, newest backup and archived WAL
description:
  - Runs C(pgbackrest --stanza=<stanza> --output=json info) and, for the newest archived WAL segment of
    each repository, C(pgbackrest repo-ls) of its archive directory (C(info) gives no time for the WAL;
    the segment file's time in the repository is when it was pushed).
  - Returns per repository the newest backup (type, label, stop time, age, sizes) and the newest
    archived WAL with its age, and RV(problems) when there is no backup or a threshold is exceeded.
  - Runs pgBackRest as O(os_user) (through C(runuser) when the module runs as root), so the log and
    lock files it writes stay that user's. No password is involved; pgBackRest reads the repository only.
version_added: "0.3.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.pgbackrest
  - maestro.deploy.read_only
options:
  max_backup_age:
    description: A problem when a repository's newest backup is older than this many seconds; 0 checks nothing.
    type: int
    default: 0
  max_wal_age:
    description:
      - A problem when a repository's newest archived WAL was pushed more than this many seconds ago; 0
        checks nothing. Set it above PostgreSQL's C(archive_timeout). A server that writes nothing at all
        switches no WAL (archive_timeout switches only after some activity), so on an idle server the
        newest WAL ages without anything being wrong.
    type: int
    default: 0
seealso:
  - name: pgBackRest info command
    description: The JSON this module reads.
    link: https://pgbackrest.org/command.html#command-info
"""

EXAMPLES = r"""
- name: Read the app database's continuous backup
  maestro.deploy.pgbackrest_info:
    stanza: manumaestro
    max_backup_age: 691200  # 8 days: a weekly full plus slack
    max_wal_age: 600
  register: pitr

- name: Fail when continuous backup has a problem
  ansible.builtin.assert:
    that: pitr.problems | length == 0
    fail_msg: "{{ pitr.problems | join('; ') }}"
"""

RETURN = r"""
stanza:
  description: The stanza read.
  returned: always
  type: str
status:
  description: The stanza's status as pgBackRest gives it (code 0 ok, 1 missing stanza path, 2 no valid backups, ...).
  returned: always
  type: dict
  sample: {code: 0, message: ok}
repos:
  description: Per repository (by key, C(repo1) is key 1) its status, backups and WAL archive.
  returned: always
  type: list
  elements: dict
  contains:
    key: {description: The repository's key., type: int}
    status: {description: Its status (code and message)., type: dict}
    backup_count: {description: How many good backups it holds., type: int}
    newest_backup:
      description: Its newest good backup, null when there is none.
      type: dict
      contains:
        type: {description: "full, diff or incr.", type: str}
        label: {description: pgBackRest's label of the backup., type: str}
        prior: {description: The backup it depends on (diff and incr)., type: str}
        start: {description: When it started (epoch seconds)., type: int}
        stop: {description: When it stopped (epoch seconds)., type: int}
        age_s: {description: Seconds since it stopped., type: int}
        size_bytes: {description: Size of the database it holds., type: int}
        delta_bytes: {description: Size of what it copied., type: int}
        repo_size_bytes: {description: Its size in the repository (compressed)., type: int}
        repo_delta_bytes: {description: Size of what it added to the repository., type: int}
        wal_start: {description: First WAL segment it needs., type: str}
        wal_stop: {description: Last WAL segment it needs., type: str}
    newest_wal:
      description: The archive of the current database, null when no WAL was archived.
      type: dict
      contains:
        archive_id: {description: The archive id (PostgreSQL version and database id)., type: str}
        min: {description: Oldest WAL segment in the archive., type: str}
        max: {description: Newest WAL segment in the archive., type: str}
        pushed_at: {description: When the newest segment reached the repository (epoch seconds)., type: int}
        age_s: {description: Seconds since then., type: int}
  sample:
    - key: 1
      status: {code: 0, message: ok}
      backup_count: 2
      newest_backup: {type: diff, label: 20261201-231332F_20261201-231437D, prior: 20261201-231332F,
                      start: 1796166877, stop: 1796166880, age_s: 120, size_bytes: 22992682,
                      delta_bytes: 8273, repo_size_bytes: 3044088, repo_delta_bytes: 1096,
                      wal_start: "00000001000000000000000D", wal_stop: "00000001000000000000000D"}
      newest_wal: {archive_id: "15-1", min: "000000010000000000000001", max: "00000001000000000000000D",
                   pushed_at: 1796166880, age_s: 120}
problems:
  description: What is wrong, one sentence each; empty when nothing is.
  returned: always
  type: list
  elements: str
  sample:
    - "repo1: newest archived WAL 000000010000000000000003 is 912s old, more than max_wal_age=600s:
      archiving is failing or dropping WAL (see archive-push-queue-max)"
check:
  description:
    - The result as a monitoring check in Nagios's terms - code V(0) OK or V(2) CRITICAL (when RV(problems) is not
      empty) - and one line saying why, such as C(PGBACKREST OK - stanza s, repo1 backup 3600s old WAL 40s old).
      C(playbooks/status.yml -e status_check=true) fails with this line, so its exit code is the check's.
  returned: always
  type: dict
  sample:
    code: 2
    state: CRITICAL
    line: "PGBACKREST CRITICAL - stanza manumaestro: repo1: newest archived WAL 000000010000000000000003 is 912s
      old, more than max_wal_age=600s: archiving is failing or dropping WAL (see archive-push-queue-max)"
commands:
  description: What ran (argv, rc, duration).
  returned: always
  type: list
  elements: dict
"""

import getpass  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import (  # noqa: E402
    InfoError,
    argument_spec,
    check_line,
    problems,
    read_info,
    repo_ls_argv,
    run_as,
    segment_push_time,
    stanza_problem,
    summarise,
    wanted_push_times,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(
            max_backup_age=dict(type="int", default=0),
            max_wal_age=dict(type="int", default=0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if stanza_problem(p["stanza"]):
        module.fail_json(msg=stanza_problem(p["stanza"]))
    for name in ("max_backup_age", "max_wal_age"):
        if p[name] < 0:
            module.fail_json(msg="%s must be 0 (no check) or more seconds, not %d" % (name, p[name]))
    runner = Runner(module)
    pgbackrest = runner.bin("pgbackrest", explicit=p["pgbackrest"])

    as_user = run_as(runner, p["os_user"], os.geteuid(), getpass.getuser())
    try:
        entry = read_info(runner, as_user, pgbackrest, p["stanza"], p["config"])
        pushed = {}
        for key, archive_id, segment in wanted_push_times(entry):
            _rc, listing, _err = runner.run(
                as_user(repo_ls_argv(pgbackrest, p["stanza"], key, archive_id, segment, p["config"])),
                what="pgbackrest repo-ls")
            pushed[(key, segment)] = segment_push_time(listing, segment)
    except CommandError as exc:
        runner.fail(error=exc)
    except InfoError as exc:
        runner.fail(to_native(exc), cmd=runner.history[-1]["cmd"] if runner.history else None,
                    rc=runner.history[-1]["rc"] if runner.history else None, stderr="")
    repos = summarise(entry, pushed, int(time.time()))
    found = problems(entry, repos, p["max_backup_age"], p["max_wal_age"])
    module.exit_json(
        changed=False, stanza=p["stanza"],
        status=dict(code=(entry.get("status") or {}).get("code"), message=(entry.get("status") or {}).get("message")),
        repos=repos, problems=found, check=check_line(p["stanza"], repos, found),
        commands=runner.history,
    )


if __name__ == "__main__":
    main()
