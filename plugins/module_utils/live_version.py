# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether a deploy asks for the version that already serves (the fast no-op of deploy.yml).

Only reads: the lock file's existence, the history, `current`, the remote's refs
(`git ls-remote` through the mirror's origin: the mirror is not fetched, so a run holding the
lock is never disturbed) and `pm2 jlist`. Any doubt answers "not live" with the reason, and
the deploy then takes its full path, which checks, locks and explains.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import is_within

SHA_RE = re.compile(r"[0-9a-f]{7,40}\Z")
FULL_SHA_RE = re.compile(r"[0-9a-f]{40}\Z")
# HEAD, FETCH_HEAD, ORIG_HEAD...: rev-parse reads these from the repository directory first.
PSEUDO_REF_RE = re.compile(r"(\A|/)[A-Z_]*HEAD\Z")
# A ref name ls-remote can be asked for exactly: no revision syntax (~ ^ : @{ ..), no glob.
REF_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*\Z")


def ref_patterns(version):
    """The refs `git ls-remote` is asked for, in the order rev-parse prefers them after the full
    path's fetch (refs/<name>, then tags, then branches); [] when the version is no plain ref name
    (a full commit id, revision syntax, or a name git reads from the repository directory first,
    such as HEAD or FETCH_HEAD, which the mirror and the remote may disagree on)."""
    if FULL_SHA_RE.match(version) or PSEUDO_REF_RE.search(version):
        return []
    if not REF_NAME_RE.match(version) or ".." in version or version.endswith((".lock", "/", ".")):
        return []
    return ["refs/%s" % version, "refs/tags/%s^{}" % version, "refs/tags/%s" % version,
            "refs/heads/%s" % version]


def sha_from_ls_remote(output, patterns):
    """The commit the first of `patterns` names in ls-remote's output (peeled tag first), or None."""
    refs = {}
    for line in output.splitlines():
        sha, _tab, name = line.partition("\t")
        if SHA_RE.match(sha) and len(sha) == 40 and name:
            refs[name.strip()] = sha
    for pattern in patterns:
        if pattern in refs:
            return refs[pattern]
    return None


def version_problem(version):
    """Why a version cannot be resolved here at all (the full path's preflight says it better)."""
    if not version:
        return "app_version is empty"
    if version.startswith("-") or re.search(r"[^!-~]", version):
        return "app_version is not a git ref preflight accepts"
    if not ref_patterns(version) and not SHA_RE.match(version):
        return "app_version %s is neither a tag, a branch nor a commit id (the full path resolves it)" % version
    return None


def release_problem(lock_present, current_id, entry):
    """Why the release `current` points to cannot be a no-op's (None when it can)."""
    if lock_present:
        return "a deploy lock is present (another run, or one that was lost)"
    if not current_id:
        return "nothing is deployed yet (no current release)"
    if entry is None:
        return "current points to %s, which the history does not know" % current_id
    if entry.get("status") != "success":
        return "the current release %s has status %s" % (current_id, entry.get("status"))
    return None


def sha_problem(current_id, entry, sha):
    if entry.get("sha") != sha:
        return "app_version is %s, the current release %s runs %s" % (
            sha[:10], current_id, str(entry.get("sha"))[:10])
    return None


def instances_problem(instances, release_dir, expected_count=None):
    if not instances:
        return "PM2 runs no process of the app"
    down = [i for i in instances if i.get("status") != "online" or not i.get("alive", True)]
    if down:
        return "%d of %d PM2 instances are not online" % (len(down), len(instances))
    elsewhere = [i for i in instances if not is_within(i.get("cwd"), release_dir)]
    if elsewhere:
        return "%d of %d PM2 instances do not run from %s" % (len(elsewhere), len(instances), release_dir)
    if expected_count is not None and len(instances) != expected_count:
        return "PM2 runs %d instances, app_instances is %d" % (len(instances), expected_count)
    return None


def decide(lock_present, current_id, entry, sha, instances, release_dir, expected_count=None):
    """(already_live, reason): the version asked for is the success release `current` points to,
    no deploy holds the lock, and every PM2 instance of the app is online in that release."""
    problem = (release_problem(lock_present, current_id, entry) or sha_problem(current_id, entry, sha)
               or instances_problem(instances, release_dir, expected_count))
    if problem:
        return False, problem
    return True, "%s (%s) is the current release %s; %d PM2 instance(s) online in it" % (
        entry.get("version") or sha[:10], sha[:10], current_id, len(instances))
