# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The SQL review options of the migration modules, documented once."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  review:
    description:
      - C(warn) returns the findings and emits a warning per finding; C(fail) fails before anything is applied when
        there is any finding; C(off) skips the review.
    type: str
    choices: ['off', warn, fail]
    default: warn
  preview:
    description: Return the pending SQL in RV(sql) (always returned in check mode).
    type: bool
    default: false
"""
