"""backup_method: pgbackrest (issue 16, item 4) against real pgBackRest 2.45, real PostgreSQL and
examples/app-plain deployed as it runs: the deploy's backup is a restore point, not a dump; a
deploy whose health check fails after its migration is rescued by a recovery to that point
(scratch cluster, dump, swap), and so is a rollback with restore, which sets aside and counts the
rows written since. A stanza with no backup is refused before anything changes."""

import json
import os
import shutil

import pytest

from tests.integration.test_pgbackrest_restore import pitr_host  # noqa: F401 (the fixture)
from tests.support.apprepo import make_plain_app_repo
from tests.support.http import get_json, post_json
from tests.support.inventory import plain_app_inventory
from tests.support.paths import VENV_BIN
from tests.support.pgbackrest_host import stub_crontab

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None,
                                reason="pgbackrest is not installed (scripts/setup.sh installs it)")

DB = "shop"


@pytest.mark.timeout(1200)  # four deploys and two rollbacks of a Prisma 7 app
def test_deploy_backs_up_with_a_restore_point_and_rescue_and_rollback_recover_to_it(
        pitr_host, playbook, pm2_home, tmp_path):  # noqa: F811
    host, cluster = pitr_host, pitr_host.cluster
    env = {"PATH": os.pathsep.join([stub_crontab(host.base), VENV_BIN, os.environ["PATH"]])}
    setup = playbook("pgbackrest.yml", host.inventory(pgbackrest_restart_allowed=True), envvars=env)
    assert setup.ok, setup.stdout
    cluster.create_database(DB)

    repo = str(tmp_path / "plain-app.git")
    make_plain_app_repo(repo)
    inventory = plain_app_inventory(tmp_path, cluster, DB, repo, pm2_home, pm2_app_stable_for=1,
                                    smoke_test_timeout=60)
    hv = inventory["all"]["vars"]
    # No room is wanted for a dump: a factor no disk meets fails a deploy whose backup is a dump.
    hv.update(host.vars, backup_method="pgbackrest", backup_dir=host.backups, backup_owner="postgres",
              preflight_backup_space_factor=10000000)
    url, root = hv["healthcheck_url"], hv["app_root"]
    notes = url.replace("/health", "/notes")

    def deploy(version, **extravars):
        return playbook("deploy.yml", inventory, envvars=env, extravars=dict(extravars, app_version=version))

    def history():
        with open(os.path.join(root, "history.json")) as fh:
            return json.load(fh)

    def columns():
        return cluster.psql("SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM "
                            "information_schema.columns WHERE table_name = 'notes'", db=DB)

    # No backup in the stanza yet: a restore point could not be recovered, so the deploy stops at
    # its backup stage, before anything changed, and says what to do.
    refused = deploy("v1")
    assert not refused.ok
    (failed,) = [t for t in refused.failed_tasks() if t["task"].startswith("Make the restore point")]
    assert "stanza %s has no backup: a restore point can only be recovered from a backup taken before it" \
        % host.stanza in failed["res"]["msg"], failed["res"]["msg"]
    assert "or use backup_method: dump. Nothing was changed" in failed["res"]["msg"]
    assert not os.path.exists(os.path.join(root, "current"))
    assert [(r["status"], r["failure"]["stage"]) for r in history()["releases"]] == [("failed", "backup")]
    assert cluster.psql("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'", db=DB) == "0"

    host.pgbackrest("--type=full", "backup")
    backup = host.info()["repos"][0]["newest_backup"]
    first = deploy("v1")
    assert first.ok, first.stdout[-5000:]
    (v1,) = [r for r in history()["releases"] if r["status"] == "success"]
    point = v1["restore_point"]
    assert point["method"] == "pgbackrest" and point["name"] == "maestro-" + v1["id"][:55]
    assert point["stanza"] == host.stanza and point["set"] == backup["label"] and point["repo"] == 1
    assert v1.get("backup_path") is None and os.listdir(host.backups) == []  # no dump was made
    (made,) = [r["res"] for r in first.task_results("Make the restore point and wait until its WAL is in the "
                                                    "repository")]
    assert [c["cmd"][-2:] for c in made["commands"]][-1] == ["--archive-timeout=60", "check"]
    print("restore point %s at WAL %s archived in %.2f s" % (point["name"], point["lsn"], made["duration_s"]))
    for _ in range(3):
        assert post_json(notes, {})[0] == 201
    assert columns() == "id,body,created_at"

    # v2 migrates (notes.pinned), then fails its health check: the rescue puts v1 back and, with
    # deploy_rescue_db=restore, recovers the database to v2's restore point.
    broken = deploy("v2", deploy_rescue_db="restore", healthcheck_expect={"status": "never"}, smoke_test_timeout=3)
    assert not broken.ok
    (v2_failed,) = [r for r in history()["releases"] if r["version"] == "v2"]
    assert v2_failed["status"] == "failed" and v2_failed["restore_point"]["name"].startswith("maestro-")
    assert "database %s restored from restore point %s (pgBackRest stanza %s); the copy from before the restore " \
        "is kept as %s__pre_restore_" % (DB, v2_failed["restore_point"]["name"], host.stanza, DB) in broken.stdout, \
        broken.stdout[-5000:]
    assert columns() == "id,body,created_at"  # the migration undone
    assert cluster.psql("SELECT count(*) FROM notes", db=DB) == "3"
    assert get_json(url)[1]["version"] == "1.0.0"

    # v2 again, for real; two notes are written after its restore point.
    second = deploy("v2")
    assert second.ok, second.stdout[-5000:]
    assert columns() == "id,body,created_at,pinned"
    for _ in range(2):
        assert post_json(notes, {})[0] == 201
    (v2,) = [r for r in history()["releases"] if r["version"] == "v2" and r["status"] == "success"]
    print(json.dumps({"restore_point": v2["restore_point"]}, sort_keys=True))

    # The history is the host's file: a restore point naming another stanza is refused, with nothing
    # changed (the stanza given to pgBackRest is the inventory's).
    path = os.path.join(root, "history.json")
    kept = open(path).read()
    tampered = json.loads(kept)
    for release in tampered["releases"]:
        if release["id"] == v2["id"]:
            release["restore_point"]["stanza"] = "prod_other"
    with open(path, "w") as fh:
        json.dump(tampered, fh)
    refused = playbook("rollback.yml", inventory, envvars=env, extravars={"rollback_db": "yes"})
    assert not refused.ok
    (failed,) = refused.failed_tasks()
    assert failed["task"].startswith("Refuse a restore point of another stanza"), failed
    assert "is of stanza prod_other, not %s (pgbackrest_stanza)" % host.stanza in failed["res"]["msg"]
    assert get_json(url)[1]["version"] == "2.0.0" and columns() == "id,body,created_at,pinned"
    with open(path, "w") as fh:
        fh.write(kept)

    # A rollback with restore: check mode shows the recovery and changes nothing.
    preview = playbook("rollback.yml", inventory, envvars=env, check=True, extravars={"rollback_db": "yes"})
    assert preview.ok, preview.stdout[-5000:]
    (plan,) = [r["res"]["msg"] for r in preview.task_results("Show the rollback plan")]
    assert any(line.strip().startswith("restore point: %s in pgBackRest stanza %s, made %s" % (
        v2["restore_point"]["name"], host.stanza, v2["restore_point"]["time"])) for line in plan), plan
    (recovery,) = [r["res"]["msg"] for r in preview.task_results("Show the recovery that restores the database")]
    print("\n".join(plan + recovery))
    assert recovery[1].startswith("Backup set: %s in repo1 (full, " % backup["label"]), recovery
    assert get_json(url)[1]["version"] == "2.0.0" and columns() == "id,body,created_at,pinned"

    run = playbook("rollback.yml", inventory, envvars=env, extravars={"rollback_db": "yes"})
    assert run.ok, run.stdout[-5000:]
    (summary,) = [r["res"]["msg"] for r in run.task_results("Summarise the rollback")]
    print("\n".join(summary))
    assert get_json(url)[1]["version"] == "1.0.0"
    assert columns() == "id,body,created_at" and cluster.psql("SELECT count(*) FROM notes", db=DB) == "3"
    (scratch,) = [r["res"] for r in run.task_results("Restore the backup into the scratch cluster and wait until it "
                                                     "has promoted", ran=True)]
    argv = [c["cmd"] for c in scratch["commands"] if "restore" in c["cmd"]][0]
    assert "--type=name" in argv and "--target=%s" % v2["restore_point"]["name"] in argv
    assert "--set=%s" % backup["label"] in argv
    assert scratch["recovery"]["stopped"].startswith("recovery stopping at restore point \"%s\""
                                                     % v2["restore_point"]["name"]), scratch["recovery"]
    event = history()["events"][-1]
    assert (event["type"], event["outcome"], event["database"]) == ("rollback", "success", "restore")
    assert event["restore_point"] == v2["restore_point"]["name"]
    assert event["lost_rows"] == {"public.notes": 2}
    assert cluster.psql("SELECT count(*) FROM notes", db=event["previous_db"]) == "5"
    # The scratch clusters are gone; what is left in the backup directory is the dumps of the two
    # recoveries (pg_backup's, with their manifests).
    left = sorted(os.listdir(host.backups))
    assert len(left) == 4 and all(n.endswith((".dump", ".dump.json")) for n in left), left
