"""Issue 13: never cause an outage. A failed first deploy leaves no `current` and removes only
the processes it started; a hand-made install (a git clone started with `pm2 start npm -- start`)
is refused without deploy_adopt and left serving; the no-op deploy starts the live release when
PM2 lost it."""

import os

import psycopg

from tests.integration.test_deploy_flow import assert_ok, deploy_env  # noqa: F401 (fixture)
from tests.support import handmade
from tests.support.apprepo import make_plain_app_repo, make_variant
from tests.support.http import NoAnswer, get_json, post_json, wait_for_health
from tests.support.inventory import plain_app_inventory
from tests.support.migrate_run import run_module
from tests.support.paths import EXAMPLE_APP, PLAIN_APP


def pm2(env, *args):
    return handmade.pm2(env.vars["pm2_home"], *args)


def pm2_names(env):
    return [p["name"] for p in handmade.pm2_processes(env.vars["pm2_home"])]


def test_failed_first_deploy_leaves_no_current_and_no_process(deploy_env):  # noqa: F811
    env = deploy_env
    make_variant(env.repo, "v4-crash-first", files={
        "src/server.js": lambda text: "throw new Error('cannot start');\n" + text})
    run = env.deploy("v4-crash-first")
    assert not run.ok, run.stdout[-3000:]
    assert "DEPLOY FAILED in stage switch" in run.stdout
    # current is not left on the failed release (the next deploy's rescue went back onto it)
    assert not os.path.lexists(os.path.join(env.app_root, "current")), run.stdout[-3000:]
    assert "was removed (this run had created it)" in run.stdout
    assert env.vars["app_name"] not in pm2_names(env)
    assert env.history()["releases"][-1]["status"] == "failed"

    run = env.deploy("v2")  # the failed release had migrated to v2's schema (additive: kept)
    assert_ok(run)
    assert "Previous release (rollback target): none" in run.stdout
    assert env.health()["revision"] == env.shas["v2"]


def test_noop_deploy_starts_the_live_release_when_pm2_lost_it(deploy_env):  # noqa: F811
    # make demo; make demo-stop; make demo failed in the smoke test ("Connection refused") with
    # "State left: ... still serves": the no-op path never checked that PM2 runs the live release
    env = deploy_env
    assert_ok(env.deploy("v1"))
    assert pm2(env, "kill").returncode == 0
    run = env.deploy("v1")
    assert_ok(run)
    assert "No change" in run.stdout and "PM2 was not running it" in run.stdout and "it was started" in run.stdout
    assert env.health()["revision"] == env.shas["v1"]
    assert len(env.history()["releases"]) == 1


def hand_made_install(env, pg_cluster, tag="v1"):
    """The first example app installed by hand beside app_root (tests/support/handmade.py), serving;
    returns its clone and the pid that answers."""
    clone = handmade.hand_made_install(
        env.repo, os.path.join(os.path.dirname(os.path.dirname(env.app_root)), "handmade", env.vars["app_name"]),
        tag, os.path.join(EXAMPLE_APP, "node_modules"),
        {"PORT": env.vars["app_port"], "DATABASE_URL": pg_cluster.url(env.db)}, build=[["node", "scripts/build.js"]])
    handmade.pm2_start_npm(env.vars["pm2_home"], env.vars["app_name"], clone)
    body = wait_for_health(env.url, timeout=30)
    return clone, body["pid"]


def test_first_deploy_onto_a_hand_made_install_is_refused_and_changes_nothing(deploy_env, pg_cluster):  # noqa: F811
    # issue 13: the deploy wrote releases/ repo/ shared/ current into the git clone, failed in
    # switch, and its rescue stopped the user's own process ("nothing serves")
    env = deploy_env
    clone, pid = hand_made_install(env, pg_cluster)

    run = env.deploy("v1")
    assert not run.ok, run.stdout[-3000:]
    assert f"PM2 already runs {env.vars['app_name']} from outside {env.app_root}/releases" in run.stdout
    assert f"cwd {os.path.realpath(clone)}" in run.stdout and "-e deploy_adopt=true" in run.stdout
    assert not os.path.exists(env.app_root)  # no directory, no lock, no history
    assert env.health()["pid"] == pid  # the old process keeps answering

    # app_root = the clone itself (the reported layout): refused even with deploy_adopt
    run = env.deploy("v1", extravars={"app_root": clone, "deploy_adopt": True})
    assert not run.ok, run.stdout[-3000:]
    assert "is the directory the running process works in" in run.stdout
    assert f"app_root={clone}-releases" in run.stdout
    assert sorted(os.listdir(clone)) == sorted(set(os.listdir(clone)) - {"releases", "repo", "shared", "current"})
    assert not os.path.exists(os.path.join(clone, ".deploy.lock"))
    assert env.health()["pid"] == pid


