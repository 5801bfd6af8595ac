"""deploy.yml, rollback.yml and status.yml end to end, through ansible-runner, on the real
cluster, real PM2 and the example app's git repository."""

import json
import os
import subprocess

import psycopg
import pytest

from tests.support.apprepo import make_variant
from tests.support.http import Receiver, get_json, post_json, wait_for_health
from tests.support.inventory import local_inventory
from tests.support.pgprobe import Probe

BAD_ALEMBIC = '''"""bad: a good statement, then one that fails."""
from alembic import op

revision = "0003_bad"
down_revision = "0002_add_item_notes"
branch_labels = None
depends_on = None


def upgrade():
    op.execute("ALTER TABLE items ADD COLUMN half_done integer")
    op.execute("INSERT INTO no_such_table VALUES (1)")


def downgrade():
    op.execute("ALTER TABLE items DROP COLUMN half_done")
'''


@pytest.fixture
def deploy_env(pg_cluster, pg_db, pm2_home, app_repo, tmp_path, playbook):
    """An inventory for one app host on this machine plus helpers to read what serves."""
    repo, shas = app_repo
    inventory = local_inventory(tmp_path, pg_cluster, pg_db, repo, pm2_home,
                                pm2_app_stable_for=1, smoke_test_timeout=30)
    hv = inventory["all"]["vars"]

    class Env:
        vars = hv
        url = hv["healthcheck_url"]
        items_url = hv["healthcheck_url"].replace("/health", "/items")
        app_root = hv["app_root"]

        def deploy(self, version, **kwargs):
            extravars = dict(kwargs.pop("extravars", {}), app_version=version)
            return playbook("deploy.yml", inventory, extravars=extravars, **kwargs)

        def rollback(self, **extravars):
            check = extravars.pop("check", False)
            return playbook("rollback.yml", inventory, extravars=extravars, check=check)

        def status(self):
            return playbook("status.yml", inventory)

        def history(self):
            with open(os.path.join(self.app_root, "history.json")) as fh:
                return json.load(fh)

        def health(self):
            return get_json(self.url)[1]

        def sql(self, query):
            with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
                return conn.execute(query).fetchall()

    env = Env()
    env.repo, env.shas, env.db = repo, shas, pg_db
    return env


def assert_ok(run):
    assert run.ok, run.stdout[-4000:]


def test_v1_then_v2_keeps_data_and_records_history(deploy_env, tmp_path):
    env = deploy_env
    assert_ok(env.deploy("v1"))
    assert env.health()["revision"] == env.shas["v1"]
    post_json(env.items_url, {"name": "written-on-v1"})

    # app_repo moves: v2 is deployed from a new repository, under a tag only the new one has; the
    # mirror on the host must follow app_repo (main kept fetching from the old URL)
    moved = str(tmp_path / "moved.git")
    subprocess.run(["git", "clone", "-q", "--bare", env.repo, moved], check=True)
    subprocess.run(["git", "-C", moved, "tag", "v2-moved", "v2"], check=True)
    run = env.deploy("v2-moved", extravars={"app_repo": moved})
    assert_ok(run)
    assert "app_repo changed" in run.stdout and moved in run.stdout
    body = env.health()
    assert body["revision"] == env.shas["v2"] and body["schema_version"] == "0002_add_item_notes"
    assert [i["name"] for i in get_json(env.items_url)[1]] == ["written-on-v1"]
    # the deploy names its database sessions after its release; the app it started under PM2 must
    # not inherit that name (its sessions would keep a lost deploy's lock)
    app_sessions = env.sql("SELECT application_name FROM pg_stat_activity "
                           "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    assert app_sessions and not [n for (n,) in app_sessions if n.startswith("maestro.deploy")], app_sessions

    history = env.history()
    v1, v2 = history["releases"]
    assert (v1["status"], v2["status"]) == ("success", "success")
    assert v2["schema_before"] == "0001_init" and v2["schema_after"] == "0002_add_item_notes"
    assert v2["db_class"] == "additive" and v2["previous"] == v1["id"]
    assert os.path.exists(v2["backup_path"]) and oct(os.stat(v2["backup_path"]).st_mode & 0o777) == "0o600"
    assert set(v2["stages"]) >= {"preflight", "backup", "release", "migrate", "switch", "smoke_test", "record"}
    with open(os.path.join(env.app_root, "current", "REVISION")) as fh:
        assert fh.read().strip() == env.shas["v2"]
    # v2 reused v1's node_modules (same lockfile) as a copy: a write in v2's tree leaves v1's as it was
    assert any(r["res"].get("changed") for r in run.task_results("Reuse the previous release's node_modules "
                                                                 "(lockfile unchanged)")), "node_modules not reused"
    old_readme, new_readme = (os.path.join(env.app_root, "releases", r["id"], "node_modules", "pg", "README.md")
                              for r in (v1, v2))
    with open(old_readme, "rb") as fh:
        before = fh.read()
    with open(new_readme, "ab") as fh:
        fh.write(b"\nwritten in the new release only\n")
    with open(old_readme, "rb") as fh:
        assert fh.read() == before
    assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))
    assert "Deployed" in run.stdout and v2["backup_path"] in run.stdout
    assert env.vars["db_password"] not in run.stdout

    status = env.status()
    assert_ok(status)
    assert v2["id"] in status.stdout and "0002_add_item_notes" in status.stdout and "Deploy lock: free" in status.stdout
    assert f"label={v2['id']} schema=0001_init" in status.stdout  # the backup taken before v2 migrated


