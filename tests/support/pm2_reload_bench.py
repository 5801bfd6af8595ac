"""Measure how each way of switching a PM2 cluster app to a new release behaves under load.

    .venv/bin/python -m tests.support.pm2_reload_bench [--rounds 1] [approach ...]

For each approach: releases A (1.0.0) and B (2.0.0) of the example app, `current` -> A, start
under a private PM2_HOME, send GET /health every 20 ms, switch `current` to B, run the
approach's commands, keep the load 2 s more, then report failed requests, which releases the
workers answered from afterwards (60 requests) and each worker's real cwd (/proc/<pid>/cwd).
Numbers for docs/pm2.md; not a test (no assertions, no timing claims).
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request

from .paths import PM2
from .pgcluster import Cluster, free_port
from .releases import LoadLoop, make_release, switch_current, write_shared_env

# The ecosystem as it was before issue 5: script and cwd from __dirname (the resolved release).
REALPATH_ECOSYSTEM = """'use strict';
const path = require('path');
module.exports = { apps: [{
  name: process.env.APP_NAME, script: path.join(__dirname, 'dist', 'server.js'), cwd: __dirname,
  exec_mode: 'cluster', instances: Number(process.env.APP_INSTANCES || 2), wait_ready: true,
  listen_timeout: 10000, kill_timeout: 5000,
  env: { PORT: process.env.PORT },
}] };
"""

# A stable entry file outside releases/: each new worker loads the release `current` points to.
STABLE_ENTRY = """'use strict';
const fs = require('fs');
const path = require('path');
const release = fs.realpathSync(path.join(__dirname, 'current'));
process.chdir(release);
require(path.join(release, 'dist', 'server.js'));
"""
STABLE_ENTRY_ECOSYSTEM = """'use strict';
const path = require('path');
const root = path.resolve(__dirname, '..', '..');
module.exports = { apps: [{
  name: process.env.APP_NAME, script: path.join(root, 'pm2-entry.js'), cwd: root,
  exec_mode: 'cluster', instances: Number(process.env.APP_INSTANCES || 2), wait_ready: true,
  listen_timeout: 10000, kill_timeout: 5000,
  env: { PORT: process.env.PORT },
}] };
"""

APPROACHES = {
    # name: (ecosystem file in the release, commands after the switch; {eco} and {name} filled in)
    "realpath-reload": ("ecosystem.realpath.config.js", [["reload", "{eco}", "--update-env"]]),
    "realpath-startOrReload": ("ecosystem.realpath.config.js", [["startOrReload", "{eco}", "--update-env"]]),
    "stable-entry-reload": ("ecosystem.entry.config.js", [["reload", "{eco}", "--update-env"]]),
    "current-path-reload": ("ecosystem.config.js", [["reload", "{eco}", "--update-env"]]),
    "current-path-reload-by-name": ("ecosystem.config.js", [["reload", "{name}", "--update-env"]]),
    "current-path-restart": ("ecosystem.config.js", [["restart", "{eco}", "--update-env"]]),
    "delete-start": ("ecosystem.config.js", [["delete", "{name}"], ["start", "{eco}"]]),
}


def pm2(home, env, *args):
    return subprocess.run([PM2, *args], env=dict(os.environ, PM2_HOME=home, **env), capture_output=True,
                          text=True, timeout=120)


def worker_cwds(home, env, name):
    out = pm2(home, env, "jlist").stdout
    procs = [p for p in json.loads(out[out.index("["):]) if p["name"] == name]
    result = []
    for p in procs:
        try:
            cwd = os.readlink(f"/proc/{p['pid']}/cwd")
        except OSError:
            cwd = None
        result.append(dict(pm_id=p["pm_id"], status=p["pm2_env"]["status"], proc_cwd=cwd,
                           pm_cwd=p["pm2_env"].get("pm_cwd"), pm_exec_path=p["pm2_env"].get("pm_exec_path")))
    return result


def wait_health(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} never answered 200")


def measure(approach, cluster, db, workdir, clients=1, instances=2):
    eco_name, commands = APPROACHES[approach]
    root = tempfile.mkdtemp(prefix=approach + "-", dir=workdir)
    home = os.path.join(root, "pm2home")
    os.makedirs(home)
    write_shared_env(root, DATABASE_URL=cluster.url(db))
    real = {rid: make_release(root, rid, ver) for rid, ver in (("A", "1.0.0"), ("B", "2.0.0"))}
    for rel in real.values():
        with open(os.path.join(rel, "ecosystem.realpath.config.js"), "w") as fh:
            fh.write(REALPATH_ECOSYSTEM)
        with open(os.path.join(rel, "ecosystem.entry.config.js"), "w") as fh:
            fh.write(STABLE_ENTRY_ECOSYSTEM)
    with open(os.path.join(root, "pm2-entry.js"), "w") as fh:
        fh.write(STABLE_ENTRY)
    current = switch_current(root, "A")
    eco = os.path.join(current, eco_name)
    name = "bench-" + approach
    port = free_port()
    env = {"APP_NAME": name, "PORT": str(port), "APP_INSTANCES": str(instances)}
    url = f"http://127.0.0.1:{port}/health"
    try:
        started = pm2(home, env, "start", eco)
        if started.returncode != 0:
            raise RuntimeError(started.stderr)
        wait_health(url)
        loops = [LoadLoop(url, interval=0.02, max_requests=5000) for _ in range(clients)]
        for loop in loops:
            loop.start()
        time.sleep(1)
        switch_current(root, "B")
        t0 = time.time()
        for cmd in commands:
            pm2(home, env, *[c.format(eco=eco, name=name) for c in cmd])
        action_s = time.time() - t0
        time.sleep(2)
        for loop in loops:
            loop.stop()
        failures = [f for loop in loops for f in loop.failures]
        after = LoadLoop(url, interval=0.01, max_requests=60)
        after.run()
        workers = worker_cwds(home, env, name)
        return dict(
            approach=approach, clients=clients, instances=instances,
            requests=sum(loop.total for loop in loops), failed=len(failures),
            failure_kinds=sorted(set(f[:70] for f in failures)),
            action_seconds=round(action_s, 1),
            after_switch_served_by={os.path.basename(k or "?"): v for k, v in after.seen_cwds.items()},
            after_switch_failed=len(after.failures),
            worker_release=[os.path.basename(w["proc_cwd"] or "?") for w in workers],
            pm_cwd=sorted({w["pm_cwd"].replace(root, "<root>") for w in workers if w["pm_cwd"]}),
            pm_exec_path=sorted({w["pm_exec_path"].replace(root, "<root>") for w in workers if w["pm_exec_path"]}),
        )
    finally:
        pm2(home, env, "kill")
        shutil.rmtree(root, ignore_errors=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("approaches", nargs="*", default=list(APPROACHES))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--clients", type=int, default=1, help="concurrent request loops")
    parser.add_argument("--instances", type=int, default=2, help="cluster workers")
    args = parser.parse_args(argv)
    workdir = tempfile.mkdtemp(prefix="maestro-pm2-bench-", dir="/tmp")
    os.chmod(workdir, 0o755)  # the postgres user must reach the cluster directory
    cluster = Cluster(os.path.join(workdir, "pg")).start()
    try:
        db = cluster.create_database("bench")
        for _ in range(args.rounds):
            for approach in args.approaches:
                print(json.dumps(measure(approach, cluster, db, workdir, args.clients, args.instances)), flush=True)
    finally:
        cluster.destroy()
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
