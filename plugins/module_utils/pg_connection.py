# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Connection options shared by the PostgreSQL modules, written once.

The password never goes on a command line: libpq tools get it through PGPASSWORD in the
child's environment (not visible in `ps`), psycopg gets it as a keyword argument.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re

# The options every PostgreSQL module accepts (documented in doc_fragments/postgres.py).
CONNECTION_ARGS = dict(
    host=dict(type="str", default=None),
    port=dict(type="int", default=5432),
    user=dict(type="str", default=None),
    password=dict(type="str", default=None, no_log=True),
    sslmode=dict(
        type="str", default=None,
        choices=["disable", "allow", "prefer", "require", "verify-ca", "verify-full"],
    ),
    connect_timeout=dict(type="int", default=10),
)

# A database name we are willing to pass around: PostgreSQL allows almost anything quoted,
# but a name with quotes, semicolons, spaces or slashes is far more likely a mistake in a
# variable than a real database, and it ends up in file names.
DB_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_$-]{0,62}$")


def connection_argument_spec(**extra):
    spec = dict(CONNECTION_ARGS)
    spec.update(extra)
    return spec


def check_db_name(module, name, option="db"):
    if not DB_NAME_RE.fullmatch(name or ""):  # fullmatch: `$` alone lets a trailing newline through
        module.fail_json(
            msg="%s=%r is not an accepted database name: use letters, digits, _ $ or -, "
            "start with a letter or _, at most 63 characters" % (option, name)
        )
    return name


def application_name():
    """How our sessions show in pg_stat_activity: `maestro.deploy`, or the name of the run that
    the deploy and rollback playbooks pass down in the task environment (PGAPPNAME
    `maestro.deploy:<release id>`), so that a later run can tell whether a lost run's database
    work still goes on before it breaks that run's lock."""
    name = os.environ.get("PGAPPNAME", "")
    return name[:63] if name.startswith("maestro.deploy") else "maestro.deploy"


def libpq_env(params, dbname=None):
    """Environment for libpq tools (pg_dump, pg_restore, psql): PG* variables, no argv secrets."""
    env = {}
    mapping = dict(host="PGHOST", port="PGPORT", user="PGUSER", password="PGPASSWORD",  # noqa: S106
                   sslmode="PGSSLMODE", connect_timeout="PGCONNECT_TIMEOUT")
    for key, var in mapping.items():
        value = params.get(key)
        if value is not None and value != "":
            env[var] = str(value)
    if dbname:
        env["PGDATABASE"] = dbname
    env["PGAPPNAME"] = application_name()
    return env


def psycopg_kwargs(params, dbname):
    kwargs = dict(dbname=dbname, application_name=application_name())
    for key in ("host", "port", "user", "password", "sslmode", "connect_timeout"):
        if params.get(key) not in (None, ""):
            kwargs[key] = params[key]
    return kwargs


def connect(module, params, dbname, autocommit=True):
    """A psycopg 3 connection, or fail_json with a message that names the target (no password)."""
    try:
        import psycopg
    except ImportError:
        module.fail_json(msg="the psycopg (3) Python package is required on the managed host")
    try:
        return psycopg.connect(autocommit=autocommit, **psycopg_kwargs(params, dbname))
    except psycopg.Error as exc:
        module.fail_json(msg="cannot connect to database %r on %s:%s as %s: %s" % (
            dbname, params.get("host") or "(socket)", params.get("port"), params.get("user") or "(default)",
            mask(str(exc).strip(), params.get("password"))))


def mask(text, secret):
    if secret and text:
        return text.replace(secret, "********")
    return text
