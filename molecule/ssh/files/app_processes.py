"""Every process of the app on this machine, with its user ids, read from /proc (run as root).

A process is the app's when it is the PM2 daemon of PM2_HOME (its pid file), descends from it,
has PM2_HOME in its environment, or runs from or names the app root or the PM2 home. Prints JSON:
[{"pid", "ppid", "uid": [real, effective, saved, filesystem], "why", "cmd"}]. The caller (the
scenario's verify.yml) asserts that every one is the deploy user's.

    python3 app_processes.py PM2_HOME APP_ROOT
"""
import json
import os
import sys


def read(path, binary=False):
    try:
        with open(path, "rb") as f:
            data = f.read()
        return data if binary else data.decode("utf-8", "replace")
    except OSError:
        return None


def main(pm2_home, app_root):
    daemon = (read(os.path.join(pm2_home, "pm2.pid")) or "").strip()
    procs = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        status = read(f"/proc/{pid}/status")
        if status is None:
            continue  # ended meanwhile
        fields = dict(line.split(":\t", 1) for line in status.splitlines() if ":\t" in line)
        cmd = (read(f"/proc/{pid}/cmdline", True) or b"").replace(b"\0", b" ").decode("utf-8", "replace").strip()
        environ = (read(f"/proc/{pid}/environ", True) or b"").split(b"\0")
        try:
            cwd = os.readlink(f"/proc/{pid}/cwd")
        except OSError:
            cwd = ""
        procs[pid] = {"pid": int(pid), "ppid": int(fields["PPid"]), "uid": [int(u) for u in fields["Uid"].split()],
                      "cmd": cmd, "cwd": cwd, "pm2_home": ("PM2_HOME=" + pm2_home).encode() in environ}
    ours = {str(os.getpid()), str(os.getppid())}
    found = []
    for pid, p in procs.items():
        why = []
        chain, up = set(), p["ppid"]
        while str(up) in procs and str(up) not in chain:
            chain.add(str(up))
            up = procs[str(up)]["ppid"]
        if pid == daemon:
            why.append("the PM2 daemon")
        elif daemon in chain:
            why.append("a child of the PM2 daemon")
        if p["pm2_home"]:
            why.append("PM2_HOME in its environment")
        if p["cwd"].startswith(app_root.rstrip("/") + "/") or p["cwd"] == app_root:
            why.append("runs in the app root")
        if app_root in p["cmd"] or pm2_home in p["cmd"]:
            why.append("names the app root or PM2 home")
        if why and pid not in ours:
            found.append({"pid": p["pid"], "ppid": p["ppid"], "uid": p["uid"], "why": why, "cmd": p["cmd"][:200]})
    json.dump({"daemon": int(daemon) if daemon else None, "processes": found}, sys.stdout)


if __name__ == "__main__":
    main(*sys.argv[1:3])
