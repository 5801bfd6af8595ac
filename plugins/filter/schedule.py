# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the backup role uses to validate the scheduled backup's variables and to write its
cron job: cron fields checked against cron's grammar, paths checked against where we put
things, and the job quoted for /bin/sh with cron's `%` escaped."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.maestro.deploy.plugins.filter.notify import notify_url_problems

try:
    from shlex import quote as _sh_quote
except ImportError:  # pragma: no cover (python 2)
    from pipes import quote as _sh_quote

# cron's nicknames allowed for backup_schedule (@reboot is not a schedule; @annually = @yearly)
NICKNAMES = ("@hourly", "@daily", "@weekly", "@monthly", "@yearly", "@annually")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names allowed as a whole field)
FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, MONTHS),
    ("day of week", 0, 7, DAYS),
)
ITEM = re.compile(r"^(?:(\*)|(\d{1,2})(?:-(\d{1,2}))?)(?:/(\d{1,2}))?$")

# Directories that are never a place for the scheduled backup's files (they are chowned/chmodded).
SYSTEM_DIRS = frozenset((
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt", "/opt",
    "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin", "/usr/lib",
    "/usr/local", "/usr/local/bin", "/usr/local/lib", "/usr/local/sbin", "/usr/sbin", "/usr/share", "/var",
    "/var/backups", "/var/lib", "/var/lib/postgresql", "/var/log", "/var/tmp", "/var/www", "/etc/cron.d",
    "/var/spool/cron", "/var/spool/cron/crontabs",
))
USER = re.compile(r"^[a-z_][a-z0-9_-]{0,31}\Z")
DB_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}\Z")
CRON_FILE_NAME = re.compile(r"^[A-Za-z0-9_-]+\Z")  # run-parts names: cron ignores files with a '.'


def cron_field_problem(value, index):
    """Why `value` is not a valid cron field number `index` (0-4), or None."""
    name, low, high, names = FIELDS[index]
    if value.lower() in names:
        return None
    for item in value.split(","):
        match = ITEM.match(item)
        if not match:
            return "%s %r: use digits, *, ranges a-b, steps /n and lists a,b%s" % (
                name, item, (" or one of " + " ".join(names)) if names else "")
        star, first, last, step = match.groups()
        if step is not None and not star and last is None:
            return "%s %r: a step goes after * or a range" % (name, item)
        if step is not None and int(step) < 1:
            return "%s %r: the step must be 1 or more" % (name, item)
        for number in (first, last):
            if number is not None and not low <= int(number) <= high:
                return "%s %r: %s is outside %d-%d" % (name, item, number, low, high)
        if last is not None and int(last) < int(first):
            return "%s %r: the range runs backwards" % (name, item)
    return None


def cron_schedule_problem(schedule):
    """Why `schedule` is not five cron fields (or a nickname such as @daily), or None."""
    text = "" if schedule is None else str(schedule)
    if re.search(r"[^ 0-9A-Za-z*,/@-]", text):
        return "five cron fields separated by spaces, such as '0 2 * * *', or one of " + " ".join(NICKNAMES[:5])
    fields = text.split(" ")
    fields = [f for f in fields if f]
    if len(fields) == 1 and fields[0].lower() in NICKNAMES:
        return None
    if len(fields) != 5:
        return "five cron fields (minute hour day month weekday) such as '0 2 * * *', or one of " + \
            " ".join(NICKNAMES[:5])
    for index, field in enumerate(fields):
        problem = cron_field_problem(field, index)
        if problem:
            return problem
    return None


def cron_fields(schedule):
    """The cron module's arguments for a valid schedule: the five fields, or special_time."""
    fields = [f for f in str(schedule).split(" ") if f]
    if len(fields) == 1:
        nickname = fields[0].lower().lstrip("@")
        return dict(special_time="yearly" if nickname == "annually" else nickname)
    names = ("minute", "hour", "day", "month", "weekday")
    return dict((names[i], fields[i]) for i in range(5))


def path_problem(path, system_dirs=SYSTEM_DIRS):
    """Why `path` is not a place for our files: absolute, normalised, printable, not a system
    directory. None when it is fine."""
    text = "" if path is None else str(path)
    if not text.startswith("/"):
        return "an absolute path"
    if any(ord(c) < 32 or ord(c) == 127 for c in text) or "\\" in text:
        return "no newline, control character or backslash"
    if os.path.normpath(text) != text or text.startswith("//"):
        return "a normalised path (no '.', '..', '//' or trailing '/')"
    if text in system_dirs:
        return "not a system directory"
    return None


def cron_file_problem(value):
    """Why `value` names no cron file: a name under /etc/cron.d (run-parts rules) or an absolute path; or None."""
    cron_file = "" if value is None else str(value)
    if cron_file.startswith("/"):
        return path_problem(cron_file)
    if not CRON_FILE_NAME.match(cron_file):
        return "a file name under /etc/cron.d of letters, digits, '_' and '-' (cron skips other names), " \
               "or an absolute path"
    return None


def _show(value):
    text = "" if value is None else str(value)
    return json.dumps(text) if any(ord(c) < 32 or ord(c) == 127 for c in text) else text


def schedule_problems(values):
    """Every bad scheduled-backup variable as 'variable=value (rule)'; [] when all are fine.
    `values` maps the role's variable names to their values."""
    problems = []

    def bad(name, rule):
        problems.append("%s=%s (%s)" % (name, _show(values.get(name)), rule))

    rule = cron_schedule_problem(values.get("backup_schedule"))
    if rule:
        bad("backup_schedule", rule)
    for name in ("backup_script_dir", "backup_code_dir", "backup_log_file", "backup_cron_python"):
        if name in values:
            rule = path_problem(values.get(name))
            if rule:
                bad(name, rule)
    if values.get("backup_app_root"):
        rule = path_problem(values.get("backup_app_root"), system_dirs=())
        if rule:
            bad("backup_app_root", rule)
    code, script = values.get("backup_code_dir"), values.get("backup_script_dir")
    if code and script and not problems and (
            script == code or script.startswith(code.rstrip("/") + "/") or code.startswith(script + "/")):
        bad("backup_script_dir", "apart from backup_code_dir=%s: the code is root's, the script the job user's" % code)
    rule = cron_file_problem(values.get("backup_cron_file"))
    if rule:
        bad("backup_cron_file", rule)
    problems.extend(url_problems(values, ("backup_notify_url", "backup_heartbeat_url")))
    if "backup_cron_user" in values and not USER.match(str(values.get("backup_cron_user") or "")):
        bad("backup_cron_user", "a user name: lower-case letters, digits, '_' and '-'")
    if "backup_db_name" in values and not DB_NAME.match(str(values.get("backup_db_name") or "")):
        bad("backup_db_name", "letters, digits, _ $ -, starting with a letter or _, at most 63")
    return problems


def url_problems(values, names):
    """The bad notify/heartbeat URLs among `names` of `values`, shown as scheme://host/... only
    (a webhook's path or query is often its secret)."""
    return [problem for name in names if name in values for problem in notify_url_problems(values.get(name), name)]


def cron_command(argv):
    """A crontab command running `argv`: each word quoted for /bin/sh (which cron runs the line
    with), and `%` (cron's newline / stdin marker) escaped as `\\%`."""
    if isinstance(argv, str):
        argv = [argv]
    return " ".join(_sh_quote(str(word)) for word in argv).replace("%", "\\%")


class FilterModule(object):
    def filters(self):
        return {
            "schedule_problems": schedule_problems,
            "cron_fields": cron_fields,
            "cron_command": cron_command,
        }
