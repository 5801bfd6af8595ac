"""Filters behind the deploy summary and the rollback plan."""

import os

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.maestro.deploy.plugins.filter.deploy import (
    migration_summary,
    rollback_plan,
    stage_durations,
    stage_entered,
)
from ansible_collections.maestro.deploy.plugins.module_utils.lost_rows import count_missing


def test_stage_entered_names_the_stage_and_marks_when_it_began(monkeypatch):
    monkeypatch.setattr("time.time", lambda: 120.5)
    run = {"id": "r1", "stage": "preflight", "marks": {"start": 100.0, "preflight": 101.0}}
    assert stage_entered(run, "backup", ["preflight", "backup"]) == {
        "id": "r1", "stage": "backup", "marks": {"start": 100.0, "preflight": 101.0, "backup": 120.5}}
    assert run["marks"] == {"start": 100.0, "preflight": 101.0}  # the state it was given is not changed
    assert stage_entered(run, "done", ["preflight"])["stage"] == "done"


def test_stage_entered_refuses_a_stage_deploy_stages_does_not_name():
    with pytest.raises(AnsibleFilterError, match=r"stage warmup is not in deploy_stages \(preflight, backup\)"):
        stage_entered({"marks": {}}, "warmup", ["preflight", "backup"])


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


# -- encoding variables for where they go (issue 14) -----------------------------------------------

import re  # noqa: E402

import yaml  # noqa: E402
from urllib.parse import quote  # noqa: E402

from ansible_collections.maestro.deploy.plugins.filter import deploy as filters  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.database_url import (  # noqa: E402
    DatabaseUrlError, parse_database_url)

EVERY_CHARACTER = "Ab/c@d:e%f#g?h+i'j\"k\\l m"


def test_url_component_leaves_nothing_safe():
    assert filters.url_component("a/b") == "a%2Fb"  # Jinja's urlencode keeps the '/'
    assert filters.url_component(EVERY_CHARACTER) == (
        "Ab%2Fc%40d%3Ae%25f%23g%3Fh%2Bi%27j%22k%5Cl%20m")


@pytest.mark.parametrize("password", [EVERY_CHARACTER, "a/b", "@@::", "%41", " lead", "trail ", "x" * 200, "é€"])
def test_database_url_reads_back_the_exact_password(password):
    url = filters.database_url("app user", password, "db.example", 5433, "app_db")
    kwargs, _schema = parse_database_url(url)
    assert (kwargs["user"], kwargs["password"], kwargs["host"], kwargs["port"], kwargs["dbname"]) == (
        "app user", password, "db.example", 5433, "app_db")
    assert re.fullmatch(r"postgresql://[A-Za-z0-9_.~%-]+:[A-Za-z0-9_.~%-]+@db\.example:5433/app_db", url), url


def test_database_url_brackets_an_ipv6_host_and_encodes_a_socket_directory():
    assert filters.database_url("u", "p", "::1", 5432, "d") == "postgresql://u:p@[::1]:5432/d"
    url = filters.database_url("u", "p", "/var/run/postgresql", 5432, "d")
    assert url == "postgresql://u:p@%2Fvar%2Frun%2Fpostgresql:5432/d"
    assert parse_database_url(url)[0]["host"] == "/var/run/postgresql"


def test_database_url_without_password_has_no_colon():
    assert filters.database_url("u", "", "h", 1, "d") == "postgresql://u@h:1/d"


def test_an_unencoded_password_is_not_echoed_in_the_parse_error():
    # postgresql://u:ab/cd@h/db reads as host 'u', port 'ab...': the error named the port
    with pytest.raises(DatabaseUrlError) as err:
        parse_database_url("postgresql://u:secretpart/rest@h:5432/db")
    assert "secretpart" not in str(err.value) and "rest" not in str(err.value)
    assert "percent-encoded" in str(err.value)


def read_like_the_example_app(line):
    """The example app's .env parser (examples/app/src/server.js loadDotEnv), line by line in Python."""
    m = re.match(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^\n\r\u2028\u2029]*)\s*\Z", line)
    if not m:
        return None
    value = m.group(2)
    if re.match(r"^\".*\"\Z|^'.*'\Z", value, re.S):
        value = value[1:-1]
    return m.group(1), value


