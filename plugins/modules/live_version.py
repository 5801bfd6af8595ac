#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: live_version
short_description: Say whether the version a deploy asks for already serves, reading only
description:
  - The fast no-op of C(playbooks/deploy.yml) - a deploy of the version that already serves only
    checks its health and records that it ran, without the lock, the database checks, a fetch or
    the PM2 reload.
  - RV(already_live) is true only when no deploy lock is present, C(current) points to a release
    the history records as a success, O(version) names that release's commit on the remote,
    every PM2 instance of the app is online and runs from that release, and, with O(health_url),
    the health check answers as the smoke test expects it to. Anything else, or any doubt,
    answers false with RV(reason); the deploy then takes its full path.
  - O(version) is resolved with C(git ls-remote origin) in the host's mirror (C(<app_root>/repo))
    when it names a ref, in the order C(git rev-parse) prefers after a fetch - C(refs/<version>),
    then the tag (peeled to its commit), then the branch. A full commit id is looked up in the
    mirror as it is (an object name outranks a ref of that name). C(HEAD) and the other names git
    reads from the repository directory (C(FETCH_HEAD), C(ORIG_HEAD)...), or revision syntax such as
    C(main~1), answer false - the mirror's may differ from the remote's, so the full path resolves
    them. The mirror is never fetched, so a run holding the lock is not disturbed. The mirror's
    origin must be O(repo).
  - Files on the host are untrusted - the history is read without following links and its shape
    checked; C(current) must resolve to C(<app_root>/releases/<id>).
version_added: "0.4.0"
author: maestro.deploy contributors (!UNKNOWN)
options:
  app_root:
    description: The deploy's app root.
    type: path
    required: true
  name:
    description: Name of the app in PM2.
    type: str
    required: true
  version:
    description: The git ref the deploy asks for (C(app_version)).
    type: str
    required: true
  repo:
    description: The repository the deploy fetches from (C(app_repo)); the mirror's origin must be it.
    type: str
    required: true
  instances:
    description: How many PM2 instances the app must have; unset when the release's ecosystem file says.
    type: int
  bridge_name:
    description:
      - The name a cluster-mode switch gives the release's second process while it replaces the
        app's (C(pm2_app_bridge_name)). A process of that name is left by a run that was lost
        mid-switch - answers false, so the full path removes it.
    type: str
  health_url:
    description:
      - The app's health check (C(healthcheck_url)), asked with C(GET) once everything else says
        the release is live; it must answer 200 and carry O(health_expect). Unset, it is not
        asked; empty, the answer is false (there is nothing to check the release with).
    type: str
  health_expect:
    description:
      - Fields the JSON answer must carry, field to value (C(healthcheck_expect)); C({revision})
        stands for the release's commit and C({version}) for O(version), as in the smoke test.
      - Unset or empty, a 200 is enough.
    type: dict
  health_within:
    description: Seconds to keep asking until the expected answer comes (at least once; each request may take 5 s).
    type: float
    default: 2.0
extends_documentation_fragment:
  - maestro.deploy.pm2
  - maestro.deploy.read_only
seealso:
  - module: maestro.deploy.release_history
  - module: maestro.deploy.pm2_info
"""

EXAMPLES = r"""
- name: Find out whether v2.3.0 already serves
  maestro.deploy.live_version:
    app_root: /srv/manumaestro
    name: manumaestro
    version: v2.3.0
    repo: https://github.com/example/manumaestro.git
    bridge_name: manumaestro-maestro-bridge
    pm2_home: /home/deploy/.pm2
    health_url: http://127.0.0.1:3000/health
    health_expect:
      revision: "{revision}"
  register: live
"""

RETURN = r"""
already_live:
  description: Whether the version asked for is the current, successful release and all its PM2 instances are online.
  returned: always
  type: bool
reason:
  description: Why, in words.
  returned: always
  type: str
  sample: "v2.3.0 (4f1c2d3e5a) is the current release 20261204T010156Z-v2.3.0; 2 PM2 instance(s) online in it"
sha:
  description: The commit O(version) names (null when it was not resolved).
  returned: always
  type: str
release:
  description: The current release's history entry (id, version, sha, status, finished_at), null when there is none.
  returned: always
  type: dict
instances:
  description: The app's PM2 instances (pm_id, status, cwd), when PM2 was read.
  returned: always
  type: list
  elements: dict
