"""roles/pgbackrest's second repository (repo2) on real pgBackRest 2.45: a "repository host" that
is this machine reached over SSH (an sshd of the test's own on a loopback port, tests/support/sshd.py)
as a user of the test's own, with its repository directory; a throwaway cluster as in
test_pgbackrest.py. The role runs as root with -v and --diff while a thread reads every process's
argv; the cipher pass must appear in none of them, nor in the output, nor in any file but the two
pgBackRest configuration files."""

import json
import os
import pwd
import shutil
import subprocess
import tempfile

import pytest

from tests.integration.test_pgbackrest import changed, wait_for
from tests.support import sshd
from tests.support.faults import ArgvSampler
from tests.support.modrun import run_module
from tests.support.paths import VENV_BIN
from tests.support.pgbackrest_host import Host, stub_crontab
from tests.support.pgcluster import Cluster

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None or not sshd.available(),
                                reason="needs root, pgbackrest, sshd, ssh and ssh-keygen")


class Repo2Host(Host):
    def __init__(self, base, cluster, server, user):
        super().__init__(base, cluster)
        self.sshd = server
        self.user = user
        self.cipher_pass = "Tp" + os.urandom(24).hex()
        self.repo2 = os.path.join(base, "repo2")
        self.host_config = os.path.join(base, "repohost", "pgbackrest.conf")
        self.ssh_dir = os.path.join(base, "etc", "repo2-ssh")
        self.host_ssh_dir = os.path.join(base, "repohost", "ssh")
        self.cron2 = os.path.join(base, "cron-repo2")
        self.vars.update({
            "pgbackrest_repo2_host": "127.0.0.1", "pgbackrest_repo2_host_port": server.port,
            "pgbackrest_repo2_host_user": user, "pgbackrest_repo2_path": self.repo2,
            "pgbackrest_repo2_inventory_host": "localhost", "pgbackrest_repo2_db_host": "127.0.0.1",
            "pgbackrest_repo2_db_host_port": server.port, "pgbackrest_repo2_cipher_pass": self.cipher_pass,
            "pgbackrest_repo2_retention_full": 3, "pgbackrest_repo2_retention_diff": 5,
            # the repository host's key is scanned once (then kept); the db host's is given
            "pgbackrest_repo2_known_hosts": "", "pgbackrest_repo2_db_known_hosts": server.known_hosts_line(),
            "pgbackrest_repo2_ssh_dir": self.ssh_dir, "pgbackrest_repo2_host_config": self.host_config,
            "pgbackrest_repo2_host_ssh_dir": self.host_ssh_dir,
            "pgbackrest_repo2_host_log_path": os.path.join(base, "repohost", "log"),
            "pgbackrest_repo2_host_lock_path": os.path.join(base, "repohost", "lock"),
            "pgbackrest_repo2_authorized_keys_file": server.authorized_keys(user),
            "pgbackrest_repo2_db_authorized_keys_file": server.authorized_keys("postgres"),
            "pgbackrest_repo2_cron_file": self.cron2,
        })

    def on_repo_host(self, *args, check=True):
        return subprocess.run(["runuser", "-u", self.user, "--", "pgbackrest", "--config=" + self.host_config,
                               "--stanza=" + self.stanza] + list(args),
                              capture_output=True, text=True, check=check, timeout=300)


@pytest.fixture
def repo2_host():
    base = tempfile.mkdtemp(prefix="maestro-pgbr2-", dir="/tmp")
    os.chmod(base, 0o755)
    user = "mr2" + os.urandom(3).hex()
    subprocess.run(["useradd", "-m", "-d", os.path.join(base, "home-" + user), "-s", "/bin/sh", user], check=True)
    server = sshd.Sshd(os.path.join(base, "sshd"), allow_users=[user, "postgres"])
    cluster = Cluster(os.path.join(base, "pg"))
    try:
        server.start()
        cluster.start()
        yield Repo2Host(base, cluster, server, user)
    finally:
        cluster.destroy()
        server.stop()
        subprocess.run(["pkill", "-u", user], capture_output=True, check=False)  # its sessions, by user id
        subprocess.run(["userdel", user], capture_output=True, check=False)
        shutil.rmtree(base, ignore_errors=True)


def files_holding(secret, roots, skip):
    found = []
    for root in roots:
        for top, _dirs, files in os.walk(root):
            for name in files:
                path = os.path.join(top, name)
                if path in skip or os.path.islink(path) or not os.path.isfile(path):
                    continue
                try:
                    with open(path, "rb") as fh:
                        if secret.encode() in fh.read():
                            found.append(path)
                except OSError:
                    continue
    return found


