# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Point-in-time recovery into a scratch cluster, as pure functions: the recovery target checked
for its grammar, the backup set chosen from `pgbackrest info` (format of pgBackRest 2.45), the
argv of `pgbackrest restore`, `pg_ctl` and `psql`, the scratch cluster's own configuration, and
what the server log says about where recovery stopped.

The scratch cluster never archives: `pgbackrest restore --archive-mode=off` writes
`archive_mode = 'off'` into its postgresql.auto.conf and the server is also started with
`-c archive_mode=off` (the command line beats every configuration file), so the copy, which
promotes onto a new timeline, pushes nothing into the live stanza's repository. It listens on no
TCP address, only on a unix socket inside the scratch directory (0700, the server user's), so
its port collides with nothing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import datetime
import json
import os
import re
import stat

TARGETS = ("latest", "time", "xid", "name", "immediate")
# ISO 8601 with a timezone: 2026-12-01T23:40:32Z, 2026-12-01 23:40:32.5+01:00, 2026-12-01T23:40+0100
ISO_TIME = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)\Z")
XID = re.compile(r"^[1-9][0-9]{0,19}\Z")
# a restore point's name (pg_create_restore_point, at most 63 bytes); written into postgresql.auto.conf
RESTORE_POINT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,62}\Z")
LABEL = re.compile(r"^[0-9]{8}-[0-9]{6}F(?:_[0-9]{8}-[0-9]{6}[DI])?\Z")
# paths written into pg_ctl's -o (a string pg_ctl hands to /bin/sh) and the server's configuration
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]+\Z")
MARKER = "maestro-pitr.json"
PG_VERSION = re.compile(r"^[0-9]{1,3}\Z")


class RestoreError(Exception):
    """A value or a state the restore refuses."""


def parse_time(text):
    """The aware datetime of an ISO 8601 time with a timezone, or None when it is not one."""
    m = ISO_TIME.match(text or "")
    if not m:
        return None
    year, month, day, hour, minute, second, frac, tz = m.groups()
    if tz == "Z":
        offset = datetime.timedelta(0)
    else:
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:] or 0)
        if hours > 14 or minutes > 59:
            return None
        offset = datetime.timedelta(hours=hours, minutes=minutes) * (1 if tz[0] == "+" else -1)
    try:
        return datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0),
                                 int((frac or "0").ljust(6, "0")), tzinfo=datetime.timezone(offset))
    except ValueError:
        return None


def _show(value):
    return "(empty)" if value in (None, "") else str(value)


def target_problems(values):
    """Every bad recovery-target value as 'variable=value (rule)'; [] when all are fine. `values`
    holds restore_target and, as it needs, restore_time, restore_xid, restore_name, restore_set."""
    found = []
    target = values.get("restore_target")
    if target not in TARGETS:
        found.append("restore_target=%s (one of %s)" % (_show(target), ", ".join(TARGETS)))
        return found
    needs = dict(time="restore_time", xid="restore_xid", name="restore_name").get(target)
    for name in ("restore_time", "restore_xid", "restore_name"):
        given = values.get(name) not in (None, "")
        # with a restore point, the time it was made (optional) chooses the backup set
        if name == needs or (target == "name" and name == "restore_time"):
            continue
        if given:
            found.append("%s=%s (only with restore_target=%s)" % (name, _show(values.get(name)), name[8:]))
    if (target == "time" or (target == "name" and values.get("restore_time") not in (None, ""))) \
            and parse_time(str(values.get("restore_time") or "")) is None:
        found.append("restore_time=%s (an ISO 8601 time with a timezone, e.g. 2026-12-01T23:40:32Z or "
                     "2026-12-01 23:40:32+01:00)" % _show(values.get("restore_time")))
    if target == "xid" and not XID.match(str(values.get("restore_xid") or "")):
        found.append("restore_xid=%s (a transaction id: digits)" % _show(values.get("restore_xid")))
    if target == "name" and not RESTORE_POINT.match(str(values.get("restore_name") or "")):
        found.append("restore_name=%s (a restore point's name: letters, digits, '_', '.', ':' and '-', "
                     "at most 63)" % _show(values.get("restore_name")))
    if values.get("restore_set") not in (None, "") and not LABEL.match(str(values.get("restore_set"))):
        found.append("restore_set=%s (a pgBackRest backup label such as 20261201-234005F)"
                     % _show(values.get("restore_set")))
    return found


