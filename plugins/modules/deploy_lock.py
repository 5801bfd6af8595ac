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
    two runs breaking the same lock cannot both end up holding it; whose lock it is is decided
    under that guard, on what the file holds then.
  - A lock belongs to the run whose O(token) it holds. An empty or missing token is nobody's; it
    takes no lock and releases none, so a run refused before it took the lock leaves the lock alone.
  - The lock file is untrusted input. One this module did not write (not a JSON object, or with
    a C(since_epoch) that is not a time) reads as held by an unknown run, and the failure names
    the file and says what to do; a directory or a symlink at O(path) is refused.
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
      - This run's token, unique to the run and not derived from anything a person or a file sets;
        the playbooks pass C(lookup('maestro.deploy.controller_run').token), random and the same
        for every task and host of one run. Never the release id (two runs can share one).
      - Required to take the lock (O(state=present)). Taking a lock that holds the same token is
        a no-op; a lock under any other token is another run's, whatever its release id.
      - With O(state=absent) only a lock that holds this token is removed. Another run's lock (or
        one without a token) is left as it is, with a warning and RV(held_by); the task does not
        fail, so a run that never took the lock, or lost it, cannot remove someone else's.
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
    description: With O(state=absent), remove the lock whoever holds it (an operator's tool; no playbook sets it).
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
    token: "{{ lookup('maestro.deploy.controller_run').token }}"
    holder:
      who: "{{ lookup('ansible.builtin.env', 'USER') }}"
      action: deploy
      version: "{{ app_version }}"
      release_id: "{{ release_id }}"
    break_stale: "{{ deploy_break_lock | default(false) }}"

- name: Break the lock of a run that has ended (its controller says its ansible-playbook is gone)
  maestro.deploy.deploy_lock:
    path: /var/www/manumaestro/.deploy.lock
    token: "{{ lookup('maestro.deploy.controller_run').token }}"
    break_stale: true
    holder_ended: "{{ omit if held_run.running is none else not held_run.running }}"
    ended_token: "{{ held.token }}"
  vars:
    held: "{{ lock_attempt.holder }}"
    held_run: "{{ lookup('maestro.deploy.controller_run', controller=held.controller, pid=held.controller_pid) }}"

- name: Release the deploy lock (only if this run holds it)
  maestro.deploy.deploy_lock:
    path: /var/www/manumaestro/.deploy.lock
    token: "{{ lookup('maestro.deploy.controller_run').token }}"
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
released:
  description: The holder of the lock this task removed.
  returned: when O(state=absent) removed a lock
  type: dict
held_by:
  description: Who holds the lock, in words (the failure message without its hint).
  returned: when the lock is held by another run (a failure to take it, or a release that left it)
  type: str
  sample: >-
    held by ops since 2026-11-25T23:40:02Z (12s ago) for deploy v2
    (release 20261125T234002Z-v2, ansible-playbook pid 4242 on bastion)
"""

import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import deploy_lock as lock  # noqa: E402


def judged(p, holder):
    """What the caller found about this holder's run (nothing if the lock changed hands)."""
    return lock.judged(p["holder_ended"], p["ended_token"], holder)


def held_hint(p, holder, age_s):
    if holder.get("malformed"):
        return ("It was not written by maestro.deploy, or it was damaged: make sure no deploy or rollback runs on "
                "this host, then remove %s and rerun%s." % (
                    p["path"], "" if p["state"] != "present" else
                    " (or rerun with -e deploy_break_lock=true once it is older than %ss)" % p["stale_after"]))
    return lock.hint(age_s, p["stale_after"], judged(p, holder))


def fail_held(module, result, holder, age_s):
    p = module.params
    held_by = lock.describe(holder, age_s)
    module.fail_json(msg="deploy lock at %s is %s. %s" % (p["path"], held_by, held_hint(p, holder, age_s)),
                     held_by=held_by, **result)


def fail_os(module, result, exc):
    path = module.params["path"]
    module.fail_json(msg="cannot use the deploy lock at %s: %s. Nothing was changed. Check what is at that path "
                         "(a file written by maestro.deploy, not a directory or a symlink) and that the deploy "
                         "user may read and write %s, then rerun." % (
                             path, exc.strerror or exc, os.path.dirname(path)),
                     errno=exc.errno, **result)


def keep(module, result, holder, age_s):
    """state=absent on a lock that is not this run's: it stays as it is, and the run goes on."""
    held_by = lock.describe(holder, age_s)
    module.warn("left the deploy lock at %s in place: it is not this run's, it is %s" % (
        module.params["path"], held_by))
    result.update(changed=False, holder=holder, age_s=round(age_s, 1), held_by=held_by)
    module.exit_json(**result)


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
    result = dict(changed=False, path=path, holder=None)
    try:
        current = lock.read(path)
    except (IOError, OSError) as exc:
        fail_os(module, result, exc)
    result["holder"] = current
    if current is not None:
        result["age_s"] = round(lock.age_of(current), 1)

    if p["state"] == "query":
        module.exit_json(**result)

    if p["state"] == "absent":
        if current is None:
            module.exit_json(**result)
        if module.check_mode:  # what the release would do; it decides again, under the guard, when run
            if not lock.releasable(current, p["token"], p["force"]):
                keep(module, result, current, lock.age_of(current))
            result.update(changed=True, holder=None, released=current)
            module.exit_json(**result)
        try:
            released = lock.release(path, token=p["token"], force=p["force"])
        except lock.LockHeld as held:
            keep(module, result, held.holder, held.age_s)
        except (IOError, OSError) as exc:
            fail_os(module, result, exc)
        result.update(changed=released is not None, holder=None, released=released)
        module.exit_json(**result)

    if not p["token"]:
        module.fail_json(msg="taking the deploy lock at %s needs this run's token, and none was given: nothing was "
                             "changed. Pass token (the playbooks pass lookup('maestro.deploy.controller_run').token)."
                         % path, **result)
    holder = dict(p["holder"], token=p["token"], pid=os.getpid())
    if module.check_mode:  # the decision acquire() makes, on what the file holds now
        try:
            decision = lock.acquire_decision(current, p["token"], time.time(), p["stale_after"], p["break_stale"],
                                             p["holder_ended"], p["ended_token"])
        except lock.LockHeld as held:
            fail_held(module, result, held.holder, held.age_s)
        result["changed"] = decision != "own"
        module.exit_json(**result)
    try:
        acquired, broken = lock.acquire(path, holder, p["stale_after"], p["break_stale"],
                                        holder_ended=p["holder_ended"], ended_token=p["ended_token"])
        result.update(changed=acquired, holder=lock.read(path))
    except lock.LockHeld as held:
        fail_held(module, result, held.holder, held.age_s)
    except (IOError, OSError) as exc:
        fail_os(module, result, exc)
    if broken:
        result["broken"] = broken
        age = lock.age_of(broken)
        module.warn("broke %s deploy lock: %s" % (
            "a stale" if age >= p["stale_after"] else "the ended run's", lock.describe(broken, age)))
    module.exit_json(**result)


if __name__ == "__main__":
    main()
