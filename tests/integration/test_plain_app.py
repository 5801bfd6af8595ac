"""The second example app (examples/app-plain) deployed the way it already runs, through the
inventory variables alone (issue 13): `npm start` in fork mode, no ecosystem file, a health
check without a revision, Prisma 7 generated in the build. v1 -> v2 -> rollback -> v2, then a
rollback whose health check fails after the switch. One test function: each deploy costs ~20 s."""

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request

import pytest

from tests.support.apprepo import make_plain_app_repo
from tests.support.http import get_json, post_json, wait_for_health
from tests.support.inventory import plain_app_inventory
from tests.support.paths import PM2

OPERATOR_CANARY = "operator-canary-7f3a9c"


class Poller(threading.Thread):
    """GET /health every 50 ms; the seconds with no 200 answer, as (start, end) gaps."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.stop, self.gaps, self.requests, self.failed = url, threading.Event(), [], 0, 0

    def run(self):
        down_since = None
        while not self.stop.is_set():
            now = time.monotonic()
            try:
                with urllib.request.urlopen(self.url, timeout=1) as resp:
                    ok = resp.status == 200
            except (urllib.error.URLError, ConnectionError, OSError):
                ok = False
            self.requests += 1
            if not ok:
                self.failed += 1
                down_since = down_since or now
            elif down_since is not None:
                self.gaps.append((down_since, time.monotonic()))
                down_since = None
            time.sleep(0.05)
        if down_since is not None:
            self.gaps.append((down_since, time.monotonic()))

    def longest(self):
        return max((b - a for a, b in self.gaps), default=0.0)


def pm2_process(pm2_home, name):
    out = subprocess.run([PM2, "jlist"], env=dict(os.environ, PM2_HOME=pm2_home), capture_output=True,
                         text=True, check=True).stdout
    return [p for p in json.loads(out[out.index("["):]) if p["name"] == name], out


@pytest.mark.timeout(1200)  # 3 deploys and 2 rollbacks; the first installs Prisma 7 and TypeScript
def test_plain_app_deploys_rolls_back_and_redeploys_as_it_runs(pg_cluster, pg_db, pm2_home, tmp_path, playbook):
    repo = str(tmp_path / "plain-app.git")
    shas = make_plain_app_repo(repo)
    inventory = plain_app_inventory(tmp_path, pg_cluster, pg_db, repo, pm2_home,
                                    pm2_app_stable_for=1, smoke_test_timeout=30)
    hv = inventory["all"]["vars"]
    url, root = hv["healthcheck_url"], hv["app_root"]
    operator = {"MAESTRO_OPERATOR_TOKEN": OPERATOR_CANARY}

    def deploy(version, **extravars):
        run = playbook("deploy.yml", inventory, extravars=dict(extravars, app_version=version), envvars=operator)
        assert run.ok, run.stdout[-5000:]
        return run

    def history():
        with open(os.path.join(root, "history.json")) as fh:
            return json.load(fh)

    # v1: started with npm start in fork mode; PM2 runs the package.json script's file from current
    deploy("v1")
    body = wait_for_health(url)
    assert body["version"] == "1.0.0" and "revision" not in body
    procs, jlist = pm2_process(pm2_home, hv["app_name"])
    assert [p["pm2_env"]["exec_mode"] for p in procs] == ["fork_mode"]
    assert procs[0]["pm2_env"]["pm_cwd"] == os.path.join(root, "current")
    assert procs[0]["pm2_env"]["pm_exec_path"] == os.path.join(root, "current", "server.js")
    # PM2 got the app's environment, not the operator's (issue 14, item 5)
    assert OPERATOR_CANARY not in jlist and "MAESTRO_OPERATOR_TOKEN" not in jlist
    release_v1 = os.path.realpath(os.path.join(root, "current"))
    assert os.path.isfile(os.path.join(release_v1, "generated", "client", "client.js"))  # built with app_build_env
    assert not os.path.exists(os.path.join(release_v1, "dist"))
    with open(os.path.join(release_v1, ".maestro-build")) as fh:
        assert fh.read().startswith(shas["v1"] + " ")
    post_json(url.replace("/health", "/notes"), {})

    # v2 while a client polls every 50 ms: a fork-mode restart costs a gap, measured here
    poller = Poller(url)
    poller.start()
    deploy("v2")
    time.sleep(0.5)
    poller.stop.set()
    poller.join()
    print("fork-mode restart v1 -> v2: %.2f s with no answer (longest gap), %d of %d requests failed"
          % (poller.longest(), poller.failed, poller.requests))
    body = get_json(url)[1]
    assert body["version"] == "2.0.0" and body["notes"] == 1
    assert poller.longest() < 10

    # rollback honours the inventory's health check (a 200 is enough: no revision in the answer)
    run = playbook("rollback.yml", inventory, envvars=operator)
    assert run.ok, run.stdout[-5000:]
    assert get_json(url)[1]["version"] == "1.0.0"
    event = history()["events"][-1]
    assert (event["type"], event["outcome"]) == ("rollback", "success")

    deploy("v2")
    assert get_json(url)[1]["version"] == "2.0.0"
    # the same version again takes the short path: live_version asks the health check itself
    # (fork mode, npm start, no revision in the answer: a 200 is enough)
    run = deploy("v2")
    assert "No change: v2" in run.stdout and "Nothing was locked, fetched or reloaded" in run.stdout, run.stdout[-3000:]
    assert "the health check answers as expected: status 200, body " in run.stdout, run.stdout[-3000:]
    assert history()["events"][-1]["type"] == "noop"

    # a rollback that switched and then fails its health check is recorded and says so
    run = playbook("rollback.yml", inventory, envvars=operator, extravars={
        "healthcheck_expect": {"status": "never-{revision}"}, "smoke_test_timeout": 3})
    assert not run.ok
    assert "ROLLBACK SWITCHED, HEALTH CHECK FAILED" in run.stdout, run.stdout[-4000:]
    assert '"status": "never-' in run.stdout and "status 200, body" in run.stdout  # expected and what came back
    data = history()
    event = data["events"][-1]
    assert (event["type"], event["outcome"]) == ("rollback", "switched, health check failed")
    assert os.path.realpath(os.path.join(root, "current")).endswith(event["to"])
    assert [r["status"] for r in data["releases"] if r["id"] == event["from"]] == ["rolled_back"]

    status = playbook("status.yml", inventory, verbosity=1, envvars=operator)
    assert status.ok, status.stdout[-3000:]
    assert OPERATOR_CANARY not in status.stdout and hv["db_password"] not in status.stdout
