# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How the PM2 modules that read or replace an app's processes reach PM2, documented once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  pm2:
    description: Path of the pm2 CLI (default - C(pm2) on the C(PATH)).
    type: path
  pm2_home:
    description: C(PM2_HOME) (PM2's default is C(~/.pm2)).
    type: path
"""
