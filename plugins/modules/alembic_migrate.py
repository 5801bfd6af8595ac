#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: alembic_migrate
short_description: Run Alembic migrations idempotently, with a pending list, SQL preview and a safety review
description:
  - Upgrades (or downgrades) a database with the project's own Alembic environment, run as a subprocess
    (C(alembic -c <config> ...)) in O(project_dir), with the Alembic of the application's virtualenv when
    O(alembic) points at it.
  - Before applying, the pending revisions between the database's current revision and O(revision) and their
    SQL are computed with Alembic's offline mode (C(upgrade --sql from:to)); the SQL is reviewed for risky
    statements and each revision is classified C(additive), C(reversible) (its downgrade emits statements and
    nothing in the upgrade destroys data) or C(destructive), for the rollback decision.
  - An unknown or bad O(revision) fails before anything runs, naming it. Several heads are refused for
    O(revision=head) and always reported in RV(heads).
  - "The database URL contract: the project's C(env.py) must read the URL from the environment variable
    C(DATABASE_URL) (the module passes O(database_url) only there, never in argv or C(alembic.ini)), and should
    use C(transactional_ddl) on PostgreSQL so that a failing migration leaves the previous revision."
  - C(changed) is true only when the database's revision moved.
version_added: "0.1.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.migration_review
options:
  project_dir:
    description: Directory holding the Alembic config file; commands run there. Must exist.
    type: path
    required: true
  config:
    description: Alembic config file, relative to O(project_dir) unless absolute.
    type: path
    default: alembic.ini
  database_url:
    description:
      - Database URL, e.g. C(postgresql://user:password@host:5432/db). Passed to Alembic only in the environment
        variable C(DATABASE_URL), which the project's C(env.py) reads. Never logged or returned.
    type: str
    required: true
  revision:
    description:
      - Target revision for O(command=upgrade) (default C(head)) or O(command=downgrade) (required there; a
        revision id, C(base) or a relative step such as C(-1)).
    type: str
  command:
    description:
      - C(upgrade) to O(revision); C(downgrade) to O(revision); C(current) only reports the current revision
        and the heads.
    type: str
    choices: [upgrade, downgrade, current]
    default: upgrade
  alembic:
    description:
      - Path to the C(alembic) executable, or to the Python interpreter of the application's virtualenv (then
        C(python -m alembic) runs).
      - Default is C(alembic) found next to the Python running this module, then on C(PATH).
    type: path
  lock_timeout:
    description:
      - The longest any migration statement waits for a table lock, e.g. C(3s), C(500ms), C(1min) (a bare number is
        seconds). It reaches Alembic's session as C(PGOPTIONS=-c lock_timeout=...) in its environment, which
        libpq-based drivers (psycopg, psycopg2) apply; a URL or C(env.py) that sets its own options wins.
      - When it expires the failed run is retried O(lock_retries) times after pauses of 1 s, doubling, at most 30 s
        (with C(transactional_ddl) nothing of the failed run stays); giving up fails the task naming the blocking
        sessions (RV(blockers)), seen with C(pg_blocking_pids()) from a second connection (psycopg on the host).
    type: str
    default: 3s
  lock_retries:
    description: How many times an upgrade or downgrade that hit O(lock_timeout) is run again (0 = once only).
    type: int
    default: 5
  statement_timeout:
    description: Optional PostgreSQL C(statement_timeout) of Alembic's session (same format as O(lock_timeout)).
    type: str
attributes:
  check_mode:
    support: full
    description: Reports the pending revisions, their offline SQL, findings and classification; applies nothing.
  diff_mode:
    support: none
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
notes:
  - Findings name the revision, the statement and why it is risky; the rules are those of
    M(maestro.deploy.prisma_migrate).
  - On failure the result names the revision that failed (RV(failed_migration)) and the database error, and
    RV(to_version) is the revision the database is at afterwards.
requirements:
  - Alembic in the application's virtualenv (or next to Ansible's Python)
seealso:
  - module: maestro.deploy.prisma_migrate
  - name: Alembic offline mode
    description: Generating SQL scripts with C(--sql).
    link: https://alembic.sqlalchemy.org/en/latest/offline.html
