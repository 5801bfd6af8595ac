"""The real Prisma CLI (6.19.x), run offline against a test project, to cross-check our native engine.

`prisma migrate status|resolve|diff` run without the native engines when prisma.config.ts
uses the @prisma/adapter-pg driver adapter (engine "js") and PRISMA_SCHEMA_ENGINE_BINARY /
PRISMA_QUERY_ENGINE_LIBRARY point at placeholders (so nothing is downloaded). `migrate deploy`
does not work that way (prisma/orm#27403), which is why we apply natively and only read back
with the CLI. CHECKPOINT_DISABLE=1 keeps the CLI from phoning home.
"""

import os
import subprocess

from ..paths import PRISMA, REPO

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "prisma.config.ts.tmpl")


def install_config(project_dir):
    """Write prisma.config.ts (pointing at this repo's node_modules) and engine placeholders."""
    with open(TEMPLATE) as fh:
        text = fh.read().replace("@@NODE_MODULES@@", os.path.join(REPO, "node_modules"))
    with open(os.path.join(project_dir, "prisma.config.ts"), "w") as fh:
        fh.write(text)
    placeholder = os.path.join(project_dir, ".prisma-engine-placeholder")
    with open(placeholder, "w") as fh:
        fh.write("#!/bin/sh\nexit 0\n")
    os.chmod(placeholder, 0o755)
    return placeholder


def prisma(project_dir, database_url, *args, timeout=120, done_when=None):
    """Run the Prisma CLI in project_dir; returns CompletedProcess (stdout and stderr merged in .stdout).

    `done_when`: a line that means the command finished. `migrate resolve` prints it within a second
    but its process then lingers ~10 s (the wasm engine's lock connection keeps node alive); once
    the line is out we stop it instead of waiting, and report rc 0.
    """
    placeholder = install_config(project_dir)
    env = dict(os.environ, DATABASE_URL=database_url, CHECKPOINT_DISABLE="1", PRISMA_HIDE_UPDATE_MESSAGE="1",
               PRISMA_SCHEMA_ENGINE_BINARY=placeholder, PRISMA_QUERY_ENGINE_LIBRARY=placeholder, NO_COLOR="1")
    argv = [PRISMA, *args]
    if not done_when:
        proc = subprocess.run(argv, cwd=project_dir, env=env, capture_output=True, text=True, timeout=timeout)
        return subprocess.CompletedProcess(argv, proc.returncode, proc.stdout + proc.stderr, "")
    lines = []
    with subprocess.Popen(argv, cwd=project_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True) as child:
        for line in child.stdout:
            lines.append(line)
            if done_when in line:
                child.terminate()
                break
        rc = child.wait(timeout=timeout)
    finished = any(done_when in line for line in lines)
    return subprocess.CompletedProcess(argv, 0 if finished else rc, "".join(lines), "")