def test_repo2_on_a_repository_host_over_ssh_encrypted(repo2_host, playbook, tmp_path):
    host, cluster = repo2_host, repo2_host.cluster
    env = {"PATH": os.pathsep.join([stub_crontab(host.base), VENV_BIN, os.environ["PATH"]])}
    watch = ArgvSampler(host.cipher_pass, interval=0.005)
    watch.start()
    try:
        setup = playbook("pgbackrest.yml", host.inventory(pgbackrest_restart_allowed=True), envvars=env,
                         diff=True, verbosity=1)
        assert setup.ok, setup.stdout
        cluster.psql("CREATE TABLE marker (v text); INSERT INTO marker VALUES ('maestro-plaintext-marker-4711');"
                     " CHECKPOINT")
        # repo2's full backup, exactly as its cron entry on the repository host runs it
        (full_line,) = [line for line in open(host.cron2).read().splitlines() if line.endswith("--type=full backup")]
        job = full_line.split(None, 6)[6]
        assert full_line.split(None, 6)[5] == host.user
        assert job == "pgbackrest --config=%s --stanza=%s --repo=2 --type=full backup" % (
            host.host_config, host.stanza)
        backup = subprocess.run(["runuser", "-u", host.user, "--"] + job.split(), capture_output=True, text=True,
                                timeout=300, check=False)
        assert backup.returncode == 0, (backup.stderr, open(host.sshd.log).read()[-3000:])
        again = playbook("pgbackrest.yml", host.inventory(pgbackrest_restart_allowed=True), envvars=env,
                         diff=True, verbosity=1)
        preview = playbook("pgbackrest.yml", host.inventory(pgbackrest_restart_allowed=True), envvars=env,
                           check=True, diff=True, verbosity=1)
    finally:
        seen = watch.finish()

    # Set up: stanza in both repositories, pgbackrest check passed for both (from the db host and from
    # the repository host), the pass never in an argv.
    assert watch.samples > 10 and seen == []
    assert "Create the stanza in the repository" in changed(setup)
    assert [c["event"] for c in setup.task_results("Check that WAL is archived end to end (pgbackrest check)")] \
        == ["runner_on_ok"]
    checked = host.pgbackrest("check")
    assert checked.returncode == 0, checked.stderr
    assert host.on_repo_host("check").returncode == 0
    # (2.45's check takes no --repo: it checks every repository)

    # The files: configurations 0640 (root and the user running pgBackRest), key 0600, the scan kept.
    for path, group in ((host.config, "postgres"), (host.host_config, host.user)):
        st = os.stat(path)
        assert (oct(st.st_mode & 0o777), st.st_uid, pwd.getpwuid(st.st_uid).pw_name) == ("0o640", 0, "root")
        assert st.st_gid == pwd.getpwnam(group).pw_gid
        assert "cipher-pass=%s\n" % host.cipher_pass in open(path).read()
    key = os.stat(os.path.join(host.ssh_dir, "id_ed25519"))
    assert (oct(key.st_mode & 0o777), key.st_uid) == ("0o600", pwd.getpwnam("postgres").pw_uid)
    assert open(os.path.join(host.ssh_dir, "known_hosts")).read().split() == host.sshd.known_hosts_line().split()
    ssh_config = open(os.path.join(host.ssh_dir, "ssh_config")).read()
    assert "StrictHostKeyChecking yes" in ssh_config and "StrictHostKeyChecking no" not in ssh_config
    (authorized,) = open(host.sshd.authorized_keys(host.user)).read().splitlines()
    assert authorized.startswith('restrict,command="%s/maestro-remote-only-repo.sh" ssh-ed25519 '
                                 % os.path.dirname(host.host_config))

    # The keys may run pgBackRest's remote and nothing else.
    for wrapper, user in ((os.path.join(host.ssh_dir, "ssh"), "postgres"),
                          (os.path.join(host.host_ssh_dir, "ssh"), host.user)):
        alias = "maestro-repo2" if user == "postgres" else "maestro-db"
        for cmd in (["id"], ["pgbackrest", "--config=/etc/passwd", "--remote-type=repo", "info:remote"],
                    ["pgbackrest", "version"]):
            tried = subprocess.run(["runuser", "-u", user, "--", wrapper, alias] + cmd, capture_output=True,
                                   text=True, timeout=60, check=False)
            assert tried.returncode != 0 and "maestro.deploy: refused" in tried.stderr, (cmd, tried)

    # repo2's backup is encrypted: every file in it is OpenSSL's salted format, no plaintext marker,
    # pgBackRest says aes-256-cbc for repo2 (and none for the local repo1).
    repo2_files = [os.path.join(t, n) for t, _d, files in os.walk(host.repo2) for n in files]
    assert any("/backup/%s/" % host.stanza in p and p.endswith("backup.info") for p in repo2_files)
    assert len([p for p in repo2_files if "/pg_data/" in p]) > 100
    for path in repo2_files:
        with open(path, "rb") as fh:
            data = fh.read()
        assert data[:8] == b"Salted__", path
        assert b"maestro-plaintext-marker-4711" not in data and host.cipher_pass.encode() not in data
    info_json = json.loads(host.pgbackrest("--output=json", "info").stdout, strict=False)
    (stanza,) = info_json
    assert {r["key"]: r["cipher"] for r in stanza["repo"]} == {1: "none", 2: "aes-256-cbc"}
    assert {r["key"]: r["status"]["code"] for r in stanza["repo"]} == {1: 2, 2: 0}  # 2: no backup in repo1

    # pgbackrest_info reports repo2 with its backup and its archived WAL.
    info = host.info(max_backup_age=3600, max_wal_age=3600)
    repos = {r["key"]: r for r in info["repos"]}
    assert sorted(repos) == [1, 2], info
    assert repos[2]["newest_backup"] is not None, json.dumps([repos[2], info["problems"], info["commands"]])
    assert repos[2]["newest_backup"]["type"] == "full" and repos[2]["backup_count"] == 1
    assert repos[2]["newest_wal"]["max"] and 0 <= repos[2]["newest_wal"]["age_s"] < 300
    assert info["problems"] == ["repo1: no backup of stanza %s" % host.stanza]

    # The second run and check mode with --diff change nothing.
    assert again.ok, again.stdout
    assert changed(again) == []
    assert preview.ok, preview.stdout
    assert changed(preview) == []

    # The pass in no output (-v, --diff), no event, no file but the two configurations.
    for run in (setup, again, preview):
        assert host.cipher_pass not in run.stdout
        assert host.cipher_pass not in json.dumps(run.events)
    # (the inventories ansible-runner was given hold it: they are this test's input, as a vault is)
    inventories = {os.path.join(str(tmp_path), "runner-%d" % n, "inventory", "hosts.json") for n in (1, 2, 3)}
    assert all(host.cipher_pass in open(path).read() for path in inventories)
    assert files_holding(host.cipher_pass, [host.base, str(tmp_path)],
                         {host.config, host.host_config} | inventories) == []

    # The disaster with repo1 lost too (it is on the database host's disk): the cluster is rebuilt
    # from the encrypted repo2 on the repository host alone, and nothing but pgBackRest's
    # configuration ever holds the pass.
    cluster.psql("INSERT INTO marker VALUES ('written after the backup')")
    segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    wait_for("WAL %s archived in repo2" % segment, lambda: (
        lambda w: w and w["max"] >= segment)({r["key"]: r for r in host.info()["repos"]}[2]["newest_wal"]))
    host.crash()
    shutil.rmtree(cluster.data)
    shutil.rmtree(host.repo)
    start = host.start_command()
    watch = ArgvSampler(host.cipher_pass, interval=0.005)
    watch.start()
    try:
        rebuilt = run_module("pgbackrest_rebuild", dict(
            stanza=host.stanza, config=host.config, pg_path=cluster.data, port=cluster.port,
            socket_dir=cluster.socket_dir, start_command=start, log_file=cluster.log, timeout=300), host.base,
            timeout=600)
    finally:
        seen = watch.finish()
    assert not rebuilt.failed, (rebuilt.stdout, rebuilt.stderr)
    result = rebuilt.result
    assert result["plan"]["backup"]["repo"] == 2 and result["action"] == "restore" and result["timeline"] == 2
    assert [c["cmd"] for c in result["commands"] if c["cmd"][-1] == "restore"][0][6:8] == [
        "--stanza=%s" % host.stanza, "--repo=2"]
    assert cluster.psql("SELECT string_agg(v, ',' ORDER BY v) FROM marker") == (
        "maestro-plaintext-marker-4711,written after the backup")
    assert watch.samples > 10 and seen == []
    assert host.cipher_pass not in rebuilt.stdout + rebuilt.stderr
