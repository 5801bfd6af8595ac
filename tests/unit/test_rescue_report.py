"""The failed deploy's report (playbooks/templates/rescue_report.j2), rendered by Ansible's own
templar from the run's state: it says what the rescue did in the cases a test run rarely reaches."""

import os

import pytest
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SKIPPED = {"skipped": True, "changed": False}
UNDEFINED = object()  # a result the rescue never registered


def report(run_changes=None, **facts):
    with open(os.path.join(REPO, "playbooks", "templates", "rescue_report.j2")) as fh:
        source = fh.read()
    run = dict(id="R2", stage="switch", switched=False, previous="", noop=False, backup={"path": "/b/app.dump"},
               migration_started=False, current_before=None, pm2_before=[], pm2_kept_ids=None, takeover={})
    run.update(run_changes or {})
    variables = dict(deploy_run=run, deploy_rescue_failure=dict(stage=run["stage"], task="a task", msg="it broke"),
                     inventory_hostname="app1", app_name="app", db_name="appdb", rollback_restored=SKIPPED,
                     deploy_rescue_takeback=SKIPPED)
    variables.update(facts)
    variables = {name: value for name, value in variables.items() if value is not UNDEFINED}
    return Templar(loader=DataLoader(), variables=variables).template(trust_as_template(source)).strip().splitlines()


TAKEN_OVER = {"stage": "switch", "pm2_kept_ids": [], "takeover": {"changed": True, "retired": [0],
                                                                  "definitions": [{"name": "app", "cwd": "/srv/app"}]}}


@pytest.mark.parametrize("takeback, line", [
    ({"changed": True, "definitions": [{"cwd": "/srv/app"}], "gap_s": 2.5},
     "- the process this deploy had taken over from was started again from /srv/app: it serves again;"
     " nothing served for 2.5 s."),
    ({"failed": True, "changed": False, "msg": "not online after 30s"},
     "- STARTING AGAIN THE PROCESS THIS DEPLOY TOOK OVER FROM FAILED: not online after 30s. Start it by hand:"
     ' [{"name": "app", "cwd": "/srv/app"}].'),
])
def test_a_takeover_that_failed_before_the_switch_reports_the_process_started_again(takeback, line):
    """The takeover runs before current moves: the report says what became of the old process."""
    assert line in report(TAKEN_OVER, deploy_rescue_takeback=takeback)


def test_the_same_after_the_switch_with_no_earlier_release():
    lines = report(dict(TAKEN_OVER, switched=True, current_before=""),
                   deploy_rescue_takeback={"changed": True, "definitions": [{"cwd": "/srv/app"}], "gap_s": 1.0})
    assert any(line.startswith("- the process this deploy had taken over from was started again") for line in lines)
    assert not any("nothing of app ran under PM2" in line for line in lines)


def test_a_database_part_that_could_not_run_is_said_with_the_backup():
    lines = report({"stage": "migrate", "migration_started": True, "previous": "R1"},
                   rollback_restored=UNDEFINED, deploy_rescue_db_error="rollback_rescue_db: value must be one of ...")
    assert ("- THE DATABASE PART OF THE RESCUE DID NOT RUN: rollback_rescue_db: value must be one of .... Database"
            " appdb is as the failed run left it (the migration stage had started). Backup: /b/app.dump.") in lines


def test_a_restore_after_a_switch_back():
    lines = report({"switched": True, "previous": "R1", "migration_started": True},
                   rollback_restored={"changed": True, "previous_db": "appdb__pre_restore_1"},
                   deploy_rescue_health="passed")
    assert lines[2:4] == [
        "- current points back to release R1, reloaded under PM2; its health check passed.",
        "- database appdb restored from /b/app.dump; the copy from before the restore is kept as appdb__pre_restore_1."]
