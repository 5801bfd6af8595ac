"""PM2 as a person runs it by hand, for tests: `pm2 jlist` read back, and a hand-made install in
the manual procedure's layout (a git clone at a tag, built in place, a .env, started from the
clone with `pm2 start npm --name <app> -- start`), which the deploy must refuse or adopt."""

import json
import os
import subprocess

from .apprepo import git
from .paths import PM2


def pm2(pm2_home, *args, timeout=60):
    """Run the project's PM2 with its own PM2_HOME; returns the CompletedProcess (text)."""
    return subprocess.run([PM2, *args], env=dict(os.environ, PM2_HOME=pm2_home), capture_output=True,
                          text=True, timeout=timeout)


def pm2_processes(pm2_home, name=None):
    """`pm2 jlist` (after any daemon notice), only the processes called `name` when it is given."""
    out = pm2(pm2_home, "jlist").stdout
    start = out.find("[")
    procs = json.loads(out[start:]) if start >= 0 else []
    return [p for p in procs if name is None or p["name"] == name]


def recorded_cwds(pm2_home, name):
    """The real path of the cwd PM2 recorded for each process of `name` (pm_cwd)."""
    return [os.path.realpath(p["pm2_env"]["pm_cwd"]) for p in pm2_processes(pm2_home, name)]


def hand_made_install(repo, clone, tag, node_modules, dotenv, build=(), build_env=None):
    """Clone `repo` at `tag` into `clone`, give it the dependencies (a link to a prepared
    node_modules, standing in for the `npm ci` the procedure runs), run each `build` argv in it
    and write its .env (`dotenv`: {name: value}). Returns the clone's path."""
    os.makedirs(os.path.dirname(clone), exist_ok=True)
    subprocess.run(["git", "clone", "-q", repo, clone], check=True)
    git(clone, "checkout", "-q", tag)
    os.symlink(node_modules, os.path.join(clone, "node_modules"))
    for argv in build:
        done = subprocess.run(argv, cwd=clone, env=dict(os.environ, **(build_env or {})), capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, f"{argv} in {clone}: {done.stdout[-2000:]}{done.stderr[-2000:]}"
    with open(os.path.join(clone, ".env"), "w") as fh:
        fh.writelines(f"{key}={value}\n" for key, value in dotenv.items())
    return clone


def pm2_start_npm(pm2_home, name, cwd):
    """`pm2 start npm --name <name> -- start` from `cwd`, as the manual procedure starts the app;
    returns the pid PM2 gives it."""
    started = subprocess.run([PM2, "start", "npm", "--name", name, "--", "start"], cwd=cwd,
                             env=dict(os.environ, PM2_HOME=pm2_home), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    (proc,) = pm2_processes(pm2_home, name)
    return proc["pid"]


def pm2_start_cluster(pm2_home, name, cwd, script, instances):
    """`pm2 start <script> --name <name> -i <instances>` from `cwd` (cluster mode, as an app run by
    hand with several workers is started); returns the pids PM2 gives them."""
    started = subprocess.run([PM2, "start", script, "--name", name, "-i", str(instances)], cwd=cwd,
                             env=dict(os.environ, PM2_HOME=pm2_home), capture_output=True, text=True, timeout=60)
    assert started.returncode == 0, started.stdout + started.stderr
    return sorted(p["pid"] for p in pm2_processes(pm2_home, name))
