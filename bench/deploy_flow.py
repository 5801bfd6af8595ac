"""Issue 7 items 2-4 and issue 9's recovery point, on one app deployed twice side by side: by
hand (bench/manual/*.sh, the guide's steps) and by deploy.yml/rollback.yml, each with its own
database holding the same seeded rows, its own port and PM2 home."""

import json
import os
import subprocess
import time

from bench.loadgen import Load
from bench.report import row
from tests.support.http import get_json, post_json
from tests.support.inventory import local_inventory
from tests.support.paths import PM2
from tests.support.pgcluster import free_port

MANUAL_NAME = "manumaestro-bench"


def sh(argv, env, cwd=None):
    proc = subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv}: rc {proc.returncode}\n{proc.stdout[-1500:]}\n{proc.stderr[-2500:]}")
    return proc.stdout


class ManualApp:
    """The app installed the way the guide's server has it: one checkout, `pm2 start`."""

    def __init__(self, env, db):
        self.env, self.db = env, db
        self.dir = os.path.join(env.dir("manual", "www"), "manumaestro")
        self.backup_dir = env.dir("manual", "backups")
        self.pm2_home = env.pm2_home("manual")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/health"
        self.items_url = f"http://127.0.0.1:{self.port}/items"

    def script_vars(self, **extra):
        return dict(DB_NAME=self.db, BACKUP_DIR=self.backup_dir, APP_DIR=self.dir, APP_NAME=MANUAL_NAME,
                    PM2_HOME=self.pm2_home, HEALTH_URL=self.url, DATABASE_URL=self.env.cluster.url(self.db),
                    PORT=self.port, **extra)

    def install(self, repo):
        """Initial install at v1 (not measured): clone, npm install, migrate, build, pm2 start."""
        env = self.env.script_env(**self.script_vars())
        sh(["git", "clone", "-q", repo, self.dir], env)
        sh(["git", "reset", "-q", "--hard", "v1"], env, cwd=self.dir)
        with open(os.path.join(self.dir, ".env"), "w") as fh:
            fh.write(f'DATABASE_URL="{self.env.cluster.url(self.db)}"\n')
        os.chmod(os.path.join(self.dir, ".env"), 0o600)
        sh(["npm", "install", "--no-audit", "--no-fund", "--silent"], env, cwd=self.dir)
        sh([env["PY"], "-m", "bench.prisma_apply", self.dir], env, cwd=self.dir)
        sh(["npm", "run", "--silent", "build"], env, cwd=self.dir)
        sh([PM2, "start", "ecosystem.config.js"], dict(env, APP_NAME=MANUAL_NAME), cwd=self.dir)
        sh([env["PY"], "-m", "bench.wait_version", self.url, "1.0.0", "60"], env)


def seed(cluster, db, count):
    cluster.psql(f"INSERT INTO items (name) SELECT 'seed ' || g FROM generate_series(1, {count}) g", db)


def write_rows(items_url, prefix, count):
    for i in range(count):
        post_json(items_url, {"name": f"{prefix}-{i}"})


def count_rows(cluster, db, prefix):
    return int(cluster.psql(f"SELECT count(*) FROM items WHERE name LIKE '{prefix}-%'", db))


def under_load(url, rate, window, action):
    """Run action() while a bounded load hits url; returns (action result, wall, load summary)."""
    load = Load(url, count=int(rate * window), rate=rate).start()
    time.sleep(1.0)
    start = time.monotonic()
    result = action()
    end = time.monotonic()
    summary = load.wait()
    summary["covered_action"] = load.finished >= end
    return result, end - start, summary


