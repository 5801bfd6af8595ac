"""A deploy's state has one owner (issue 18): the fact deploy_run, set in deploy.yml and its task
files, read by the rescue, the record and the deploy_report callback; no other deploy_* fact."""

import os
import re

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Facts of the rescue itself (playbooks/tasks/rescue.yml): what failed, and its own results.
RESCUE_OWN = re.compile(r"deploy_rescue_\w+\Z")
# deploy --check's migration preview is set run_once (the migrate stage runs once): kept out of
# deploy_run, since a run_once combine would hand the first host's state to every host.
OWN_FACTS = {"playbooks/tasks/rescue.yml": RESCUE_OWN,
             "playbooks/tasks/preview_migrations.yml": re.compile(r"deploy_migration_preview\Z")}
# Names the run's state went by before it was one dict; none may come back.
OLD_NAMES = re.compile(r"\bdeploy_(stage|marks|switched|migration_started|started_at|previous_release|noop|backup"
                       r"|durations|migration|takeover|takeover_gap|current_before|pm2_kept_ids|after_hook_failed)\b")


def yaml_files():
    for top in ("playbooks", "roles"):
        for root, _dirs, files in os.walk(os.path.join(REPO, top)):
            for name in files:
                if name.endswith((".yml", ".j2")):
                    yield os.path.relpath(os.path.join(root, name), REPO)


def tasks_of(doc):
    """Every task of a tasks file or playbook, blocks opened."""
    stack = list(doc) if isinstance(doc, list) else []
    while stack:
        task = stack.pop()
        if not isinstance(task, dict):
            continue
        yield task
        for key in ("tasks", "pre_tasks", "post_tasks", "handlers", "block", "rescue", "always"):
            stack.extend(task.get(key) or [])


def set_facts():
    """(file, task) of every set_fact in playbooks/ and roles/."""
    for path in yaml_files():
        if not path.endswith(".yml"):
            continue
        with open(os.path.join(REPO, path)) as fh:
            doc = yaml.safe_load(fh)
        for task in tasks_of(doc):
            args = task.get("ansible.builtin.set_fact")
            if isinstance(args, dict):
                yield path, task


def test_deploy_run_is_the_only_deploy_fact_and_only_deploy_yml_s_tasks_set_it():
    setters = set()
    for path, task in set_facts():
        for key in task["ansible.builtin.set_fact"]:
            if not key.startswith("deploy_"):
                continue
            if key == "deploy_run":
                setters.add(path)
            else:
                assert path in OWN_FACTS and OWN_FACTS[path].match(key), (path, task["name"], key)
    assert setters == {"playbooks/deploy.yml", "playbooks/tasks/stage.yml", "playbooks/tasks/stage_hooks.yml",
                       "playbooks/tasks/before_switch.yml"}


def test_no_file_reads_the_old_names_of_the_run_s_state():
    for path in list(yaml_files()) + ["plugins/callback/deploy_report.py"]:
        with open(os.path.join(REPO, path)) as fh:
            text = fh.read()
        assert not OLD_NAMES.search(text), (path, OLD_NAMES.search(text).group(0))


def run_keys_set_later():
    """The keys every later change of deploy_run sets: combine({'key': ...}) or a deploy_run_* dict."""
    keys = set()
    for _path, task in set_facts():
        value = task["ansible.builtin.set_fact"].get("deploy_run")
        if not isinstance(value, str):
            continue
        keys.update(re.findall(r"combine\(\{'(\w+)'", value))
        keys.update(re.findall(r", '(\w+)': ", value))
        if "maestro.deploy.stage_entered(" in value:  # plugins/filter/deploy.py: the stage and its mark
            keys.update(("stage", "marks"))
        for name, extra in (task.get("vars") or {}).items():
            if name.startswith("deploy_run_") and name in value and isinstance(extra, dict):
                keys.update(extra)
    return keys


def test_every_key_of_the_run_s_state_is_set_at_the_start():
    """The rescue may run after any task: every key it reads exists from the first task on."""
    with open(os.path.join(REPO, "playbooks", "deploy.yml")) as fh:
        (play,) = yaml.safe_load(fh)
    first = play["tasks"][0]
    assert first.get("run_once") is True  # one id for every host
    start = first["ansible.builtin.set_fact"]["deploy_run"]
    assert {"id", "stage", "marks", "backup", "migration_started", "switched"} <= set(start)
    later = run_keys_set_later()
    assert {"stage", "marks", "previous", "noop", "backup", "migration_started", "switched", "current_before",
            "pm2_kept_ids", "takeover", "durations", "migration", "after_hook_failed"} <= later
    assert later <= set(start), later - set(start)


def test_the_rescue_is_beside_the_flow_and_handed_nothing_but_the_state():
    with open(os.path.join(REPO, "playbooks", "deploy.yml")) as fh:
        (play,) = yaml.safe_load(fh)
    (block,) = [t for t in play["tasks"] if t.get("name") == "Deploy, rolling back by itself when a stage fails"]
    assert [t.get("ansible.builtin.include_tasks") for t in block["rescue"]] == ["tasks/rescue.yml"]
    assert not any(t.get("vars") for t in block["rescue"])
    assert not os.path.exists(os.path.join(REPO, "roles", "rollback", "tasks", "recover.yml"))