def test_role_without_createdb_is_refused_before_anything_migrates(deploy_env, pg_cluster):  # noqa: F811
    # issue 13: the rescue's swap restore failed with "permission denied to create database"
    # after every migration had run
    env = deploy_env
    role = "nocreate_" + os.urandom(3).hex()
    pg_cluster.psql(f"CREATE ROLE {role} LOGIN PASSWORD 'pw-{role}'")
    pg_cluster.psql(f'GRANT ALL ON SCHEMA public TO {role}', db=env.db)
    pg_cluster.psql(f'ALTER DATABASE "{env.db}" OWNER TO {role}')
    try:
        run = env.deploy("v1", extravars={"db_user": role, "db_password": f"pw-{role}"})
        assert not run.ok, run.stdout[-3000:]
        assert f"db_user {role} may not create databases" in run.stdout, run.stdout[-3000:]
        assert f'ALTER ROLE "{role}" CREATEDB;' in run.stdout and "-e deploy_rescue_db=keep" in run.stdout
        assert env.sql("SELECT to_regclass('public.alembic_version')") == [(None,)]
        assert not os.path.exists(os.path.join(env.app_root, "releases"))
        assert not os.path.exists(os.path.join(env.app_root, ".deploy.lock"))
    finally:
        pg_cluster.psql(f'ALTER DATABASE "{env.db}" OWNER TO {pg_cluster.app_user}')


def app_cwds(env):
    return handmade.recorded_cwds(env.vars["pm2_home"], env.vars["app_name"])


def test_adopting_a_hand_made_install_replaces_the_old_process_after_the_release_is_ready(deploy_env, pg_cluster):  # noqa: F811,E501
    env = deploy_env
    clone, _pid = hand_made_install(env, pg_cluster)
    with NoAnswer(env.url) as probe:
        run = env.deploy("v2", extravars={"deploy_adopt": True})
    print(f"\nadoption (fork mode, one port): measured {probe.longest:.1f} s without an answer")
    assert_ok(run)
    assert env.health()["revision"] == env.shas["v2"]
    assert "Took over from the PM2 process(es)" in run.stdout and os.path.realpath(clone) in run.stdout
    text = " ".join(run.stdout.split())  # the YAML callback folds long lines
    gap = text.split("nothing served for at most ")[1].split(" s")[0]
    print(f"\nadoption (fork mode, one port): nothing served for at most {gap} s")
    cwds = app_cwds(env)
    assert cwds and all(c.startswith(os.path.realpath(env.app_root) + "/releases/") for c in cwds), cwds
    assert not os.path.exists(os.path.join(clone, "releases"))  # the clone is left as it was


def test_failed_adoption_starts_the_old_process_again(deploy_env, pg_cluster):  # noqa: F811
    # "No rescue ever stops a process that this run did not start": the old one serves again
    env = deploy_env
    make_variant(env.repo, "v4-crash-adopt", files={
        "src/server.js": lambda text: "throw new Error('cannot start');\n" + text})
    clone, _pid = hand_made_install(env, pg_cluster)
    run = env.deploy("v4-crash-adopt", extravars={"deploy_adopt": True})
    assert not run.ok
    text = " ".join(run.stdout.split())
    assert "was started again from " + os.path.realpath(clone) in text, run.stdout[-3000:]
    gap = text.split("nothing served for ")[1].split(" s")[0]
    print(f"\nfailed adoption (fork mode): nothing served for {gap} s")
    assert env.health()["revision"] is None  # the hand-made clone (no REVISION file) serves again
    assert app_cwds(env) == [os.path.realpath(clone)]
    assert not os.path.lexists(os.path.join(env.app_root, "current"))


