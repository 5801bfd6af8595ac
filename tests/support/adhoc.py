"""Run one module of this collection through `ansible localhost -m ...` and return its result.

The result comes from the ad-hoc `--tree` file (the module's full JSON, diff included); the
raw stdout is kept too so tests can check that a secret never reaches the output.
"""

import json
import os
import subprocess
import tempfile
from dataclasses import dataclass

from .paths import ANSIBLE_CFG, VENV_BIN


@dataclass
class AdhocResult:
    rc: int
    result: dict
    stdout: str
    stderr: str

    @property
    def failed(self):
        return bool(self.result.get("failed")) or self.rc != 0


def run_module(module, args, check=False, diff=False, timeout=300):
    with tempfile.TemporaryDirectory(prefix="maestro-adhoc-") as tree:
        argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", module, "-a", json.dumps(args),
                "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python"), "--tree", tree]
        if check:
            argv.append("--check")
        if diff:
            argv += ["--diff", "-vvv"]  # below -vvv callbacks drop `diff` from the dumped result
        env = dict(os.environ, ANSIBLE_CONFIG=ANSIBLE_CFG, ANSIBLE_STDOUT_CALLBACK="minimal",
                   ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_INVENTORY_UNPARSED_WARNING="false",
                   ANSIBLE_NOCOLOR="1")
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
        path = os.path.join(tree, "localhost")
        result = {}
        if os.path.exists(path):
            with open(path) as fh:
                result = json.load(fh)
    return AdhocResult(proc.returncode, result, proc.stdout, proc.stderr)
