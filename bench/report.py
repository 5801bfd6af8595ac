"""Results: one JSON per benchmark under bench/results/, the Markdown table latest.md, the chart."""

import datetime
import json
import os
import platform
import subprocess


def row(bench, what, unit, manual, ours, target="", limit=None, absolute=None, note=""):
    """One table row. ratio = ours / manual (the reference). `limit`: target on the ratio
    (met when ratio <= limit); `absolute`: target on ours itself (met when ours <= absolute)."""
    ratio = round(ours / manual, 3) if isinstance(manual, (int, float)) and isinstance(ours, (int, float)) \
        and manual else None
    met = None
    if limit is not None and ratio is not None:
        met = ratio <= limit
    if absolute is not None and isinstance(ours, (int, float)):
        met = ours <= absolute if met is None else (met and ours <= absolute)
    return {"bench": bench, "what": what, "unit": unit, "manual": manual, "ours": ours, "ratio": ratio,
            "target": target, "met": met, "note": note}


def machine():
    def out(argv):
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=20).stdout.strip()
        except OSError:
            return None

    mem_kb = 0
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                mem_kb = int(line.split()[1])
    cpu = ""
    with open("/proc/cpuinfo") as fh:
        for line in fh:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from tests.support.pgcluster import server_bindir

    return {"nproc": os.cpu_count(), "cpu": cpu, "memory_gib": round(mem_kb / 2**20, 1),
            "postgres": out([os.path.join(server_bindir(), "postgres"), "--version"]),
            "node": out(["node", "--version"]), "kernel": platform.release(),
            "os": (out(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]) or ""),
            "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")}


def write_json(results_dir, name, payload):
    os.makedirs(results_dir, exist_ok=True)
    path = os.path.join(results_dir, name + ".json")
    with open(path, "w") as fh:
        json.dump(payload, fh, indent=2, sort_keys=True)
        fh.write("\n")
    return path


def collect_rows(results_dir, names):
    """Rows of every <name>.json in results_dir, in the given order."""
    rows = []
    for name in names:
        path = os.path.join(results_dir, name + ".json")
        if os.path.exists(path):
            with open(path) as fh:
                rows.extend(json.load(fh)["rows"])
    return rows


def fmt(value):
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    return str(value)


def status(met):
    return {True: "**met**", False: "**not met**", None: ""}[met]


def table(rows, info):
    lines = [
        f"Run {info['at']} on {info['nproc']} cores ({info['cpu']}), {info['memory_gib']} GiB, "
        f"{info['postgres']}, Node {info['node']}, {info['os']}; mode: {info.get('mode', '')}.",
        "",
        "| benchmark | measure | unit | manual (reference) | ours | ours ÷ ref | target | status | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append("| %s |" % " | ".join([r["bench"], r["what"], r["unit"], fmt(r["manual"]), fmt(r["ours"]),
                                            fmt(r["ratio"]), r["target"], status(r["met"]),
                                            r["note"].replace("|", "/")]))
    return "\n".join(lines) + "\n"


def write_table(results_dir, rows, info):
    text = table(rows, info)
    with open(os.path.join(results_dir, "latest.md"), "w") as fh:
        fh.write(text)
    return text


def chart(results_dir, rows):
    """Bar chart of every time row (seconds): manual beside ours. Returns the PNG path or None
    when matplotlib is missing (it is installed by `make bench` only)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    timed = [r for r in rows if r["unit"] == "s" and isinstance(r["ours"], (int, float))]
    if not timed:
        return None
    labels = [f"{r['bench']}: {r['what']}" for r in timed]
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(timed) + 1.5))
    ys = range(len(timed))
    ax.barh([y - 0.2 for y in ys], [r["manual"] if isinstance(r["manual"], (int, float)) else 0 for r in timed],
            height=0.4, label="manual procedure / reference", color="#c44e52")
    ax.barh([y + 0.2 for y in ys], [r["ours"] for r in timed], height=0.4, label="maestro.deploy",
            color="#4c72b0")
    ax.set_yticks(list(ys))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds (lower is better)")
    ax.set_title("maestro.deploy vs the manual procedure (one run, one machine)", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    path = os.path.join(results_dir, "latest.png")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
