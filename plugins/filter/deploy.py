# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the deploy and rollback playbooks use to summarise what happened, and to encode
variables for where they go (URLs, the app's environment file)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import time
from urllib.parse import quote

from ansible.errors import AnsibleFilterError
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_point import record_problems

ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
# Characters no line of an environment file can hold: the app reads it line by line (JavaScript's
# `.` stops at \r, \u2028 and \u2029 as well as \n), and NUL ends a C string.
ENV_VALUE_BAD = re.compile("[\n\r\x00\u2028\u2029]")


def url_component(value):
    """Percent-encode one part of a URL (user, password, database) with nothing left safe.

    Jinja's urlencode keeps '/' (and quote() keeps '/' by default), which breaks
    postgresql://user:pass/word@host/db; here every character but A-Z a-z 0-9 _ . - ~ is encoded.
    """
    return quote(str(value), safe="")


def url_host(value):
    """The host part of a URL: an IPv6 address in brackets, a socket directory or name percent-encoded."""
    value = str(value)
    if ":" in value and not value.startswith("["):
        return "[%s]" % value
    return value if value.startswith("[") else quote(value, safe="")


def database_url(user, password, host, port, dbname):
    """postgresql://user:password@host:port/dbname, each part encoded for the URL."""
    userinfo = url_component(user)
    if password is not None and str(password) != "":
        userinfo += ":" + url_component(password)
    return "postgresql://%s@%s:%s/%s" % (userinfo, url_host(host), int(port), url_component(dbname))


SECRET_KEY = re.compile(r"(?i)pass|secret|token|key|credential|auth|private")


def env_problems(env, secrets=None):
    """What is wrong with an app_env mapping, each as app_env.KEY=value (rule); [] when all is well.

    The message goes to the terminal and the log, so a value is shown as <hidden> when its name
    looks secret or it holds one of `secrets` (e.g. db_password).
    """
    if env is None:
        return []
    if not isinstance(env, dict):
        return ["app_env=%s (a mapping of NAME: value)" % type(env).__name__]
    secrets = [str(s) for s in (secrets or []) if s is not None and str(s) != ""]
    out = []
    for key in sorted(env, key=str):
        value = env[key]
        hidden = SECRET_KEY.search(str(key)) or any(s in str(value) for s in secrets)
        shown = "<hidden>" if hidden else str(value).encode("unicode_escape").decode("ascii")
        if not ENV_KEY.match(str(key)):
            out.append("app_env.%s=%s (a name is letters, digits and _, not starting with a digit)"
                       % (str(key).encode("unicode_escape").decode("ascii"), shown))
        elif key in ("PORT", "DATABASE_URL"):
            out.append("app_env.%s=%s (set by the deploy from app_port and db_*: leave it out of app_env)"
                       % (key, shown))
        elif isinstance(value, (dict, list)):
            out.append("app_env.%s=%s (a value is a string, number or boolean)" % (key, shown))
        elif ENV_VALUE_BAD.search(str(value)):
            out.append("app_env.%s=%s (a value cannot hold a line break or NUL)" % (key, shown))
    return out


# An app_root may not be, or lie below, one of these: the deploy writes releases/, shared/, repo/
# and current there, and a rollback or cleanup removes what it finds in releases/.
SYSTEM_DIRS = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/proc", "/run",
               "/sbin", "/snap", "/sys", "/usr", "/var/cache", "/var/lib", "/var/lock", "/var/log",
               "/var/mail", "/var/run", "/var/spool", "/var/tmp", "/lost+found")
# ... nor exactly one of these (their subdirectories are fine: /var/www/app, /home/deploy/app).
SHARED_DIRS = ("/", "/home", "/media", "/mnt", "/opt", "/root", "/srv", "/tmp", "/var", "/var/backups",
               "/var/opt", "/var/www")
PATH_GRAMMAR = re.compile(r"(/[A-Za-z0-9._@+~-]+)+\Z")


