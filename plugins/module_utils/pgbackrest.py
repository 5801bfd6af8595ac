# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""pgBackRest's state for watching, as pure functions: the argv that reads it, the JSON of
`pgbackrest info` (format of pgBackRest 2.45) and of `repo-ls` parsed, and what is wrong.

`info` gives each backup's type, label, start/stop times (epoch seconds) and sizes, and the
archive's min/max WAL segment per repository, but no time for the WAL: the newest segment's
push time is the `time` that `repo-ls` reports for its file in the repository.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

STANZA = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}\Z")
SEGMENT = re.compile(r"^[0-9A-F]{24}\Z")
ARCHIVE_ID = re.compile(r"^[0-9]+-[0-9]+\Z")


class InfoError(Exception):
    """pgBackRest's output is not what it should be."""


def base_argv(pgbackrest, stanza, config=None, repo=None):
    argv = [pgbackrest]
    if config:
        argv.append("--config=%s" % config)
    argv.append("--stanza=%s" % stanza)
    if repo is not None:
        argv.append("--repo=%d" % int(repo))
    return argv


def info_argv(pgbackrest, stanza, config=None):
    """`pgbackrest [--config=C] --stanza=X --output=json info`."""
    return base_argv(pgbackrest, stanza, config) + ["--output=json", "info"]


def archive_dir(stanza, archive_id, segment):
    """The repository path (relative to the repository) of the directory holding `segment`."""
    if not (STANZA.match(stanza) and ARCHIVE_ID.match(archive_id or "") and SEGMENT.match(segment or "")):
        raise InfoError("not a stanza/archive id/WAL segment: %r %r %r" % (stanza, archive_id, segment))
    return "archive/%s/%s/%s" % (stanza, archive_id, segment[:16])


def repo_ls_argv(pgbackrest, stanza, repo, archive_id, segment, config=None):
    """`repo-ls` of the archive directory of `segment` in repository `repo`, as JSON."""
    return base_argv(pgbackrest, stanza, config, repo) + [
        "--output=json", "repo-ls", archive_dir(stanza, archive_id, segment)]


def wrap_as(argv, os_user, euid, current_user, runuser="runuser"):
    """argv run as `os_user`: through `runuser -u <os_user> --` when running as root as another
    user; unchanged when already that user (or no user is asked for)."""
    if not os_user or os_user == current_user:
        return list(argv)
    if euid != 0:
        raise InfoError("running as %s, not root, cannot run pgbackrest as %s: become %s (or root)"
                        % (current_user, os_user, os_user))
    return [runuser, "-u", os_user, "--"] + list(argv)


def argument_spec(**extra):
    """The options every pgBackRest module takes (doc fragment maestro.deploy.pgbackrest), plus `extra`."""
    spec = dict(
        stanza=dict(type="str", required=True),
        config=dict(type="path"),
        pgbackrest=dict(type="path"),
        os_user=dict(type="str", default="postgres"),
    )
    spec.update(extra)
    return spec


def stanza_problem(stanza):
    """Why `stanza` is not a stanza name, or None."""
    if STANZA.match(stanza or ""):
        return None
    return "stanza=%r: letters, digits, _ and -, starting with a letter or digit, at most 64" % stanza


def run_as(runner, os_user, euid, current_user):
    """A function turning an argv into one run as `os_user` (see wrap_as); finds runuser only when needed."""
    needs_runuser = euid == 0 and os_user and os_user != current_user
    runuser = runner.bin("runuser") if needs_runuser else "runuser"
    return lambda argv: wrap_as(argv, os_user, euid, current_user, runuser=runuser)


def read_info(runner, as_user, pgbackrest, stanza, config=None):
    """The stanza's entry of `pgbackrest info`, run through the runner as the repository's user."""
    _rc, out, _err = runner.run(as_user(info_argv(pgbackrest, stanza, config)), what="pgbackrest info")
    return parse_info(out, stanza)


