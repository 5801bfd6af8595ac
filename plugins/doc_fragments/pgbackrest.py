# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options of the modules that run pgBackRest, documented once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  stanza:
    description: The stanza (letters, digits, C(_) and C(-)).
    type: str
    required: true
  config:
    description: pgBackRest's configuration file; default pgBackRest's own (C(/etc/pgbackrest/pgbackrest.conf)).
    type: path
  pgbackrest:
    description: The pgbackrest executable; default C(pgbackrest) from PATH.
    type: path
  os_user:
    description:
      - OS user pgBackRest runs as (the repository's owner), through C(runuser) when the module runs as root;
        empty runs it as the module's user.
    type: str
    default: postgres
requirements:
  - pgBackRest (Debian's C(pgbackrest)) on the managed host
"""
