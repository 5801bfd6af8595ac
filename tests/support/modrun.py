"""Run one of this collection's modules for real, the way Ansible does on the target: the module
file executed with its arguments in a JSON file (`python module.py args.json`), with the
collection importable. Fast (no controller), and the real tools run underneath."""

import json
import os
import subprocess

from .paths import REPO, VENV_BIN

COLLECTIONS = os.path.join(REPO, ".collections")


def module_command(name, args, workdir, check=False):
    """(argv, env) running plugins/modules/<name>.py with `args` (written 0600: it may hold a password)."""
    payload = dict(args)
    if check:
        payload["_ansible_check_mode"] = True
    path = os.path.join(str(workdir), "args-%s-%s.json" % (name, os.urandom(4).hex()))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, fh)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS, LC_ALL="C")
    return [os.path.join(VENV_BIN, "python"), os.path.join(REPO, "plugins", "modules", name + ".py"), path], env


class ModuleRun:
    def __init__(self, proc_stdout, proc_stderr, rc):
        self.stdout, self.stderr, self.rc = proc_stdout, proc_stderr, rc
        try:
            self.result = json.loads(proc_stdout)
        except ValueError:
            self.result = {"failed": True, "msg": "module printed no JSON", "stdout": proc_stdout,
                           "stderr": proc_stderr}

    @property
    def failed(self):
        return bool(self.result.get("failed"))

    def __getitem__(self, key):
        return self.result[key]


def run_module(name, args, workdir, check=False, timeout=120):
    argv, env = module_command(name, args, workdir, check)
    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    return ModuleRun(proc.stdout, proc.stderr, proc.returncode)


def start_module(name, args, workdir, check=False):
    """The module as a running process (for tests that act while it runs); finish with finish_module."""
    argv, env = module_command(name, args, workdir, check)
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish_module(proc, timeout=120):
    out, err = proc.communicate(timeout=timeout)
    return ModuleRun(out, err, proc.returncode)


def conn_args(cluster, db, **extra):
    """Connection arguments for the app role over TCP (the password path)."""
    args = dict(db=db, host="127.0.0.1", port=cluster.port, user=cluster.app_user, password=cluster.app_password)
    args.update(extra)
    return args