def parse_info(text, stanza):
    """The stanza's entry of `info --output=json` (a list of stanzas)."""
    try:
        data = json.loads(text, strict=False)  # a repository status message may hold raw bytes
    except ValueError as exc:
        raise InfoError("pgbackrest info did not print JSON: %s" % exc) from None
    if not isinstance(data, list):
        raise InfoError("pgbackrest info printed %s, not a list of stanzas" % type(data).__name__)
    for entry in data:
        if isinstance(entry, dict) and entry.get("name") == stanza:
            return entry
    raise InfoError("pgbackrest info says nothing about stanza %s" % stanza)


def segment_push_time(text, segment):
    """The time (epoch s) `repo-ls --output=json` gives the file of `segment`
    (`<segment>-<sha1>[.ext]`), or None when it is not there."""
    try:
        listing = json.loads(text)
    except ValueError as exc:
        raise InfoError("pgbackrest repo-ls did not print JSON: %s" % exc) from None
    if not isinstance(listing, dict):
        raise InfoError("pgbackrest repo-ls printed %s, not an object" % type(listing).__name__)
    times = [v.get("time") for k, v in listing.items()
             if isinstance(v, dict) and v.get("type") == "file" and k.split("/")[-1].startswith(segment + "-")]
    times = [t for t in times if isinstance(t, int)]
    return max(times) if times else None


def _status(obj):
    status = (obj or {}).get("status") or {}
    return dict(code=status.get("code"), message=status.get("message"))


def repositories(entry):
    """Per repository key: its status, its backups (oldest first) and its archives (one per
    database id). pgBackRest lists backups and archives for all repositories together, each
    tagged with `database.repo-key`."""
    repos = {}
    for repo in entry.get("repo") or []:
        repos[repo.get("key")] = dict(key=repo.get("key"), status=_status(repo), backups=[], archives=[])

    def of(item):
        key = (item.get("database") or {}).get("repo-key", 1)
        return repos.setdefault(key, dict(key=key, status=dict(code=None, message=None), backups=[], archives=[]))

    for backup in entry.get("backup") or []:
        of(backup)["backups"].append(backup)
    for archive in entry.get("archive") or []:
        of(archive)["archives"].append(archive)
    return [repos[k] for k in sorted(repos)]


def newest_backup(backups, now):
    """The newest backup that did not fail, as this module returns it, or None."""
    good = [b for b in backups if not b.get("error")]
    if not good:
        return None
    b = max(good, key=lambda b: ((b.get("timestamp") or {}).get("stop") or 0))
    stop = (b.get("timestamp") or {}).get("stop")
    info = b.get("info") or {}
    repo = info.get("repository") or {}
    return dict(
        type=b.get("type"), label=b.get("label"), prior=b.get("prior"),
        start=(b.get("timestamp") or {}).get("start"), stop=stop,
        age_s=(int(now - stop) if isinstance(stop, int) else None),
        size_bytes=info.get("size"), delta_bytes=info.get("delta"),
        repo_size_bytes=repo.get("size"), repo_delta_bytes=repo.get("delta"),
        wal_start=(b.get("archive") or {}).get("start"), wal_stop=(b.get("archive") or {}).get("stop"),
    )


def current_archive(archives, db_id):
    """The archive of the current database (`db` id), else the one with the highest max."""
    mine = [a for a in archives if (a.get("database") or {}).get("id") == db_id]
    pool = mine or archives
    with_max = [a for a in pool if a.get("max")]
    if with_max:
        return max(with_max, key=lambda a: a["max"])
    return pool[-1] if pool else None


def current_db_id(entry):
    ids = [d.get("id") for d in entry.get("db") or [] if isinstance(d.get("id"), int)]
    return max(ids) if ids else None


