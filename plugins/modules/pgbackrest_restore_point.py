#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: maestro.deploy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: pgbackrest_restore_point
short_description: Mark the database's state with a pgBackRest restore point and wait until it is archived
description:
  - A deploy's pre-migration backup without a dump (C(backup_method=pgbackrest)) - the cluster is marked with
    C(pg_create_restore_point) and C(pgbackrest check) then switches the WAL and waits until the segment holding
    the mark is in every repository. A later recovery to the point (RV(restore_point.name)) starts from the
    stanza's newest backup that stopped before it (M(maestro.deploy.pgbackrest_restore) with
    C(target=name) and C(time), the point's).
  - Refuses, changing nothing, when the stanza has no backup to recover the point from. When the WAL is not
    archived within O(archive_timeout) the point exists in the server's WAL but not in the repository - the module
    fails so that nothing after it (the migrations) runs.
  - Connects as O(user) (a superuser, or a role granted EXECUTE on C(pg_create_restore_point)); by default over the
    local socket as the OS user. Reads the schema version of O(db) (Alembic's or Prisma's table) in the same
    session, as M(maestro.deploy.pg_backup) records it.
version_added: "0.3.0"
author: maestro.deploy contributors (!UNKNOWN)
extends_documentation_fragment:
  - maestro.deploy.pgbackrest
  - maestro.deploy.postgres
attributes:
  check_mode:
    support: full
    description: Reads the stanza and says which point would be made on which backup; creates nothing.