# An app's own ecosystem file as most are written: script and cwd from __dirname, which Node
# resolves through the current link to the release directory (no `current` trick).
DIRNAME_ECOSYSTEM = """'use strict';
const path = require('path');
module.exports = {
  apps: [{
    name: process.env.APP_NAME || 'example-app',
    script: path.join(__dirname, 'pm2-start.js'),
    cwd: __dirname,
    exec_mode: 'fork',
    wait_ready: true,
    listen_timeout: 10000,
    kill_timeout: 5000,
    env: { PORT: process.env.PORT || '3000' },
  }],
};
"""
PRISMA = {"migration_tool": "prisma"}  # the example app has both histories; Prisma's applies in under a second


def test_process_first_started_from_a_release_directory_is_recreated_on_the_next_deploy(deploy_env):  # noqa: F811
    # issue 13 item 3: with `cwd: __dirname` PM2 records the release directory at the first start
    # and keeps it for every reload, so each later deploy kept serving the old release and failed
    env = deploy_env
    shas = {tag: make_variant(env.repo, tag, base=base, files={"ecosystem.config.js": DIRNAME_ECOSYSTEM})
            for tag, base in (("eco-dirname-1", "v1"), ("eco-dirname-2", "v2"))}
    assert_ok(env.deploy("eco-dirname-1", extravars=PRISMA))
    first = os.path.realpath(os.path.join(env.app_root, "current"))
    assert app_cwds(env) == [first]  # the trap is set: PM2 recorded releases/<id>, not current

    with NoAnswer(env.url) as probe:
        run = env.deploy("eco-dirname-2", extravars=PRISMA)
    assert_ok(run)
    second = os.path.realpath(os.path.join(env.app_root, "current"))
    assert second != first and env.health()["revision"] == shas["eco-dirname-2"]
    assert app_cwds(env) == [second]
    text = " ".join(run.stdout.split())  # the YAML callback folds long lines
    assert f"({first}), which did not run from {env.app_root}/current" in text
    assert "PM2 keeps the cwd of the first start, so a reload would have kept the old code" in text
    gap = float(text.split("nothing served for at most ")[1].split(" s")[0])
    print(f"\nrecreated a `cwd: __dirname` process (fork mode): {probe.longest:.1f} s without an answer "
          f"measured, {gap} s said by the deploy")
    assert probe.answered > 0 and probe.longest <= gap + 1

    # a rollback whose target cannot start after the second release's process was removed gives that
    # process back, and current with it: the second release serves again, nothing is recorded
    server = os.path.join(first, "dist", "server.js")  # what pm2-start.js runs (the build copies src/)
    code = open(server).read()
    with open(server, "w") as fh:
        fh.write("throw new Error('the target cannot start');\n" + code)
    with NoAnswer(env.url) as probe:
        run = env.rollback(migration_tool="prisma")
    assert not run.ok
    text = " ".join(run.stdout.split())
    assert f"current still points to {second}; nothing was recorded" in text, run.stdout[-3000:]
    assert f"were started again from {second}" in text
    assert env.health()["revision"] == shas["eco-dirname-2"] and app_cwds(env) == [second]
    assert os.path.realpath(os.path.join(env.app_root, "current")) == second
    assert [e for e in env.history().get("events", []) if e.get("type") == "rollback"] == []
    print(f"failed rollback, the second release given back: {probe.longest:.1f} s without an answer")
    with open(server, "w") as fh:
        fh.write(code)

    # the rollback switches back onto the first release: the process (recorded cwd: the second
    # release) is recreated there too, instead of failing with the second release still serving
    with NoAnswer(env.url) as probe:
        run = env.rollback(migration_tool="prisma")
    assert_ok(run)
    assert env.health()["revision"] == shas["eco-dirname-1"] and app_cwds(env) == [first]
    text = " ".join(run.stdout.split())
    assert f"({second}): PM2 had recorded a release directory as their cwd" in text
    gap = float(text.split("nothing served for at most ")[1].split(" s")[0])
    print(f"rollback, recreated on the first release (fork mode): {probe.longest:.1f} s without an answer "
          f"measured, {gap} s said by the rollback")
    assert probe.answered > 0 and probe.longest <= gap + 1
    assert env.history()["events"][-1]["outcome"] == "success"


