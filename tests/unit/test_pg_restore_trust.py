"""Files read back from the host are untrusted input (issue 14): a backup's manifest never names a
program, plain dumps are not fed to psql, only backups inside the backup directory that are owned
by the expected user and writable by nobody else are restored, and manifests are written safely."""

import datetime
import hashlib
import json
import os

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import pg_archive, pg_manifest
from ansible_collections.maestro.deploy.plugins.module_utils.pg_restore_core import check_manifest, resolve_source
from ansible_collections.maestro.deploy.plugins.module_utils.runner import Runner
from tests.unit.fakes import FakeModule

UTC = datetime.timezone.utc
NOBODY = 65534


def backup(directory, db="app", content=b"archive", fmt="custom", compression="gzip", external=None, **extra):
    name = "%s_20260201_020000%s" % (db, pg_manifest.extension(fmt, compression, bool(external)))
    (directory / name).write_bytes(content)
    manifest = dict(tool=pg_manifest.TOOL, db=db, file=name, format=fmt, compression=compression,
                    external_compressor=external, verify="read", label="r1",
                    created_at=pg_manifest.iso(datetime.datetime(2026, 2, 1, 2, tzinfo=UTC)),
                    sha256=hashlib.sha256(content).hexdigest())
    manifest.update(extra)
    (directory / (name + ".json")).write_text(json.dumps(manifest))
    return str(directory / name)


@pytest.fixture
def bdir(tmp_path):
    d = tmp_path / "backups"
    d.mkdir(mode=0o700)
    return d


# -- programs come from a fixed table, never from a manifest --------------------------------------
@pytest.mark.parametrize("external", ["/bin/sh", "sh", "/tmp/evil-compressor", "gzip; id", "../gzip"])
def test_a_manifest_naming_a_program_is_refused(bdir, external):
    path = backup(bdir, external=external, compression="zstd")
    _, data = resolve_source(path, str(bdir), "app")
    with pytest.raises(ValueError) as err:
        check_manifest(path, data)
    assert "external_compressor=%r" % external in str(err.value) and "gzip, zstd, lz4" in str(err.value)


def test_the_compressor_must_be_the_manifests_compression(bdir):
    path = backup(bdir, external="gzip", compression="zstd")
    _, data = resolve_source(path, str(bdir), "app")
    with pytest.raises(ValueError, match="external_compressor='gzip' does not match compression='zstd'"):
        check_manifest(path, data)


def test_tools_resolve_only_names_from_the_table():
    tools = pg_archive.Tools(Runner(FakeModule([])))
    assert tools["zstd"] == "/usr/bin/zstd" and tools["pg_restore"] == "/usr/bin/pg_restore"
    for name in ("/bin/sh", "sh", "bash", "../zstd", "zstd -d"):
        with pytest.raises(ValueError, match="not a program this collection runs"):
            tools[name]  # noqa: B018


# -- plain dumps ------------------------------------------------------------------------------------
@pytest.mark.parametrize("compression, external", [("none", None), ("zstd", "zstd")])
def test_plain_backups_are_refused_saying_how_to_convert(bdir, compression, external):
    path = backup(bdir, content=b"\\! touch /tmp/marker\n", fmt="plain", compression=compression, external=external)
    _, data = resolve_source(path, str(bdir), "app")
    with pytest.raises(ValueError) as err:
        check_manifest(path, data)
    msg = str(err.value)
    assert "plain SQL dump" in msg and "meta-command" in msg and "format=custom" in msg and path in msg


# -- where the backup may come from ---------------------------------------------------------------
def test_a_backup_outside_the_backup_directory_is_refused(bdir, tmp_path):
    evil = backup(tmp_path)  # a perfectly good backup with its manifest, but not in bdir
    with pytest.raises(ValueError, match="is not in the backup directory"):
        resolve_source(evil, str(bdir), "app")
    with pytest.raises(ValueError, match="'..'"):
        resolve_source(str(bdir / ".." / os.path.basename(evil)), str(bdir), "app")


def test_a_symlink_in_the_backup_directory_is_refused(bdir, tmp_path):
    evil = backup(tmp_path)
    os.symlink(evil, str(bdir / os.path.basename(evil)))
    os.symlink(evil + ".json", str(bdir / (os.path.basename(evil) + ".json")))
    with pytest.raises(ValueError, match="symbolic link"):
        resolve_source(str(bdir / os.path.basename(evil)), str(bdir), "app")


