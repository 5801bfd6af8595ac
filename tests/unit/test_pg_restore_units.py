"""pg_restore's refusals and choices as data: which backup, checksum against manifest, SQL it composes."""

import datetime
import hashlib
import json

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import pg_manifest
from ansible_collections.maestro.deploy.plugins.module_utils.pg_restore_core import (
    argument_spec,
    check_manifest,
    create_database_sql,
    resolve_source,
)

UTC = datetime.timezone.utc


def backup(directory, db="app", day=1, content=b"archive", verify="read", sha=None):
    name = "%s_202602%02d_020000.dump" % (db, day)
    (directory / name).write_bytes(content)
    created = datetime.datetime(2026, 2, day, 2, 0, 0, tzinfo=UTC)
    (directory / (name + ".json")).write_text(json.dumps(dict(
        tool=pg_manifest.TOOL, db=db, file=name, format="custom", created_at=pg_manifest.iso(created),
        verify=verify, sha256=sha or hashlib.sha256(content).hexdigest())))
    return str(directory / name)


def test_defaults_are_the_safe_ones():
    spec = argument_spec()
    assert spec["mode"]["default"] == "swap"
    assert spec["keep_previous"]["default"] is True
    assert spec["maintenance_db"]["default"] == "postgres"
    assert spec["password"]["no_log"] is True


def test_latest_takes_the_newest_verified_backup_of_that_db(tmp_path):
    backup(tmp_path, day=1)
    newest = backup(tmp_path, day=3)
    backup(tmp_path, day=5, verify="none")
    backup(tmp_path, db="other", day=9)
    path, data = resolve_source("latest", str(tmp_path), "app")
    assert path == newest and data["db"] == "app"


def test_latest_needs_src_dir_and_a_backup(tmp_path):
    with pytest.raises(ValueError, match="src_dir is required"):
        resolve_source("latest", None, "app")
    with pytest.raises(ValueError, match="no verified backup of app made by pg_backup in"):
        resolve_source("latest", str(tmp_path), "app")


def test_a_backup_without_manifest_is_refused(tmp_path):
    (tmp_path / "app.sql").write_text("SELECT 1;")
    with pytest.raises(ValueError, match="has no manifest .* refusing an unverified backup"):
        resolve_source(str(tmp_path / "app.sql"), str(tmp_path), "app")
    with pytest.raises(ValueError, match="does not exist"):
        resolve_source(str(tmp_path / "nope.dump"), str(tmp_path), "app")


def test_checksum_mismatch_names_both_sums(tmp_path):
    recorded = hashlib.sha256(b"archive").hexdigest()
    path = backup(tmp_path, content=b"arch1ve", sha=recorded)
    _, data = resolve_source(path, str(tmp_path), "app")
    actual = hashlib.sha256(b"arch1ve").hexdigest()
    with pytest.raises(ValueError) as err:
        check_manifest(path, data)
    assert recorded in str(err.value) and actual in str(err.value) and "refusing" in str(err.value)


def test_unverified_backup_is_refused(tmp_path):
    path = backup(tmp_path, verify="none")
    _, data = resolve_source(path, str(tmp_path), "app")
    with pytest.raises(ValueError, match="is unverified .* refusing to restore it"):
        check_manifest(path, data)


def test_good_backup_passes(tmp_path):
    path = backup(tmp_path)
    _, data = resolve_source(path, str(tmp_path), "app")
    assert check_manifest(path, data) == hashlib.sha256(b"archive").hexdigest()


def test_restore_database_copies_owner_and_locale_quoted():
    composed = create_database_sql('app__restore_1', ("app owner", "UTF8", "C", "C", "c", None))
    text = composed.as_string(None)
    assert text == ('CREATE DATABASE "app__restore_1" TEMPLATE template0 OWNER "app owner" '
                    "ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C'")
    assert create_database_sql("x", None).as_string(None) == 'CREATE DATABASE "x" TEMPLATE template0'
