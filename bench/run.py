"""Entry point of `make bench` / `make bench-quick`:

    python -m bench.run [--quick] [--size-mb N] [--hosts 1,4,16] [--only backup_restore,deploy,scale,lock_wait,disaster]

Runs each benchmark in its own throwaway world (PostgreSQL cluster, PM2 homes under /tmp),
writes bench/results/<benchmark>.json, latest.md (the table) and latest.png (the chart)."""

import argparse
import json
import os
import sys
import time
import traceback

from bench import backup_restore, deploy_flow, disaster, lock_wait, report, scale
from bench.env import BenchEnv

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
BENCHMARKS = ("backup_restore", "deploy", "scale", "lock_wait", "disaster")


def parse(argv):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes (finishes in a few minutes)")
    p.add_argument("--size-mb", type=float, help="orders table + indexes to generate (default 750; quick 20)")
    p.add_argument("--hosts", help="host counts for the scale benchmark (default 1,4,16; quick: no scale "
                   "benchmark unless given)")
    p.add_argument("--seed-rows", type=int, help="rows in the app's items table (default 50000; quick 1000)")
    p.add_argument("--written-rows", type=int, help="rows written after the deploy (default 200; quick 20)")
    p.add_argument("--rate", type=float, default=40.0, help="load generator requests per second")
    p.add_argument("--block-s", type=float, help="how long the lock_wait benchmark's transaction blocks the "
                   "migration (default 8; quick 3)")
    p.add_argument("--window-s", type=float, help="how long the disaster benchmark writes before the crash "
                   "(default 90, with archive_timeout 60 s)")
    p.add_argument("--only", help="comma-separated subset of " + ",".join(BENCHMARKS))
    p.add_argument("--results", help="directory for the JSON, latest.md and latest.png "
                   "(default bench/results, quick: bench/results/quick)")
    p.add_argument("--keep", action="store_true", help="keep the work directory under /tmp")
    args = p.parse_args(argv)
    q = args.quick
    args.results = args.results or (os.path.join(RESULTS, "quick") if q else RESULTS)
    args.size_mb = args.size_mb or (20 if q else 750)
    hosts = args.hosts
    args.hosts = [int(x) for x in (hosts or ("2" if q else "1,4,16")).split(",")]
    args.seed_rows = args.seed_rows or (1000 if q else 50000)
    args.written_rows = args.written_rows or (20 if q else 200)
    args.block_s = args.block_s or (3.0 if q else 8.0)
    args.window_s = args.window_s or 90.0
    # Quick leaves out the scale and disaster benchmarks unless asked (--only/--hosts): the first's
    # deploys take minutes on 2 cores, the second waits out archive_timeout 60 s.
    default_only = ["backup_restore", "deploy", "lock_wait"] if q and not hosts else list(BENCHMARKS)
    args.only = args.only.split(",") if args.only else default_only
    unknown = set(args.only) - set(BENCHMARKS)
    if unknown:
        p.error("unknown benchmark(s): " + ", ".join(sorted(unknown)))
    return args


def main(argv=None):
    args = parse(argv if argv is not None else sys.argv[1:])
    info = report.machine()
    info["mode"] = "quick" if args.quick else "full"
    all_rows = []
    failures = []
    for name in args.only:
        print(f"== {name} ...", flush=True)
        start = time.monotonic()
        params = {"backup_restore": {"size_mb": args.size_mb}, "scale": {"hosts": args.hosts},
                  "deploy": {"seed_rows": args.seed_rows, "written_rows": args.written_rows, "rate": args.rate},
                  "lock_wait": {"block_s": args.block_s},
                  "disaster": {"window_s": args.window_s, "size_mb": args.size_mb}}[name]
        try:
            with BenchEnv(keep=args.keep) as env:
                if name == "backup_restore":
                    details, rows = backup_restore.run(env, args.size_mb)
                elif name == "deploy":
                    details, rows = deploy_flow.run(env, args.seed_rows, args.written_rows, args.rate)
                elif name == "lock_wait":
                    details, rows = lock_wait.run(env, args.block_s)
                elif name == "disaster":
                    details, rows = disaster.run(env, args.size_mb, args.window_s)
                else:
                    details, rows = scale.run(env, args.hosts)
        except Exception as exc:  # noqa: BLE001 - one broken benchmark must not hide the others' results
            traceback.print_exc()
            failures.append(name)
            details, rows = {"error": f"{type(exc).__name__}: {exc}"[-4000:]}, [
                report.row(name, "FAILED (see the JSON's details.error)", "", None, None)]
        took = round(time.monotonic() - start, 1)
        report.write_json(args.results, name, {"benchmark": name, "mode": info["mode"], "params": params,
                                               "machine": info, "took_s": took, "rows": rows,
                                               "details": details})
        all_rows.extend(rows)
        print(f"   {name}: {took} s", flush=True)
    # The table and chart cover every benchmark with a result in the directory, so one can be
    # re-run alone (--only) and the table stays whole.
    all_rows = report.collect_rows(args.results, BENCHMARKS)
    text = report.write_table(args.results, all_rows, info)
    png = report.chart(args.results, all_rows)
    print(text)
    print(f"results: {args.results}/*.json, latest.md" + (f", {os.path.basename(png)}" if png else
                                                          " (no chart: matplotlib is not installed)"))
    with open(os.path.join(args.results, "machine.json"), "w") as fh:
        json.dump(info, fh, indent=2)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
