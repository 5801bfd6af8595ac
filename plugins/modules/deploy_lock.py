#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: deploy_lock
short_description: Take or release the deploy lock of an app host
version_added: "0.1.0"
description:
  - Creates a lock file atomically so that two deploys, or a deploy and a rollback, never run
    at once on the same host. A second run fails at once, naming who holds the lock, since
    when and for which version.
  - A lock left by a run that was killed, or whose SSH connection dropped, can be broken with
    O(break_stale=true) at any age when the caller found that the run holding it has ended
    (O(holder_ended=true); the preflight role asks the controller with the
    P(maestro.deploy.controller_run#lookup) lookup), or, when nobody can tell, once it is older
    than O(stale_after) seconds. A lock whose run is known to be going (O(holder_ended=false)) is
    never broken.
  - Taking, breaking and releasing are serialised on the host (an flock on C(<path>.guard)), so
    two runs breaking the same lock cannot both end up holding it.
options:
  path:
    description: Lock file path, usually C(<app_root>/.deploy.lock).
    type: path
    required: true
  state:
    description: V(present) takes the lock, V(absent) releases it, V(query) only reports it.
    type: str
    choices: [present, absent, query]
    default: present
  token:
    description:
      - Identifies this run (the release id is a good token). Taking a lock that holds the same
        token is a no-op; releasing a lock held under another token fails unless O(force=true).
    type: str
  holder:
    description: What to record about this run (who, action, version, release_id).
    type: dict
    default: {}
  stale_after:
    description: Age in seconds after which a lock counts as stale.
    type: int
    default: 3600
  break_stale:
    description: Break a stale lock (or one whose run has ended, see O(holder_ended)) instead of failing.
    type: bool
    default: false
  holder_ended:
    description:
      - What the caller knows of the run that holds the lock. V(true) it has ended (its
        ansible-playbook process is gone from the controller that recorded it), so with
        O(break_stale=true) the lock may be broken whatever its age; V(false) it is still
        going, so its lock is not broken whatever its age. Unset when unknown. Also chooses the
        hint in the failure message.
    type: bool
  ended_token:
    description:
      - The token of the lock that O(holder_ended) was found about. When the lock holds another
        token by the time this task runs (it changed hands), O(holder_ended) does not apply.
    type: str
  force:
    description: With O(state=absent), remove the lock whoever holds it.
    type: bool
    default: false
attributes:
  check_mode:
    support: full
    description: Reports whether the lock could be taken or released; writes nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
seealso:
  - module: maestro.deploy.release_history
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Take the deploy lock
  maestro.deploy.deploy_lock:
    path: /var/www/manumaestro/.deploy.lock
    token: "{{ release_id }}"
    holder:
      who: "{{ lookup('ansible.builtin.env', 'USER') }}"
      action: deploy
      version: "{{ app_version }}"
      release_id: "{{ release_id }}"
    break_stale: "{{ deploy_break_lock | default(false) }}"

- name: Break the lock of a run that has ended (its controller says its ansible-playbook is gone)
  maestro.deploy.deploy_lock:
    path: /var/www/manumaestro/.deploy.lock
    token: "{{ release_id }}"
    break_stale: true
    holder_ended: "{{ omit if held_run.running is none else not held_run.running }}"
    ended_token: "{{ held.token }}"
  vars:
    held: "{{ lock_attempt.holder }}"
    held_run: "{{ lookup('maestro.deploy.controller_run', controller=held.controller, pid=held.controller_pid) }}"

- name: Release the deploy lock
  maestro.deploy.deploy_lock:
    path: /var/www/manumaestro/.deploy.lock
    token: "{{ release_id }}"
    state: absent
"""

RETURN = r"""
holder:
  description: The lock's holder after the task (null when no lock is held).
  returned: always
  type: dict
broken:
  description: The stale holder that was broken, when one was.
  returned: when a stale lock was broken
  type: dict
age_s:
  description: Age of the existing lock in seconds.
  returned: when a lock existed
  type: float
held_by:
  description: Who holds the lock, in words (the failure message without its hint).
  returned: when the lock is held by another run
  type: str
  sample: >-
    held by ops since 2026-11-25T23:40:02Z (12s ago) for deploy v2
    (release 20261125T234002Z-v2, ansible-playbook pid 4242 on bastion)
"""

import os  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import deploy_lock as lock  # noqa: E402


def judged(p, holder):
    """What the caller found about this holder's run (nothing if the lock changed hands)."""
    return lock.judged(p["holder_ended"], p["ended_token"], holder)


def fail_held(module, result, holder, age_s):
    p = module.params
    held_by = lock.describe(holder, age_s)
    module.fail_json(msg="deploy lock at %s is %s. %s" % (
        p["path"], held_by, lock.hint(age_s, p["stale_after"], judged(p, holder))), held_by=held_by, **result)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            state=dict(type="str", default="present", choices=["present", "absent", "query"]),
            token=dict(type="str", no_log=False),
            holder=dict(type="dict", default={}),
            stale_after=dict(type="int", default=3600),
            break_stale=dict(type="bool", default=False),
            holder_ended=dict(type="bool"),
            ended_token=dict(type="str", no_log=False),
            force=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    p = module.params
    path = p["path"]
    current = lock.read(path)
    result = dict(changed=False, path=path, holder=current)
    if current is not None:
        result["age_s"] = round(lock.age_of(current), 1)

    if p["state"] == "query":
        module.exit_json(**result)

    if p["state"] == "absent":
        if current is None:
            module.exit_json(**result)
        ours = p["force"] or not p["token"] or current.get("token") in (None, p["token"])
        if not ours:
            module.fail_json(msg="not releasing the deploy lock at %s: it is %s" % (
                path, lock.describe(current, lock.age_of(current))), **result)
        if not module.check_mode:
            lock.release(path, token=p["token"], force=True)
        result.update(changed=True, holder=None, released=current)
        module.exit_json(**result)

    holder = dict(p["holder"], token=p["token"], pid=os.getpid())
    if module.check_mode:
        if current is not None and current.get("token") != p["token"]:
            age = lock.age_of(current)
            if not (p["break_stale"] and lock.breakable(age, p["stale_after"], judged(p, current))):
                fail_held(module, result, current, age)
        result["changed"] = current is None or current.get("token") != p["token"]
        module.exit_json(**result)
    try:
        acquired, broken = lock.acquire(path, holder, p["stale_after"], p["break_stale"],
                                        holder_ended=p["holder_ended"], ended_token=p["ended_token"])
    except lock.LockHeld as held:
        fail_held(module, result, held.holder, held.age_s)
    result.update(changed=acquired, holder=lock.read(path))
    if broken:
        result["broken"] = broken
        age = lock.age_of(broken)
        module.warn("broke %s deploy lock: %s" % (
            "a stale" if age >= p["stale_after"] else "the ended run's", lock.describe(broken, age)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