def target_spec(**extra):
    """The recovery-target options (doc fragment maestro.deploy.pgbackrest.target), plus `extra`."""
    spec = dict(
        target=dict(type="str", choices=list(TARGETS), default="latest"),
        time=dict(type="str"),
        xid=dict(type="str"),
        name=dict(type="str"),
        set=dict(type="str"),
        repo=dict(type="int"),
        timeout=dict(type="int", default=3600),
    )
    spec.update(extra)
    return spec


def params_target(params):
    """(problems, --target value) of a module's target options; the value is None when there are problems."""
    problems = [p_.replace("restore_", "", 1) for p_ in target_problems(dict(
        restore_target=params["target"], restore_time=params["time"], restore_xid=params["xid"],
        restore_name=params["name"], restore_set=params["set"]))]
    if problems:
        return problems, None
    return [], target_value(params["target"], params["time"], params["xid"], params["name"])


def choose_for(entry, params):
    """The backup set for a module's target options (see choose_backup)."""
    epoch = parse_time(params["time"]).timestamp() if params["time"] else None
    return choose_backup(entry, params["target"], epoch, params["set"], params["repo"])


def target_value(target, time=None, xid=None, name=None):
    """What goes into --target: the time in UTC as PostgreSQL reads it, the xid, or the name."""
    if target == "time":
        when = parse_time(time)
        if when is None:
            raise RestoreError("time=%r is not an ISO 8601 time with a timezone" % (time,))
        return when.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f+00")
    if target == "xid":
        return str(xid)
    if target == "name":
        return str(name)
    return None


def repo_of(backup):
    """The repository (its key, 1 for repo1) holding `backup`."""
    return (backup.get("database") or {}).get("repo-key", 1)


def good_backups(entry, repo=None):
    """The stanza's backups that did not fail (in repository `repo` when given), oldest first (by stop time)."""
    good = [b for b in entry.get("backup") or [] if not b.get("error") and repo in (None, repo_of(b))]
    return sorted(good, key=lambda b: ((b.get("timestamp") or {}).get("stop") or 0))


def choose_backup(entry, target, target_epoch=None, wanted_set=None, repo=None):
    """The backup set the restore uses, from repository `repo` when given, else from any:
    `wanted_set` when given (it must exist); for a time target, or a restore point made at
    `target_epoch`, the newest backup that stopped at or before it (recovery can only start from a
    backup that is consistent before the target); otherwise the newest. Raises RestoreError
    naming what exists."""
    backups = good_backups(entry, repo)
    if not backups:
        raise RestoreError("stanza %s has no backup to restore from%s" % (
            entry.get("name"), (" in repo%d" % repo) if repo else ""))
    if wanted_set:
        for b in backups:
            if b.get("label") == wanted_set:
                return b
        raise RestoreError("stanza %s has no backup %s (it has %s)" % (
            entry.get("name"), wanted_set, ", ".join(b.get("label") for b in backups)))
    if target_epoch is not None and target in ("time", "name"):
        before = [b for b in backups if ((b.get("timestamp") or {}).get("stop") or 0) <= target_epoch]
        if not before:
            oldest = backups[0]
            raise RestoreError(
                "no backup of stanza %s ended before the target %s: the oldest, %s, stopped at %s; a time before "
                "it cannot be recovered" % (entry.get("name"), epoch_iso(target_epoch), oldest.get("label"),
                                            epoch_iso((oldest.get("timestamp") or {}).get("stop"))))
        return before[-1]
    return backups[-1]


# Left free on the filesystem after a scratch cluster (or a dump) is written: the live server may
# share it, and one that cannot write its WAL stops.
ROOM_RESERVE = 0.05


def room_problem(where, need_bytes, free_bytes, total_bytes, what):
    """Why `where` has no room for `need_bytes` of `what` (keeping ROOM_RESERVE of the filesystem
    free), or None."""
    keep = int(total_bytes * ROOM_RESERVE)
    if need_bytes is None or free_bytes - keep >= need_bytes:
        return None
    return ("not enough room in %s for %s: %d bytes needed and %d kept free (%d%% of the filesystem, which the "
            "live server may share), %d bytes free. Nothing was changed; free some or point restore_scratch_base "
            "elsewhere" % (where, what, need_bytes, keep, int(ROOM_RESERVE * 100), free_bytes))


