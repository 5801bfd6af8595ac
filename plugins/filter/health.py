# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the health check (roles/smoke_test); the logic is module_utils/health.py, which
live_version's own check shares."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.maestro.deploy.plugins.module_utils.health import (
    health_answer,
    health_expectations,
    health_mismatches,
)


class FilterModule(object):
    def filters(self):
        return dict(health_expectations=health_expectations, health_mismatches=health_mismatches,
                    health_answer=health_answer)
