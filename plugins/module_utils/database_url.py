# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A postgresql:// URL (the app's DATABASE_URL) turned into psycopg keyword arguments.

Why: the migration modules take the same URL the app uses, but the URL must never reach argv
or output; psycopg gets it as keywords (password included) and messages use `describe()`,
which has no password. Prisma's `?schema=` becomes the search_path, as Prisma does.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from urllib.parse import parse_qsl, unquote, urlsplit

from ansible_collections.maestro.deploy.plugins.module_utils.pg_connection import application_name

SCHEMES = ("postgresql", "postgres")
# Query parameters passed through to libpq as they are.
LIBPQ_PARAMS = ("sslmode", "sslcert", "sslkey", "sslrootcert", "connect_timeout", "application_name",
                "target_session_attrs", "options", "host", "port", "user", "password", "dbname")


class DatabaseUrlError(ValueError):
    """The URL cannot be used; the message never contains the password."""


def parse_database_url(url):
    """psycopg.connect() kwargs for a postgresql:// URL; raises DatabaseUrlError naming what is wrong."""
    if not url or "://" not in url:
        raise DatabaseUrlError("database_url is not a URL of the form postgresql://user:password@host:port/db")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        # The parser's own message quotes the part it could not read, which may be the password.
        raise DatabaseUrlError("database_url cannot be parsed as postgresql://user:password@host:port/db: "
                               "is every part percent-encoded (a '/', '@', ':', '#' or '?' in the password "
                               "must be)?") from None
    if parts.scheme not in SCHEMES:
        raise DatabaseUrlError("database_url scheme %r is not supported: use postgresql://" % parts.scheme)
    kwargs = {}
    if parts.hostname:
        kwargs["host"] = unquote(parts.hostname)
    if port:
        kwargs["port"] = port
    if parts.username:
        kwargs["user"] = unquote(parts.username)
    if parts.password is not None:
        kwargs["password"] = unquote(parts.password)
    dbname = unquote(parts.path.lstrip("/"))
    if dbname:
        kwargs["dbname"] = dbname
    schema = None
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "schema":
            schema = value
        elif key in LIBPQ_PARAMS:
            kwargs[key] = int(value) if key in ("port", "connect_timeout") and value.isdigit() else value
        # Prisma-only parameters (connection_limit, pool_timeout, pgbouncer, ...) mean nothing to libpq.
    if "dbname" not in kwargs:
        raise DatabaseUrlError("database_url names no database (the /dbname part is missing)")
    if schema:
        kwargs["options"] = (kwargs.get("options", "") + " -c search_path=%s" % schema.replace(" ", "\\ ")).strip()
    kwargs.setdefault("connect_timeout", 10)
    kwargs.setdefault("application_name", application_name())
    return kwargs, schema or "public"


def describe(kwargs):
    """Where a connection goes, for messages: user@host:port/db, never the password."""
    return "%s@%s:%s/%s" % (kwargs.get("user", "(default user)"), kwargs.get("host", "(socket)"),
                            kwargs.get("port", 5432), kwargs.get("dbname"))
