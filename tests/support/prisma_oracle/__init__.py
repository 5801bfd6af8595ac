"""Prisma's own schema engine as the reference for our native engine (issue 15 item 5).

Prisma 7's CLI downloads nothing for `migrate` only when it has a driver adapter, and 7 dropped that route for
`migrate deploy`; but the schema engine itself ships compiled to wasm in the npm registry
(@prisma/schema-engine-wasm, versioned as the engines of a Prisma release: 7.2.0-4.0c8ef2ce... is Prisma 7.2.0,
the version ManuMaestro runs). oracle.mjs loads it and hands it @prisma/adapter-pg, then runs one command:
`diagnose` (what `migrate status` reads), `deploy` (applyMigrations, what `migrate deploy` does), `rolled-back`
and `applied` (`migrate resolve`). Its adapter splits scripts on `;`, so it is an oracle for tests, not a
replacement for our engine.

One directory per Prisma version (v<version>/, package.json + package-lock.json): 7.2.0 and 7.10.0, the newest
7.x whose schema engine is published as wasm (7.10.1 names engines 8.1.0-1.d1b3f377..., which the registry
does not have as @prisma/schema-engine-wasm). node_modules is installed on first use (`npm ci`, the npm
registry only).
"""

import json
import os
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "oracle.mjs")
VERSIONS = ("7.2.0", "7.10.0")


def version_dir(version):
    return os.path.join(HERE, "v" + version)


def install(version):
    """npm ci in the version's directory unless its node_modules already holds that engine."""
    where = version_dir(version)
    marker = os.path.join(where, "node_modules", "@prisma", "schema-engine-wasm", "package.json")
    if os.path.exists(marker):
        with open(marker) as fh:
            if json.load(fh).get("version", "").startswith(version + "-"):
                return
    subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--silent"], cwd=where, check=True, timeout=600)


def pinned_engine(version):
    """The engine commit the version's package.json pins (what `version` must print)."""
    with open(os.path.join(version_dir(version), "package.json")) as fh:
        return json.load(fh)["dependencies"]["@prisma/schema-engine-wasm"].rsplit(".", 1)[1]


def oracle(version, command, migrations_dir, database_url, name=None, timeout=120):
    """Run one command of Prisma's engine; returns {"ok": bool, "out": ...} or {"ok": False, "error": ...}."""
    argv = ["node", SCRIPT, version_dir(version), command, str(migrations_dir)] + ([name] if name else [])
    proc = subprocess.run(argv, env=dict(os.environ, DATABASE_URL=database_url), capture_output=True, text=True,
                          timeout=timeout)
    lines = proc.stdout.strip().splitlines()
    try:
        return json.loads(lines[-1])
    except (IndexError, ValueError):
        return {"ok": False, "error": "oracle printed no JSON", "stdout": proc.stdout[-2000:],
                "stderr": proc.stderr[-2000:]}
