"""Filters behind the deploy summary and the rollback plan."""

import pytest
from ansible_collections.maestro.deploy.plugins.filter.deploy import migration_summary, rollback_plan, stage_durations
from ansible_collections.maestro.deploy.plugins.module_utils.lost_rows import count_missing


def test_stage_durations_in_order():
    marks = {"start": 100.0, "preflight": 100.5, "backup": 102.0, "record": 110.0}
    assert stage_durations(marks, 111.25) == {"start": 0.5, "preflight": 1.5, "backup": 8.0, "record": 1.25}


@pytest.mark.parametrize("classes, expected", [
    ([], "none"), (["additive"], "additive"), (["additive", "reversible"], "reversible"),
    (["reversible", "destructive", "additive"], "destructive"),
])
def test_migration_summary_takes_worst_class(classes, expected):
    result = {"applied": [f"m{i}" for i in range(len(classes))],
              "classification": [{"migration": f"m{i}", "class": c} for i, c in enumerate(classes)]}
    assert migration_summary(result)["db_class"] == expected


def test_migration_summary_unknown_class_is_destructive():
    assert migration_summary({"applied": ["m1"]})["db_class"] == "destructive"


def test_planned_summary_reads_the_pending_migrations_of_a_check_mode_result():
    check_mode_result = {"applied": [], "pending": ["0002_add_item_notes"], "from_version": "0001",
                         "classification": [{"migration": "0002_add_item_notes", "class": "additive"}]}
    assert migration_summary(check_mode_result)["db_class"] == "none"
    planned = migration_summary(check_mode_result, planned=True)
    assert (planned["applied"], planned["db_class"]) == (["0002_add_item_notes"], "additive")


def hist(*classes, backup="/b/x.dump"):
    between = [{"id": f"r{i}", "db_class": c, "backup_path": backup if i == 0 else None}
               for i, c in enumerate(classes)]
    return {"target": {"id": "t", "schema_after": "0001"}, "between": between}


@pytest.mark.parametrize("history, live, mode, tool, action", [
    (hist("additive"), "0002", "auto", "prisma", "none"),
    (hist("none", "additive"), "0002", "auto", "alembic", "none"),
    (hist("reversible"), "0002", "auto", "alembic", "downgrade"),
    (hist("reversible"), "0002", "auto", "prisma", "restore"),
    (hist("destructive"), "0002", "auto", "alembic", "restore"),
    (hist("destructive"), "0002", "no", "alembic", "none"),
    (hist("additive"), "0002", "yes", "alembic", "restore"),
    (hist("destructive"), "0001", "auto", "prisma", "none"),
])
def test_rollback_plan(history, live, mode, tool, action):
    plan = rollback_plan(history, live, mode, tool)
    assert plan["action"] == action
    assert plan["reason"]
    if action == "restore":
        assert plan["backup"] == "/b/x.dump"


def test_rollback_plan_without_backup_says_what_to_do():
    plan = rollback_plan(hist("destructive", backup=None), "0002", "auto", "prisma")
    assert plan["action"] == "restore" and "rollback_db=no" in plan["error"]


def test_count_missing_merges_sorted_keys():
    assert count_missing([(1,), (2,), (5,), (7,)], [(1,), (3,), (5,)]) == 2
    assert count_missing([], [(1,)]) == 0
    assert count_missing([(1,), (2,)], []) == 2
