"""make demo from a clone postgres cannot traverse (root's 0700 home) stopped with "a parent
directory is not traversable" (issue 13): as root the demo's server files go where postgres can
reach them, one directory per clone, and the settings say where."""

import json
import os

from tests.support import pgcluster


def test_demo_server_dir_as_root_is_under_var_tmp_one_per_clone():
    a = pgcluster.demo_server_dir("/root/demo-check/.local/pg", euid=0)
    b = pgcluster.demo_server_dir("/root/other/.local/pg", euid=0)
    assert a.startswith("/var/tmp/maestro-demo-") and len(os.path.basename(a)) == len("maestro-demo-") + 12
    assert a != b and a == pgcluster.demo_server_dir("/root/demo-check/.local/pg", euid=0)
    assert pgcluster.demo_server_dir("/home/me/repo/.local/pg", euid=1000) is None


def test_cluster_with_server_dir_keeps_settings_in_base_and_finds_the_server_later(tmp_path, monkeypatch):
    monkeypatch.setattr(pgcluster, "server_bindir", lambda: "/usr/bin")
    base, server = tmp_path / "local" / "pg", tmp_path / "server"
    cluster = pgcluster.Cluster(str(base), port=5999, server_dir=str(server))
    assert cluster.data == str(server / "data") and cluster.socket_dir == str(server)
    os.makedirs(base)
    cluster._save()
    assert json.loads((base / "cluster.json").read_text())["server_dir"] == str(server)
    # demo-stop / make clean name only the settings directory
    again = pgcluster.Cluster(str(base))
    assert again.data == str(server / "data") and again.port == 5999
