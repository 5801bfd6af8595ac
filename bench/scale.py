"""Issue 7 item 5: deploy to 1, 4, 16 inventory hosts on this machine (local connection, each
its own app_root, port and PM2 home, one shared database), with forks and reload batching
(pm2_app_serial) varied. Every host runs 2 PM2 workers, so 16 hosts are 32 Node processes
on 2 cores: wall time here is CPU-bound, not what separate machines would show."""

from bench.env import hosts_inventory
from bench.report import row
from tests.support.http import get_json


def run(env, host_counts):
    _, shas = env.app_repo()
    d = {}
    for n in host_counts:
        db = env.create_db(f"scale_{n}")
        inventory = hosts_inventory(env, db, n, f"s{n}", smoke_test_timeout=300, pm2_app_wait_online=120)
        hosts = inventory["all"]["children"]["app"]["hosts"]
        runs = [("v1 (first deploy)", "v1", {"forks": None}, {}),
                ("v1→v2, forks=10 (ansible.cfg), pm2_app_serial=1", "v2", {"forks": None}, {})]
        if n > 1:
            runs.append((f"v2→v3, forks={n}, pm2_app_serial={n}", "v3", {"forks": n}, {"pm2_app_serial": n}))
        d[n] = {}
        for label, version, kw, extra in runs:
            run_, wall = env.playbook("deploy.yml", inventory, extravars=dict(extra, app_version=version), **kw)
            served = sum(1 for h in hosts.values() if get_json(h["healthcheck_url"])[1]["revision"] == shas[version])
            d[n][label] = {"wall_s": round(wall, 3), "ok": run_.ok, "hosts_serving": served}
            if not run_.ok:
                d[n][label]["failure"] = run_.stdout[-3000:]
                break
        for h in hosts.values():
            env.kill_pm2(h["pm2_home"])
        env.drop_db(db)
    return {str(k): v for k, v in d.items()}, rows_from(d, host_counts)


def rows_from(d, host_counts):
    rows = []
    base = d[host_counts[0]].get("v1→v2, forks=10 (ansible.cfg), pm2_app_serial=1", {}).get("wall_s")
    for n in host_counts:
        for label, res in d[n].items():
            note = f"{res['hosts_serving']}/{n} hosts serving" + ("" if res["ok"] else "; FAILED")
            rows.append(row("scale", f"{n} host(s): {label}", "s", base, res["wall_s"], note=note + (
                f"; reference = {host_counts[0]} host v1→v2" if base else "")))
    return rows
