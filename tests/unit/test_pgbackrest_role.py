"""roles/pgbackrest: its variables checked for their grammar, the archive_command it sets,
pg_system_settings' decisions, and every role variable defaulted and declared."""

import os

import pytest
import yaml
from ansible_collections.maestro.deploy.plugins.filter.pgbackrest import (
    pgbackrest_archive_command,
    pgbackrest_problems,
    size_bytes,
)
from ansible_collections.maestro.deploy.plugins.modules.pg_system_settings import alter_sql, decide, literal

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ROLE = os.path.join(REPO, "roles", "pgbackrest")

GOOD = {
    "pgbackrest_stanza": "manumaestro", "pgbackrest_config_file": "/etc/pgbackrest/pgbackrest.conf",
    "pgbackrest_pg_path": "/var/lib/postgresql/15/main", "pgbackrest_pg_port": 5432,
    "pgbackrest_pg_socket_path": "/var/run/postgresql", "pgbackrest_repo_path": "/var/lib/pgbackrest",
    "pgbackrest_spool_path": "/var/spool/pgbackrest", "pgbackrest_log_path": "/var/log/pgbackrest",
    "pgbackrest_lock_path": "/tmp/pgbackrest", "pgbackrest_archive_push_queue_max": "1GB",
    "pgbackrest_process_max": 1, "pgbackrest_retention_full": 2, "pgbackrest_retention_diff": 6,
    "pgbackrest_archive_timeout": 60, "pgbackrest_full_schedule": "30 1 * * 0",
    "pgbackrest_diff_schedule": "30 1 * * 1-6", "pgbackrest_verify_schedule": "",
    "pgbackrest_cron_file": "maestro-pgbackrest-manumaestro", "pgbackrest_os_user": "postgres",
}


def test_the_defaults_pass():
    assert pgbackrest_problems(GOOD) == []
    assert pgbackrest_problems(dict(GOOD, pgbackrest_pg_port="5433", pgbackrest_retention_full="3")) == []


@pytest.mark.parametrize("name,value,rule", [
    ("pgbackrest_stanza", "my stanza", "letters, digits"),
    ("pgbackrest_stanza", "-x", "letters, digits"),
    ("pgbackrest_stanza", "a.b", "letters, digits"),
    ("pgbackrest_stanza", "", "letters, digits"),
    ("pgbackrest_repo_path", "var/lib/pgbackrest", "an absolute path"),
    ("pgbackrest_repo_path", "/var/lib", "not a system directory"),
    ("pgbackrest_repo_path", "/var/lib/pg backrest", "letters, digits, '_', '.', '-' and '/' only"),
    ("pgbackrest_repo_path", "/var/lib/postgresql/15/main/backups", "apart from pgbackrest_pg_path"),
    ("pgbackrest_spool_path", "/var/lib/pgbackrest/spool", "apart from pgbackrest_repo_path"),
    ("pgbackrest_spool_path", "/var/spool/pgbackrest/../x", "a normalised path"),
    ("pgbackrest_config_file", "/etc/pgbackrest/a'b.conf", "letters, digits"),
    ("pgbackrest_pg_socket_path", "/run/postgresql\n", "no newline"),
    ("pgbackrest_pg_port", 0, "a port number"),
    ("pgbackrest_pg_port", "54x", "a port number"),
    ("pgbackrest_archive_push_queue_max", "", "never empty"),
    ("pgbackrest_archive_push_queue_max", "1 GB", "a size such as"),
    ("pgbackrest_archive_push_queue_max", "16MB", "at least 64MB"),
    ("pgbackrest_process_max", 0, "a whole number, 1-999"),
    ("pgbackrest_retention_full", True, "a whole number"),
    ("pgbackrest_archive_timeout", 0, "a whole number, 1-3600"),
    ("pgbackrest_full_schedule", "0 25 * * *", "hour '25': 25 is outside 0-23"),
    ("pgbackrest_verify_schedule", "@reboot", "five cron fields"),
    ("pgbackrest_cron_file", "pgbackrest.cron", "a file name under /etc/cron.d"),
    ("pgbackrest_os_user", "Postgres", "a user name"),
])
def test_bad_values_are_named_with_their_rule(name, value, rule):
    found = pgbackrest_problems(dict(GOOD, **{name: value}))
    assert len(found) == 1, found
    assert found[0].startswith(name + "=")
    assert rule in found[0]


def test_sizes():
    assert size_bytes("64MB") == 64 * 1024 ** 2
    assert size_bytes("1GiB") == 1024 ** 3
    assert size_bytes("1048576") == 1048576


def test_archive_command():
    assert pgbackrest_archive_command("main") == "pgbackrest --stanza=main archive-push %p"
    assert pgbackrest_archive_command("main", "/etc/pgbackrest/pgbackrest.conf") == \
        "pgbackrest --stanza=main archive-push %p"
    assert pgbackrest_archive_command("main", "/srv/pgbr.conf") == \
        "pgbackrest --config=/srv/pgbr.conf --stanza=main archive-push %p"


def state(file, running, context="sighup", vartype="string"):
    return dict(file=file, running=running, context=context, vartype=vartype, unit=None)


def test_archive_mode_off_needs_a_change_and_a_restart():
    wanted = {"archive_mode": "on", "archive_timeout": "60"}
    changes, restart = decide(wanted, {
        "archive_mode": state(None, "off", "postmaster", "enum"),
        "archive_timeout": state(None, "0", vartype="integer"),
    })
    assert changes == [dict(name="archive_mode", before="off", after="on"),
                       dict(name="archive_timeout", before="0", after="60")]
    assert restart == ["archive_mode"]


def test_set_but_not_restarted_is_no_change_but_still_a_restart():
    changes, restart = decide({"archive_mode": "on"}, {"archive_mode": state("on", "off", "postmaster", "enum")})
    assert (changes, restart) == ([], ["archive_mode"])


def test_nothing_to_do_when_set_and_running():
    wanted = {"archive_mode": "on", "archive_command": "pgbackrest --stanza=main archive-push %p"}
    changes, restart = decide(wanted, {
        "archive_mode": state("on", "on", "postmaster", "enum"),
        # the running value shows (disabled) while archive_mode is off; the file's value counts
        "archive_command": state("pgbackrest --stanza=main archive-push %p", "(disabled)"),
    })
    assert (changes, restart) == ([], [])


def test_alter_sql_quotes_values():
    assert literal("it's") == "'it''s'"
    assert alter_sql([dict(name="archive_command", before="", after="pgbackrest --stanza=x archive-push %p")]) == (
        "ALTER SYSTEM SET archive_command = 'pgbackrest --stanza=x archive-push %p';\nSELECT pg_reload_conf();\n")


def test_every_role_variable_is_prefixed_defaulted_and_declared():
    with open(os.path.join(ROLE, "defaults", "main.yml")) as fh:
        defaults = yaml.safe_load(fh)
    with open(os.path.join(ROLE, "meta", "argument_specs.yml")) as fh:
        specs = yaml.safe_load(fh)["argument_specs"]
    declared = set(specs["main"]["options"]) | set(specs["pitr"]["options"])
    assert all(name.startswith("pgbackrest_") for name in defaults)
    assert set(defaults) == declared