@pytest.mark.parametrize("value", [EVERY_CHARACTER, "", "'", "''", '"x"', "'x'", " x ", "=", "a # b", "$HOME", 3000])
def test_env_line_is_read_back_exactly(value):
    line = filters.env_line("KEY", value)
    assert "\n" not in line
    assert read_like_the_example_app(line) == ("KEY", str(value))


@pytest.mark.parametrize("value", ["a\nINJECTED=1", "a\rb", "a\x00b", "a\u2028b"])
def test_env_line_refuses_a_line_break(value):
    with pytest.raises(filters.AnsibleFilterError):
        filters.env_line("KEY", value)


def test_env_line_refuses_a_bad_name():
    with pytest.raises(filters.AnsibleFilterError):
        filters.env_line("A-B", "x")


def test_env_problems_names_each_bad_entry_and_hides_secrets():
    env = {"NODE_ENV": "production", "GOOD_1": 1, "BAD NAME": "x", "9LIVES": "y", "LINES": "a\nEVIL=1",
           "API_TOKEN": "tok\nX=1", "DSN": "has the pw-123 in it\n", "PORT": 80, "NESTED": {"a": 1}}
    problems = filters.env_problems(env, secrets=["pw-123"])
    assert problems == [
        "app_env.9LIVES=y (a name is letters, digits and _, not starting with a digit)",
        "app_env.API_TOKEN=<hidden> (a value cannot hold a line break or NUL)",
        "app_env.BAD NAME=x (a name is letters, digits and _, not starting with a digit)",
        "app_env.DSN=<hidden> (a value cannot hold a line break or NUL)",
        "app_env.LINES=a\\nEVIL=1 (a value cannot hold a line break or NUL)",
        "app_env.NESTED={'a': 1} (a value is a string, number or boolean)",
        "app_env.PORT=80 (set by the deploy from app_port and db_*: leave it out of app_env)",
    ]
    assert filters.env_problems({"NODE_ENV": "production"}) == [] and filters.env_problems(None) == []
    assert filters.env_problems(["A=1"]) == ["app_env=list (a mapping of NAME: value)"]


@pytest.mark.parametrize("path", ["/var/www/app", "/home/deploy/app", "/srv/app", "/opt/example-app",
                                  "/tmp/pytest-of-root/pytest-3/t0/www/example-app", "/var/www/a.b_c@1+2~3"])
def test_path_problem_accepts_an_app_directory(path):
    assert filters.path_problem(path) == ""


@pytest.mark.parametrize("path, why", [
    ("/", "root"), ("//", "root"), ("///", "root"), ("", "absolute"), ("var/www/app", "absolute"),
    ("/usr/bin", "system directory /usr"), ("/etc/cron.d", "system directory /etc"), ("/etc", "/etc"),
    ("/usr", "/usr"), ("/bin", "/bin"), ("/sbin/x", "/sbin"), ("/lib64/app", "/lib64"), ("/boot/a", "/boot"),
    ("/dev/shm/app", "/dev"), ("/proc/1", "/proc"), ("/sys/x", "/sys"), ("/run/app", "/run"),
    ("/var/lib/postgresql", "/var/lib"), ("/var/log/app", "/var/log"), ("/var/spool/cron", "/var/spool"),
    ("/var", "shared"), ("/var/www", "shared"), ("/home", "shared"), ("/root", "shared"), ("/tmp", "shared"),
    ("/var/www/", "normalised"), ("//var/www/app", "normalised"), ("/var//www/app", "normalised"),
    ("/var/www/../../etc", "'..'"), ("/var/www/./app", "'.'"), ("/var/www/..", "'..'"),
    ("/var/www/my app", "letters"), ("/var/www/app\n", "letters"), ("/var/www/$(id)", "letters"),
])
def test_path_problem_refuses_system_and_unnormalised_paths(path, why):
    assert why in filters.path_problem(path), (path, filters.path_problem(path))


@pytest.mark.parametrize("url", ["https://github.com/acme/app.git", "git@github.com:acme/app.git",
                                 "ssh://git@host/app.git", "/srv/git/app.git", "file:///srv/git/app.git"])
def test_repo_problem_accepts_git_urls(url):
    assert filters.repo_problem(url) == ""


@pytest.mark.parametrize("url, why", [
    ("--upload-pack=touch /tmp/x", "option"), ("-u", "option"), ("", "empty"), ("https://h/a b", "space"),
    ("https://h/a\n", "control"), ("ext::sh -c id", "space"), ("ext::sh", "ext::"), ("FD::3", "ext::"),
])
def test_repo_problem_refuses_options_and_command_transports(url, why):
    assert why in filters.repo_problem(url)


