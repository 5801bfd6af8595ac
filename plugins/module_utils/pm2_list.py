# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The app's instances as `pm2 jlist` lists them: the one read pm2_info and live_version share.
It never starts a PM2 daemon (a plain `pm2` command would)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import (
    app_processes,
    daemon_running,
    describe,
    parse_jlist,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import Runner


def pm2_home_of(pm2_home):
    """The PM2 home a run uses: the one given, else the user's ~/.pm2 (PM2's own default)."""
    return pm2_home or os.path.join(os.path.expanduser("~"), ".pm2")


def pm2_runner(module, home):
    """A runner whose commands see this PM2 home only."""
    return Runner(module, environ={"PM2_HOME": home})


def read_app_instances(runner, names, home, pm2_path=None):
    """{name: its instances described (no environment)} for each of `names` (one `pm2 jlist`), or
    None when no PM2 daemon runs in `home`. Raises CommandError or Pm2OutputError."""
    if not daemon_running(home):
        return None
    pm2 = runner.bin("pm2", explicit=pm2_path)
    _rc, out, _err = runner.run([pm2, "jlist"], what="pm2 jlist")
    procs = parse_jlist(out)
    return dict((name, [describe(proc) for proc in app_processes(procs, name)]) for name in names)
