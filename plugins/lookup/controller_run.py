# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
name: controller_run
short_description: This run's controller and ansible-playbook pid, or whether another run still runs
version_added: "0.1.0"
description:
  - The deploy lock records which run holds it, by the controller's host name and the process id of
    its C(ansible-playbook). Without options this lookup returns those of the current run.
  - With O(controller), O(pid) and O(space) it tells whether that run is still going, as far as
    this controller can know. When the run was recorded on this machine, in this process space,
    V(running) is V(true) while a process with that pid lives and runs ansible (or cannot be
    inspected), V(false) otherwise (the run was killed, or its SSH connection dropped and it
    ended). Anywhere else V(running) is V(null), unknown.
  - So a lock left by an ended run can be broken at once, and only when the operator asks for
    it (C(-e deploy_break_lock=true)), instead of waiting until it is stale.
  - Without options it also returns V(token), the token this run takes and releases the deploy
    lock with. It is random (C(secrets.token_hex(16))), drawn at the first call of the run and the
    same for every later call, task and host of that run; no variable, release id or file on a
    managed host sets it. It is kept in this run's own temporary directory on the controller
    (ansible-playbook's local tmp, mode 0700, removed when the run ends).
options:
  controller:
    description: Host name of the controller that recorded the run.
    type: str
  pid:
    description: Process id of that run's C(ansible-playbook) on its controller.
    type: int
  space:
    description:
      - The process space that pid belongs to (the controller's boot id and pid namespace, as
        this lookup returned it for that run). When it differs from this one's (another
        container with the same host name, or the controller rebooted since), V(running) is
        V(null), unknown.
    type: str
notes:
  - Runs on the controller, like every lookup. Reads C(/proc) where there is one.
seealso:
  - module: maestro.deploy.deploy_lock
author:
  - maestro.deploy contributors (!UNKNOWN)
"""

EXAMPLES = r"""
- name: Record this run in the deploy lock
  maestro.deploy.deploy_lock:
    path: /var/www/manumaestro/.deploy.lock
    token: "{{ release_id }}"
    holder:
      controller: "{{ this_run.controller }}"
      controller_pid: "{{ this_run.pid }}"
      controller_space: "{{ this_run.space }}"
  vars:
    this_run: "{{ lookup('maestro.deploy.controller_run') }}"

- name: Ask whether the run holding the lock has ended
  ansible.builtin.debug:
    msg: "{{ lookup('maestro.deploy.controller_run', controller='bastion', pid=4242).running }}"
"""

RETURN = r"""
_raw:
  description: One dictionary.
  type: list
  elements: dict
  contains:
    controller:
      description: The controller's host name (this one's, or O(controller)).
      type: str
    user:
      description: Who runs this run on the controller (its login name), recorded in the lock.
      type: str
      returned: without options
    token:
      description: This run's deploy lock token (32 hex digits, random, the same for the whole run).
      type: str
      returned: without options
    pid:
      description: The run's ansible-playbook process id (this one's, or O(pid)).
      type: int
    space:
      description: The process space of that pid (boot id and pid namespace; null where unknown).
      type: str
    running:
      description: Whether that run still runs; null when it ran on another controller.
      type: bool
"""

import errno  # noqa: E402
import getpass  # noqa: E402
import multiprocessing  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import secrets  # noqa: E402
import socket  # noqa: E402
import stat  # noqa: E402
import tempfile  # noqa: E402

from ansible import constants as C  # noqa: E402
from ansible.errors import AnsibleError  # noqa: E402
from ansible.plugins.lookup import LookupBase  # noqa: E402

TOKEN_FILE = "maestro.deploy-lock-token"  # noqa: S105 (a file name, not a secret)


def process_space():
    """Which process ids this is about: the kernel's boot id and the pid namespace. Two
    controllers with one host name (containers, a rebooted machine) have different ones, and a
    pid of one means nothing in the other. None where /proc cannot tell."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as fh:
            boot = fh.read().strip()
        return "%s/%s" % (boot, os.readlink("/proc/self/ns/pid"))
    except OSError:
        return None


def this_run():
    """(controller, pid of ansible-playbook). Lookups run in a task's worker process, which
    ansible-playbook forked; in the main process there is no parent process object."""
    parent = multiprocessing.parent_process()
    return socket.gethostname(), parent.pid if parent is not None else os.getpid()


def pid_runs_ansible(pid):
    """True while `pid` lives and, where its argv can be read, is an ansible process (a pid
    reused by another program counts as ended). A process of another user that cannot be
    signalled or read (hidepid) counts as running."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as fh:
            argv = fh.read()
    except OSError:
        return True
    return b"ansible" in argv or not argv  # an empty argv: a process still starting or a zombie


def controller_user():
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # a uid without a passwd entry and no LOGNAME/USER
        return "uid %d" % os.getuid()


def run_token(run_tmp):
    """This run's lock token, kept in `run_tmp`, the run's private temporary directory (made by
    ansible-playbook at its start and shared by the workers it forks): the first call draws it,
    every later one reads it. Workers drawing at once agree: each writes its draw to a file of its
    own and links it to the token's name; the first link wins and every worker reads that one."""
    info = os.lstat(run_tmp)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise AnsibleError("not keeping the deploy lock token in %s: it is not a directory of this user" % run_tmp)
    if info.st_mode & 0o022:
        raise AnsibleError("not keeping the deploy lock token in %s: others can write it (mode %o)"
                           % (run_tmp, stat.S_IMODE(info.st_mode)))
    path = os.path.join(run_tmp, TOKEN_FILE)
    if not os.path.lexists(path):
        fd, draw = tempfile.mkstemp(dir=run_tmp, prefix=".token-")  # 0600 from the start
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(16))
            os.link(draw, path)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise AnsibleError("could not keep the deploy lock token in %s: %s" % (path, exc)) from None
        finally:
            os.unlink(draw)
    try:
        with open(os.open(path, os.O_RDONLY | os.O_NOFOLLOW)) as fh:
            token = fh.read(64)
    except OSError as exc:
        raise AnsibleError("could not read the deploy lock token %s: %s" % (path, exc)) from None
    if not re.fullmatch(r"[0-9a-f]{32}", token):
        raise AnsibleError("%s does not hold a deploy lock token this lookup drew (32 hex digits): not using it; "
                           "the directory is this run's own, so something else wrote there" % path)
    return token


def run_state(controller=None, pid=None, space=None):
    """This run, or the state of the run (controller, pid, space) as far as this controller knows."""
    here, own_pid = this_run()
    own_space = process_space()
    if not controller and not pid:
        return dict(controller=here, pid=own_pid, space=own_space, running=True, user=controller_user(),
                    token=run_token(C.DEFAULT_LOCAL_TMP))
    if not controller or not pid or pid < 1:
        raise AnsibleError("controller_run needs both controller and pid (a positive number), got controller=%r pid=%r"
                           % (controller, pid))
    # only a pid of this very process space can be looked up here; without /proc nobody can tell
    knowable = controller == here and bool(space) and space == own_space
    return dict(controller=controller, pid=pid, space=space, running=pid_runs_ansible(pid) if knowable else None)


class LookupModule(LookupBase):
    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        return [run_state(self.get_option("controller"), self.get_option("pid"), self.get_option("space"))]
