#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pm2_takeover
short_description: Take over from PM2 processes the deploy did not start, and give them back on failure
description:
  - For a hand-made install (PM2 runs the app from outside the releases) and for a process PM2
    first started with another cwd than C(current) (PM2 keeps the cwd of a process's first
    start, so no reload ever moves it).
  - C(retired) stops and deletes the processes O(pm_ids) of O(name) and returns how to start
    them again (RV(definitions) - script, arguments, cwd, interpreter, exec mode; no environment)
    and when they stopped (RV(stopped_at)). In fork mode on one port the old process must stop
    before the new one can listen; the deploy then starts the new release, health-checks it,
    and only on failure gives the old one back.
  - C(restored) starts the O(definitions) that C(retired) returned (never read from a file) and
    waits until they are online; RV(gap_s) is how long nothing of them ran.
version_added: "0.2.0"
author: maestro.deploy contributors (!UNKNOWN)
options:
  name:
    description: Name of the app in PM2.
    type: str
    required: true
  state:
    description: C(retired) stops and deletes O(pm_ids); C(restored) starts O(definitions) again.
    type: str
    choices: [retired, restored]
    required: true
  pm_ids:
    description: The PM2 ids to retire (only processes named O(name) are touched).
    type: list
    elements: int
    default: []
  definitions:
    description: What C(retired) returned in RV(definitions).
    type: list
    elements: dict
    default: []
  stopped_at:
    description: What C(retired) returned in RV(stopped_at) (to measure RV(gap_s)).
    type: float
  before_ids:
    description:
      - With C(restored), the pm_ids of the app that predate this run and were not retired (PM2 reuses
        the pm_id of a deleted process, so the retired ones do not count).
        Any other process of O(name) was started by this run (the failed release) and is deleted
        first (a crash-looping worker may be restarting still), so the old definition can start.
    type: list
    elements: int
  wait_online:
    description: Seconds to wait until a restored process is online.
    type: int
    default: 30
extends_documentation_fragment:
  - maestro.deploy.pm2
attributes:
  check_mode:
    support: full
    description: Says what it would stop or start and changes nothing.
  diff_mode:
    support: none
    description: Returns no diff.
seealso:
  - module: maestro.deploy.pm2_info
  - module: maestro.deploy.pm2_process
"""

EXAMPLES = r"""
- name: Stop the hand-started process (fork mode, one port)
  maestro.deploy.pm2_takeover:
    name: shop
    state: retired
    pm_ids: [0]
  register: old

- name: Start it again after the new release failed
  maestro.deploy.pm2_takeover:
    name: shop
    state: restored
    definitions: "{{ old.definitions }}"
    stopped_at: "{{ old.stopped_at }}"
"""

RETURN = r"""
definitions:
  description: How to start each retired app again (no environment).
  returned: always
  type: list
  elements: dict
  sample:
    - {name: shop, script: /usr/lib/node_modules/npm/bin/npm-cli.js, args: [start], cwd: /srv/shop,
       exec_mode: fork}
retired:
  description: The pm_ids stopped and deleted.
  returned: state is retired
  type: list
  elements: int
stopped_at:
  description: Epoch seconds when the old processes were stopped.
  returned: state is retired
  type: float
online_at:
  description: Epoch seconds when the restored processes were online.
  returned: state is restored
  type: float
gap_s:
  description: Seconds from O(stopped_at) to RV(online_at) - how long nothing of them ran.
  returned: state is restored and stopped_at is set
  type: float
commands:
  description: The pm2 commands that acted.
  returned: always
  type: list
  elements: dict