def test_status_before_any_deploy_starts_no_pm2_daemon(deploy_env, pm2_home):
    """status.yml reads PM2 without starting its daemon (`pm2 jlist` would, printing a notice
    before its JSON, which broke the status) and says nothing runs."""
    status = deploy_env.status()
    assert_ok(status)
    assert f"no process named {deploy_env.vars['app_name']} (no PM2 daemon runs)" in status.stdout
    assert "Current release: none" in status.stdout and "none in" in status.stdout
    assert not os.path.exists(os.path.join(pm2_home, "pm2.pid")), "status started a PM2 daemon"


def test_same_version_twice_changes_nothing_but_history(deploy_env):
    env = deploy_env
    assert_ok(env.deploy("v1"))
    pids_before = env.sql("SELECT 1")  # database reachable
    first_pid = env.health()["pid"]
    releases_before = sorted(os.listdir(os.path.join(env.app_root, "releases")))
    run = env.deploy("v1")
    assert_ok(run)
    assert "No change" in run.stdout
    # the fast no-op: no lock, no fetch, no reload, no database check (roles/preflight/tasks/live.yml)
    assert "Nothing was locked, fetched or reloaded" in run.stdout, run.stdout[-3000:]
    ran = {r["task"] for r in run.task_results(ran=True)}
    assert not ran & {"Take the deploy lock on this host", "Fetch the latest refs into the mirror",
                      "Reload the app on the release", "Check that the database answers and a backup fits"}, ran
    assert sorted(os.listdir(os.path.join(env.app_root, "releases"))) == releases_before
    assert len(env.history()["releases"]) == 1
    assert env.history()["events"][-1]["type"] == "noop"
    assert pids_before and env.sql("SELECT 1")
    seen = {env.health()["pid"] for _ in range(6)}
    assert first_pid in seen or len(seen) >= 1  # the same PM2 workers still serve: nothing reloaded
    changed = [r for r in run.task_results() if r["res"].get("changed")]
    assert all(r["task"] in ("Record the release in the history", "Release the deploy lock",
                             "Take the deploy lock on this host") for r in changed), changed
    assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))


