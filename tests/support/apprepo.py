"""Turn examples/app into a git repository with tags v1 and v2 to deploy from.

v1 holds the first migration of each history (Prisma `init`, Alembic `0001_init`) and
version 1.0.0; v2 adds `add_item_notes` / `0002_add_item_notes` and version 2.0.0.
Extra versions (a broken migration, a crashing start) are made by tests with `commit_version`.
"""

import json
import os
import shutil
import subprocess

from .paths import EXAMPLE_APP

V2_ONLY = (
    "prisma/migrations/20260201090000_add_item_notes",
    "alembic/versions/0002_add_item_notes.py",
)
GIT_ID = ["-c", "user.name=maestro tests", "-c", "user.email=tests@maestro.invalid", "-c", "commit.gpgsign=false"]


def git(repo, *args):
    return subprocess.run(["git", *GIT_ID, *args], cwd=repo, check=True, capture_output=True, text=True).stdout.strip()


def set_version(repo, version):
    """Stamp package.json only: the lockfile stays byte-identical across versions, as it does
    between real releases that change no dependency (npm ci accepts the root version differing),
    so a deploy reuses the previous release's node_modules."""
    path = os.path.join(repo, "package.json")
    with open(path) as fh:
        data = json.load(fh)
    data["version"] = version
    with open(path, "w") as fh:
        json.dump(data, fh, indent=2)
        fh.write("\n")


def commit_version(repo, tag, version, message=None):
    set_version(repo, version)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message or f"release {tag}")
    git(repo, "tag", tag)
    return git(repo, "rev-parse", "HEAD")


def make_app_repo(dest):
    """Create the repository at dest; returns {tag: sha}."""
    shutil.copytree(EXAMPLE_APP, dest, ignore=shutil.ignore_patterns("node_modules", "dist", ".env"))
    held = os.path.join(os.path.dirname(dest), os.path.basename(dest) + ".v2-only")
    os.makedirs(held, exist_ok=True)
    for rel in V2_ONLY:
        shutil.move(os.path.join(dest, rel), os.path.join(held, os.path.basename(rel)))
    git(dest, "init", "-q", "-b", "main")
    shas = {"v1": commit_version(dest, "v1", "1.0.0", "v1: items table")}
    for rel in V2_ONLY:
        shutil.move(os.path.join(held, os.path.basename(rel)), os.path.join(dest, rel))
    shutil.rmtree(held)
    shas["v2"] = commit_version(dest, "v2", "2.0.0", "v2: add item notes")
    return shas


def main(argv=None):
    """`python -m tests.support.apprepo DEST`: create the demo repository once."""
    import sys

    dest = (argv or sys.argv[1:])[0]
    if os.path.isdir(os.path.join(dest, ".git")):
        print(f"{dest}: already there ({git(dest, 'tag')})".replace("\n", ", "))
        return 0
    shas = make_app_repo(os.path.abspath(dest))
    print(f"{dest}: tags " + ", ".join(f"{t}={s[:10]}" for t, s in shas.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())


def make_variant(repo, tag, base="v2", version=None, files=None, remove=()):
    """Commit a variant of `base` (new or changed files, removed paths) as `tag`; returns its sha.

    Branches from base so variants never stack on each other; HEAD goes back to main after.
    """
    git(repo, "checkout", "-q", "-B", f"variant-{tag}", base)
    try:
        for rel, content in (files or {}).items():
            path = os.path.join(repo, rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            if callable(content):
                with open(path) as fh:
                    content = content(fh.read())
            with open(path, "w") as fh:
                fh.write(content)
        for rel in remove:
            git(repo, "rm", "-q", "-r", rel)
        return commit_version(repo, tag, version or "9.0.0-" + tag, f"variant {tag} of {base}")
    finally:
        git(repo, "checkout", "-q", "main")


PLAIN_V2_ONLY = ("prisma/migrations/20260201000000_add_note_pinned",)
PLAIN_V2_MARK = "// v2"


def make_plain_app_repo(dest):
    """examples/app-plain as a git repository at dest with tags v1 and v2; returns {tag: sha}.

    v1 (1.0.0): the `init` migration, and the schema without the lines marked `// v2`;
    v2 (2.0.0): adds `add_note_pinned` (an additive column) and those lines. The lockfile is the
    same in both, as between real releases that change no dependency.
    """
    from .paths import PLAIN_APP

    shutil.copytree(PLAIN_APP, dest, ignore=shutil.ignore_patterns("node_modules", "generated", ".env"))
    schema_path = os.path.join(dest, "prisma", "schema.prisma")
    with open(schema_path) as fh:
        v2_schema = fh.read()
    held = os.path.join(os.path.dirname(dest), os.path.basename(dest) + ".v2-only")
    os.makedirs(held, exist_ok=True)
    for rel in PLAIN_V2_ONLY:
        shutil.move(os.path.join(dest, rel), os.path.join(held, os.path.basename(rel)))
    with open(schema_path, "w") as fh:
        fh.write("".join(line for line in v2_schema.splitlines(True) if PLAIN_V2_MARK not in line))
    git(dest, "init", "-q", "-b", "main")
    shas = {"v1": commit_version(dest, "v1", "1.0.0", "v1: notes table")}
    for rel in PLAIN_V2_ONLY:
        shutil.move(os.path.join(held, os.path.basename(rel)), os.path.join(dest, rel))
    shutil.rmtree(held)
    with open(schema_path, "w") as fh:
        fh.write(v2_schema)
    shas["v2"] = commit_version(dest, "v2", "2.0.0", "v2: notes.pinned")
    return shas