def test_a_symlinked_backup_directory_is_judged_by_its_real_path(bdir, tmp_path):
    path = backup(bdir)
    link = tmp_path / "via-link"
    os.symlink(str(bdir), str(link))
    found, _ = resolve_source(os.path.join(str(link), os.path.basename(path)), str(link), "app")
    assert found == os.path.realpath(path)


def test_src_dir_is_required():
    with pytest.raises(ValueError, match="src_dir"):
        resolve_source("/var/backups/app/app_1.dump", None, "app")


@pytest.mark.parametrize("target", ["backup", "manifest", "dir"])
def test_group_or_world_writable_backups_are_refused(bdir, target):
    path = backup(bdir)
    victim = {"backup": path, "manifest": path + ".json", "dir": str(bdir)}[target]
    os.chmod(victim, 0o777 if target == "dir" else 0o666)
    with pytest.raises(ValueError, match="writable by group or others"):
        resolve_source(path, str(bdir), "app")


@pytest.mark.parametrize("target", ["backup", "manifest"])
def test_backups_owned_by_someone_else_are_refused(bdir, target):
    path = backup(bdir)
    os.chown(path if target == "backup" else path + ".json", NOBODY, -1)
    with pytest.raises(ValueError, match="owned by uid %d" % NOBODY):
        resolve_source(path, str(bdir), "app")
    # the backup owner pg_backup was told to use is trusted too
    assert resolve_source(path, str(bdir), "app", owners={0, NOBODY})[0] == path


def test_a_directory_backup_is_checked_inside(bdir, tmp_path):
    name = "app_20260201_020000.dir"
    d = bdir / name
    d.mkdir()
    (d / "toc.dat").write_bytes(b"toc")
    os.symlink("/etc/passwd", str(d / "3001.dat"))
    (bdir / (name + ".json")).write_text(json.dumps(dict(
        tool=pg_manifest.TOOL, db="app", file=name, format="directory", compression="gzip", verify="read",
        created_at="2026-02-01T02:00:00Z", sha256="0" * 64)))
    with pytest.raises(ValueError, match="symbolic link"):
        resolve_source(str(d), str(bdir), "app")


def test_latest_is_checked_like_an_explicit_path(bdir):
    path = backup(bdir)
    os.chmod(path, 0o646)
    with pytest.raises(ValueError, match="writable by group or others"):
        resolve_source("latest", str(bdir), "app")


def test_a_backup_of_another_database_or_release_is_refused(bdir):
    path = backup(bdir, db="other")
    with pytest.raises(ValueError, match="is a backup of other, not of app"):
        resolve_source(path, str(bdir), "app")
    mine = backup(bdir, db="app", label="r1")
    with pytest.raises(ValueError, match="label 'r1', not 'r2'"):
        resolve_source(mine, str(bdir), "app", label="r2")
    assert resolve_source(mine, str(bdir), "app", label="r1")[0] == mine


# -- malformed manifests ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, why", [
    ("{", "not valid JSON"), ("[]", "not a JSON object"), ('{"tool": "x"}', "not written by pg_backup"),
])
def test_a_malformed_manifest_is_named_with_what_is_wrong(bdir, text, why):
    path = backup(bdir)
    (bdir / (os.path.basename(path) + ".json")).write_text(text)
    with pytest.raises(ValueError) as err:
        resolve_source(path, str(bdir), "app")
    assert path + ".json" in str(err.value) and why in str(err.value)


# -- writing the manifest ------------------------------------------------------------------------
def test_manifest_write_does_not_follow_a_planted_symlink(tmp_path):
    target = str(tmp_path / "x.dump.json")
    victim = tmp_path / "victim"
    victim.write_text("untouched")
    os.symlink(str(victim), target + pg_manifest.PARTIAL_SUFFIX)  # the old predictable temporary name
    os.symlink(str(tmp_path / "created-through-link"), target + ".tmp")
    pg_manifest.write_manifest(target, {"a": 1})
    assert victim.read_text() == "untouched"
    assert not os.path.exists(str(tmp_path / "created-through-link"))
    assert json.loads(open(target).read()) == {"a": 1} and os.stat(target).st_mode & 0o777 == 0o600
    assert not os.path.islink(target)