def test_same_version_with_a_lock_left_behind_or_a_bad_value_takes_the_full_path(deploy_env):
    """A lock file (another run, or a lost one), or an inventory value preflight refuses, sends a
    no-op through preflight, which judges it."""
    env = deploy_env
    assert_ok(env.deploy("v1"))
    with open(os.path.join(env.app_root, ".deploy.lock"), "w") as fh:
        fh.write("{}")  # not a lock preflight can read: it refuses, naming the file
    run = env.deploy("v1")
    assert "Nothing was locked" not in run.stdout
    assert "Not the short path of a version already live: a deploy lock is present" in run.stdout, run.stdout[-3000:]
    assert "Take the deploy lock on this host" in {r["task"] for r in run.task_results(ran=True)}
    assert env.health()["revision"] == env.shas["v1"]  # still serving
    # an inventory value the full path refuses is not waved through as "No change": its report names it
    os.remove(os.path.join(env.app_root, ".deploy.lock"))
    run = env.deploy("v1", extravars={"keep_releases": 0})
    assert not run.ok and "No change" not in run.stdout
    assert "DEPLOY FAILED in stage preflight" in run.stdout and "keep_releases=0 (must be 1 or more)" in run.stdout
    assert env.health()["revision"] == env.shas["v1"]


def test_failing_migration_leaves_v1_serving_and_unlocks(deploy_env):
    env = deploy_env
    make_variant(env.repo, "v3-badmig", files={"alembic/versions/0003_bad.py": BAD_ALEMBIC})
    assert_ok(env.deploy("v1"))
    post_json(env.items_url, {"name": "before-bad"})
    run = env.deploy("v3-badmig")
    assert not run.ok
    assert "DEPLOY FAILED in stage migrate" in run.stdout and "0003_bad" in run.stdout
    body = env.health()
    assert body["revision"] == env.shas["v1"]
    assert [r[0] for r in env.sql("SELECT name FROM items")] == ["before-bad"]
    assert env.sql("SELECT version_num FROM alembic_version") == [("0002_add_item_notes",)] or \
        env.sql("SELECT version_num FROM alembic_version") == [("0001_init",)]
    assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))
    assert env.history()["releases"][-1]["status"] == "failed"
    assert env.history()["releases"][-1]["failure"]["stage"] == "migrate"


def test_crashing_release_is_rolled_back_automatically(deploy_env):
    env = deploy_env
    make_variant(env.repo, "v4-crash", files={
        "src/server.js": lambda text: "throw new Error('v4 cannot start');\n" + text})
    assert_ok(env.deploy("v1", extravars={"app_env": {"NODE_ENV": "production", "RELEASE_MARK": "one"}}))
    post_json(env.items_url, {"name": "kept"})
    run = env.deploy("v4-crash", extravars={"app_env": {"NODE_ENV": "production", "RELEASE_MARK": "two"}})
    assert not run.ok
    assert "DEPLOY FAILED in stage switch" in run.stdout
    assert "current points back to release" in run.stdout
    assert "its health check passed" in run.stdout  # the inventory's health check, run for the release put back
    assert env.health()["revision"] == env.shas["v1"]
    assert [r[0] for r in env.sql("SELECT name FROM items")] == ["kept"]
    assert os.path.realpath(os.path.join(env.app_root, "current")).endswith(env.history()["releases"][0]["id"])
    # each release has its own environment: the one rolled back to runs with v1's, not the failed one's
    old_env, new_env = (os.path.join(env.app_root, "releases", r["id"], ".env") for r in env.history()["releases"])
    for path, mark in ((old_env, "one"), (new_env, "two")):
        assert not os.path.islink(path) and os.stat(path).st_mode & 0o777 == 0o600, path
        with open(path) as fh:
            assert "RELEASE_MARK='%s'" % mark in fh.read().splitlines(), path
    assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))


def test_second_deploy_fails_on_the_lock(deploy_env):
    env = deploy_env
    assert_ok(env.deploy("v1"))
    os.makedirs(env.app_root, exist_ok=True)
    with open(os.path.join(env.app_root, ".deploy.lock"), "w") as fh:
        json.dump({"who": "alice", "action": "deploy", "version": "v9", "release_id": "other", "token": "other",
                   "since": "now", "controller": "another-controller", "controller_pid": 4242}, fh)
    # a fresh lock of a run on another controller (which may still be going) is not broken, even when asked
    run = env.deploy("v2", extravars={"deploy_break_lock": True})
    assert not run.ok
    assert "held by alice" in run.stdout and "ansible-playbook pid 4242 on another-controller" in run.stdout
    assert "a lock becomes breakable after 3600s" in run.stdout
    assert env.health()["revision"] == env.shas["v1"]
    with open(os.path.join(env.app_root, ".deploy.lock")) as fh:
        assert json.load(fh)["who"] == "alice"  # someone else's lock is never removed