def test_hand_made_install_of_the_plain_app_is_refused_then_adopted(pg_cluster, pg_db, pm2_home, tmp_path, playbook):
    # issue 13 items 6 and 13 with the second example app, as ManuMaestro's procedure runs it: a git
    # clone, `npm run build` (Prisma 7 generated), `pm2 start npm --name <app> -- start`, fork mode,
    # no ecosystem file, no revision in its health answer; inventory as in test_plain_app.py
    repo = str(tmp_path / "plain-app.git")
    make_plain_app_repo(repo)
    inventory = plain_app_inventory(tmp_path, pg_cluster, pg_db, repo, pm2_home,
                                    pm2_app_stable_for=1, smoke_test_timeout=30)
    hv = inventory["all"]["vars"]
    name, root, url = hv["app_name"], hv["app_root"], hv["healthcheck_url"]
    clone = handmade.hand_made_install(
        repo, str(tmp_path / "handmade" / name), "v1", os.path.join(PLAIN_APP, "node_modules"),
        {"PORT": hv["app_port"], "DATABASE_URL": pg_cluster.url(pg_db)},
        build=[["npm", "run", "build"]], build_env=dict(hv["app_build_env"], CHECKPOINT_DISABLE="1"))
    # the procedure's `npx prisma migrate deploy` (its schema engine cannot be downloaded here):
    # the collection's native engine applies the clone's migrations the same way
    migrated = run_module("prisma_migrate", {"project_dir": clone, "engine": "native"}, tmp_path,
                          pg_cluster.url(pg_db), secret=pg_cluster.app_password)
    assert not migrated.failed, migrated.stdout[-2000:]
    pid = handmade.pm2_start_npm(pm2_home, name, clone)
    assert wait_for_health(url)["version"] == "1.0.0"
    post_json(url.replace("/health", "/notes"), {})
    clone_files = sorted(os.listdir(clone))

    def migrations():
        with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
            return [r[0] for r in conn.execute("SELECT migration_name FROM _prisma_migrations "
                                               "WHERE finished_at IS NOT NULL ORDER BY migration_name")]

    # (a) without deploy_adopt: refused in preflight, nothing changed, the old process answers throughout
    with NoAnswer(url) as probe:
        run = playbook("deploy.yml", inventory, extravars={"app_version": "v2"})
    assert not run.ok, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert 'DEPLOY FAILED in stage preflight (task "Refuse a deploy onto an app PM2 runs from elsewhere' in text
    assert f"PM2 already runs {name} from outside {root}/releases" in text
    assert f"cwd {os.path.realpath(clone)}" in text and "-e deploy_adopt=true" in text
    assert probe.answered > 0 and probe.failed == 0, (probe.answered, probe.failed)
    assert not os.path.exists(root) and sorted(os.listdir(clone)) == clone_files
    assert migrations() == ["20260101000000_init"]
    (proc,) = handmade.pm2_processes(pm2_home, name)
    assert (proc["pid"], proc["pm2_env"]["restart_time"]) == (pid, 0)
    assert get_json(url)[1]["version"] == "1.0.0"

    # (b) with deploy_adopt: built beside the clone, migrated, the old process replaced, v2 serves
    with NoAnswer(url, interval=0.05) as probe:
        run = playbook("deploy.yml", inventory, extravars={"app_version": "v2", "deploy_adopt": True})
    assert_ok(run)
    text = " ".join(run.stdout.split())
    gap = float(text.split("nothing served for at most ")[1].split(" s")[0])
    print(f"\nadoption of the plain app (fork mode, npm start): {probe.longest:.2f} s without an answer "
          f"measured ({probe.failed} of {probe.answered + probe.failed} requests failed), {gap} s said by the deploy")
    assert "Took over from the PM2 process(es)" in text and f"({os.path.realpath(clone)})" in text
    body = get_json(url)[1]
    assert (body["version"], body["notes"]) == ("2.0.0", 1) and "revision" not in body
    assert migrations() == ["20260101000000_init", "20260201000000_add_note_pinned"]
    (proc,) = handmade.pm2_processes(pm2_home, name)
    assert proc["pid"] != pid and proc["pm2_env"]["pm_cwd"] == os.path.join(root, "current")
    assert os.path.realpath(os.path.join(root, "current")).startswith(os.path.join(root, "releases") + "/")
    assert sorted(os.listdir(clone)) == clone_files  # the clone is left as it was
    assert probe.answered > 0 and probe.longest <= gap + 1


