"""An ansistrano-style app root for PM2 tests: releases/<id> copies of the example app, a shared
.env, a `current` symlink switched atomically, and a bounded load loop to count dropped requests."""

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request

from .paths import EXAMPLE_APP

COPY_IGNORE = shutil.ignore_patterns("node_modules", ".env", "REVISION")


def make_release(app_root, release_id, version):
    """Copy examples/app into <app_root>/releases/<id> (node_modules linked) and stamp `version`."""
    dest = os.path.join(app_root, "releases", release_id)
    shutil.copytree(EXAMPLE_APP, dest, ignore=COPY_IGNORE)
    os.symlink(os.path.join(EXAMPLE_APP, "node_modules"), os.path.join(dest, "node_modules"))
    build_file = os.path.join(dest, "dist", "build.json")
    with open(build_file) as fh:
        build = json.load(fh)
    build["version"] = version
    with open(build_file, "w") as fh:
        json.dump(build, fh)
    with open(os.path.join(dest, "REVISION"), "w") as fh:
        fh.write(release_id + "\n")
    shared_env = os.path.join(app_root, "shared", ".env")
    if os.path.exists(shared_env):
        os.symlink(shared_env, os.path.join(dest, ".env"))
    return os.path.realpath(dest)


def write_shared_env(app_root, **values):
    os.makedirs(os.path.join(app_root, "shared"), exist_ok=True)
    path = os.path.join(app_root, "shared", ".env")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        for key, value in values.items():
            fh.write(f"{key}={value}\n")
    return path


def switch_current(app_root, release_id):
    """Point <app_root>/current at releases/<id> atomically (a new link renamed over the old one)."""
    tmp = os.path.join(app_root, ".current.tmp")
    if os.path.lexists(tmp):
        os.unlink(tmp)
    os.symlink(os.path.join("releases", release_id), tmp)
    os.replace(tmp, os.path.join(app_root, "current"))
    return os.path.join(app_root, "current")


class LoadLoop(threading.Thread):
    """GET `url` at a fixed rate, at most `max_requests` times, until stopped; counts failures.

    Bounded by construction: it stops by itself after max_requests, so a failing test cannot
    leave it running.
    """

    def __init__(self, url, interval=0.02, max_requests=3000, timeout=5):
        super().__init__(daemon=True)
        self.url, self.interval, self.max_requests, self.timeout = url, interval, max_requests, timeout
        self.ok = 0
        self.failures = []
        self.seen_cwds = {}
        self._stop_event = threading.Event()

    def run(self):
        for _ in range(self.max_requests):
            if self._stop_event.is_set():
                break
            started = time.time()
            try:
                with urllib.request.urlopen(self.url, timeout=self.timeout) as resp:
                    body = json.loads(resp.read().decode())
                    if resp.status == 200:
                        self.ok += 1
                        self.seen_cwds[body.get("cwd")] = self.seen_cwds.get(body.get("cwd"), 0) + 1
                    else:
                        self.failures.append(f"HTTP {resp.status}")
            except urllib.error.HTTPError as exc:
                self.failures.append(f"HTTP {exc.code}")
            except (urllib.error.URLError, ConnectionError, OSError, ValueError) as exc:
                self.failures.append(repr(exc))
            self._stop_event.wait(max(0.0, self.interval - (time.time() - started)))

    def stop(self):
        self._stop_event.set()
        self.join(timeout=30)
        return self

    @property
    def total(self):
        return self.ok + len(self.failures)
