# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Pure decisions about PM2 processes the deploy did not start (adoption, item 3 of issue 13).

- `foreign`: the instances of an app that run from outside `<app_root>/releases` (a hand-made
  install, or a process first started with a resolved release path as its cwd).
- `app_root_problem`: why an app_root cannot hold the releases layout (a git work tree, or the
  directory the old process runs from), with the app_root to use instead.
- `started_by_this_run`: the pm_ids a run may remove in its rescue (those it created).
- `definition`: how to start an old process again (script, args, cwd, interpreter, exec mode)
  from what PM2 recorded, without its environment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os


def is_within(path, directory):
    if not path or not directory:
        return False
    directory = directory.rstrip(os.sep) or os.sep
    return path == directory or path.startswith(directory + os.sep)


def foreign(instances, releases_dir):
    """Instances whose real cwd (else recorded cwd) is not below releases_dir (a real path)."""
    return [i for i in instances if not is_within(i.get("cwd") or i.get("pm_cwd"), releases_dir)]


def app_root_problem(app_root, old_cwds, git_dirs):
    """None, or a sentence saying why app_root cannot hold releases/ repo/ shared/ current.

    app_root and old_cwds are real paths; git_dirs are the directories at or above app_root
    that hold a `.git` (a work tree's top).
    """
    parent = os.path.dirname(app_root.rstrip(os.sep)) or os.sep
    name = os.path.basename(app_root.rstrip(os.sep)) or "app"
    for cwd in old_cwds:
        if cwd and (cwd == app_root or is_within(app_root, cwd)):
            return ("app_root=%s is the directory the running process works in (%s): the deploy would write "
                    "releases/ repo/ shared/ current into it. Use an app_root beside it, for example "
                    "app_root=%s" % (app_root, cwd, os.path.join(parent, name + "-releases")))
    for top in git_dirs:
        top = top.rstrip(os.sep)
        beside = os.path.join(os.path.dirname(top) or os.sep, os.path.basename(top) + "-releases")
        return ("app_root=%s is inside the git work tree %s: the deploy would write releases/ repo/ shared/ "
                "current into it. Use an app_root outside it, for example app_root=%s" % (app_root, top, beside))
    return None


def started_by_this_run(before_ids, after_instances):
    """pm_ids present now that were not there before this run (what its rescue may remove)."""
    before = set(before_ids or [])
    return [i["pm_id"] for i in after_instances if isinstance(i.get("pm_id"), int) and i["pm_id"] not in before]


def definition(proc):
    """A PM2 app definition to start `proc` again (from its jlist entry), without environment."""
    env = proc.get("pm2_env") or {}
    app = dict(name=proc.get("name") or env.get("name"), script=env.get("pm_exec_path"), cwd=env.get("pm_cwd"),
               exec_mode=(env.get("exec_mode") or "fork_mode").replace("_mode", ""))
    if env.get("args"):
        app["args"] = list(env["args"]) if isinstance(env["args"], list) else env["args"]
    interpreter = env.get("exec_interpreter")
    if interpreter and interpreter != "node":
        app["interpreter"] = interpreter
    if env.get("node_args"):
        app["node_args"] = env["node_args"]
    if app["exec_mode"] == "cluster" and env.get("instances"):
        app["instances"] = env["instances"]
    return app