def free_space(path):
    """(free bytes for an unprivileged writer, filesystem size) of the filesystem holding `path`."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def stopped_at_point(recovery, name):
    """Whether the server log says recovery stopped at restore point `name` (and not at the end of
    the WAL, which an unreached target promotes at on PostgreSQL before 13)."""
    return ('restore point "%s"' % name) in ((recovery or {}).get("stopped") or "")


def epoch_iso(epoch):
    if not isinstance(epoch, (int, float)):
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def wal_range(entry, backup):
    """The archive (min, max segment and id) of the backup's database in its repository."""
    db = backup.get("database") or {}
    for archive in entry.get("archive") or []:
        adb = archive.get("database") or {}
        if adb.get("id") == db.get("id") and adb.get("repo-key", 1) == db.get("repo-key", 1):
            return dict(archive_id=archive.get("id"), min=archive.get("min"), max=archive.get("max"))
    return dict(archive_id=None, min=None, max=None)


def recovery_plan(entry, target, target_text, backup):
    """What a restore of `backup` recovers to: stanza, target, the point in words, the backup set
    and the archived WAL of its database."""
    stamp = backup.get("timestamp") or {}
    info = backup.get("info") or {}
    wal = wal_range(entry, backup)
    if target == "latest":
        point = "the end of the archived WAL (%s)" % (wal["max"] or "none archived")
    elif target == "immediate":
        point = "the end of backup %s (its consistent point, WAL %s)" % (
            backup.get("label"), (backup.get("archive") or {}).get("stop"))
    elif target == "time":
        point = "time %s" % target_text
    elif target == "xid":
        point = "transaction %s (inclusive)" % target_text
    else:
        point = "restore point %s" % target_text
    return dict(
        stanza=entry.get("name"), target=target, target_value=target_text, recovery_point=point,
        backup=dict(label=backup.get("label"), type=backup.get("type"), repo=repo_of(backup),
                    start=epoch_iso(stamp.get("start")),
                    stop=epoch_iso(stamp.get("stop")), size_bytes=info.get("size"),
                    repo_size_bytes=(info.get("repository") or {}).get("size"),
                    wal_start=(backup.get("archive") or {}).get("start"),
                    wal_stop=(backup.get("archive") or {}).get("stop")),
        wal=wal)


def plan_lines(plan_):
    """The plan's backup set and archived WAL in words, as the playbooks show them."""
    b, wal = plan_["backup"], plan_["wal"]
    return ["Backup set: %s in repo%s (%s, %s to %s, %s bytes, %s in the repository), WAL %s to %s." % (
        b["label"], b["repo"], b["type"], b["start"], b["stop"], b["size_bytes"], b["repo_size_bytes"],
        b["wal_start"], b["wal_stop"]),
        "Archived WAL (%s): %s to %s." % (wal["archive_id"], wal["min"], wal["max"])]


def plan(entry, target, target_text, backup, scratch_dir, port):
    """What the scratch restore would do, for check mode and the result."""
    return dict(recovery_plan(entry, target, target_text, backup), scratch_dir=scratch_dir,
                data_dir=os.path.join(scratch_dir, "data"), port=port)


def scratch_problem(scratch_dir, live_paths=()):
    """Why `scratch_dir` may not hold a scratch cluster, or None."""
    if not SAFE_PATH.match(scratch_dir or "") or os.path.normpath(scratch_dir) != scratch_dir:
        return ("scratch_dir=%s: an absolute, normalised path of letters, digits, '_', '.', '-' and '/' "
                "(it is written into the server's options)" % _show(scratch_dir))
    if scratch_dir.count("/") < 2:
        return "scratch_dir=%s: not a top-level directory; a directory of its own under one we own" % scratch_dir
    for live in live_paths:
        if not live:
            continue
        live = os.path.normpath(live)
        if scratch_dir == live or scratch_dir.startswith(live + "/") or live.startswith(scratch_dir + "/"):
            return "scratch_dir=%s overlaps the live data directory %s: the restore never goes there" % (
                scratch_dir, live)
    return None


def layout(scratch_dir):
    """Where the scratch cluster's parts live, all inside scratch_dir."""
    return dict(data=os.path.join(scratch_dir, "data"), tablespaces=os.path.join(scratch_dir, "tablespaces"),
                socket_dir=scratch_dir, log=os.path.join(scratch_dir, "server.log"),
                conf=os.path.join(scratch_dir, "postgresql.conf"), hba=os.path.join(scratch_dir, "pg_hba.conf"),
                ident=os.path.join(scratch_dir, "pg_ident.conf"), marker=os.path.join(scratch_dir, MARKER))


def repo_to_pin(asked, holding):
    """The repository to pass as --repo: the one asked for, or the one holding the chosen backup
    when it is not repo1; None (pgBackRest searches its repositories in order, and so does the
    restore_command it writes) otherwise. Pinning also pins restore_command's archive-get to it."""
    if asked:
        return int(asked)
    return int(holding) if holding and int(holding) != 1 else None


