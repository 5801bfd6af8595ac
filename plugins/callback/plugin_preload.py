# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: plugin_preload
type: aggregate
short_description: Load the collection's filter and lookup plugins once, before any task runs
version_added: "0.5.0"
description:
  - Ansible runs each task of each host in a worker process forked from C(ansible-playbook). A
    filter of a collection is found by loading every filter file of that collection, and a worker
    that templates one loads them again, since the parent never did - 30-40 ms of controller CPU
    for each task that uses a C(maestro.deploy.*) filter or lookup, on every host.
  - This callback imports those files once at start-up, so every worker inherits them. It prints
    nothing and changes no result; without it the playbooks run the same, only slower.
requirements:
  - "enable it in ansible.cfg: callbacks_enabled = maestro.deploy.plugin_preload"
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

import importlib  # noqa: E402
import os  # noqa: E402

from ansible.plugins.callback import CallbackBase  # noqa: E402

PACKAGE = "ansible_collections.maestro.deploy.plugins"
KINDS = ("filter", "lookup")


def plugin_modules(plugins_dir):
    """The import names of the collection's filter and lookup plugin files, sorted."""
    names = []
    for kind in KINDS:
        folder = os.path.join(plugins_dir, kind)
        for entry in sorted(os.listdir(folder)) if os.path.isdir(folder) else []:
            if entry.endswith(".py") and not entry.startswith("_"):
                names.append("%s.%s.%s" % (PACKAGE, kind, entry[:-3]))
    return names


class CallbackModule(CallbackBase):
    """Imports the plugin files in the controller process; reports nothing."""

    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "maestro.deploy.plugin_preload"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.loaded = []
        for name in plugin_modules(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))):
            try:
                importlib.import_module(name)
            except Exception as exc:  # a broken plugin fails where it is used, as without this callback
                self._display.vvv("maestro.deploy.plugin_preload: %s not preloaded: %s" % (name, exc))
            else:
                self.loaded.append(name)
