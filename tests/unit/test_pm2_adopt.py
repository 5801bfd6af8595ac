"""Decisions about PM2 processes a deploy did not start (issue 13): which run outside the
releases, which app_root cannot hold the layout, what a rescue may remove, how to start an
old process again."""

from ansible_collections.maestro.deploy.plugins.module_utils import pm2_adopt


def inst(pm_id, cwd):
    return dict(pm_id=pm_id, cwd=cwd, pm_cwd=cwd)


def test_foreign_are_the_instances_outside_the_releases():
    insts = [inst(0, "/srv/app/releases/r1"), inst(1, "/srv/app"), inst(2, "/srv/app/releases-old/x")]
    assert [i["pm_id"] for i in pm2_adopt.foreign(insts, "/srv/app/releases")] == [1, 2]


def test_app_root_that_is_the_old_cwd_is_refused_with_the_way_forward():
    msg = pm2_adopt.app_root_problem("/srv/app", ["/srv/app"], [])
    assert "the directory the running process works in" in msg and "app_root=/srv/app-releases" in msg
    # below the old directory too
    assert pm2_adopt.app_root_problem("/srv/app/deploy", ["/srv/app"], [])


def test_app_root_in_a_git_work_tree_is_refused():
    msg = pm2_adopt.app_root_problem("/srv/app", [], ["/srv/app"])
    assert "inside the git work tree /srv/app" in msg and "app_root=/srv/app-releases" in msg


def test_app_root_beside_the_old_directory_is_fine():
    assert pm2_adopt.app_root_problem("/srv/app-releases", ["/srv/app"], []) is None


def test_a_rescue_may_remove_only_what_this_run_started():
    after = [dict(pm_id=0), dict(pm_id=3), dict(pm_id="_old_1")]
    assert pm2_adopt.started_by_this_run([0], after) == [3]
    assert pm2_adopt.started_by_this_run([], after) == [0, 3]
    assert pm2_adopt.started_by_this_run([0, 3], after) == []


def test_definition_of_a_hand_started_npm_process():
    proc = {"name": "shop", "pm_id": 0, "pm2_env": {
        "pm_exec_path": "/usr/lib/node_modules/npm/bin/npm-cli.js", "args": ["start"], "pm_cwd": "/srv/shop",
        "exec_mode": "fork_mode", "exec_interpreter": "node", "env": {"SECRET": "x"}, "instances": 1}}
    assert pm2_adopt.definition(proc) == {
        "name": "shop", "script": "/usr/lib/node_modules/npm/bin/npm-cli.js", "cwd": "/srv/shop",
        "exec_mode": "fork", "args": ["start"]}