def summarise(entry, push_times, now):
    """The result's `repos`: per repository its status, newest backup, backup count and newest
    archived WAL with its push time (`push_times`: {(repo key, segment): epoch s or None})."""
    db_id = current_db_id(entry)
    out = []
    for repo in repositories(entry):
        archive = current_archive(repo["archives"], db_id)
        wal = None
        if archive and archive.get("max"):
            pushed = push_times.get((repo["key"], archive["max"]))
            wal = dict(archive_id=archive.get("id"), min=archive.get("min"), max=archive.get("max"),
                       pushed_at=pushed, age_s=(int(now - pushed) if isinstance(pushed, int) else None))
        good = [b for b in repo["backups"] if not b.get("error")]
        out.append(dict(key=repo["key"], status=repo["status"], backup_count=len(good),
                        newest_backup=newest_backup(repo["backups"], now), newest_wal=wal))
    return out


def wanted_push_times(entry):
    """(repo key, archive id, segment) whose push time `summarise` needs."""
    db_id = current_db_id(entry)
    wanted = []
    for repo in repositories(entry):
        archive = current_archive(repo["archives"], db_id)
        if archive and SEGMENT.match(archive.get("max") or "") and ARCHIVE_ID.match(archive.get("id") or ""):
            wanted.append((repo["key"], archive["id"], archive["max"]))
    return wanted


def problems(entry, repos, max_backup_age=None, max_wal_age=None):
    """What is wrong, as sentences: the stanza's or a repository's status, no backup, a backup
    or the newest archived WAL older than its threshold (seconds; None or 0 checks nothing)."""
    found = []
    status = _status(entry)
    name = entry.get("name")
    # 2 (no valid backups) is said below per repository; 4 (different across repos, e.g. repo1 without a
    # backup and repo2 with one) too: each repository's own status and backups are
    if status["code"] not in (0, None, 2, 4):
        found.append("stanza %s: %s (status code %s)" % (name, status["message"], status["code"]))
    for repo in repos:
        where = "repo%s" % repo["key"]
        code = repo["status"]["code"]
        if code not in (0, 2, None) and code != status["code"]:
            found.append("%s: %s (status code %s)" % (where, repo["status"]["message"], code))
        backup = repo["newest_backup"]
        if code == 1:
            continue  # missing stanza path: said above, nothing else to say
        if backup is None:
            found.append("%s: no backup of stanza %s" % (where, name))
        elif max_backup_age and backup["age_s"] is not None and backup["age_s"] > max_backup_age:
            found.append("%s: newest backup %s (%s) is %ds old, more than max_backup_age=%ds"
                         % (where, backup["label"], backup["type"], backup["age_s"], max_backup_age))
        wal = repo["newest_wal"]
        if wal is None:
            found.append("%s: no WAL archived for stanza %s" % (where, name))
        elif max_wal_age and wal["age_s"] is None:
            found.append("%s: newest archived WAL %s not found in the repository (no push time)" % (where, wal["max"]))
        elif max_wal_age and wal["age_s"] > max_wal_age:
            found.append("%s: newest archived WAL %s is %ds old, more than max_wal_age=%ds: archiving is "
                         "failing or dropping WAL (see archive-push-queue-max)"
                         % (where, wal["max"], wal["age_s"], max_wal_age))
    return found


NAGIOS_STATES = {0: "OK", 2: "CRITICAL"}


def check_line(stanza, repos, found):
    """The monitoring check in Nagios's terms: code 0 OK, 2 CRITICAL (something in `found`), and
    one line saying why. On OK the line gives each repository's newest backup and archived WAL
    ages, so a monitor's history shows them. (ansible-playbook's exit code for a failed task is 2
    too: status.yml failing on CRITICAL is the check's exit code.)"""
    if found:
        code, why = 2, "; ".join(found)
    else:
        code = 0
        why = ", ".join(
            "repo%s backup %s WAL %s" % (
                r["key"],
                ("%ds old" % r["newest_backup"]["age_s"]) if (r["newest_backup"] or {}).get("age_s") is not None
                else "none",
                ("%ds old" % r["newest_wal"]["age_s"]) if (r["newest_wal"] or {}).get("age_s") is not None
                else "none")
            for r in repos) or "no repository"
    return dict(code=code, state=NAGIOS_STATES[code],
                line="PGBACKREST %s - stanza %s: %s" % (NAGIOS_STATES[code], stanza, why))
