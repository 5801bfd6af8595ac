#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: release_history
short_description: Record releases, choose rollback targets and prune old releases
version_added: "0.1.0"
description:
  - Keeps the release history of an app host in a JSON file, C(<app_root>/history.json). For
    each release it records its id, version, git sha, status, backup, schema versions, migration classes
    and stage timings, plus deploy and rollback events.
  - Rollback targets come from this history, never from directory modification times. A
    release whose deploy failed is never a target and does not count toward O(keep).
  - Pruning never deletes the current release, the previous one that served, a release whose
    backup is still on disk, or a directory the history does not know.
options:
  app_root:
    description: The app's root (holds C(releases/), C(current) and the history file).
    type: path
    required: true
  state:
    description:
      - V(query) reads the history and resolves the current, previous and rollback target releases.
      - V(present) merges O(release) into the history (by id) and appends O(event).
      - V(pruned) deletes release directories beyond O(keep).
    type: str
    choices: [query, present, pruned]
    default: query
  release:
    description: Fields of one release; C(id) is required. Merged into an existing entry.
    type: dict
  event:
    description: An event to append (a deploy outcome or a rollback), free-form fields.
    type: dict
  when_current:
    description:
      - With V(state=present), write only if C(current) still points to this release id, read
        under the history writer lock. A no-op deploy records its event without the deploy lock -
        when a deploy moved C(current) meanwhile, nothing is written (RV(not_written)) and a
        warning says why.
    type: str
  rollback_to:
    description: With V(query), the rollback target, by release id or steps back (V(1) = previous).
    type: str
  keep:
    description: With V(pruned), how many releases that served to keep.
    type: int
    default: 5
attributes:
  check_mode:
    support: full
    description: Reports what would be written or deleted; changes nothing.
  diff_mode:
    support: full
    description: Shows the release entry before and after.
seealso:
  - module: maestro.deploy.deploy_lock
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record the release as live
  maestro.deploy.release_history:
    app_root: /var/www/manumaestro
    state: present
    release:
      id: "{{ release_id }}"
      status: success
      version: "{{ app_version }}"

- name: Find the release to roll back to
  maestro.deploy.release_history:
    app_root: /var/www/manumaestro
    rollback_to: "{{ rollback_to | default(omit) }}"
  register: history

- name: Prune old releases
  maestro.deploy.release_history:
    app_root: /var/www/manumaestro
    state: pruned
    keep: 5
"""

RETURN = r"""
not_written:
  description: Why nothing was written although O(release) or O(event) was given (O(when_current) did not hold).
  returned: when O(when_current) did not hold
  type: str
current:
  description: The release C(current) points to (its history entry, or C({id}) when unknown).
  returned: always
  type: dict
previous:
  description: The last release that served before the current one.
  returned: always
  type: dict
target:
  description: The rollback target (with O(state=query)); null when none could be resolved.
  returned: when state is query
  type: dict
target_error:
  description: Why no rollback target could be resolved.
  returned: when state is query and there is no target
  type: str
live:
  description:
    - The release that last served - RV(current) when it served, else the last release with status
      success or rolled_back (never a failed one, even when C(current) points to it); null when none did.
    - What a deploy's rescue goes back to.
  returned: always
  type: dict
between:
  description: Releases after the target up to the current one (what a rollback undoes).
  returned: when state is query and a target exists
  type: list
releases:
  description: All history entries, oldest first.
  returned: always
  type: list
pruned:
  description: Release ids whose directories were (or would be) deleted.
  returned: when state is pruned
  type: list
kept:
  description: Release ids that stay and why.
  returned: when state is pruned
  type: dict
unknown_dirs:
  description: Directories under releases/ the history does not know (left alone).
  returned: when state is pruned
  type: list
"""

import copy  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import release_history as rh  # noqa: E402


def main():
    module = AnsibleModule(
        argument_spec=dict(
            app_root=dict(type="path", required=True),
            state=dict(type="str", default="query", choices=["query", "present", "pruned"]),
            release=dict(type="dict"),
            event=dict(type="dict"),
            when_current=dict(type="str"),
            rollback_to=dict(type="str"),
            keep=dict(type="int", default=5),
        ),
        required_if=[("state", "present", ("release", "event"), True)],
        supports_check_mode=True,
    )
    p = module.params
    app_root = p["app_root"]
    if os.path.realpath(app_root) == "/":
        module.fail_json(msg="app_root=%r: refusing to manage releases at the filesystem root" % app_root)
    path = os.path.join(app_root, "history.json")
    # A no-op deploy records its event without the deploy lock (live_version): writers take turns.
    writer_lock, lock_warning = (rh.hold_writer_lock(app_root) if p["state"] == "present" and not module.check_mode
                                 else (None, None))
    if lock_warning:
        module.warn(lock_warning)
    try:
        try:
            data = rh.load(path)
        except rh.HistoryError as exc:
            module.fail_json(msg=str(exc))
        current_id, _target = rh.current_target(app_root)
        result = dict(changed=False, history_file=path)

        try:
            if p["state"] == "present" and p["when_current"] and current_id != p["when_current"]:
                result["not_written"] = "current points to %s, not to %s any more (a deploy ran meanwhile)" % (
                    current_id, p["when_current"])
                module.warn("Nothing was written to %s: %s." % (path, result["not_written"]))
            elif p["state"] == "present":
                before = copy.deepcopy(data)
                if p["release"]:
                    result["changed"] |= rh.upsert(data, p["release"])
                if p["event"]:
                    data["events"].append(p["event"])
                    result["changed"] = True
                if result["changed"]:
                    if module._diff and p["release"]:
                        result["diff"] = dict(before=rh.find(before, p["release"]["id"]) or {},
                                              after=rh.find(data, p["release"]["id"]))
                    if not module.check_mode:
                        if not os.path.isdir(app_root):
                            os.makedirs(app_root, 0o755)
                        rh.save(path, data)
            elif p["state"] == "pruned":
                releases_dir = os.path.join(app_root, "releases")
                existing = set(n for n in os.listdir(releases_dir)) if os.path.isdir(releases_dir) else set()
                delete, kept, unknown = rh.prune_plan(data, existing, p["keep"], current_id, os.path.exists)
                result.update(pruned=delete, kept=kept, unknown_dirs=unknown, changed=bool(delete))
                if not module.check_mode:
                    for name in delete:
                        target = os.path.join(releases_dir, name)
                        if os.path.realpath(target).startswith(os.path.realpath(releases_dir) + os.sep):
                            shutil.rmtree(target)
            else:
                try:
                    target = rh.rollback_target(data, current_id, p["rollback_to"])
                    result["target"] = target
                    result["between"] = rh.releases_between(data, target["id"], current_id)
                except rh.HistoryError as exc:
                    if p["rollback_to"]:
                        raise
                    result.update(target=None, target_error=str(exc))
        except rh.HistoryError as exc:
            module.fail_json(msg=str(exc), **result)

        current = rh.find(data, current_id) if current_id else None
        previous = rh.previous_of(data, current_id)
        result.update(current=current or ({"id": current_id} if current_id else None), previous=previous,
                      live=rh.live_release(data, current_id),
                      releases=data["releases"], events=data["events"][-20:])
        module.exit_json(**result)
    finally:  # exit_json and fail_json raise SystemExit; Mitogen may keep this interpreter
        if writer_lock is not None:
            os.close(writer_lock)


if __name__ == "__main__":
    main()
