# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the pgbackrest role uses: its variables checked for their grammar before anything on
the host changes (stanza name, paths, sizes, retention, cron schedules), and the
archive_command PostgreSQL runs."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.maestro.deploy.plugins.filter.schedule import (
    SYSTEM_DIRS,
    USER,
    _show,
    cron_file_problem,
    cron_schedule_problem,
    path_problem,
    url_problems,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (
    SAFE_PATH as SCRATCH_PATH,
    target_problems,
)

SAFE_PATH = re.compile(r"^[A-Za-z0-9_./-]+\Z")  # written into pgbackrest.conf and archive_command as is
STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
SIZE = re.compile(r"^[1-9][0-9]*(?:[KMGTP]i?B)?\Z")  # pgBackRest sizes: 128MB, 1GB, 1GiB, or bytes
SIZE_UNITS = {"": 1, "KB": 1024, "MB": 1024 ** 2, "GB": 1024 ** 3, "TB": 1024 ** 4, "PB": 1024 ** 5}
# pgBackRest's own paths: the repository and spool hold WAL and backups, never at a system directory
OWN_PATHS = ("pgbackrest_repo_path", "pgbackrest_spool_path", "pgbackrest_log_path", "pgbackrest_lock_path")
FILE_PATHS = ("pgbackrest_config_file",)
SERVER_PATHS = ("pgbackrest_pg_path", "pgbackrest_pg_socket_path")
SCHEDULES = ("pgbackrest_full_schedule", "pgbackrest_diff_schedule", "pgbackrest_verify_schedule")
# one WAL segment (16 MB by default): a queue max below a few segments drops WAL at once
MIN_QUEUE_BYTES = 4 * 16 * 1024 ** 2


def size_bytes(text):
    """Bytes in a pgBackRest size (`128MB`, `1GiB`, `1048576`)."""
    match = re.match(r"^([0-9]+)([KMGTP]?)i?B?\Z", text)
    return int(match.group(1)) * SIZE_UNITS[(match.group(2) + "B") if match.group(2) else ""]