def run(env, seed_rows, written_rows, rate):
    cluster = env.cluster
    repo, shas = env.app_repo()
    db_auto, db_manual = env.create_db("app_auto"), env.create_db("app_manual")
    d = {"seed_rows": seed_rows, "written_rows": written_rows, "load_rate_per_s": rate}

    inventory = local_inventory(env.dir("auto"), cluster, db_auto, repo, env.pm2_home("auto"),
                                migration_tool="prisma", smoke_test_timeout=90, app_name="bench-auto")
    hv = inventory["all"]["vars"]
    auto_url, auto_items = hv["healthcheck_url"], hv["healthcheck_url"].replace("/health", "/items")

    def deploy(version, strategy=None, **extra):
        run_, wall = env.playbook("deploy.yml", inventory, extravars=dict(extra, app_version=version),
                                  strategy=strategy)
        if not run_.ok:
            raise RuntimeError(f"deploy {version} failed:\n{run_.stdout[-4000:]}")
        return wall

    def rollback(**extra):
        run_, wall = env.playbook("rollback.yml", inventory, extravars=extra)
        if not run_.ok:
            raise RuntimeError(f"rollback failed:\n{run_.stdout[-4000:]}")
        return wall

    def history():
        with open(os.path.join(hv["app_root"], "history.json")) as fh:
            return json.load(fh)

    d["initial_deploy_v1_s"] = round(deploy("v1"), 3)
    manual = ManualApp(env, db_manual)
    manual.install(repo)
    seed(cluster, db_auto, seed_rows)
    seed(cluster, db_manual, seed_rows)
    window = 1.6 * d["initial_deploy_v1_s"] + 10

    # Item 2a: the guide's `pm2 restart` alone, under load.
    _, wall, load = under_load(manual.url, rate, 8, lambda: env.run_script(
        "restart.sh", env.path("marks", "restart"), **manual.script_vars()))
    d["manual_restart"] = {"wall_s": round(wall, 3), "load": load}

    # Items 2 and 3: the whole manual deploy v1 -> v2, then deploy.yml v1 -> v2, each under load.
    (m_wall, marks), _, load = under_load(manual.url, rate, window, lambda: env.run_script(
        "deploy.sh", env.path("marks", "deploy"), **manual.script_vars(EXPECT_VERSION="2.0.0")))
    d["manual_deploy"] = {"wall_s": round(m_wall, 3), "steps": steps(marks, [
        ("backup", "deploy_start", "backup_end"), ("git pull", "backup_end", "pull_end"),
        ("npm install", "pull_end", "install_end"), ("migrate", "install_end", "migrate_end"),
        ("build", "migrate_end", "build_end"), ("pm2 restart", "build_end", "restart_end"),
        ("smoke test", "restart_end", "deploy_end")]), "load": load}
    o_wall, _, load = under_load(auto_url, rate, window, lambda: deploy("v2"))
    d["ours_deploy"] = {"wall_s": round(o_wall, 3), "stages": history()["releases"][-1].get("stages"), "load": load}
    assert get_json(auto_url)[1]["revision"] == shas["v2"]

    # Item 3: the same version again.
    d["ours_noop_s"] = round(deploy("v2"), 3)
    m_again, _ = env.run_script("deploy.sh", env.path("marks", "deploy-again"),
                                **manual.script_vars(EXPECT_VERSION="2.0.0"))
    d["manual_same_version_s"] = round(m_again, 3)

    # Issue 17 item 1: the accelerator (ansible.cfg's strategy, Mitogen) against Ansible's own
    # linear strategy, side by side: the same forced re-deploy (every stage runs) and no-op, twice each.
    accel = {}
    for strategy in ("linear", None, "linear", None):
        name = strategy or "mitogen_linear"
        accel.setdefault(name, {"forced": [], "noop": []})
        accel[name]["forced"].append(round(deploy("v2", strategy=strategy, deploy_force=True), 3))
        accel[name]["noop"].append(round(deploy("v2", strategy=strategy), 3))
    d["accelerator"] = accel

    # Item 4 and issue 9: rollbacks and the rows written since the deploy that each one loses.
    # Both rollbacks name the v1 release (rollback_to): the restore first, from v2's own backup,
    # then v2 again and the code-only rollback.
    v1_release = history()["releases"][0]["id"]
    write_rows(auto_items, "rp-restore", written_rows)
    d["ours_rollback_restore_s"] = round(rollback(rollback_db="yes", rollback_to=v1_release), 3)
    event = history()["events"][-1]
    d["restore_serves"] = served(auto_url, shas)
    d["restore_event"] = {k: event.get(k) for k in ("from", "to", "database", "reason", "backup")}
    lost_tables = event.get("lost_rows") or []
    d["restore"] = {"database": event.get("database"), "previous_db": event.get("previous_db"),
                    "kept": count_rows(cluster, db_auto, "rp-restore"), "lost_rows_report": lost_tables,
                    "recoverable_in_previous_db": int(cluster.psql(
                        "SELECT count(*) FROM items WHERE name LIKE 'rp-restore-%'", event["previous_db"]))
                    if event.get("previous_db") else 0}

    d["redeploy_v2_s"] = round(deploy("v2"), 3)
    write_rows(auto_items, "rp-code", written_rows)
    d["ours_rollback_code_only_s"] = round(rollback(rollback_to=v1_release), 3)
    event = history()["events"][-1]
    d["code_only_serves"] = served(auto_url, shas)
    d["code_only"] = {"database": event.get("database"), "reason": event.get("reason"),
                      "kept": count_rows(cluster, db_auto, "rp-code")}

    write_rows(manual.items_url, "rp-manual", written_rows)
    with open(os.path.join(manual.backup_dir, "last")) as fh:
        backup = fh.read().strip()
    m_rb, marks = env.run_script("rollback.sh", env.path("marks", "rollback"), **manual.script_vars(
        BACKUP=backup, TARGET="v1", EXPECT_VERSION="1.0.0"))
    d["manual_rollback"] = {"wall_s": round(m_rb, 3), "kept": count_rows(cluster, db_manual, "rp-manual"),
                            "steps": steps(marks, [("code back (checkout, install, build)", "rollback_start",
                                                    "code_end"),
                                                   ("pm2 stop", "code_end", "drop_start"),
                                                   ("drop, create, gunzip|psql", "drop_start", "restore_end"),
                                                   ("pm2 restart + smoke test", "restore_end", "rollback_end")])}
    for home in (manual.pm2_home, hv["pm2_home"]):
        env.kill_pm2(home)
    return d, rows_from(d)