def recovery_argv(pgbackrest, stanza, config, pg_path, target, target_text, backup_set, repo=None, options=()):
    """`pgbackrest restore` of `backup_set` (from repository `repo` when given) into `pg_path`
    (`--pg1-path`) with `options`, recovering to the target with `--target-action=promote`
    (`latest` recovers to the end of the archive, pgBackRest's default type, and promotes on its own)."""
    argv = [pgbackrest]
    if config:
        argv.append("--config=%s" % config)
    argv.append("--stanza=%s" % stanza)
    if repo is not None:
        argv.append("--repo=%d" % int(repo))
    argv += ["--pg1-path=%s" % pg_path, "--set=%s" % backup_set] + list(options)
    if target != "latest":
        argv.append("--type=%s" % target)
        if target_text is not None:
            argv.append("--target=%s" % target_text)
        argv.append("--target-action=promote")
    return argv + ["restore"]


def restore_argv(pgbackrest, stanza, config, scratch_dir, target, target_text, backup_set, repo=None):
    """The scratch copy's restore: into the scratch data directory, tablespaces under the scratch
    directory too, archiving off in the copy."""
    where = layout(scratch_dir)
    return recovery_argv(pgbackrest, stanza, config, where["data"], target, target_text, backup_set, repo,
                         ["--archive-mode=off", "--tablespace-map-all=%s" % where["tablespaces"]])


def server_options(scratch_dir, port):
    """pg_ctl's -o: our configuration file (the live one may be outside the data directory, as on
    Debian), our pg_hba/pg_ident, no TCP, the socket in the scratch directory, no archiving and
    no hot standby (so the primary's max_connections and the like are not required). Options on
    the command line beat postgresql.auto.conf, which the backup copied from the live server."""
    where = layout(scratch_dir)
    for path in (where["conf"], where["hba"], where["ident"], where["socket_dir"]):
        if not SAFE_PATH.match(path):
            raise RestoreError("unsafe path for the server's options: %r" % path)
    return " ".join([
        "-c config_file=%s" % where["conf"], "-c hba_file=%s" % where["hba"],
        "-c ident_file=%s" % where["ident"], "-p %d" % int(port), "-c listen_addresses=",
        "-c unix_socket_directories=%s" % where["socket_dir"], "-c archive_mode=off", "-c hot_standby=off",
    ])


def config_files(os_user, module_user):
    """The scratch cluster's own postgresql.conf, pg_hba.conf and pg_ident.conf: only the socket,
    only the superuser, by peer authentication for the server's user and the module's user."""
    users = [os_user] + ([module_user] if module_user and module_user != os_user else [])
    return {
        "conf": ("# maestro.deploy pgbackrest_restore: a scratch copy for point-in-time recovery.\n"
                 "shared_buffers = 32MB\nmax_connections = 20\nhot_standby = off\narchive_mode = off\n"
                 "listen_addresses = ''\n"),
        "hba": "local all %s peer map=maestro_pitr\n" % os_user,
        "ident": "".join("maestro_pitr %s %s\n" % (u, os_user) for u in users),
    }


def pg_bindir(pg_version_text, explicit=None):
    """The server binaries matching the restored data directory's PG_VERSION (Debian's layout,
    /usr/lib/postgresql/<major>/bin), unless `explicit` is given."""
    if explicit:
        return explicit
    version = (pg_version_text or "").strip()
    if not PG_VERSION.match(version):
        raise RestoreError("PG_VERSION of the restored data directory says %r, not a major version" % version)
    return "/usr/lib/postgresql/%s/bin" % version


def pg_ctl_start_argv(bindir, scratch_dir, port, timeout):
    where = layout(scratch_dir)
    return [os.path.join(bindir, "pg_ctl"), "start", "-D", where["data"], "-l", where["log"], "-w",
            "-t", str(int(timeout)), "-o", server_options(scratch_dir, port)]


def pg_ctl_stop_argv(bindir, scratch_dir, mode="fast"):
    return [os.path.join(bindir, "pg_ctl"), "stop", "-D", layout(scratch_dir)["data"], "-m", mode, "-w",
            "-t", "120"]


def pg_ctl_status_argv(bindir, scratch_dir):
    return [os.path.join(bindir, "pg_ctl"), "status", "-D", layout(scratch_dir)["data"]]


# the timeline of the WAL being written (pg_control's checkpoint may still name the old one just
# after promotion); null while recovering. The settings need a superuser (the server's OS user).
PROBE_SQL = ("SELECT json_build_object('in_recovery', pg_is_in_recovery(), "
             "'timeline', CASE WHEN pg_is_in_recovery() THEN NULL ELSE "
             "('x' || substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8))::bit(32)::int END, "
             "'data_directory', current_setting('data_directory'), "
             "'system_identifier', (SELECT system_identifier::text FROM pg_control_system()))")