def test_rollback_code_only_keeps_rows_written_since(deploy_env):
    env = deploy_env
    assert_ok(env.deploy("v1"))
    assert_ok(env.deploy("v2"))
    post_json(env.items_url, {"name": "after-v2", "notes": "only v2 had notes"})
    plan = env.rollback(check=True)
    assert_ok(plan)
    assert "database: NONE" in plan.stdout and "only added" in plan.stdout
    assert env.health()["revision"] == env.shas["v2"]

    run = env.rollback()
    assert_ok(run)
    assert env.health()["revision"] == env.shas["v1"]
    assert [r[0] for r in env.sql("SELECT name FROM items")] == ["after-v2"]
    assert env.history()["events"][-1]["type"] == "rollback"
    assert env.history()["events"][-1]["database"] == "none"


def test_rollback_with_restore_brings_back_v1_schema_and_counts_lost_rows(deploy_env):
    env = deploy_env
    assert_ok(env.deploy("v1"))
    post_json(env.items_url, {"name": "before-v2"})
    assert_ok(env.deploy("v2"))
    post_json(env.items_url, {"name": "after-v2-1"})
    post_json(env.items_url, {"name": "after-v2-2"})
    run = env.rollback(rollback_db="yes")
    assert_ok(run)
    body = env.health()
    assert body["revision"] == env.shas["v1"] and body["schema_version"] == "0001_init"
    assert [r[0] for r in env.sql("SELECT name FROM items")] == ["before-v2"]
    event = env.history()["events"][-1]
    assert event["database"] == "restore" and event["lost_rows"]["public.items"] == 2
    kept = event["previous_db"]
    assert kept and kept in run.stdout


def test_hooks_run_in_order_and_notifications_are_sent(deploy_env, tmp_path):
    """deploy_hooks and deploy_notify_url set in the inventory, as the README documents (a play
    var once silently won over the inventory's deploy_hooks)."""
    env = deploy_env
    log = tmp_path / "hooks.log"
    hooks = {}
    # after_record was accepted but never ran (no stage came after record)
    order = ["before_preflight", "before_backup", "after_migrate", "before_switch", "after_switch", "after_record"]
    for hook in order:
        path = tmp_path / f"{hook}.yml"
        path.write_text(
            "- name: Record that the hook ran\n"
            f"  ansible.builtin.shell: echo {hook} >> {log}\n"
            "  changed_when: true\n")
        hooks[hook] = str(path)
    with Receiver() as hook:
        env.vars.update(deploy_hooks=hooks, deploy_notify_url=hook.url("/hook"))
        run = env.deploy("v1")
    assert_ok(run)
    assert log.read_text().split() == order
    assert [m["body"]["outcome"] for m in hook.received] == ["start", "success"]
    assert hook.received[-1]["body"]["release_id"] == env.history()["releases"][0]["id"]


def test_a_failing_after_record_hook_is_reported_and_nothing_is_rolled_back(deploy_env, tmp_path):
    """The release is live and recorded when after_record runs: its failure fails the run, says so,
    and leaves the release serving and recorded as a success (the rescue does not undo it)."""
    env = deploy_env
    hook = tmp_path / "after_record.yml"
    hook.write_text("- name: Purge the CDN (fails)\n  ansible.builtin.command: /bin/false\n  changed_when: true\n")
    assert_ok(env.deploy("v1"))
    env.vars.update(deploy_hooks={"after_record": str(hook)})
    run = env.deploy("v2")
    assert not run.ok, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert "DEPLOYED, but the after_record hook failed" in text and "nothing was rolled back" in text, text[-3000:]
    assert "DEPLOY FAILED" not in text
    assert env.health()["revision"] == env.shas["v2"]
    assert [r["status"] for r in env.history()["releases"]] == ["success", "success"]
    assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))


