# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Webhook URLs (deploy_notify_url): checked for their grammar, and shown as scheme://host/...
only, since a webhook's path or query is often its secret."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.maestro.deploy.plugins.module_utils.job_notify import shown, url_problem

URL_IN_TEXT = re.compile(r"https?://[^\s'\"<>]+")


def notify_url_problems(url, name):
    """['<name>=scheme://host/... (rule)'] when `url` is set and breaks the rule, else []."""
    rule = url_problem(url)
    return ["%s=%s (%s)" % (name, shown(str(url)), rule)] if rule else []


def url_shown(url):
    """What may be printed of a URL: scheme://host[:port]/..."""
    return shown(str(url or ""))


def url_scrub(text):
    """`text` (an error message) with every http(s) URL in it shown as scheme://host/... only."""
    def hide(match):
        url = match.group(0).rstrip(":;,.)")  # the sentence's punctuation, not the URL's
        return shown(url) + match.group(0)[len(url):]
    return URL_IN_TEXT.sub(hide, str(text or ""))


class FilterModule(object):
    def filters(self):
        return {"notify_url_problems": notify_url_problems, "url_shown": url_shown, "url_scrub": url_scrub}
