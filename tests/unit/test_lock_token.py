"""Each run's lock token: random, drawn once per run on the controller, the same on every host
and task of that run, and taken from no variable (issue 14: the token was the release id, so
two deploys of one tag in the same second, or `-e deploy_release_id=<the id in the lock
message>`, passed a live run's lock, and `-e deploy_release_id=` released another run's lock)."""

import multiprocessing
import os
import re
import stat

import pytest
import yaml
from ansible.errors import AnsibleError
from ansible_collections.maestro.deploy.plugins.lookup import controller_run

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOKEN = "{{ lookup('maestro.deploy.controller_run').token }}"


def private_dir(tmp_path, name="ansible-local-1"):
    path = tmp_path / name
    path.mkdir(mode=0o700)
    return str(path)


def test_a_run_draws_one_random_token_that_every_call_of_that_run_returns(tmp_path):
    run_tmp = private_dir(tmp_path)
    token = controller_run.run_token(run_tmp)
    assert re.fullmatch(r"[0-9a-f]{32}", token)
    assert controller_run.run_token(run_tmp) == token
    kept = os.path.join(run_tmp, controller_run.TOKEN_FILE)
    assert stat.S_IMODE(os.stat(kept).st_mode) == 0o600
    assert os.listdir(run_tmp) == [controller_run.TOKEN_FILE]  # no temporary file left beside it


def test_two_runs_draw_different_tokens_whatever_their_version_and_second(tmp_path):
    tokens = {controller_run.run_token(private_dir(tmp_path, "ansible-local-%d" % i)) for i in range(50)}
    assert len(tokens) == 50


def draw(run_tmp, queue):
    queue.put(controller_run.run_token(run_tmp))


def test_workers_of_one_run_drawing_at_once_agree(tmp_path):
    """ansible-playbook forks a worker per host and task: the first to draw wins, all read it."""
    run_tmp = private_dir(tmp_path)
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    workers = [ctx.Process(target=draw, args=(run_tmp, queue)) for _worker in range(8)]
    for worker in workers:
        worker.start()
    tokens = {queue.get(timeout=30) for _worker in workers}
    for worker in workers:
        worker.join(30)
    assert len(tokens) == 1


def test_without_options_the_lookup_returns_this_run_s_token():
    from ansible import constants as C
    assert controller_run.run_state()["token"] == controller_run.run_token(C.DEFAULT_LOCAL_TMP)


@pytest.mark.parametrize("content", [b"", b"20261201T120000Z-v2", b"../../x", b"A" * 32])
def test_a_token_file_that_is_not_one_this_lookup_wrote_is_refused(tmp_path, content):
    run_tmp = private_dir(tmp_path)
    with open(os.path.join(run_tmp, controller_run.TOKEN_FILE), "wb") as fh:
        fh.write(content)
    with pytest.raises(AnsibleError, match=re.escape(os.path.join(run_tmp, controller_run.TOKEN_FILE))):
        controller_run.run_token(run_tmp)


def test_a_run_directory_others_can_write_is_refused(tmp_path):
    run_tmp = private_dir(tmp_path)
    os.chmod(run_tmp, 0o777)
    with pytest.raises(AnsibleError, match="others can write"):
        controller_run.run_token(run_tmp)


def lock_tasks():
    """Every deploy_lock task that takes or releases the lock, as (file, task)."""
    found = []

    def walk(tasks, where):
        for task in tasks or []:
            for key in ("block", "rescue", "always"):
                walk(task.get(key), where)
            args = task.get("maestro.deploy.deploy_lock")
            if args is not None and args.get("state", "present") != "query":
                found.append((where, task))

    for root, dirs, files in os.walk(REPO):
        dirs[:] = [d for d in dirs if d not in (".venv", "node_modules", ".git", ".collections", ".ansible", "tests")]
        for name in files:
            if name.endswith(".yml"):
                path = os.path.join(root, name)
                with open(path) as fh:
                    doc = yaml.safe_load(fh)
                if isinstance(doc, list):
                    for item in doc:
                        if isinstance(item, dict):
                            walk([item] + (item.get("tasks") or []), os.path.relpath(path, REPO))
    return found


def test_every_lock_taken_or_released_uses_this_run_s_token_and_no_variable():
    tasks = lock_tasks()
    where = {w for w, _t in tasks}
    # taken in preflight; released once per playbook, in an always: (deploy.yml, rollback's main.yml)
    assert {"roles/preflight/tasks/lock.yml", "playbooks/deploy.yml", "roles/rollback/tasks/main.yml"} <= where, where
    assert "roles/record/tasks/main.yml" not in where and "playbooks/tasks/rescue.yml" not in where, where
    for path, task in tasks:
        assert task["maestro.deploy.deploy_lock"].get("token") == TOKEN, (path, task["name"])


def test_no_role_offers_a_variable_that_sets_the_token():
    for role in os.listdir(os.path.join(REPO, "roles")):
        for part in ("defaults/main.yml", "meta/argument_specs.yml"):
            path = os.path.join(REPO, "roles", role, part)
            if os.path.exists(path):
                with open(path) as fh:
                    assert "lock_token" not in fh.read(), path
