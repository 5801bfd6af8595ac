"""Run a maestro.deploy module for real, ad hoc (`ansible localhost -m ...`), and read its result.

The database URL travels in a 0600 extra-vars file and is templated into the module's
arguments, so it is not on the ansible command line either. Every run asserts that the
password appears nowhere in what ansible printed.
"""

import json
import os
import subprocess

import yaml

from .paths import ANSIBLE_CFG, REPO, VENV_BIN


class ModuleRun:
    def __init__(self, status, result, stdout, stderr):
        self.status = status          # SUCCESS, CHANGED or FAILED!
        self.result = result
        self.stdout = stdout
        self.stderr = stderr

    @property
    def failed(self):
        return self.status.startswith("FAILED") or bool(self.result.get("failed"))

    def __getitem__(self, key):
        return self.result[key]

    def get(self, key, default=None):
        return self.result.get(key, default)


def run_module(module, args, tmp_path, database_url, check=False, secret=None, timeout=120):
    """Run maestro.deploy.<module> with `args` (database_url is added from a vars file)."""
    vars_file = os.path.join(str(tmp_path), "module-vars.json")
    fd = os.open(vars_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"mx_database_url": database_url}, fh)
    args = dict(args, database_url="{{ mx_database_url }}")
    argv = [os.path.join(VENV_BIN, "ansible"), "localhost", "-m", "maestro.deploy." + module,
            "-a", json.dumps(args), "-e", "@" + vars_file,
            "-e", "ansible_python_interpreter=" + os.path.join(VENV_BIN, "python")]
    if check:
        argv.append("--check")
    env = dict(os.environ, ANSIBLE_CONFIG=ANSIBLE_CFG, ANSIBLE_STDOUT_CALLBACK="default",
               ANSIBLE_CALLBACK_RESULT_FORMAT="yaml", ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0",
               ANSIBLE_DEPRECATION_WARNINGS="0")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
    out = proc.stdout
    head, _, body = out.partition("=>")
    status = head.split("|")[-1].strip() if "|" in head else "UNKNOWN"
    try:
        result = yaml.safe_load(body) or {}
    except yaml.YAMLError:
        result = {"unparsed": body}
    if not isinstance(result, dict):
        result = {"unparsed": body}
    if secret:
        assert secret not in out and secret not in proc.stderr, "the password leaked into ansible's output"
    return ModuleRun(status, result, out, proc.stderr)