health:
  description: The health check's last answer in one line (status and the start of the body), when it was asked.
  returned: always
  type: str
  sample: 'status 200, body "{\"status\":\"ok\"}"'
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import release_history as rh  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.health import (  # noqa: E402
    health_answer,
    health_expectations,
    wait_for_answer,
)
from ansible_collections.maestro.deploy.plugins.module_utils.live_version import (  # noqa: E402
    SHA_RE,
    decide,
    ref_patterns,
    release_problem,
    sha_from_ls_remote,
    sha_problem,
    version_problem,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pm2 import (  # noqa: E402
    Pm2OutputError,
    forget_deploy_session_name,
    pid_alive,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pm2_list import (  # noqa: E402
    pm2_home_of,
    pm2_runner,
    read_app_instances,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402

ENTRY_KEYS = ("id", "version", "sha", "status", "finished_at")


class Answer(Exception):
    """Not live, and why: ends the reading early."""


def current_release(root):
    """(release id, its directory) from the current link, which must resolve into releases/."""
    release_id, target = rh.current_target(root)
    if release_id is None:
        return None, None
    try:
        rh.check_release_id(release_id)
    except rh.HistoryError:
        raise Answer("current points to %s, not to a release" % target) from None
    if target != os.path.join(os.path.realpath(os.path.join(root, "releases")), release_id):
        raise Answer("current points to %s, outside %s/releases" % (target, root))
    return release_id, target


def resolve(runner, mirror, version, repo):
    """The commit `version` names on the remote (refs) or in the mirror (a commit id)."""
    if not os.path.isdir(mirror):
        raise Answer("the host has no mirror of the repository yet")
    git = runner.bin("git")
    rc, out, _err = runner.run([git, "-C", mirror, "config", "--get", "remote.origin.url"], check=False)
    if rc != 0 or out.strip() != repo:
        raise Answer("the mirror does not fetch from app_repo (the full path points it there)")
    patterns = ref_patterns(version)
    if patterns:
        rc, out, err = runner.run([git, "-C", mirror, "ls-remote", "--quiet", "origin"] + patterns, check=False)
        if rc != 0:
            raise Answer("git ls-remote failed (rc=%s): %s" % (rc, (err.strip().splitlines() or ["no output"])[-1]))
        sha = sha_from_ls_remote(out, patterns)
        if sha:
            return sha
    if SHA_RE.match(version):
        rc, out, _err = runner.run([git, "-C", mirror, "rev-parse", "--verify", "--quiet", "--end-of-options",
                                    version + "^{commit}"], check=False)
        if rc == 0 and SHA_RE.match(out.strip()):
            return out.strip()
    raise Answer("app_version %s is not on the remote or in the mirror" % version)


def pm2_instances(module, name, bridge_name, pm2_home, pm2_path):
    home = pm2_home_of(pm2_home)
    bridge_name = bridge_name if bridge_name != name else None
    names = [name] + ([bridge_name] if bridge_name else [])
    try:
        listed = read_app_instances(pm2_runner(module, home), names, home, pm2_path)
    except (CommandError, Pm2OutputError) as exc:
        raise Answer("PM2's process list could not be read: %s" % getattr(exc, "msg", exc)) from None
    if listed is None:
        raise Answer("no PM2 daemon runs in %s" % home)
    if bridge_name and listed[bridge_name]:
        raise Answer("PM2 runs %s, the second process of a switch that did not finish (the full path removes it)"
                     % bridge_name)
    for instance in listed[name]:
        instance["alive"] = pid_alive(instance["pid"])
    return listed[name]


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", required=True),
            name=dict(type="str", required=True),
            version=dict(type="str", required=True),
            repo=dict(type="str", required=True, no_log=True),
            instances=dict(type="int"),
            bridge_name=dict(type="str"),
            pm2=dict(type="path"),
            pm2_home=dict(type="path"),
            health_url=dict(type="str"),
            health_expect=dict(type="dict"),
            health_within=dict(type="float", default=2.0),
        ),
        supports_check_mode=True,
    )
    p = module.params
    forget_deploy_session_name(os.environ)
    root = p["app_root"]
    result = dict(changed=False, already_live=False, reason=None, sha=None, release=None, instances=[], health=None)
    try:
        if not os.path.isabs(root) or os.path.normpath(root) != root.rstrip("/"):
            raise Answer("app_root is not an absolute, normal path")
        problem = version_problem(p["version"])
        if problem:
            raise Answer(problem)
        lock_present = os.path.lexists(os.path.join(root, ".deploy.lock"))
        current_id, release_dir = current_release(root)
        try:
            data = rh.load(os.path.join(root, "history.json"))
        except rh.HistoryError as exc:
            raise Answer(str(exc)) from None
        entry = rh.find(data, current_id) if current_id else None
        if entry is not None:
            result["release"] = dict((key, entry.get(key)) for key in ENTRY_KEYS)
        # What needs no command first; then the remote (only when the release could be live); PM2 last.
        problem = release_problem(lock_present, current_id, entry)
        if problem:
            raise Answer(problem)
        result["sha"] = resolve(Runner(module, environ={"GIT_TERMINAL_PROMPT": "0"}),
                                os.path.join(root, "repo"), p["version"], p["repo"])
        problem = sha_problem(current_id, entry, result["sha"])
        if problem:
            raise Answer(problem)
        instances = pm2_instances(module, p["name"], p["bridge_name"], p["pm2_home"], p["pm2"])
        result["instances"] = [dict(pm_id=i["pm_id"], status=i["status"], cwd=i["cwd"]) for i in instances]
        live, reason = decide(lock_present, current_id, entry, result["sha"], instances, release_dir, p["instances"])
        if live and p["health_url"] is not None:
            if not p["health_url"]:
                raise Answer("healthcheck_url is empty: there is no health check to ask")
            wanted = health_expectations(p["health_expect"] or {}, result["sha"], p["version"])
            wrong, answer = wait_for_answer(p["health_url"], wanted, p["health_within"])
            result["health"] = health_answer(answer)
            if wrong:
                raise Answer("the health check did not answer as expected within %ss: %s; last answer: %s"
                             % (p["health_within"], "; ".join(wrong), result["health"]))
            reason += "; the health check answers as expected"  # not the URL: it may hold user:password@
        result.update(already_live=live, reason=reason)
    except Answer as answer:
        result["reason"] = str(answer)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