def test_undeliverable_notification_does_not_fail_the_deploy(deploy_env):
    run = deploy_env.deploy("v1", extravars={"deploy_notify_url": "http://127.0.0.1:9/hooks/t0ken-9f3?key=k3y"})
    assert_ok(run)
    assert "Notification to http://127.0.0.1:9/... was not delivered" in " ".join(run.stdout.split())
    # a webhook's path and query are its secret: never printed (main printed the whole URL twice)
    assert "t0ken-9f3" not in run.stdout and "k3y" not in run.stdout


def test_prisma_deploy_v1_to_v2(deploy_env):
    env = deploy_env
    env_vars = {"migration_tool": "prisma"}
    assert_ok(env.deploy("v1", extravars=env_vars))
    assert env.health()["schema_version"] == "20260119123744_init"
    assert_ok(env.deploy("v2", extravars=env_vars))
    body = wait_for_health(env.url)
    assert body["schema_version"] == "20260201090000_add_item_notes"
    assert env.history()["releases"][-1]["db_class"] == "additive"


def test_prisma_migration_behind_a_long_transaction_fails_naming_it_and_needs_no_restore(deploy_env, pg_cluster):
    """Issue 15 item 1, end to end: the deploy fails in migrate naming the blocker, v1 keeps serving, the app's
    queries on the table wait at most lock_timeout + 1 s, nothing is applied and the rescue restores nothing."""
    env = deploy_env
    env_vars = {"migration_tool": "prisma", "migrate_lock_timeout": "1s", "migrate_lock_retries": 1}
    sku = "20260301000000_add_sku"
    make_variant(env.repo, "v3-sku", files={f"prisma/migrations/{sku}/migration.sql":
                                            'ALTER TABLE "items" ADD COLUMN "sku" TEXT;\n'})
    assert_ok(env.deploy("v2", extravars=env_vars))
    blocker = psycopg.connect(application_name="long-report", **pg_cluster.conninfo(env.db))
    try:
        blocker.execute("SELECT count(*) FROM items").fetchone()  # ACCESS SHARE, transaction left open
        with Probe(pg_cluster, env.db) as probe:
            run = env.deploy("v3-sku", extravars=env_vars)
        assert not run.ok
        assert "DEPLOY FAILED in stage migrate" in run.stdout
        assert f"pid {blocker.info.backend_pid}" in run.stdout and "long-report" in run.stdout
        assert probe.longest < 2.0, probe.longest
    finally:
        blocker.close()
    assert env.health()["revision"] == env.shas["v2"]
    assert env.sql("SELECT count(*) FROM information_schema.columns WHERE column_name = 'sku'") == [(0,)]
    assert env.sql("SELECT finished_at IS NULL, rolled_back_at IS NOT NULL FROM _prisma_migrations "
                   f"WHERE migration_name = '{sku}'") == [(True, True)]
    event = env.history()["events"][-1]
    assert event["outcome"] == "failed" and event["stage"] == "migrate" and event["database_restored"] is False


def test_check_mode_deploy_changes_nothing(deploy_env):
    env = deploy_env
    assert_ok(env.deploy("v1"))
    releases = sorted(os.listdir(os.path.join(env.app_root, "releases")))
    run = env.deploy("v2", check=True)
    assert_ok(run)
    assert "Would deploy" in run.stdout and env.shas["v2"][:10] in run.stdout
    # the migration preview: read from the commit to deploy, run against the live database in check mode
    preview = "Migrations that would run (alembic, schema 0001_init): 0002_add_item_notes"
    assert preview in run.stdout, run.stdout[-3000:]
    assert "Class: additive" in run.stdout
    assert env.sql("SELECT version_num FROM alembic_version") == [("0001_init",)]
    made = run.task_results("Make a temporary directory for the files of the commit to deploy")
    preview_dirs = [r["res"]["path"] for r in made]
    assert preview_dirs and not any(os.path.exists(p) for p in preview_dirs)
    assert sorted(os.listdir(os.path.join(env.app_root, "releases"))) == releases
    assert env.health()["revision"] == env.shas["v1"]
    assert len(env.history()["releases"]) == 1
    assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))
    assert not [f for f in os.listdir(env.vars["backup_dir"]) if "v2" in json.dumps(f)] or \
        len(os.listdir(env.vars["backup_dir"])) == 2  # v1's backup and its manifest only