"""

EXAMPLES = r"""
- name: Preview pending revisions, their SQL and the review findings
  maestro.deploy.alembic_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    alembic: /srv/app/venv/bin/python
  check_mode: true
  register: plan

- name: Upgrade to head, refusing risky SQL
  maestro.deploy.alembic_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    review: fail

- name: Downgrade to a named revision
  maestro.deploy.alembic_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    command: downgrade
    revision: 0001_init

- name: Current revision and number of heads (deploy preflight)
  maestro.deploy.alembic_migrate:
    project_dir: /srv/app/current
    database_url: "{{ app_database_url }}"
    command: current
  register: alembic_state
"""

RETURN = r"""
from_version:
  description: Revision before the run (null for an empty database; several are joined with a comma).
  returned: always
  type: str
  sample: 0001_init
to_version:
  description: Revision after the run (in check mode, the target).
  returned: always
  type: str
  sample: 0002_add_item_notes
heads:
  description: Head revisions of the script directory (more than one means unmerged branches).
  returned: always
  type: list
  elements: str
applied:
  description: Revisions applied (or, for a downgrade, undone) by this run, in order.
  returned: always
  type: list
  elements: str
pending:
  description: Revisions that the run would apply (or undo); empty after a successful run.
  returned: always
  type: list
  elements: str
findings:
  description: Review findings of the pending SQL (migration, statement, rule, why, data_loss, line).
  returned: always
  type: list
  elements: dict
classification:
  description: Per pending revision, C(additive), C(reversible) or C(destructive), with reasons.
  returned: always
  type: list
  elements: dict
  sample:
    - migration: 0002_add_item_notes
      class: additive
      reasons: [only adds schema objects the previous release ignores]
sql:
  description: Offline SQL of each pending revision (C(migration), C(sql)), without Alembic's bookkeeping.
  returned: when O(preview=true) or in check mode
  type: list
  elements: dict
failed_migration:
  description: The revision that failed.
  returned: on failure of a migration
  type: str
blockers:
  description: On a lock timeout, the sessions that held the locks (C(pid), C(application_name), C(state), C(seconds),
    the first 100 characters of C(query)).
  returned: on a lock timeout
  type: list
  elements: dict
lock_attempts:
  description: How many times the failed upgrade or downgrade ran.
  returned: on failure of a migration
  type: int
commands:
  description: The Alembic commands run (argv, rc, duration), without secrets.
  returned: always
  type: list
  elements: dict
"""

import os  # noqa: E402
import sys  # noqa: E402
from urllib.parse import unquote, urlsplit  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import alembic_cli, pg_locks  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.database_url import (  # noqa: E402
    DatabaseUrlError, parse_database_url)
from ansible_collections.maestro.deploy.plugins.module_utils.pg_connection import application_name  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.migration_plan import review_pending  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402

HEAD_NAMES = ("head", "heads")


class Alembic:
    """The project's Alembic, run through the Runner in project_dir."""

    def __init__(self, module, runner, argv0):
        self.module = module
        self.runner = runner
        self.base = argv0 + ["-c", module.params["config"]]

    def run(self, args, check=True, what=None):
        return self.runner.run(self.base + args, check=check, cwd=self.module.params["project_dir"],
                               what=what or "alembic " + args[0])

    def current(self):
        return alembic_cli.parse_revisions(self.run(["current"])[1])

    def heads(self):
        return alembic_cli.parse_revisions(self.run(["heads"])[1])

    def offline(self, direction, span):
        rc, out, err = self.run([direction, "--sql", span], check=False, what="alembic %s --sql" % direction)
        return rc, out, err


