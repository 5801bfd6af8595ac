"""Inventories generated for tests: localhost as app and db host, on the session's cluster."""

import os

from .pgcluster import free_port


def local_inventory(tmp_path, cluster, db_name, app_repo, pm2_home, **overrides):
    """An inventory dict (ansible-runner accepts it) following the README's inventory contract."""
    port = overrides.pop("app_port", None) or free_port()
    app_root = os.path.join(str(tmp_path), "www", "example-app")
    hostvars = {
        "ansible_connection": "local",
        "ansible_python_interpreter": "{{ ansible_playbook_python }}",
        "app_name": overrides.pop("app_name", "example-app-" + os.urandom(3).hex()),
        "app_repo": app_repo,
        "app_version": "v1",
        "app_root": app_root,
        "app_port": port,
        "app_env": {"NODE_ENV": "production"},
        "pm2_home": pm2_home,
        "db_name": db_name,
        "db_host": "127.0.0.1",
        "db_port": cluster.port,
        "db_user": cluster.app_user,
        "db_password": cluster.app_password,
        "backup_dir": os.path.join(str(tmp_path), "backups"),
        "migration_tool": "alembic",
        "keep_releases": 5,
        "healthcheck_url": f"http://127.0.0.1:{port}/health",
        # the example app names the commit it runs ({revision}: the commit being checked)
        "healthcheck_expect": {"revision": "{revision}"},
    }
    hostvars.update(overrides)
    return {
        "all": {
            "children": {"app": {"hosts": {"localhost": None}}, "db": {"hosts": {"localhost": None}}},
            "vars": hostvars,
        }
    }


def plain_app_inventory(tmp_path, cluster, db_name, app_repo, pm2_home, **overrides):
    """The inventory for examples/app-plain, through the inventory variables alone: `npm start` in
    fork mode, no ecosystem file, Prisma, a health check that a 200 satisfies, the Prisma engine
    download skipped in the build (see examples/app-plain/README.md)."""
    inventory = local_inventory(tmp_path, cluster, db_name, app_repo, pm2_home, **overrides)
    hostvars = inventory["all"]["vars"]
    hostvars["app_root"] = os.path.join(str(tmp_path), "www", "plain-app")
    plain = {
        "app_name": "plain-app-" + os.urandom(3).hex(),
        "migration_tool": "prisma",
        "app_start": "npm start",
        "app_exec_mode": "fork",
        "app_instances": 1,
        "app_build_env": {"PRISMA_SCHEMA_ENGINE_BINARY": "/bin/false"},
    }
    if "healthcheck_expect" not in overrides:
        del hostvars["healthcheck_expect"]
    hostvars.update((key, value) for key, value in plain.items() if key not in overrides)
    return inventory