def path_problem(value, name="app_root"):
    """Why `value` cannot be the app's root ('' when it can): absolute, normalised, outside the system."""
    value = "" if value is None else str(value)
    if not value.startswith("/"):
        return "an absolute path such as /var/www/<app_name>"
    if not PATH_GRAMMAR.match(value):
        if value.rstrip("/") == "":
            return "the root directory"
        if re.search(r"[^A-Za-z0-9._@+~/-]", value):
            return "a path of letters, digits and . _ @ + ~ - only"
        return "not a normalised path (no '//' and no trailing '/')"
    parts = value.split("/")[1:]
    if any(p in (".", "..") for p in parts):
        return "not a normalised path (no '.' or '..' components)"
    for top in SYSTEM_DIRS:
        if value == top or value.startswith(top + "/"):
            return "at or below the system directory %s" % top
    if value in SHARED_DIRS:
        return "a directory shared with the rest of the system: use a directory of its own below it"
    return ""


def repo_problem(value):
    """Why `value` cannot be app_repo ('' when it can): a git URL or path, never an option."""
    value = "" if value is None else str(value)
    if value == "":
        return "empty"
    if value.startswith("-"):
        return "starts with '-', which git would read as an option"
    if re.search(r"[\x00-\x20\x7f]", value):
        return "holds a space or a control character"
    if re.match(r"(?i)(ext|fd)::", value):
        return "the ext:: and fd:: transports run commands: use ssh://, https:// or a path"
    return ""


def hide_userinfo(url):
    """A URL for messages: any user:password@ part replaced by <hidden>@."""
    return re.sub(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/@]*@", r"\1<hidden>@", str(url))


def env_line(key, value):
    """KEY='value' for the app's environment file, read back exactly by the example app's parser.

    Grammar (examples/app/src/server.js, and dotenv for values without a quote): one NAME='value'
    per line; the value is everything between the first and the last single quote, taken verbatim
    (no escapes, no expansion). Values with a line break cannot be written and are refused.
    """
    if not ENV_KEY.match(str(key)):
        raise AnsibleFilterError("env_line: %r is not a variable name" % (str(key),))
    value = str(value)
    if ENV_VALUE_BAD.search(value):
        raise AnsibleFilterError("env_line: the value of %s holds a line break or NUL" % key)
    return "%s='%s'" % (key, value)


def hooks_problems(hooks, stages):
    """What is wrong with deploy_hooks ({before_<stage>|after_<stage>: task file}) for the deploy's
    `stages` (playbooks/deploy.yml's deploy_stages), as a list of 'deploy_hooks...' strings; a
    misspelt key would otherwise never run and say nothing."""
    if hooks in (None, ""):
        return []
    if not isinstance(hooks, dict):
        return ["deploy_hooks (a mapping of before_<stage> or after_<stage> to a task file)"]
    known = ["%s_%s" % (when, stage) for stage in stages for when in ("before", "after")]
    problems = []
    for key in sorted(hooks, key=str):
        path = hooks[key]
        if key not in known:
            problems.append("deploy_hooks.%s (no such hook; the stages are %s)" % (key, ", ".join(stages)))
        elif not isinstance(path, str) or not path.strip():
            problems.append("deploy_hooks.%s (the path of a task file)" % key)
    return problems


# Worst first: a rollback must treat a mix of classes as the worst one.
DB_CLASS_ORDER = ("destructive", "reversible", "additive")


def stage_entered(run, stage, stages):
    """The run's state having entered `stage` now: its name and the time it began (the marks that
    stage_durations turns into durations). `stage` must be one of `stages` or `done` (after the
    last), so that a stage added to the play without its name in deploy_stages fails at once."""
    if stage not in list(stages) + ["done"]:
        raise AnsibleFilterError("stage %s is not in deploy_stages (%s) in playbooks/deploy.yml"
                                 % (stage, ", ".join(stages)))
    marks = dict(run.get("marks") or {}, **{stage: time.time()})
    return dict(run, stage=stage, marks=marks)


def stage_durations(marks, end):
    """{'start': t0, 'preflight': t1, ...} + end -> {'start': t1-t0, 'preflight': ...} rounded."""
    ordered = sorted(((float(v), k) for k, v in (marks or {}).items()))
    out = {}
    for i, (started, name) in enumerate(ordered):
        finished = ordered[i + 1][0] if i + 1 < len(ordered) else float(end)
        out[name] = round(max(0.0, finished - started), 2)
    return out


def _class_of(item):
    if isinstance(item, dict):
        return item.get("class") or item.get("classification")
    return item


