"""Issue 7 item 5, issue 17 item 4: deploy to 1, 4, 16 app hosts, each its own app_root, port and
PM2 home, one shared database on a host of its own. As root the app hosts are reached over SSH
(bench/fleet.py: an sshd per host on a loopback port, a deploy user that is not root); else they
fall back to the local connection. Forks and reload batching (deploy_serial) are varied.

Every host runs 2 PM2 workers and builds its release, so 16 hosts are 32 Node processes and 16
builds on this machine's cores: wall time here is the hosts' CPU, not what separate machines
would show. What separate machines would not change is the controller's share, measured per host:
`controller CPU` is ansible-playbook with its workers and ssh clients (fleet.py says how)."""

import os

from bench import fleet as fleet_mod
from bench.env import hosts_inventory
from bench.report import row
from tests.support.http import get_json

BASE_RUN = "v1→v2, forks=10 (ansible.cfg), deploy_serial=1"


def run(env, host_counts):
    _, shas = env.app_repo()
    over_ssh = fleet_mod.available()
    d = {"connection": "ssh" if over_ssh else "local", "cores": os.cpu_count()}
    for n in host_counts:
        db = env.create_db(f"scale_{n}")
        fleet = fleet_mod.Fleet(env.dir("fleet", str(n)), n) if over_ssh else None
        if fleet:
            fleet.__enter__()
        try:
            d[n] = deploy_runs(env, shas, db, n, fleet)
        finally:
            if fleet:
                fleet.__exit__(None, None, None)
            env.drop_db(db)
    return {str(k): v for k, v in d.items()}, rows_from(d, host_counts)


def deploy_runs(env, shas, db, n, fleet):
    inventory = hosts_inventory(env, db, n, f"s{n}", fleet=fleet, smoke_test_timeout=300, pm2_app_wait_online=120)
    hosts = inventory["all"]["children"]["app"]["hosts"]
    runs = [("v1 (first deploy)", "v1", {"forks": None}, {}), (BASE_RUN, "v2", {"forks": None}, {})]
    if n > 1:
        runs.append((f"v2→v3, forks={n}, deploy_serial={n}", "v3", {"forks": n}, {"deploy_serial": n}))
    results = {}
    try:
        for label, version, kw, extra in runs:
            cpu_before = fleet_mod.children_cpu()
            run_, wall = env.playbook("deploy.yml", inventory, extravars=dict(extra, app_version=version),
                                      envvars=fleet.envvars() if fleet else None, **kw)
            cpu = fleet_mod.children_cpu() - cpu_before + (fleet.stop_control_masters() if fleet else 0.0)
            served = sum(1 for h in hosts.values() if get_json(h["healthcheck_url"])[1]["revision"] == shas[version])
            results[label] = {"wall_s": round(wall, 3), "ok": run_.ok, "hosts_serving": served,
                              "controller_cpu_s": round(cpu, 2) if fleet else None}
            if not run_.ok:
                results[label]["failure"] = run_.stdout[-3000:]
                break
    finally:
        for h in hosts.values():
            if fleet:
                fleet_mod.kill_pm2(fleet.user, h["pm2_home"])
            else:
                env.kill_pm2(h["pm2_home"])
    return results


def rows_from(d, host_counts):
    rows = []
    how = "over SSH (an sshd per host, a non-root deploy user; db its own host)" if d.get("connection") == "ssh" \
        else "local connection"
    base = d[host_counts[0]].get(BASE_RUN, {}).get("wall_s")
    for n in host_counts:
        for label, res in d[n].items():
            note = f"{res['hosts_serving']}/{n} hosts serving, {how}" + ("" if res["ok"] else "; FAILED")
            target = "≤ 2x one host (issue 17)" if n == max(host_counts) and f"deploy_serial={n}" in label else ""
            rows.append(row("scale", f"{n} host(s): {label}", "s", base, res["wall_s"], target=target,
                            limit=2 if target else None,
                            note=note + (f"; reference = {host_counts[0]} host v1→v2" if base else "")))
        cpu = d[n].get(BASE_RUN, {}).get("controller_cpu_s")
        first = d[host_counts[0]].get(BASE_RUN, {}).get("controller_cpu_s")
        if cpu is not None:
            rows.append(row("scale", f"controller CPU, {n} host(s), {BASE_RUN}", "s", None, cpu,
                            note="ansible-playbook, its workers and ssh clients; the db host's tasks run here "
                                 "too (local connection)"))
        if cpu is not None and first is not None and n > host_counts[0]:
            rows.append(row("scale", f"controller CPU per added host, {host_counts[0]}→{n} host(s)", "s", None,
                            round((cpu - first) / (n - host_counts[0]), 2),
                            note="what grows with hosts: (CPU for %d - CPU for %d) / %d" % (
                                n, host_counts[0], n - host_counts[0])))
    return rows
