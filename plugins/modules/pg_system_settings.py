#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pg_system_settings
short_description: Set PostgreSQL server settings with ALTER SYSTEM and say whether a restart is needed
description:
  - Reads each setting's value in C(postgresql.auto.conf) (C(pg_file_settings)) and its running value
    (C(pg_settings)), runs C(ALTER SYSTEM SET) for those that differ, then C(pg_reload_conf()).
  - Never restarts the server. A setting that takes effect only at a restart (context C(postmaster),
    such as C(archive_mode)) whose running value differs from the one asked for is listed in
    RV(restart_needed).
  - Connects with C(psql) over the unix socket as the superuser O(user), run as the OS user O(os_user)
    (through C(runuser) when the module runs as root) for peer authentication; no password is used.
version_added: "0.3.0"
author: maestro.deploy contributors (!UNKNOWN)
options:
  settings:
    description: Setting names (lower-case letters, digits and C(_)) and the values to set, as strings.
    type: dict
    required: true
  port:
    description: The server's port.
    type: int
    default: 5432
  socket_dir:
    description: Directory of the server's unix socket.
    type: path
    default: /var/run/postgresql
  user:
    description: The superuser to connect as.
    type: str
    default: postgres
  os_user:
    description: OS user psql runs as; empty runs it as the module's user.
    type: str
    default: postgres
  psql:
    description: The psql executable; default C(psql) from PATH.
    type: path
attributes:
  check_mode:
    support: full
    description: Reads the settings and says what it would change and whether a restart would be needed.
  diff_mode:
    support: full
    description: The settings before and after, one C(name = 'value') line each.
"""

EXAMPLES = r"""
- name: Archive WAL with pgBackRest
  maestro.deploy.pg_system_settings:
    settings:
      archive_mode: "on"
      archive_command: pgbackrest --stanza=main archive-push %p
      archive_timeout: "60"
  register: archiving
"""

RETURN = r"""
changes:
  description: The settings changed (or, in check mode, that would be), with the value before.
  returned: always
  type: list
  elements: dict
  sample: [{name: archive_mode, before: "off", after: "on"}]
restart_needed:
  description: Settings whose running value differs from the one asked for until the server restarts.
  returned: always
  type: list
  elements: str
  sample: [archive_mode]
running:
  description: The running value of each setting (C(pg_settings.setting)).
  returned: always
  type: dict
commands:
  description: What ran (argv, rc, duration).
  returned: always
  type: list
  elements: dict
"""

import getpass  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402

NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}\Z")
BOOLEAN_WORDS = {"on": "on", "true": "on", "yes": "on", "1": "on",
                 "off": "off", "false": "off", "no": "off", "0": "off"}


def literal(value):
    """A SQL string literal (standard_conforming_strings: only ' is doubled)."""
    return "'" + value.replace("'", "''") + "'"


def read_sql(names):
    """One JSON row: per name its file value (the last in postgresql.auto.conf), running value,
    context and vartype."""
    arr = "ARRAY[%s]::text[]" % ", ".join(literal(n) for n in names)
    return (
        "SELECT json_object_agg(s.name, json_build_object("
        "'file', (SELECT f.setting FROM pg_file_settings f WHERE f.name = s.name "
        "AND f.sourcefile LIKE '%%postgresql.auto.conf' ORDER BY f.seqno DESC LIMIT 1), "
        "'running', s.setting, 'context', s.context, 'vartype', s.vartype, 'unit', s.unit)) "
        "FROM pg_settings s WHERE s.name = ANY(%s)" % arr)


def same(vartype, a, b):
    if a is None or b is None:
        return a == b
    if vartype == "bool":
        return BOOLEAN_WORDS.get(a.lower(), a) == BOOLEAN_WORDS.get(b.lower(), b)
    return a == b


def decide(wanted, state):
    """(changes, restart_needed) for `wanted` {name: value} given `state` from read_sql."""
    changes, restart = [], []
    for name in sorted(wanted):
        value = wanted[name]
        now = state[name]
        current = now["file"] if now["file"] is not None else now["running"]
        if not same(now["vartype"], current, value):
            changes.append(dict(name=name, before=current, after=value))
        if now["context"] == "postmaster" and not same(now["vartype"], now["running"], value):
            restart.append(name)
    return changes, restart


def alter_sql(changes):
    return "".join("ALTER SYSTEM SET %s = %s;\n" % (c["name"], literal(c["after"])) for c in changes) + \
        "SELECT pg_reload_conf();\n"


def main():
    module = AnsibleModule(
        argument_spec=dict(
            settings=dict(type="dict", required=True),
            port=dict(type="int", default=5432),
            socket_dir=dict(type="path", default="/var/run/postgresql"),
            user=dict(type="str", default="postgres"),
            os_user=dict(type="str", default="postgres"),
            psql=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    wanted = {}
    for name, value in (p["settings"] or {}).items():
        if not NAME.match(str(name)):
            module.fail_json(msg="setting name %r: lower-case letters, digits and _" % (name,))
        value = "on" if value is True else "off" if value is False else str(value)
        if any(ord(c) < 32 for c in value):
            module.fail_json(msg="setting %s: no newline or control character in the value" % name)
        wanted[str(name)] = value
    if not wanted:
        module.exit_json(changed=False, changes=[], restart_needed=[], running={}, commands=[])
    runner = Runner(module)
    psql = runner.bin("psql", explicit=p["psql"])
    prefix = []
    me = getpass.getuser()
    if p["os_user"] and p["os_user"] != me:
        if os.geteuid() != 0:
            module.fail_json(msg="running as %s, not root: cannot run psql as %s; become %s"
                             % (me, p["os_user"], p["os_user"]))
        prefix = [runner.bin("runuser"), "-u", p["os_user"], "--"]
    base = prefix + [psql, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h", p["socket_dir"],
                     "-p", str(p["port"]), "-U", p["user"], "-d", "postgres"]
    try:
        _rc, out, _err = runner.run(base + ["-c", read_sql(sorted(wanted))], what="psql (read settings)")
        state = json.loads(out.strip() or "null") or {}
        unknown = sorted(set(wanted) - set(state))
        if unknown:
            module.fail_json(msg="PostgreSQL has no setting %s" % ", ".join(unknown), commands=runner.history)
        changes, restart = decide(wanted, state)
        if changes and not module.check_mode:
            runner.run(base, data=alter_sql(changes), what="psql (ALTER SYSTEM)")
            _rc, out, _err = runner.run(base + ["-c", read_sql(sorted(wanted))], what="psql (read settings)")
            state = json.loads(out.strip())
            restart = decide(wanted, state)[1]
    except CommandError as exc:
        runner.fail(error=exc)
    except ValueError as exc:
        runner.fail("psql did not print the settings as JSON: %s" % exc, cmd=runner.history[-1]["cmd"],
                    rc=runner.history[-1]["rc"], stderr="")
    result = dict(changed=bool(changes), changes=changes, restart_needed=restart,
                  running=dict((n, state[n]["running"]) for n in sorted(state)), commands=runner.history)
    if module._diff:
        before = dict((n, state[n]["file"] if state[n]["file"] is not None else state[n]["running"]) for n in wanted)
        for c in changes:
            before[c["name"]] = c["before"]
        result["diff"] = dict(
            before="".join("%s = %s\n" % (n, literal(before[n] or "")) for n in sorted(wanted)),
            after="".join("%s = %s\n" % (n, literal(wanted[n])) for n in sorted(wanted)),
            before_header="ALTER SYSTEM settings", after_header="ALTER SYSTEM settings")
    module.exit_json(**result)


if __name__ == "__main__":
    main()
