"""Our native engine cross-checked both ways against Prisma's own schema engine (wasm) on the same database: what
one records, the other reads the same way (issue 15 item 5). Each test runs for Prisma 7.2.0 (ManuMaestro's) and
7.10.0 (the newest 7.x whose engine is published)."""

import shutil

import psycopg
import pytest

from tests.support.migrate_run import run_module
from tests.support.paths import EXAMPLE_APP
from tests.support.prisma_oracle import HERE, VERSIONS, install, oracle, pinned_engine

INIT = "20260119123744_init"
NOTES = "20260201090000_add_item_notes"


@pytest.fixture(scope="module", params=VERSIONS, ids=lambda v: "prisma-" + v)
def prisma_version(request):
    install(request.param)
    assert oracle(request.param, "version", HERE, "")["out"] == pinned_engine(request.param)
    return request.param


@pytest.fixture
def project(tmp_path):
    dest = tmp_path / "app"
    shutil.copytree(f"{EXAMPLE_APP}/prisma", dest / "prisma")
    return dest


@pytest.fixture
def migrate(pg_cluster, pg_db, project, tmp_path):
    def run(**args):
        args.setdefault("project_dir", str(project))
        args.setdefault("engine", "native")
        return run_module("prisma_migrate", args, tmp_path, pg_cluster.url(pg_db), secret=pg_cluster.app_password)
    return run


@pytest.fixture
def prisma(pg_cluster, pg_db, project, prisma_version):
    def run(command, name=None):
        return oracle(prisma_version, command, project / "prisma" / "migrations", pg_cluster.url(pg_db), name)
    return run


def add_migration(project, name, data):
    path = project / "prisma" / "migrations" / name
    path.mkdir(exist_ok=True)
    (path / "migration.sql").write_bytes(data)


def up_to_date(diagnosis):
    assert diagnosis["ok"], diagnosis
    out = diagnosis["out"]
    return out["editedMigrationNames"] == [] and out["failedMigrationNames"] == [] and out["history"] is None


def test_native_then_prisma_and_back_crlf_and_bom(migrate, prisma, project, pg_cluster, pg_db):
    assert migrate()["applied"] == [INIT, NOTES]
    assert up_to_date(prisma("diagnose"))
    assert prisma("deploy") == {"ok": True, "out": {"appliedMigrationNames": []}}  # a no-op after ours
    # a git autocrlf checkout: no edit for either
    path = project / "prisma" / "migrations" / INIT / "migration.sql"
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))
    assert up_to_date(prisma("diagnose")) and migrate(command="status")["modified"] == []
    # Prisma applies a BOM file (and so do we, below); each reads the other's row as applied, unedited
    add_migration(project, "20260301000000_bom", b'\xef\xbb\xbfCREATE TABLE "tags" ("id" SERIAL PRIMARY KEY);\r\n')
    assert prisma("deploy")["out"]["appliedMigrationNames"] == ["20260301000000_bom"]
    again = migrate()
    assert again["changed"] is False and again["pending"] == [] and again["modified"] == []
    add_migration(project, "20260302000000_bom2", b'\xef\xbb\xbfCREATE TABLE "labels" ("id" SERIAL PRIMARY KEY);\n')
    assert migrate()["applied"] == ["20260302000000_bom2"]
    assert up_to_date(prisma("diagnose"))
    # an edited migration is drift for both
    with open(path, "ab") as fh:
        fh.write(b"-- edited after it was applied\r\n")
    assert prisma("diagnose")["out"]["editedMigrationNames"] == [INIT]
    assert migrate(command="status")["modified"] == [INIT]


def test_failures_and_resolve_read_alike(migrate, prisma, project, pg_cluster, pg_db):
    assert prisma("deploy")["out"]["appliedMigrationNames"] == [INIT, NOTES]
    assert migrate()["changed"] is False
    # ours, rolled back by our transaction: Prisma does not see a failed migration either
    bad = "20260301000000_bad"
    add_migration(project, bad, b'ALTER TABLE "nope" ADD "x" INT;\n')
    assert migrate().failed
    assert prisma("diagnose")["out"]["failedMigrationNames"] == []
    # Prisma's own failure (it has no transaction of its own): it blocks us, as it blocks Prisma (P3009)
    assert prisma("deploy")["ok"] is False
    assert prisma("diagnose")["out"]["failedMigrationNames"] == [bad]
    blocked = migrate()
    assert blocked.failed and "P3009" in blocked["msg"] and [f["name"] for f in blocked["failed_migrations"]] == [bad]
    # Prisma's resolve --rolled-back is honoured by us; our resolve --applied is honoured by Prisma
    assert prisma("rolled-back", bad)["ok"]
    assert migrate(command="status")["failed_migrations"] == []
    assert migrate(command="resolve", resolve_applied=bad)["changed"] is True
    assert up_to_date(prisma("diagnose"))
    assert prisma("deploy")["out"]["appliedMigrationNames"] == []
    with psycopg.connect(**pg_cluster.conninfo(pg_db)) as conn:
        assert conn.execute("SELECT to_regclass('nope')").fetchone()[0] is None