def _as_int(value):
    """An int from an int or a string of digits (-e gives strings); None otherwise."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.match(r"^[0-9]{1,9}\Z", value):
        return int(value)
    return None


def pgbackrest_problems(values):
    """Every bad pgbackrest variable as 'variable=value (rule)'; [] when all are fine."""
    problems = []

    def bad(name, rule):
        problems.append("%s=%s (%s)" % (name, _show(values.get(name)), rule))

    if not STANZA.match(str(values.get("pgbackrest_stanza") or "")):
        bad("pgbackrest_stanza", "letters, digits, _ and -, starting with a letter or digit, at most 64")
    for name in OWN_PATHS + FILE_PATHS + SERVER_PATHS:
        if name not in values:
            continue
        if name in SERVER_PATHS:
            system_dirs = ()
        elif name in OWN_PATHS[1:]:
            system_dirs = SYSTEM_DIRS | {"/etc/pgbackrest", "/var/lib/pgbackrest"}
        else:
            system_dirs = SYSTEM_DIRS
        rule = path_problem(values.get(name), system_dirs=system_dirs)
        if not rule and not SAFE_PATH.match(str(values.get(name))):
            rule = "letters, digits, '_', '.', '-' and '/' only (written into pgbackrest.conf and archive_command)"
        if rule:
            bad(name, rule)
    repo, spool = values.get("pgbackrest_repo_path"), values.get("pgbackrest_spool_path")
    pg_path = values.get("pgbackrest_pg_path")
    if not problems and pg_path:
        for name in ("pgbackrest_repo_path", "pgbackrest_spool_path"):
            path = str(values.get(name) or "")
            if path == pg_path or path.startswith(pg_path + "/") or pg_path.startswith(path + "/"):
                bad(name, "apart from pgbackrest_pg_path=%s (the data directory)" % pg_path)
    nested = repo and spool and (repo == spool or spool.startswith(repo + "/") or repo.startswith(spool + "/"))
    if not problems and nested:
        bad("pgbackrest_spool_path", "apart from pgbackrest_repo_path=%s" % repo)
    port = _as_int(values.get("pgbackrest_pg_port"))
    if "pgbackrest_pg_port" in values and not (port is not None and 0 < port < 65536):
        bad("pgbackrest_pg_port", "a port number, 1-65535")
    queue = str(values.get("pgbackrest_archive_push_queue_max") or "")
    if not SIZE.match(queue):
        bad("pgbackrest_archive_push_queue_max", "a size such as 1GB, 512MB or 1GiB; never empty (unbounded)")
    elif size_bytes(queue) < MIN_QUEUE_BYTES:
        bad("pgbackrest_archive_push_queue_max", "at least 64MB (four WAL segments)")
    for name, low, high in (("pgbackrest_process_max", 1, 999), ("pgbackrest_retention_full", 1, 9999999),
                            ("pgbackrest_retention_diff", 1, 9999999), ("pgbackrest_archive_timeout", 1, 3600)):
        if name in values:
            v = _as_int(values.get(name))
            if v is None or not low <= v <= high:
                bad(name, "a whole number, %d-%d" % (low, high))
    for name in SCHEDULES:
        if name in values and values.get(name) not in ("", None):
            rule = cron_schedule_problem(values.get(name))
            if rule:
                bad(name, rule + "; or empty for none")
    if "pgbackrest_cron_file" in values:
        rule = cron_file_problem(values.get("pgbackrest_cron_file"))
        if rule:
            bad("pgbackrest_cron_file", rule)
    if "pgbackrest_os_user" in values and not USER.match(str(values.get("pgbackrest_os_user") or "")):
        bad("pgbackrest_os_user", "a user name: lower-case letters, digits, '_' and '-'")
    for name in ("pgbackrest_code_dir", "pgbackrest_cron_python", "pgbackrest_notify_file"):
        if name in values:
            rule = path_problem(values.get(name))
            if rule:
                bad(name, rule)
    problems.extend(url_problems(values, ("pgbackrest_notify_url", "pgbackrest_heartbeat_url")))
    if str(values.get("pgbackrest_repo2_host") or ""):
        problems.extend(repo2_problems(values))
    return problems


HOST = re.compile(r"^(?=.{1,253}\Z)[A-Za-z0-9](?:[A-Za-z0-9-]{0,62})(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}))*\Z")
IPV6 = re.compile(r"^[0-9A-Fa-f:]{2,39}\Z")
# one known_hosts line: host pattern(s), key type, base64 key (an optional comment)
KNOWN_HOSTS_LINE = re.compile(r"^(?:@cert-authority |@revoked )?[^\s#][^\s]* (?:ssh-|ecdsa-|sk-)[A-Za-z0-9@.-]+ "
                              r"[A-Za-z0-9+/]+={0,3}(?: [^\n]*)?\Z")
CIPHER_PASS = re.compile(r"^[!-~]{20,1024}\Z")  # printable ASCII without space: one line of pgbackrest.conf
REPO2_PATHS = ("pgbackrest_repo2_path", "pgbackrest_repo2_ssh_dir", "pgbackrest_repo2_host_config",
               "pgbackrest_repo2_host_ssh_dir", "pgbackrest_repo2_host_log_path",
               "pgbackrest_repo2_host_lock_path", "pgbackrest_repo2_authorized_keys_file",
               "pgbackrest_repo2_db_authorized_keys_file", "pgbackrest_repo2_pgbackrest_bin")
REPO2_SCHEDULES = ("pgbackrest_repo2_full_schedule", "pgbackrest_repo2_diff_schedule",
                   "pgbackrest_repo2_verify_schedule")


def _host_problem(value):
    text = "" if value is None else str(value)
    if HOST.match(text) or (IPV6.match(text) and ":" in text):
        return None
    return "a host name or an IP address (letters, digits, '-' and '.')"


def pgbackrest_cipher_pass_ok(value):
    """Whether a repo2 cipher pass has the form pgbackrest.conf can hold (the role's check gets this
    boolean, never the pass)."""
    return isinstance(value, str) and bool(CIPHER_PASS.match(value))


def repo2_problems(values):
    """The second repository's values (pgbackrest_repo2_*), checked when pgbackrest_repo2_host is set.
    The cipher pass is never shown: only whether it is there and of the right form."""
    problems = []

    def bad(name, rule, show=True):
        problems.append("%s=%s (%s)" % (name, _show(values.get(name)) if show else "<hidden>", rule))

    for name in ("pgbackrest_repo2_host", "pgbackrest_repo2_db_host"):
        if name in values:
            rule = _host_problem(values.get(name))
            if rule:
                bad(name, rule)
    for name in ("pgbackrest_repo2_host_port", "pgbackrest_repo2_db_host_port"):
        if name in values:
            port = _as_int(values.get(name))
            if not (port is not None and 0 < port < 65536):
                bad(name, "a port number, 1-65535")
    user = str(values.get("pgbackrest_repo2_host_user") or "")
    if "pgbackrest_repo2_host_user" in values and (not USER.match(user) or user == "root"):
        bad("pgbackrest_repo2_host_user", "a user name other than root: lower-case letters, digits, '_' and '-'")
    if "pgbackrest_repo2_inventory_host" in values and not str(values.get("pgbackrest_repo2_inventory_host") or ""):
        bad("pgbackrest_repo2_inventory_host", "the inventory name of the repository host, never empty")
    for name in REPO2_PATHS:
        if name not in values:
            continue
        value = values.get(name)
        system_dirs = () if name.endswith("_file") or name == "pgbackrest_repo2_pgbackrest_bin" else \
            SYSTEM_DIRS | {"/etc/pgbackrest"}
        rule = path_problem(value, system_dirs=system_dirs)
        if not rule and not SAFE_PATH.match(str(value)):
            rule = "letters, digits, '_', '.', '-' and '/' only (written into pgbackrest.conf and ssh options)"
        if rule:
            bad(name, rule)
    if values.get("pgbackrest_repo2_path") and values.get("pgbackrest_repo2_path") == values.get(
            "pgbackrest_repo_path") and values.get("pgbackrest_repo2_host") in ("localhost", "127.0.0.1", "::1"):
        bad("pgbackrest_repo2_path", "apart from pgbackrest_repo_path on the same host")
    if "pgbackrest_repo2_host_config" in values and values.get("pgbackrest_repo2_host_config") == values.get(
            "pgbackrest_config_file") and values.get("pgbackrest_repo2_inventory_host") in (
            values.get("inventory_hostname"), None):
        bad("pgbackrest_repo2_host_config", "apart from pgbackrest_config_file when the repository host is this host")
    if "pgbackrest_repo2_cipher_pass_ok" in values:
        cipher_ok = values.get("pgbackrest_repo2_cipher_pass_ok") is True
    else:
        cipher_ok = pgbackrest_cipher_pass_ok(values.get("pgbackrest_repo2_cipher_pass"))
    if not cipher_ok:
        bad("pgbackrest_repo2_cipher_pass", "required (from the vault): 20-1024 printable ASCII characters, no "
            "space; e.g. openssl rand -base64 48", show=False)
    for name in ("pgbackrest_repo2_retention_full", "pgbackrest_repo2_retention_diff"):
        if name in values:
            v = _as_int(values.get(name))
            if v is None or not 1 <= v <= 9999999:
                bad(name, "a whole number, 1-9999999")
    for name in REPO2_SCHEDULES:
        if name in values and values.get(name) not in ("", None):
            rule = cron_schedule_problem(values.get(name))
            if rule:
                bad(name, rule + "; or empty for none")
    if "pgbackrest_repo2_cron_file" in values:
        rule = cron_file_problem(values.get("pgbackrest_repo2_cron_file") or "")
        if rule:
            bad("pgbackrest_repo2_cron_file", rule)
    for name in ("pgbackrest_repo2_known_hosts", "pgbackrest_repo2_db_known_hosts"):
        text = values.get(name)
        if text in ("", None):
            continue
        lines = [line for line in str(text).splitlines() if line.strip()] if isinstance(text, str) else None
        if not lines or not all(KNOWN_HOSTS_LINE.match(line) for line in lines):
            bad(name, "known_hosts lines ('[host]:port ssh-ed25519 AAAA...'), or empty to scan the key once")
    return problems


def pgbackrest_archive_command(stanza, config=None, default_config="/etc/pgbackrest/pgbackrest.conf"):
    """PostgreSQL's archive_command for the stanza (%p: the segment's path); --config only when the
    file is not pgBackRest's default. Every word has been validated (no space, no quote)."""
    words = ["pgbackrest"]
    if config and config != default_config:
        words.append("--config=" + config)
    words += ["--stanza=" + stanza, "archive-push", "%p"]
    return " ".join(words)


DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}\Z")


def pitr_problems(values):
    """Every bad value of playbooks/restore.yml as 'variable=value (rule)'; [] when all are fine:
    the mode, the recovery target (restore_target and the restore_time/xid/name/set it needs) and
    the stanza; for restore_mode=database the database, the scratch directory's parent and the
    scratch port; for restore_mode=disaster the start command."""
    mode = values.get("restore_mode", "database")
    if mode not in ("database", "disaster"):
        return ["restore_mode=%s (database: one database with the site up; disaster: the whole cluster)"
                % _show(mode)]
    problems = target_problems(values)
    if not STANZA.match(str(values.get("pgbackrest_stanza") or "")):
        problems.append("pgbackrest_stanza=%s (letters, digits, _ and -, starting with a letter or digit, at most 64)"
                        % _show(values.get("pgbackrest_stanza")))
    repo = values.get("restore_repo")
    if repo not in (None, "") and not (_as_int(repo) is not None and 1 <= _as_int(repo) <= 256):
        problems.append("restore_repo=%s (a repository number: 1 for repo1, 2 for repo2; empty for the one holding "
                        "the chosen backup)" % _show(repo))
    if mode == "disaster":
        start = values.get("restore_start_command")
        if not (isinstance(start, (list, tuple)) and start and all(isinstance(a, str) and a for a in start)):
            problems.append("restore_start_command=%s (the argv that starts PostgreSQL: a list of strings, e.g. "
                            "[systemctl, start, postgresql@15-main])" % _show(start))
        return problems
    if not DB_NAME.match(str(values.get("db_name") or "")):
        problems.append("db_name=%s (letters, digits, _ $ or -, starting with a letter or _, at most 63)"
                        % _show(values.get("db_name")))
    for name in ("restore_scratch_base", "restore_backup_dir"):
        if name in values:
            rule = path_problem(values.get(name))
            if not rule and not SCRATCH_PATH.match(str(values.get(name))):
                rule = "letters, digits, '_', '.', '-' and '/' only (the scratch server's options hold it)"
            if rule:
                problems.append("%s=%s (%s)" % (name, _show(values.get(name)), rule))
    port = _as_int(values.get("restore_scratch_port"))
    if "restore_scratch_port" in values and not (port is not None and 0 < port < 65536):
        problems.append("restore_scratch_port=%s (a port number, 1-65535)" % _show(values.get("restore_scratch_port")))
    return problems


class FilterModule(object):
    def filters(self):
        return {
            "pgbackrest_problems": pgbackrest_problems,
            "pgbackrest_archive_command": pgbackrest_archive_command,
            "pgbackrest_cipher_pass_ok": pgbackrest_cipher_pass_ok,
            "pitr_problems": pitr_problems,
        }