def migration_summary(result, planned=False):
    """Reduce an alembic_migrate / prisma_migrate result to what the history records.

    planned=True: summarise what would run (the pending migrations of a check-mode result) as
    if it had been applied, so deploy --check can say how the deploy would classify.
    """
    result = result or {}
    applied = []
    for item in result.get("pending" if planned else "applied") or []:
        applied.append(item.get("name") or item.get("revision") or item.get("migration") if isinstance(item, dict)
                       else item)
    classification = result.get("classification") or []
    if isinstance(classification, dict):
        classes = [_class_of(v) for v in classification.values()]
    else:
        classes = [_class_of(v) for v in classification]
    classes = [c for c in classes if c]
    if not applied:
        db_class = "none"
    elif not classes:
        db_class = "destructive"  # when in doubt, destructive
    else:
        db_class = next((c for c in DB_CLASS_ORDER if c in classes), "destructive")
    return dict(
        from_version=result.get("from_version"),
        to_version=result.get("to_version"),
        applied=applied,
        db_class=db_class,
        classification=classification,
        findings=result.get("findings") or [],
    )


def rollback_plan(history, live_schema, mode="auto", tool="prisma"):
    """Decide what a rollback does with the database, and why, from the release history.

    The backup of the oldest undone release was taken just before its migrations ran, so it
    holds the target's schema and data: a dump (backup_path) or a pgBackRest restore point
    (restore_point, backup_method: pgbackrest). Returns {action: none|downgrade|restore, reason,
    backup, restore_point, revision, error}; restore_point is checked as the untrusted record it is.
    """
    target = (history or {}).get("target") or {}
    between = (history or {}).get("between") or []
    target_schema = target.get("schema_after")
    backed_up = next((r for r in between if r.get("backup_path") or r.get("restore_point")), {})
    backup = backed_up.get("backup_path") or None
    point = None if backup else backed_up.get("restore_point")
    plan = dict(action="none", reason="", backup=None, restore_point=None, revision=target_schema, error="")
    classes = [r.get("db_class") or "destructive" for r in between]
    if mode == "no":
        plan["reason"] = "rollback_db=no: code only, the database is left as it is"
    elif live_schema == target_schema and mode != "yes":
        plan["reason"] = "the live schema (%s) is already the target's" % (live_schema or "none")
    elif mode == "yes":
        plan.update(action="restore", reason="rollback_db=yes: restore the target's backup")
    elif all(c in ("none", "additive") for c in classes):
        plan["reason"] = ("the migrations since the target only added to the schema (%s): the old code runs on it "
                          "and every row written since stays" % ", ".join(classes))
    elif tool == "alembic" and all(c in ("none", "additive", "reversible") for c in classes) and target_schema:
        plan.update(action="downgrade", reason="the Alembic migrations since the target are reversible: downgrade "
                    "to %s instead of restoring (keeps rows in the tables that stay)" % target_schema)
    else:
        plan.update(action="restore", reason="the migrations since the target are %s: restore the target's backup"
                    % ", ".join(sorted(set(c for c in classes if c not in ("none", "additive")))))
    if plan["action"] == "restore":
        plan.update(backup=backup, restore_point=point)
        problems = record_problems(point) if point else []
        if problems:
            plan["error"] = ("release %s's restore point in the history is not one a deploy records (%s): nothing "
                             "is restored from it; rerun with -e rollback_db=no for a code-only rollback, or restore "
                             "by hand (playbooks/restore.yml)" % (backed_up.get("id", "?"), "; ".join(problems)))
        elif not (backup or point):
            plan["error"] = ("a restore is needed but no backup is recorded for the releases undone (%s); "
                             "rerun with -e rollback_db=no for a code-only rollback, or restore by hand"
                             % ", ".join(r.get("id", "?") for r in between))
    return plan


class FilterModule(object):
    def filters(self):
        return dict(stage_durations=stage_durations, migration_summary=migration_summary, rollback_plan=rollback_plan,
                    url_component=url_component, database_url=database_url, env_problems=env_problems,
                    env_line=env_line, path_problem=path_problem, repo_problem=repo_problem,
                    hide_userinfo=hide_userinfo, hooks_problems=hooks_problems,
                    stage_entered=stage_entered)
