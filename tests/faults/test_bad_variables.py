"""Bad playbook variables through deploy.yml: each run stops in preflight with an error naming
the variable and its value, and nothing changes: no release directory, no backup, no history,
no lock, and the database (its rows, and the cluster's list of databases) as it was.

The runs are independent and each stops within seconds, so they run side by side."""

import os
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from tests.support.faults import assert_rows_kept, table_snapshot
from tests.support.inventory import local_inventory
from tests.support.playbooks import run_playbook

CASES = {
    # name: (inventory overrides, extravars, texts the failure must contain)
    "unknown_version": ({}, {"app_version": "v9.9.9-does-not-exist"}, ["app_version=v9.9.9-does-not-exist"]),
    "keep_releases_0": ({"keep_releases": 0}, {}, ["keep_releases=0"]),
    "keep_releases_negative": ({"keep_releases": -1}, {}, ["keep_releases=-1"]),
    "unknown_migration_tool": ({"migration_tool": "flyway"}, {}, ["migration_tool", "flyway"]),
    "missing_db_password": ({"db_password": None}, {}, ["db_password is missing"]),
    "app_root_is_root": ({"app_root": "/"}, {}, ["app_root=/"]),
    "release_id_with_dotdot": ({}, {"deploy_release_id": "../x"}, ["deploy_release_id=../x"]),
    "db_name_with_quote": ({"db_name": "app'db"}, {}, ["db_name=app'db"]),
    # issue 14: each value below passed preflight on main
    "app_root_double_slash_check_mode": ({"app_root": "//"}, {}, ["app_root=//"]),
    "app_root_usr_bin_check_mode": ({"app_root": "/usr/bin"}, {}, ["app_root=/usr/bin"]),
    "app_root_cron_d_check_mode": ({"app_root": "/etc/cron.d"}, {}, ["app_root=/etc/cron.d"]),
    "app_root_dotdot": ({"app_root": "{work}/www/../elsewhere/app"}, {}, ["app_root={work}/www/../elsewhere/app"]),
    "app_root_not_normalised": ({"app_root": "{work}//www/app/"}, {}, ["app_root={work}//www/app/"]),
    "app_env_newline": ({"app_env": {"NODE_ENV": "production\nINJECTED=1"}}, {},
                        ["app_env.NODE_ENV=production\\nINJECTED=1", "line break"]),
    "app_env_bad_name": ({"app_env": {"NODE-ENV": "production"}}, {}, ["app_env.NODE-ENV=production"]),
    "app_env_secret_hidden": ({"app_env": {"API_TOKEN": "tok-9f1e\nX=1"}}, {}, ["app_env.API_TOKEN=<hidden>"]),
    "app_version_option": ({}, {"app_version": "--output=x"}, ["app_version=--output=x", "not starting with '-'"]),
    "app_repo_option": ({"app_repo": "--upload-pack=touch {work}/pwned"}, {},
                        ["app_repo=--upload-pack=touch {work}/pwned", "option"]),
    # PM2's daemon could not listen there: `pm2 jlist` printed no list and the daemon spun at 100 % CPU
    "pm2_home_too_long": ({"pm2_home": "{work}/" + "p" * 100}, {},
                          ["pm2_home={work}/ppp", "a Unix socket path may have 107"]),
    "notify_url_with_password": ({"deploy_notify_url": "https://ops:pw-7a1c@hooks.example/x"}, {},
                                 ["deploy_notify_url=https://hooks.example/...", "no user:password@"]),
    # a misspelt hook never ran and said nothing
    "deploy_hook_misspelt": ({"deploy_hooks": {"before_migrations": "/dev/null"}}, {},
                             ["deploy_hooks.before_migrations (no such hook; the stages are preflight, backup"]),
}
# Cases run in check mode: nothing may change even there (main cloned a mirror into /repo); the
# checks do not depend on the mode, and the cases above cover a real run.
CHECK_MODE = {name for name in CASES if name.endswith("_check_mode") or name.startswith(("app_root_", "app_env_"))
              and name != "app_root_is_root"}
# Texts that must not appear anywhere in the run's output.
NEVER_SHOWN = {"app_env_secret_hidden": ["tok-9f1e"], "notify_url_with_password": ["pw-7a1c"]}


@pytest.fixture(scope="module")
def outcomes(pg_cluster, app_repo, tmp_path_factory):
    """Run every case once (four at a time); returns {case: (run, app_root, backup_dir)}."""
    repo, _shas = app_repo
    db = pg_cluster.create_database("bad_input_" + os.urandom(3).hex())
    with psycopg.connect(**pg_cluster.conninfo(db)) as conn:
        conn.execute("CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO items (name) VALUES ('kept-1'), ('kept-2')")
    before = table_snapshot(pg_cluster.conninfo(db))
    databases = pg_cluster.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database")

    def run(name):
        overrides, extravars, _texts = CASES[name]
        work = str(tmp_path_factory.mktemp("bad-" + name))
        inventory = local_inventory(work, pg_cluster, db, repo, os.path.join(work, "pm2"), pm2_app_stable_for=1)
        hv = inventory["all"]["vars"]
        for key, value in overrides.items():
            if value is None:
                hv.pop(key)
            else:
                hv[key] = value.replace("{work}", work) if isinstance(value, str) else value
        app_root = os.path.normpath(hv["app_root"])
        app_root = app_root if app_root.startswith(work + os.sep) else None
        result = run_playbook("deploy.yml", inventory, os.path.join(work, "runner"), check=name in CHECK_MODE,
                              extravars=dict({"app_version": "v1"}, **extravars))
        return name, (result, app_root, hv["backup_dir"], work)

    root_before = {d: sorted(os.listdir(d)) for d in ("/", "/usr/bin", "/etc/cron.d") if os.path.isdir(d)}
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = dict(pool.map(run, CASES))
    yield results, before, databases, root_before, db
    pg_cluster.psql(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def failure_message(run):
    start = run.stdout.find("DEPLOY FAILED")
    return run.stdout[start:start + 3000] if start >= 0 else run.stdout[-3000:]


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_variable_fails_in_preflight_naming_it_and_changes_nothing(case, outcomes, pg_cluster):
    results, before, databases, root_before, db = outcomes
    run, app_root, backup_dir, work = results[case]
    assert not run.ok
    message = failure_message(run)
    assert "DEPLOY FAILED in stage preflight" in message, message
    for text in CASES[case][2]:
        text = text.replace("{work}", work)
        assert text in message, (text, message)
    for text in NEVER_SHOWN.get(case, []):
        assert text not in run.stdout, text
    if app_root:
        for left in ("releases", "current", "shared", "history.json", ".deploy.lock"):
            assert not os.path.lexists(os.path.join(app_root, left)), left
    if case.startswith("app_"):  # refused before the app root or the mirror was made
        assert sorted(os.listdir(work)) == ["runner"], os.listdir(work)
    assert not os.path.exists(backup_dir) or os.listdir(backup_dir) == []
    assert {d: sorted(os.listdir(d)) for d in root_before} == root_before
    assert pg_cluster.psql("SELECT string_agg(datname, ',' ORDER BY datname) FROM pg_database") == databases
    assert_rows_kept(pg_cluster.conninfo(db), before)