def fail(runner, result, exc, **extra):
    """Alembic's failure, named by the database's own error rather than the traceback's last line."""
    msg = extra.pop("msg", None) or "%s: %s" % (exc.msg.split(":")[0], alembic_cli.db_error(exc.stderr, exc.stdout))
    runner.fail(msg, error=exc, result=result, **extra)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            project_dir=dict(type="path", required=True),
            config=dict(type="path", default="alembic.ini"),
            database_url=dict(type="str", required=True, no_log=True),
            revision=dict(type="str"),
            command=dict(type="str", default="upgrade", choices=["upgrade", "downgrade", "current"]),
            alembic=dict(type="path"),
            review=dict(type="str", default="warn", choices=["off", "warn", "fail"]),
            preview=dict(type="bool", default=False),
            lock_timeout=dict(type="str", default="3s"),
            lock_retries=dict(type="int", default=5),
            statement_timeout=dict(type="str"),
        ),
        required_if=[("command", "downgrade", ("revision",))],
        supports_check_mode=True,
    )
    p = module.params
    if not os.path.isdir(p["project_dir"]):
        module.fail_json(msg="project_dir %s does not exist or is not a directory" % p["project_dir"])
    if not os.path.isfile(os.path.join(p["project_dir"], p["config"])):
        module.fail_json(msg="config %s not found in project_dir %s" % (p["config"], p["project_dir"]))
    if p["command"] == "downgrade" and p["revision"] in HEAD_NAMES:
        module.fail_json(msg="revision=%s: a downgrade needs an older revision (an id, base or -N)" % p["revision"])

    try:
        lock_ms = pg_locks.parse_duration(p["lock_timeout"], "lock_timeout")
        stmt_ms = (pg_locks.parse_duration(p["statement_timeout"], "statement_timeout")
                   if p["statement_timeout"] not in (None, "") else None)
    except ValueError as exc:
        module.fail_json(msg=str(exc))
    if p["lock_retries"] < 0 or p["lock_retries"] > 20:
        module.fail_json(msg="lock_retries=%s: use 0 to 20" % p["lock_retries"])
    options = os.environ.get("PGOPTIONS", "").strip()
    options = (options + " " if options else "") + "-c lock_timeout=%s" % pg_locks.pg_duration(lock_ms)
    if stmt_ms:
        options += " -c statement_timeout=%s" % pg_locks.pg_duration(stmt_ms)
    # PGAPPNAME: how the watcher recognises Alembic's session (the run's name, as every session of ours).
    runner = Runner(module, environ={"DATABASE_URL": p["database_url"], "PGOPTIONS": options,
                                     "PGAPPNAME": application_name()},
                    secrets=[p["database_url"]] + _passwords(p))
    exe = runner.bin("alembic", explicit=p["alembic"], opt_dirs=[os.path.dirname(sys.executable)])
    alembic = Alembic(module, runner, alembic_cli.alembic_argv(exe))
    result = dict(changed=False, applied=[], pending=[], findings=[], classification=[], commands=runner.history)

    try:
        heads = alembic.heads()
        before = alembic.current()
    except CommandError as exc:
        fail(runner, result, exc)
    version = ",".join(before) or None
    result.update(heads=heads, from_version=version, to_version=version)
    if p["command"] == "current":
        module.exit_json(**result)

    target = p["revision"] or "head"
    if target in HEAD_NAMES:
        if len(heads) > 1:
            module.fail_json(msg="revision=%s but the scripts have %d heads (%s): merge them (alembic merge) or name "
                                 "a revision" % (target, len(heads), ", ".join(heads)), **result)
        target = heads[0] if heads else target
    if len(before) > 1:
        module.fail_json(msg="the database is at several revisions (%s): name the branch to act on" % version,
                         **result)
    if p["command"] == "upgrade" and version == target:
        module.exit_json(**result)
    if p["command"] == "downgrade" and version is None:
        if target != "base":
            module.fail_json(msg="revision=%s: the database has no Alembic revision, nothing to downgrade"
                             % target, **result)
        module.exit_json(**result)

    steps, final = plan(module, alembic, result, p["command"], version, target)
    if not steps:
        module.exit_json(**result)
    result["to_version"] = final
    if module.check_mode:
        result["changed"] = True
        module.exit_json(**result)

    retry = pg_locks.LockRetry(pg_locks.delays(p["lock_retries"]), None, p["lock_timeout"])
    with watcher(module) as watch:
        retry.watch = watch
        attempt = 0
        while True:
            retry.attempts = attempt + 1
            try:
                alembic.run([p["command"], target], what="alembic %s %s" % (p["command"], target))
                break
            except CommandError as exc:
                problem = pg_locks.ToolError((exc.stderr or "") + "\n" + (exc.stdout or ""))
                if not retry.give_up(problem, attempt):
                    attempt += 1
                    continue
                after = _current_or_none(alembic)
                failed = alembic_cli.failed_revision(exc.stderr) or _first_not_done(steps, after, p["command"])
                error = alembic_cli.db_error(exc.stderr, exc.stdout)
                after_text = after or "no revision (empty)"
                extra = dict(failed_migration=failed, to_version=after, changed=after != version,
                             applied=_done(steps, after, p["command"]), lock_attempts=retry.attempts)
                if pg_locks.is_lock_timeout(problem):
                    extra["blockers"] = retry.blockers
                    extra["msg"] = (
                        "alembic %s: migration %s could not take its locks: %s. The database is at %s afterwards (%s); "
                        "end the blocking session or wait until it is done, then run again" % (
                            p["command"], failed, retry.why(), after_text,
                            "nothing was applied" if after == version else "the revisions before it stayed applied"))
                else:
                    extra["msg"] = ("alembic %s: migration %s failed: %s; the database is at %s afterwards"
                                    % (p["command"], failed, error, after_text))
                fail(runner, result, exc, **extra)
    after = _current_or_none(alembic)
    result.update(to_version=after, changed=after != version, applied=_done(steps, after, p["command"]),
                  pending=[s for s in result["pending"] if s not in _done(steps, after, p["command"])])
    module.exit_json(**result)