"""

import json  # noqa: E402
import os  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import (  # noqa: E402
    Pm2OutputError,
    app_processes,
    forget_deploy_session_name,
    parse_jlist,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pm2_adopt import definition  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402

DEFINITION_KEYS = ("name", "script", "args", "cwd", "exec_mode", "interpreter", "node_args", "instances")


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            state=dict(type="str", required=True, choices=["retired", "restored"]),
            pm_ids=dict(type="list", elements="int", default=[]),
            definitions=dict(type="list", elements="dict", default=[]),
            stopped_at=dict(type="float"),
            before_ids=dict(type="list", elements="int"),
            pm2=dict(type="path"),
            pm2_home=dict(type="path"),
            wait_online=dict(type="int", default=30),
        ),
        supports_check_mode=True,
    )
    p = module.params
    forget_deploy_session_name(os.environ)
    runner = Runner(module, environ={"PM2_HOME": p["pm2_home"]} if p["pm2_home"] else {})
    pm2 = runner.bin("pm2", explicit=p["pm2"])
    result = dict(changed=False, definitions=[], commands=[])

    def fail(msg, **extra):
        """The runner's one failure path; never a command's stdout (jlist's holds the apps' env)."""
        runner.fail(msg, result=result, commands=[h for h in runner.history if h["cmd"][1:2] != ["jlist"]], **extra)

    def mine():
        try:
            return app_processes(parse_jlist(runner.run([pm2, "jlist"], what="pm2 jlist")[1]), p["name"])
        except CommandError as exc:
            fail(exc.msg, rc=exc.rc, cmd=exc.cmd, stderr=exc.stderr)
        except Pm2OutputError as exc:
            fail(to_native(exc))

    if p["state"] == "retired":
        procs = [proc for proc in mine() if proc.get("pm_id") in p["pm_ids"]]
        defs = []
        for proc in procs:
            app = definition(proc)
            if app not in defs:
                defs.append(app)
        ids = [proc["pm_id"] for proc in procs]
        result.update(definitions=defs, retired=ids, changed=bool(ids), stopped_at=time.time())
        if ids and not module.check_mode:
            for action in ("stop", "delete"):
                try:
                    runner.run([pm2, action] + [str(i) for i in ids], what="pm2 %s" % action)
                except CommandError as exc:
                    fail("%s; the old process(es) %s of %s may be stopped: start them again with pm2 start %s"
                         % (exc.msg, ids, p["name"], " ".join(str(i) for i in ids)), rc=exc.rc, cmd=exc.cmd,
                         stderr=exc.stderr)
            result["stopped_at"] = time.time()
    else:
        defs = [dict((k, d[k]) for k in DEFINITION_KEYS if d.get(k) not in (None, "", [])) for d in p["definitions"]]
        for d in defs:
            if d.get("name") != p["name"] or not d.get("script") or not d.get("cwd"):
                fail("definition %r is not one of %s (name, script and cwd are needed)" % (d, p["name"]))
        result.update(definitions=defs, changed=bool(defs))
        if defs and not module.check_mode and p["before_ids"] is not None:
            deadline = time.time() + 15
            while True:
                strays = [str(pr["pm_id"]) for pr in mine()
                          if isinstance(pr.get("pm_id"), int) and pr["pm_id"] not in p["before_ids"]]
                if not strays:
                    break
                runner.run([pm2, "delete"] + strays, check=False, what="pm2 delete")
                if time.time() > deadline:
                    fail("processes %s of %s started by this run could not be deleted" % (strays, p["name"]))
                time.sleep(0.5)
        if defs and not module.check_mode:
            fd, path = tempfile.mkstemp(prefix="pm2-restore-", suffix=".json", dir=module.tmpdir)
            with os.fdopen(fd, "w") as fh:
                json.dump(dict(apps=defs), fh)
            try:
                runner.run([pm2, "start", path], what="pm2 start")
            except CommandError as exc:
                fail(exc.msg, rc=exc.rc, cmd=exc.cmd, stderr=exc.stderr)
            deadline = time.time() + p["wait_online"]
            while True:
                procs = mine()
                if procs and all((pr.get("pm2_env") or {}).get("status") == "online" and pr.get("pid") for pr in procs):
                    break
                if time.time() > deadline:
                    fail("%s was started again but is not online after %ss" % (p["name"], p["wait_online"]))
                time.sleep(0.5)
            result["online_at"] = time.time()
            if p["stopped_at"]:
                result["gap_s"] = round(result["online_at"] - p["stopped_at"], 1)
    result["commands"] = [h for h in runner.history if h["cmd"][1:2] != ["jlist"]]
    module.exit_json(**result)


if __name__ == "__main__":
    main()
