"""Calling module_utils directly with real commands: a stand-in for AnsibleModule's run_command
(subprocess, no shell) so a test can exercise one piece, such as the read check, on a file it made."""

import os
import shutil
import subprocess
import sys

from .paths import REPO

sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.maestro.deploy.plugins.module_utils import pg_archive  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.runner import Runner  # noqa: E402


class SubprocessModule:
    def run_command(self, args, data=None, cwd=None, environ_update=None, binary_data=False, check_rc=False):
        env = dict(os.environ, **(environ_update or {}))
        proc = subprocess.run(args, input=data, cwd=cwd, env=env, capture_output=True, text=True)
        return proc.returncode, proc.stdout, proc.stderr

    def get_bin_path(self, name, required=False, opt_dirs=None):
        return shutil.which(name)

    def fail_json(self, **kwargs):
        raise RuntimeError(kwargs["msg"])


def read_check(path, fmt, external=None):
    """pg_archive.read_check on `path` with the real tools; raises CommandError/ValueError when damaged."""
    runner = Runner(SubprocessModule())
    pg_archive.read_check(runner, pg_archive.Tools(runner), path, fmt, external)
