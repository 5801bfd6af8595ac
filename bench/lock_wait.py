"""Issue 15 item 6: what the app sees while a migration is blocked by a long transaction.

One transaction holds a read lock on `items` for `block_s` seconds (a long report, or the
nightly pg_dump); meanwhile the example app's second migration (`ALTER TABLE items ADD ...`)
runs through maestro.deploy.prisma_migrate, and a probe (the app: `SELECT count(*) FROM items`
every 100 ms on its own connection) records its longest wait. Before issue 15 the migration had
no lock_timeout: its queued ACCESS EXCLUSIVE request made every probe query wait until the
blocker ended (what `prisma migrate deploy` and the manual script still do); the row runs the
same module with a lock_timeout longer than the blocker, which is that behaviour. After: the
role's defaults (lock_timeout 3s, retried with backoff) and a tighter 1s."""

import shutil
import threading
import time

import psycopg

from bench.report import row
from tests.support.modrun import run_module
from tests.support.paths import EXAMPLE_APP
from tests.support.pgprobe import Probe

DB = "lock_wait_db"
INIT = "20260119123744_init"
# (label, prisma_migrate options); the first stands for "before" (no bound on the lock wait).
SETTINGS = [
    ("before: no lock_timeout (as `prisma migrate deploy`)", {"lock_timeout": "60min", "lock_retries": 0}),
    ("after: role defaults (lock_timeout 3s, 5 retries)", {"lock_timeout": "3s", "lock_retries": 5}),
    ("after: lock_timeout 1s, 8 retries", {"lock_timeout": "1s", "lock_retries": 8}),
]


def project(env, name):
    """The example app's Prisma directory with only its first migration applied-to-be."""
    dest = env.path("projects", name)
    shutil.copytree(EXAMPLE_APP + "/prisma", dest + "/prisma")
    return dest


def blocker(conninfo, hold_s, ready):
    """A transaction that reads `items` (ACCESS SHARE) and commits after hold_s."""
    with psycopg.connect(application_name="long-report", **conninfo) as conn:
        conn.execute("SELECT count(*) FROM items").fetchone()
        ready.set()
        time.sleep(hold_s)
        conn.commit()


def one(env, label, opts, block_s, work):
    cluster = env.cluster
    env.create_db(DB)
    proj = project(env, "p%d" % len(work["runs"]))
    notes = proj + "/prisma/migrations/20260201090000_add_item_notes"
    parked = proj + "/add_item_notes.parked"  # outside migrations/, or it counts as one
    shutil.move(notes, parked)
    url = cluster.url(DB)
    first = run_module("prisma_migrate", {"project_dir": proj, "database_url": url, "engine": "native",
                                          "review": "off"}, work["dir"], timeout=300)
    if first.failed or first.result.get("applied") != [INIT]:
        raise RuntimeError(f"first migration: {first.result.get('msg')}")
    shutil.move(parked, notes)
    ready = threading.Event()
    hold = threading.Thread(target=blocker, args=(cluster.conninfo(DB), block_s, ready), daemon=True)
    with Probe(cluster, DB) as probe:
        hold.start()
        ready.wait(30)
        time.sleep(0.3)
        start = time.monotonic()
        res = run_module("prisma_migrate", dict(opts, project_dir=proj, database_url=url, engine="native",
                                                review="off"), work["dir"], timeout=900)
        migrate_s = time.monotonic() - start
        hold.join(block_s + 30)
        time.sleep(0.3)
    outcome = {"label": label, "options": opts, "block_s": block_s, "probe_longest_s": round(probe.longest, 3),
               "probe_queries": probe.count, "migrate_s": round(migrate_s, 3), "failed": bool(res.failed),
               "applied": res.result.get("applied"), "msg": (res.result.get("msg") or "")[:400]}
    work["runs"].append(outcome)
    env.drop_db(DB)
    return outcome


def run(env, block_s=8.0):
    work = {"dir": env.dir("modwork"), "runs": []}
    before, default, tight = (one(env, label, opts, block_s, work) for label, opts in SETTINGS)
    what = "longest wait of an app query on the altered table, migration behind a %g s transaction" % block_s
    rows = [
        row("lock wait", what + ": role defaults", "s", before["probe_longest_s"], default["probe_longest_s"],
            target="≤ 3 s + 1 s", absolute=4.0,
            note="reference: no lock_timeout; the migration then applied after %.1f s (before: %.1f s)" % (
                default["migrate_s"], before["migrate_s"])),
        row("lock wait", what + ": lock_timeout 1s", "s", before["probe_longest_s"], tight["probe_longest_s"],
            target="≤ 1 s + 1 s", absolute=2.0,
            note="applied after %.1f s" % tight["migrate_s"]),
    ]
    for r in (before, default, tight):
        if r["failed"] or r["applied"] != ["20260201090000_add_item_notes"]:
            rows.append(row("lock wait", "migration did not apply: " + r["label"], "", None, None, note=r["msg"]))
    return {"runs": work["runs"]}, rows
