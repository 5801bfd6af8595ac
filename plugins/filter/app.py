# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for the app contract: the inventory's start, build and health settings checked for
their grammar (preflight), the build commands as argv lists (roles/release), and what the start
command runs in a built release (checked before any migration)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible.errors import AnsibleFilterError
from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import StartError, resolve_start, split_start

ENV_KEY_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_"


def _scripts(package_json):
    """package.json's scripts (str -> str only): the file comes from the release, untrusted."""
    data = package_json
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            return {}
    scripts = data.get("scripts") if isinstance(data, dict) else None
    if not isinstance(scripts, dict):
        return {}
    return dict((k, v) for k, v in scripts.items() if isinstance(k, str) and isinstance(v, str))


def _command_argv(command):
    """One build command: an argv list as given, or a string split like start commands (no shell)."""
    if isinstance(command, (list, tuple)):
        argv = [str(a) for a in command]
        if not argv or not argv[0]:
            raise StartError("%r is an empty command" % (command,))
        return argv
    return split_start(command)


def app_settings_problems(start="", exec_mode="fork", instances=1, build_commands=None, build_env=None,
                          expect=None):
    """The inventory's app settings that are wrong, each as `variable=value (rule)`; [] when all are fine."""
    bad = []
    if start not in (None, ""):
        try:
            split_start(start)
        except StartError as exc:
            bad.append("app_start=%s (%s)" % (start, exc))
    if exec_mode not in ("fork", "cluster"):
        bad.append("app_exec_mode=%s (fork or cluster)" % (exec_mode,))
    try:
        if int(instances) < 1:
            raise ValueError()
    except (TypeError, ValueError):
        bad.append("app_instances=%s (a number, 1 or more)" % (instances,))
    if build_commands is not None:
        if not isinstance(build_commands, (list, tuple)):
            bad.append("app_build_commands=%s (a list of commands: strings or argv lists)" % (build_commands,))
        else:
            for command in build_commands:
                try:
                    _command_argv(command)
                except StartError as exc:
                    bad.append("app_build_commands item %s (%s)" % (command, exc))
    if build_env not in (None, ""):
        if not isinstance(build_env, dict):
            bad.append("app_build_env=%s (a mapping of variable to value)" % (build_env,))
        else:
            for key, value in build_env.items():
                if not key or str(key)[0].isdigit() or any(c not in ENV_KEY_CHARS for c in str(key)):
                    bad.append("app_build_env key %s (letters, digits and _, not starting with a digit)" % key)
                if "\n" in str(value) or "\0" in str(value):
                    bad.append("app_build_env %s (a value on one line)" % key)
    if expect not in (None, "") and not isinstance(expect, dict):
        bad.append("healthcheck_expect=%s (a mapping of response field to value)" % (expect,))
    return bad


def app_build_argv(build_commands, npm, package_json):
    """The build as argv lists: app_build_commands, else `npm run build` when package.json has one."""
    if build_commands is None:
        return [[npm, "run", "build"]] if "build" in _scripts(package_json) else []
    try:
        return [_command_argv(c) for c in build_commands]
    except StartError as exc:
        raise AnsibleFilterError("app_build_commands: %s" % exc) from None


def app_start_resolve(command, package_json):
    """What a start command runs in the release: dict(script, interpreter, via), or dict(error).

    Files are taken to exist: the role then checks that `script` is in the release (unless it is npm)."""
    try:
        found = resolve_start(command, _scripts(package_json), lambda rel: True)
    except StartError as exc:
        return dict(error=str(exc))
    return dict(script=found["script"], interpreter=found["interpreter"], via=found["via"])


class FilterModule(object):
    def filters(self):
        return dict(app_settings_problems=app_settings_problems, app_build_argv=app_build_argv,
                    app_start_resolve=app_start_resolve)
