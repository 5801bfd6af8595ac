#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pm2_info
short_description: Read the PM2 processes of one app, and whether they run from the releases layout
description:
  - Reads C(pm2 jlist) (PM2's JSON) for the processes named O(name). Never starts a PM2 daemon
    (C(pm2 jlist) would); when no daemon runs in O(pm2_home), the app has no process.
  - With O(app_root), also says which instances run from outside C(<app_root>/releases)
    (RV(foreign) - a hand-made install, or a process first started with a resolved release
    directory as its cwd) and whether O(app_root) can hold the releases layout
    (RV(app_root_problem)).
  - Returns no environment (PM2 keeps the app's environment, secrets included).
version_added: "0.2.0"
author: maestro.deploy contributors (!UNKNOWN)
options:
  name:
    description: Name of the app in PM2.
    type: str
    required: true
  app_root:
    description: The deploy's app root (releases in C(<app_root>/releases)).
    type: path
extends_documentation_fragment:
  - maestro.deploy.pm2
  - maestro.deploy.read_only
seealso:
  - module: maestro.deploy.pm2_process
"""

EXAMPLES = r"""
- name: Find a process of the app that runs from outside the releases
  maestro.deploy.pm2_info:
    name: manumaestro
    app_root: /srv/manumaestro
    pm2_home: /home/deploy/.pm2
  register: pm2_now
"""

RETURN = r"""
daemon_running:
  description: Whether a PM2 daemon runs in O(pm2_home).
  returned: always
  type: bool
instances:
  description: Each instance of the app (no environment).
  returned: always
  type: list
  elements: dict
  contains:
    pm_id: {description: PM2 id., type: int}
    pid: {description: OS process id (0 when not running)., type: int}
    status: {description: PM2 status., type: str}
    restarts: {description: How many times PM2 restarted it., type: int}
    exec_mode: {description: fork or cluster., type: str}
    cwd: {description: "Real directory the process runs from (C(/proc/<pid>/cwd), else resolved C(pm_cwd)).", type: str}
    pm_cwd: {description: The cwd PM2 recorded., type: str}
    exec_path: {description: The script PM2 runs., type: str}
    args: {description: The script's arguments., type: list, elements: str}
  sample:
    - {pm_id: 0, pid: 4242, status: online, restarts: 0,
       exec_mode: fork, cwd: /srv/manumaestro, pm_cwd: /srv/manumaestro,
       exec_path: /usr/bin/npm, args: [start]}
pm_ids:
  description: The pm_ids of the app's instances.
  returned: always
  type: list
  elements: int
foreign:
  description: The instances that do not run from below C(<app_root>/releases).
  returned: when app_root is set
  type: list
  elements: dict
stale:
  description:
    - The instances that run a release but whose recorded cwd is not C(<app_root>/current) (first
      started with a resolved release directory, e.g. C(cwd - __dirname)); PM2 keeps that cwd for
      every reload, so the deploy recreates them (M(maestro.deploy.pm2_takeover)).
  returned: when app_root is set
  type: list
  elements: dict
exec_mode:
  description: fork, cluster, or null when the app has no process.
  returned: always
  type: str
app_root_problem:
  description: Why O(app_root) cannot hold the releases layout, and the app_root to use; null when it can.
  returned: when app_root is set
  type: str
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import (  # noqa: E402
    Pm2OutputError,
    forget_deploy_session_name,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pm2_list import (  # noqa: E402
    pm2_home_of,
    pm2_runner,
    read_app_instances,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pm2_adopt import (  # noqa: E402
    app_root_problem,
    foreign,
    is_within,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type="str", required=True),
            app_root=dict(type="path"),
            pm2=dict(type="path"),
            pm2_home=dict(type="path"),
        ),
        supports_check_mode=True,
    )
    p = module.params
    forget_deploy_session_name(os.environ)
    result = dict(changed=False, daemon_running=False, instances=[], pm_ids=[], exec_mode=None)
    home = pm2_home_of(p["pm2_home"])
    runner = pm2_runner(module, home)
    try:
        listed = read_app_instances(runner, [p["name"]], home, p["pm2"])
    except CommandError as exc:
        runner.fail(error=exc)
    except Pm2OutputError as exc:
        runner.fail(to_native(exc))
    if listed is not None:
        instances = listed[p["name"]]
        result.update(daemon_running=True, instances=instances, pm_ids=[i["pm_id"] for i in instances])
        modes = sorted(set(i["exec_mode"] for i in instances))
        result["exec_mode"] = ("cluster" if modes == ["cluster"] else "fork") if modes else None
    if p["app_root"]:
        root = os.path.realpath(p["app_root"])
        result["foreign"] = foreign(result["instances"], os.path.join(root, "releases"))
        git_tops = [root] if os.path.exists(os.path.join(root, ".git")) else []
        current = [os.path.join(p["app_root"], "current"), os.path.join(root, "current")]
        result["stale"] = [i for i in result["instances"] if i not in result["foreign"]
                           and not any(is_within(os.path.normpath(i["pm_cwd"] or ""), c) for c in current)]
        result["app_root_problem"] = app_root_problem(
            root, [i["cwd"] or i["pm_cwd"] for i in result["foreign"]], git_tops)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
