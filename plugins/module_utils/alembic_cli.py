# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading what the `alembic` command line prints: current/heads, offline SQL per revision, failures.

Why parse the CLI rather than import Alembic: Alembic runs in the *application's* virtualenv
(its env.py imports the app's models), not in Ansible's Python, so the module runs it as a
subprocess and reads its output. Offline mode (`upgrade --sql from:to`) prints each revision
after a `-- Running upgrade A -> B` comment; that is how pending SQL is attributed to a
revision. Statements on the version table (`version_num`) and BEGIN/COMMIT are bookkeeping,
not the migration, and are left out of the review.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

from ansible_collections.maestro.deploy.plugins.module_utils.sql_review import split_statements

_REV_LINE = re.compile(r"^([0-9A-Za-z_][\w.-]*)((?:\s+\((?:head|effective head|branchpoint|mergepoint)\))*)\s*$")
_MARKER = re.compile(r"^-- Running (upgrade|downgrade) (.*?) -> (.*?)\s*$", re.M)
_PYTHON = re.compile(r"^python[0-9.]*$")


def alembic_argv(path):
    """argv prefix for an `alembic` executable, or for a Python interpreter (then `-m alembic`)."""
    if _PYTHON.match(os.path.basename(path)):
        return [path, "-m", "alembic"]
    return [path]


def parse_revisions(stdout):
    """Revision ids from `alembic current` / `alembic heads` output (one per line, markers ignored)."""
    revs = []
    for line in (stdout or "").splitlines():
        m = _REV_LINE.match(line.strip())
        if m and not line.startswith(("INFO", "WARN", "DEBUG")):
            revs.append(m.group(1))
    return revs


def is_bookkeeping(stmt):
    """Transaction control and writes to the version table are Alembic's, not the migration's."""
    code = stmt.code
    if re.match(r"^(BEGIN|COMMIT|END|START\s+TRANSACTION)\b", code, re.I):
        return True
    return bool(re.match(r"^(INSERT\s+INTO|UPDATE|DELETE\s+FROM|CREATE\s+TABLE)\b", code, re.I)
                and re.search(r"\bversion_num\b", code, re.I))


def migration_sql(sql):
    """The statements of one revision without Alembic's bookkeeping, each ending with ';'."""
    return "\n\n".join(s.text.rstrip(";").rstrip() + ";" for s in split_statements(sql) if not is_bookkeeping(s))


def split_offline(text):
    """[(direction, from, to, sql)] in order, from offline `--sql` output; sql excludes bookkeeping."""
    marks = list(_MARKER.finditer(text or ""))
    steps = []
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(text)
        steps.append((m.group(1), m.group(2).strip(), m.group(3).strip(), migration_sql(text[m.end():end])))
    return steps


def failed_revision(stderr):
    """The revision whose upgrade()/downgrade() raised, read from the traceback, or None."""
    frames = re.findall(r'File "([^"]+)", line \d+, in (upgrade|downgrade)\b', stderr or "")
    for path, _fn in reversed(frames):
        try:
            with open(path) as fh:
                source = fh.read()
        except (IOError, OSError):
            continue
        m = re.search(r"^revision\s*(?::\s*\w+\s*)?=\s*['\"]([^'\"]+)['\"]", source, re.M)
        if m:
            return m.group(1)
    return None


def db_error(stderr, stdout=""):
    """The error a person needs from a traceback: the last exception line (and the SQL it ran).

    Alembic prints its own `FAILED: ...` messages on stdout, tracebacks on stderr.
    """
    lines = ((stdout or "").strip() + "\n" + (stderr or "").strip()).strip().splitlines()
    for i in range(len(lines) - 1, -1, -1):
        line = lines[i].strip()
        if re.match(r"^(FAILED:|[A-Za-z_][\w.]*(Error|Exception|Warning)\b[^:]*:)", line):
            following = [ln.strip() for ln in lines[i + 1:i + 2] if ln.strip().startswith("[SQL:")]
            return " ".join([line] + following)
    return lines[-1].strip() if lines else "no output"