CLUSTER = {"app_start": "npm start", "app_exec_mode": "cluster", "app_instances": 2, "deploy_adopt": True}


def test_adopting_a_cluster_mode_install_starts_the_release_beside_it_first(deploy_env, pg_cluster):  # noqa: F811
    # issue 13 items 3 and 6: "start the new release, then delete the old process"; in cluster mode
    # PM2 shares the port, so the old processes must serve until the release runs (main stopped them
    # first, as in fork mode: seconds without an answer)
    env = deploy_env
    name = env.vars["app_name"]
    make_variant(env.repo, "v4-crash-cluster", files={
        "src/server.js": lambda text: "throw new Error('cannot start');\n" + text})
    clone = handmade.hand_made_install(
        env.repo, os.path.join(os.path.dirname(os.path.dirname(env.app_root)), "handmade", name), "v1",
        os.path.join(EXAMPLE_APP, "node_modules"),
        {"PORT": env.vars["app_port"], "DATABASE_URL": pg_cluster.url(env.db)}, build=[["node", "scripts/build.js"]])
    pids = handmade.pm2_start_cluster(env.vars["pm2_home"], name, clone, "dist/server.js", 2)
    wait_for_health(env.url, timeout=30)

    # a release that cannot start: the old workers are never stopped, its second name is removed
    with NoAnswer(env.url, interval=0.05) as probe:
        run = env.deploy("v4-crash-cluster", extravars=CLUSTER)
    assert not run.ok, run.stdout[-3000:]
    text = " ".join(run.stdout.split())
    assert f"as {name}-maestro-bridge (cluster mode): it was removed from PM2" in text, run.stdout[-3000:]
    assert "the processes it was to replace were never stopped" in text
    assert probe.answered > 0 and probe.failed == 0, (probe.answered, probe.failed)
    assert pm2_names(env) == [name, name]
    assert sorted(p["pid"] for p in handmade.pm2_processes(env.vars["pm2_home"], name)) == pids
    assert not os.path.lexists(os.path.join(env.app_root, "current"))

    # the release runs beside them first: no request goes unanswered while they are replaced
    with NoAnswer(env.url, interval=0.05) as probe:
        run = env.deploy("v2", extravars=CLUSTER)
    assert_ok(run)
    print(f"\nadoption in cluster mode: {probe.longest:.2f} s without an answer, {probe.failed} of "
          f"{probe.answered + probe.failed} requests failed")
    text = " ".join(run.stdout.split())
    assert f"started the release beside them first as {name}-maestro-bridge (cluster mode: PM2 shares the port)" in text
    assert probe.answered > 0 and probe.failed == 0, (probe.answered, probe.failed)
    assert pm2_names(env) == [name, name] and env.health()["revision"] == env.shas["v2"]
    cwds = app_cwds(env)
    assert cwds == [os.path.realpath(os.path.join(env.app_root, "current"))] * 2, cwds

    # a run lost after starting its second name never removed it: the next switch does (it would
    # otherwise keep taking a share of the port with an old release, and come back at boot)
    handmade.pm2_start_cluster(env.vars["pm2_home"], f"{name}-maestro-bridge", clone, "dist/server.js", 1)
    assert pm2_names(env).count(f"{name}-maestro-bridge") == 1
    assert_ok(env.deploy("v2", extravars=dict(CLUSTER, deploy_force=True)))
    assert pm2_names(env) == [name, name] and env.health()["revision"] == env.shas["v2"]