def watcher(module):
    """A BlockerWatch on Alembic's session(s) (our application_name), or a no-op without psycopg."""
    try:
        import psycopg
        kwargs, _schema = parse_database_url(module.params["database_url"])
    except (ImportError, DatabaseUrlError):
        return pg_locks.BlockerWatch(_no_connection, lambda _c: [])
    return pg_locks.BlockerWatch(lambda: psycopg.connect(autocommit=True, **kwargs),
                                 pg_locks.our_sessions(application_name()))


def _no_connection():
    raise RuntimeError("psycopg is not installed here: blocking sessions cannot be named")


def plan(module, alembic, result, command, version, target):
    """Pending revisions with their SQL (offline mode), reviewed and classified; fills `result`."""
    span = "%s:%s" % (version, target) if version else target
    rc, out, err = alembic.offline(command, span)
    if rc != 0:
        module.fail_json(msg="revision=%s: alembic cannot plan %s %s: %s" % (
            module.params["revision"] or "head", command, span, alembic_cli.db_error(err, out)),
            rc=rc, stderr=err, cmd=alembic.runner.history[-1]["cmd"], **result)
    steps = alembic_cli.split_offline(out)
    if command == "upgrade":
        names = [to for _d, _f, to, _s in steps]
        downgrades = reversible_revisions(alembic, version, target)
        pending = [(to, sql, to in downgrades) for _d, _f, to, sql in steps]
    else:
        names = [frm for _d, frm, _t, _s in steps]
        pending = [(frm, sql, False) for _d, frm, _t, sql in steps]
    result["pending"] = names
    review_pending(module, result, pending)
    final = (steps[-1][2] or None) if steps else version
    return names, final


def reversible_revisions(alembic, version, target):
    """Revisions whose downgrade emits statements (offline `downgrade --sql target:from`)."""
    rc, out, _err = alembic.offline("downgrade", "%s:%s" % (target, version or "base"))
    if rc != 0:
        return set()
    return set(frm for _d, frm, _t, sql in alembic_cli.split_offline(out) if sql.strip())


def _current_or_none(alembic):
    try:
        return ",".join(alembic.current()) or None
    except CommandError:
        return None


def _done(steps, after, command):
    """Revisions of `steps` (in order) applied (or undone) given the revision the database ended at."""
    if command == "upgrade":
        return steps[:steps.index(after) + 1] if after in steps else []
    if after is None:
        return list(steps)
    undone = []
    for rev in steps:
        if rev == after:
            break
        undone.append(rev)
    return undone


def _first_not_done(steps, after, command):
    done = _done(steps, after, command)
    rest = [s for s in steps if s not in done]
    return rest[0] if rest else None


def _passwords(params):
    """The URL's password as written (percent-encoded) and as libpq gets it: both are masked."""
    try:
        password = urlsplit(params.get("database_url") or "").password
    except ValueError:
        return []
    return [password, unquote(password)] if password else []


if __name__ == "__main__":
    main()
