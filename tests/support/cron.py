"""Cron lines run as cron runs them, for the tests of the scheduled jobs."""

import pwd
import shutil
import subprocess

RUNUSER = shutil.which("runuser") or "/usr/sbin/runuser"


def cron_command(line):
    """What cron hands to /bin/sh -c for the command part of a crontab line: the text up to the
    first unescaped `%` (the rest is stdin), with `\\%` turned into `%` (vixie cron, cronie)."""
    out, escaped = [], False
    for ch in line:
        if escaped:
            if ch == "%":
                out[-1] = "%"
            else:
                out.append(ch)
            escaped = False
            continue
        if ch == "%":
            break
        out.append(ch)
        escaped = ch == "\\"
    return "".join(out)


def run_cron_line(cron_file, containing=""):
    """Run the one job of a cron.d file (or its one line containing `containing`) exactly as cron
    would: as the line's user, through /bin/sh -c, with cron's small environment. Returns (fields,
    completed process)."""
    lines = [ln for ln in open(cron_file).read().splitlines()
             if ln.strip() and not ln.startswith("#") and containing in ln]
    assert len(lines) == 1, lines
    fields = lines[0].split(None, 6)
    env = {"PATH": "/usr/bin:/bin", "SHELL": "/bin/sh", "LOGNAME": fields[5],
           "HOME": pwd.getpwnam(fields[5]).pw_dir}
    done = subprocess.run([RUNUSER, "-u", fields[5], "--", "/bin/sh", "-c", cron_command(fields[6])],
                          env=env, capture_output=True, text=True, timeout=120)
    return fields, done
