# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the deploy and rollback playbooks use to summarise what happened."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

# Worst first: a rollback must treat a mix of classes as the worst one.
DB_CLASS_ORDER = ("destructive", "reversible", "additive")


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
    holds the target's schema and data. Returns {action: none|downgrade|restore, reason,
    backup, revision, error}.
    """
    target = (history or {}).get("target") or {}
    between = (history or {}).get("between") or []
    target_schema = target.get("schema_after")
    backup = next((r.get("backup_path") for r in between if r.get("backup_path")), None)
    plan = dict(action="none", reason="", backup=None, revision=target_schema, error="")
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
        plan["backup"] = backup
        if not backup:
            plan["error"] = ("a restore is needed but no backup is recorded for the releases undone (%s); "
                             "rerun with -e rollback_db=no for a code-only rollback, or restore by hand"
                             % ", ".join(r.get("id", "?") for r in between))
    return plan


class FilterModule(object):
    def filters(self):
        return dict(stage_durations=stage_durations, migration_summary=migration_summary, rollback_plan=rollback_plan)