def served(url, shas):
    """Which tag the app serves now (by the revision /health reports)."""
    revision = get_json(url)[1].get("revision")
    return next((tag for tag, sha in shas.items() if sha == revision), revision)


def steps(marks, spec):
    return {name: round(marks[b] - marks[a], 3) for name, a, b in spec if a in marks and b in marks}


def rows_from(d):
    rows = []
    ml, ol, rl = d["manual_deploy"]["load"], d["ours_deploy"]["load"], d["manual_restart"]["load"]
    note = f"{ol['requests']} requests at {d['load_rate_per_s']}/s"
    rows.append(row("downtime", "failed requests: pm2 restart alone vs deploy.yml v1→v2", "requests",
                    rl["failed"], ol["failed"], "0 failed", absolute=0,
                    note=f"restart: {rl['requests']} req; deploy: {note}; covered={ol['covered_action']}"))
    rows.append(row("downtime", "failed requests: manual deploy script vs deploy.yml", "requests", ml["failed"],
                    ol["failed"], "0 failed", absolute=0, note=f"manual covered={ml['covered_action']}"))
    for key in ("p50_ms", "p99_ms"):
        rows.append(row("downtime", f"latency {key[:3]} during the deploy", "ms", ml[key], ol[key]))
    rows.append(row("deploy", "full deploy v1→v2 (under load)", "s", d["manual_deploy"]["wall_s"],
                    d["ours_deploy"]["wall_s"], "≤3x the manual script (issue 17)", limit=3,
                    note="manual migrate = native apply (Prisma engine not downloadable)"))
    rows.append(row("deploy", "re-deploy of the version already live", "s", d["manual_same_version_s"],
                    d["ours_noop_s"], "≤ 2 s (issue 17)", absolute=2, note="manual: the script run again"))
    ms, os_ = d["manual_deploy"]["steps"], d["ours_deploy"]["stages"] or {}
    pairs = [("backup", ms.get("backup"), os_.get("backup")),
             ("pull+install+build / release", sum(ms.get(k, 0) for k in ("git pull", "npm install", "build")),
              os_.get("release")),
             ("migrate", ms.get("migrate"), os_.get("migrate")),
             ("restart+smoke / switch+smoke_test", (ms.get("pm2 restart") or 0) + (ms.get("smoke test") or 0),
              (os_.get("switch") or 0) + (os_.get("smoke_test") or 0)),
             ("preflight+record (ours only)", None, (os_.get("preflight") or 0) + (os_.get("record") or 0)
              + (os_.get("start") or 0))]
    for name, m, o in pairs:
        rows.append(row("deploy stage", name, "s", round(m, 3) if m is not None else None,
                        round(o, 3) if o is not None else None))
    accel = d.get("accelerator") or {}
    if "linear" in accel and "mitogen_linear" in accel:
        for kind, what in (("forced", "forced re-deploy (every stage)"), ("noop", "re-deploy, no-op")):
            lin, mit = min(accel["linear"][kind]), min(accel["mitogen_linear"][kind])
            rows.append(row("accelerator", f"{what}: linear vs mitogen_linear", "s", lin, mit,
                            note="reference = Ansible's linear strategy; best of 2 each"))
    mr = d["manual_rollback"]["wall_s"]
    rows.append(row("rollback", "to serving the previous version: code-only (rollback_db=auto)", "s", mr,
                    d["ours_rollback_code_only_s"], "≤ 3 s (issue 17)", absolute=3,
                    note=f"serves {d['code_only_serves']} after; manual = code back + the guide's restore"))
    rows.append(row("rollback", "to serving the previous version: with restore (rollback_db=yes)", "s", mr,
                    d["ours_rollback_restore_s"], note=f"serves {d['restore_serves']} after; "
                                                       f"{d['seed_rows']} seeded rows"))
    w = d["written_rows"]
    rows.append(row("recovery point", f"rows lost of {w} written since the deploy: code-only", "rows",
                    w - d["manual_rollback"]["kept"], w - d["code_only"]["kept"],
                    note=f"auto chose database={d['code_only']['database']}"))
    rows.append(row("recovery point", f"rows lost of {w} written since the deploy: restore", "rows",
                    w - d["manual_rollback"]["kept"], w - d["restore"]["kept"],
                    note=f"{d['restore']['recoverable_in_previous_db']} still in the kept copy "
                         f"{d['restore']['previous_db']}; manual: dropped"))
    return rows