options:
  db:
    description: The app's database (its schema version is recorded with the point).
    type: str
    required: true
  label:
    description:
      - What the point marks, the deploy's release id. The point is named C(maestro-<label>) (characters other than
        letters, digits, C(.), C(_) and C(-) replaced by C(-), cut to 63 bytes).
    type: str
    required: true
  archive_timeout:
    description: Seconds C(pgbackrest check) waits for the segment to be archived.
    type: int
    default: 60
  scratch_base:
    description:
      - Where a recovery to the point would build its scratch cluster (a rollback's or rescue's
        C(restore_scratch_base)). When given, the point is refused, changing nothing, unless the filesystem there
        has room for the cluster (the base backup's size) and a dump of O(db) (its size), with 5% of it left free.
    type: path
seealso:
  - name: PostgreSQL recovery targets
    description: recovery_target_name, which a restore to the point sets.
    link: https://www.postgresql.org/docs/current/runtime-config-wal.html#RUNTIME-CONFIG-WAL-RECOVERY-TARGET
  - name: pgBackRest check command
    description: What waits for the restore point's WAL to be archived.
    link: https://pgbackrest.org/command.html#command-check
"""

EXAMPLES = r"""
- name: Mark the database before the migrations
  maestro.deploy.pgbackrest_restore_point:
    stanza: manumaestro
    db: manumaestro
    label: 20261203T120000Z-v2.3.0
    host: /var/run/postgresql
    user: postgres
  register: mark

- name: Recover the database to it later (into a scratch cluster)
  maestro.deploy.pgbackrest_restore:
    stanza: manumaestro
    scratch_dir: /var/backups/manumaestro/pitr-1
    target: name
    name: "{{ mark.restore_point.name }}"
    time: "{{ mark.restore_point.time }}"
"""

RETURN = r"""
restore_point:
  description: What the release history keeps of the point (null in check mode).
  returned: always
  type: dict
  contains:
    method: {description: C(pgbackrest)., type: str}
    stanza: {description: The stanza., type: str}
    name: {description: The restore point's name (recovery_target_name)., type: str}
    lsn: {description: Its WAL location., type: str}
    time: {description: "When it was made (the server's clock, UTC).", type: str}
    set:
      description: The newest backup set when it was made (a recovery to it starts from this one or an older).
      type: str
    repo: {description: The repository holding that set., type: int}
    set_stop: {description: When that set stopped., type: str}
  sample: {method: pgbackrest, stanza: manumaestro, name: maestro-20261203T120000Z-v2.3.0, lsn: 0/5000060,
           time: "2026-12-03T12:00:01.123456Z", set: 20261203-020001F, repo: 1, set_stop: "2026-12-03T02:04:10Z"}
name:
  description: The restore point's name (also in check mode).
  returned: always
  type: str
method:
  description: C(pgbackrest), the backup method (M(maestro.deploy.pg_backup) results have a path instead).
  returned: always
  type: str
schema_version:
  description: The schema version of O(db) when the point was made; null without a migration table.
  returned: success
  type: str
schema_version_source:
  description: C(alembic), C(prisma) or null.
  returned: success
  type: str
duration_s:
  description: Seconds from the point to its WAL in the repository.
  returned: success
  type: float
commands:
  description: What ran (argv, rc, duration).
  returned: always
  type: list
  elements: dict
"""

import getpass  # noqa: E402
import os  # noqa: E402
import time  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402
from ansible.module_utils.common.text.converters import to_native  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils import pg_connection  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pg_dbstate import schema_version  # noqa: E402
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest import (  # noqa: E402
    InfoError,
    argument_spec,
    read_info,
    run_as,
    stanza_problem,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_point import (  # noqa: E402
    CREATE_SQL,
    PointError,
    base_backup,
    check_argv,
    point_name,
    record,
)
from ansible_collections.maestro.deploy.plugins.module_utils.pgbackrest_restore import (  # noqa: E402
    free_space,
    room_problem,
)
from ansible_collections.maestro.deploy.plugins.module_utils.runner import CommandError, Runner  # noqa: E402


def create_point(module, name):
    """(lsn, time, schema version, its source) of a new restore point, made in O(db)."""
    p = module.params
    conn = pg_connection.connect(module, p, p["db"])
    try:
        lsn, made_at = conn.execute(CREATE_SQL, (name,)).fetchone()
        version, source = schema_version(conn)
    except Exception as exc:  # psycopg.Error, without importing psycopg at module level
        raise PointError("cannot create restore point %s in %s as %s: %s (a superuser, or GRANT EXECUTE ON FUNCTION "
                         "pg_create_restore_point(text) TO it). Nothing was changed" % (
                             name, p["db"], p["user"] or getpass.getuser(),
                             pg_connection.mask(str(exc).strip(), p["password"]))) from None
    finally:
        conn.close()
    return lsn, made_at, version, source


def room_for_recovery(module, backup):
    """Why scratch_base has no room for a recovery to a point on `backup` (None when it has)."""
    p = module.params
    if not os.path.isdir(p["scratch_base"]):
        return "scratch_base %s does not exist: a recovery to the point would have nowhere to go" % p["scratch_base"]
    conn = pg_connection.connect(module, p, p["db"])
    try:
        db_bytes = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    finally:
        conn.close()
    need = ((backup.get("info") or {}).get("size") or 0) + db_bytes
    return room_problem(p["scratch_base"], need, *free_space(p["scratch_base"]),
                        what="a recovery to the point (the cluster and a dump of %s)" % p["db"])


def main():
    module = AnsibleModule(
        argument_spec=argument_spec(**pg_connection.connection_argument_spec(
            db=dict(type="str", required=True),
            label=dict(type="str", required=True),
            archive_timeout=dict(type="int", default=60),
            scratch_base=dict(type="path"),
        )),
        supports_check_mode=True,
    )
    p = module.params
    if stanza_problem(p["stanza"]):
        module.fail_json(msg=stanza_problem(p["stanza"]))
    pg_connection.check_db_name(module, p["db"])
    if not 1 <= p["archive_timeout"] <= 86400:
        module.fail_json(msg="archive_timeout=%d: seconds, 1 to 86400" % p["archive_timeout"])
    try:
        name = point_name(p["label"])
    except PointError as exc:
        module.fail_json(msg=to_native(exc))
    runner = Runner(module, secrets=[p["password"]] if p["password"] else ())
    result = dict(changed=False, method="pgbackrest", name=name, restore_point=None, commands=runner.history)
    as_user = run_as(runner, p["os_user"], os.geteuid(), getpass.getuser())
    pgbackrest = runner.bin("pgbackrest", explicit=p["pgbackrest"])
    try:
        backup = base_backup(read_info(runner, as_user, pgbackrest, p["stanza"], p["config"]))
        if p["scratch_base"]:
            room = room_for_recovery(module, backup)
            if room:
                runner.fail(room, result=result)
        result.update(changed=True, base_backup=backup.get("label"))
        if module.check_mode:
            module.exit_json(**result)
        lsn, made_at, version, source = create_point(module, name)
        result.update(restore_point=record(p["stanza"], name, lsn, made_at, backup), schema_version=version,
                      schema_version_source=source)
        started = time.time()
        try:
            runner.run(as_user(check_argv(pgbackrest, p["stanza"], p["config"], p["archive_timeout"])),
                       what="pgbackrest check")
        except CommandError as exc:
            runner.fail("restore point %s was made (WAL %s) but pgbackrest check failed, so it may not be in the "
                        "repository: %s. Nothing else was changed; fix archiving (pgbackrest --stanza=%s check) and "
                        "rerun, or use backup_method: dump" % (name, lsn, exc.msg, p["stanza"]),
                        error=exc, result=result)
        result.update(duration_s=round(time.time() - started, 3))
        module.exit_json(**result)
    except CommandError as exc:
        runner.fail(error=exc, result=result)
    except (InfoError, PointError) as exc:
        last = runner.history[-1] if runner.history else {}
        runner.fail(to_native(exc), result=result, cmd=last.get("cmd"), rc=last.get("rc"), stderr="")


if __name__ == "__main__":
    main()