# psql's words when nothing listens on the socket (pg_isready's "no response"): anything else is a
# server that answered (refusing, full, starting up) and counts as running
NOTHING_LISTENS = ("No such file or directory", "Connection refused")
# a server on its way up: worth waiting for
STARTING = ("the database system is starting up", "the database system is not yet accepting connections",
            "the database system is in recovery mode")


def probe_argv(psql, socket_dir, port, os_user):
    """psql asking a server over its socket whether it is still recovering, and its timeline."""
    return [psql, "-X", "-q", "-A", "-t", "-w", "-h", socket_dir,
            "-p", str(int(port)), "-U", os_user, "-d", "postgres", "-c", PROBE_SQL]


def parse_probe(rc, out):
    """The probe's answer ({in_recovery, timeline}), or None when the server did not answer it."""
    if rc != 0:
        return None
    try:
        answer = json.loads((out or "").strip())
    except ValueError:
        return None
    return answer if isinstance(answer, dict) else None


def nothing_listens(rc, err):
    """True when psql failed because no server listens on the socket (not for a server that refused)."""
    return rc != 0 and any(words in (err or "") for words in NOTHING_LISTENS)


def read_text(path, offset=0, limit=1 << 20, tail=False):
    """At most `limit` bytes of a regular file's text from `offset` (with `tail`, its last `limit`
    bytes after `offset`: a log's end is what tells how it ended), or None when it cannot be read.
    Never through a symlink, never blocking on a FIFO or a device: the files read (postmaster.pid,
    markers, the server log) are in directories other users may write."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return None
        os.lseek(fd, max(offset, st.st_size - limit) if tail else offset, os.SEEK_SET)
        data = b""
        while len(data) < limit:
            chunk = os.read(fd, min(65536, limit - len(data)))
            if not chunk:
                break
            data += chunk
        return data.decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


STOPPED = re.compile(r"LOG:  (recovery stopping [^\n]*)")
LAST_XACT = re.compile(r"LOG:  last completed transaction was at log time ([^\n]+)")
TIMELINE = re.compile(r"LOG:  selected new timeline ID: ([0-9]+)")
# the server's own fatal errors, not the connections it turned away while recovering
FATAL = re.compile(r"(FATAL|PANIC):  (?!the database system is (?:not accepting connections|not yet accepting "
                   r"connections|starting up))([^\n]*)")


def recovery_from_log(text):
    """Where recovery stopped, as the server log says: the stop line, the last transaction
    replayed, the new timeline, and the first FATAL/PANIC line (None for each not found)."""
    text = text or ""

    def first(rx, group=1):
        m = rx.search(text)
        return m.group(group) if m else None

    fatal = FATAL.search(text)
    return dict(stopped=first(STOPPED), last_transaction=first(LAST_XACT),
                new_timeline=int(first(TIMELINE)) if first(TIMELINE) else None,
                fatal=("%s: %s" % fatal.groups()) if fatal else None)


def log_tail(text, lines=15):
    return (text or "").strip().splitlines()[-lines:]


def marker_text(stanza, plan_, created_at):
    return json.dumps(dict(tool="maestro.deploy.pgbackrest_restore", stanza=stanza, created_at=created_at,
                           plan=plan_), indent=2, sort_keys=True) + "\n"


def read_marker(text):
    """The marker's content when it is ours, else None."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and data.get("tool") == "maestro.deploy.pgbackrest_restore":
        return data
    return None


def decide(state, present):
    """What to do given the scratch directory's `state` (exists, marker: ours or None, entries:
    names in it, running): 'create', 'none' or 'remove'; raises RestoreError when the directory
    is not one this module made."""
    exists = state.get("exists")
    if present:
        if not exists:
            return "create"
        if state.get("marker") and state.get("running") and state.get("promoted"):
            return "none"
        raise RestoreError(
            "scratch_dir %s already exists%s: a scratch cluster is made in a fresh directory; remove it "
            "(state=absent) or choose another" % (
                state.get("path"), " (a scratch cluster that is not running and promoted)" if state.get("marker")
                else ""))
    if not exists:
        return "none"
    if not state.get("marker") and state.get("entries"):
        raise RestoreError("scratch_dir %s holds files but no %s: it was not made by pgbackrest_restore; "
                           "refusing to remove it" % (state.get("path"), MARKER))
    return "remove"