def test_hide_userinfo():
    assert filters.hide_userinfo("https://bot:tok@git.example/a.git") == "https://<hidden>@git.example/a.git"
    assert filters.hide_userinfo("git@github.com:acme/app.git") == "git@github.com:acme/app.git"
    assert quote("/", safe="") == "%2F"


def read_pgpass_line(line):
    """libpq's reading of a ~/.pgpass line: fields split at unescaped ':', '\\x' is x."""
    fields, cur, i = [], "", 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and i + 1 < len(line):
            cur += line[i + 1]
            i += 2
            continue
        if ch == ":" and len(fields) < 4:
            fields.append(cur)
            cur = ""
        else:
            cur += ch
        i += 1
    return fields + [cur]


def test_pgpass_template_escapes_colon_and_backslash():
    import jinja2

    path = os.path.join(os.path.dirname(__file__), "..", "..", "roles", "backup", "templates", "pgpass.j2")
    with open(path) as fh:
        # a text file, rendered as Ansible renders templates (no HTML escaping)
        template = jinja2.Environment(keep_trailing_newline=True, autoescape=False).from_string(fh.read())  # noqa: S701
    omit = "__omit_place_holder__"
    text = template.render(backup_db_password=EVERY_CHARACTER + ":\\\\:", backup_db_user="app:user\\", omit=omit)
    lines = [line for line in text.splitlines() if line and not line.startswith("{#")]
    assert len(lines) == 1
    assert read_pgpass_line(lines[0]) == ["*", "*", "*", "app:user\\", EVERY_CHARACTER + ":\\\\:"]


STAGES = ["preflight", "backup", "release", "migrate", "switch", "smoke_test", "record"]
REPO_ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


@pytest.mark.parametrize("hooks, problems", [
    (None, []),
    ({}, []),
    ({"before_migrate": "/srv/hooks/m.yml", "after_record": "/srv/hooks/r.yml"}, []),
    ({"before_migrations": "/srv/hooks/m.yml"},
     ["deploy_hooks.before_migrations (no such hook; the stages are preflight, backup, release, migrate,"
      " switch, smoke_test, record)"]),
    ({"after_switch": ""}, ["deploy_hooks.after_switch (the path of a task file)"]),
    ({"after_switch": ["a.yml"]}, ["deploy_hooks.after_switch (the path of a task file)"]),
    (["before_migrate"], ["deploy_hooks (a mapping of before_<stage> or after_<stage> to a task file)"]),
])
def test_hooks_problems(hooks, problems):
    assert filters.hooks_problems(hooks, STAGES) == problems


def test_a_hook_may_name_only_the_stages_it_is_given():
    # a new stage in deploy.yml's deploy_stages has its hooks without a change here
    assert filters.hooks_problems({"before_warmup": "w.yml"}, STAGES + ["warmup"]) == []
    assert filters.hooks_problems({"before_warmup": "w.yml"}, ["preflight"]) == [
        "deploy_hooks.before_warmup (no such hook; the stages are preflight)"]


def deploy_play():
    with open(os.path.join(REPO_ROOT, "playbooks", "deploy.yml")) as fh:
        return fh.read()


def test_deploy_stages_is_the_order_deploy_yml_enters_its_stages_in():
    """deploy.yml's deploy_stages (which hooks exist) is the order its tasks enter the stages in
    (tasks/stage.yml), then `done`, so the last stage's after hook runs."""
    text = deploy_play()
    (play,) = yaml.safe_load(text)
    entered = re.findall(r"^\s+deploy_enter: (\w+)$", text, re.M)
    assert entered == play["vars"]["deploy_stages"] + ["done"]


def test_the_architecture_note_lists_stages_that_exist_in_their_order():
    """docs/architecture.md's numbered stages are deploy.yml's, in its order (a new stage need not be
    documented for this to hold; a renamed or reordered one must be)."""
    (play,) = yaml.safe_load(deploy_play())
    stages = play["vars"]["deploy_stages"]
    with open(os.path.join(REPO_ROOT, "docs", "architecture.md")) as fh:
        listed = re.findall(r"^\d+\. \*\*(\w+)\*\*", fh.read(), re.M)
    assert listed and all(stage in stages for stage in listed), (listed, stages)
    assert [stage for stage in stages if stage in listed] == listed
