"""The fast no-op's check (live_version): what it asks git and PM2 (exact argv), in which order,
and that any doubt answers "not live" so that the deploy takes its full path."""

import json
import os
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from ansible_collections.maestro.deploy.plugins.module_utils import live_version as lv
from ansible_collections.maestro.deploy.plugins.modules import live_version

from tests.unit.fakes import Exit, ModuleRun

SHA = "de33231bc1" + "0" * 30
OTHER = "ab" * 20
REPO = "https://git.example/app.git"


def test_ref_patterns_ask_in_rev_parse_order_refs_name_then_tags_then_branches():
    assert lv.ref_patterns("v2") == ["refs/v2", "refs/tags/v2^{}", "refs/tags/v2", "refs/heads/v2"]
    assert lv.ref_patterns("release/2.3") == ["refs/release/2.3", "refs/tags/release/2.3^{}",
                                              "refs/tags/release/2.3", "refs/heads/release/2.3"]
    # read from the repository directory first (the mirror's HEAD is the clone's, not the remote's)
    for pseudo in ("HEAD", "FETCH_HEAD", "ORIG_HEAD", "x/HEAD"):
        assert lv.ref_patterns(pseudo) == [], pseudo
    assert lv.ref_patterns(SHA) == []  # a full id is an object name to rev-parse, whatever refs say
    assert lv.ref_patterns(SHA[:12]) != []  # a short one: a ref of that name wins, as in rev-parse
    for revision_syntax in ("main~1", "v2^", "a..b", "main@{1}", "x:y", "v*", "x.lock", ""):
        assert lv.ref_patterns(revision_syntax) == [], revision_syntax


def test_the_first_pattern_present_in_ls_remote_wins():
    out = "%s\trefs/heads/v2\n%s\trefs/tags/v2\n%s\trefs/tags/v2^{}\n" % (OTHER, "cd" * 20, SHA)
    assert lv.sha_from_ls_remote(out, lv.ref_patterns("v2")) == SHA  # annotated tag: its commit
    assert lv.sha_from_ls_remote("%s\trefs/heads/v2\n" % OTHER, lv.ref_patterns("v2")) == OTHER
    assert lv.sha_from_ls_remote("deadbeef\trefs/tags/v2\nnot a line\n", lv.ref_patterns("v2")) is None


def test_versions_the_check_cannot_resolve_are_left_to_the_full_path():
    assert lv.version_problem("v2") is None and lv.version_problem(SHA[:12]) is None
    assert "empty" in lv.version_problem("")
    assert "preflight" in lv.version_problem("--upload-pack=x")
    assert "preflight" in lv.version_problem("v 2")
    assert "neither" in lv.version_problem("main~1")
    assert "neither" in lv.version_problem("HEAD")
    assert lv.version_problem(SHA) is None


ENTRY = {"id": "R1", "version": "v2", "sha": SHA, "status": "success"}
ONLINE = [{"status": "online", "alive": True, "cwd": "/srv/app/releases/R1"},
          {"status": "online", "alive": True, "cwd": "/srv/app/releases/R1/sub"}]


@pytest.mark.parametrize("change, reason", [
    (dict(lock_present=True), "a deploy lock is present"),
    (dict(current_id=None), "nothing is deployed yet"),
    (dict(entry=None), "the history does not know"),
    (dict(entry=dict(ENTRY, status="failed")), "has status failed"),
    (dict(sha=OTHER), "app_version is abababab"),
    (dict(instances=[]), "PM2 runs no process"),
    (dict(instances=[dict(ONLINE[0], status="stopped"), ONLINE[1]]), "1 of 2 PM2 instances are not online"),
    (dict(instances=[dict(ONLINE[0], alive=False)]), "1 of 1 PM2 instances are not online"),
    (dict(instances=[dict(ONLINE[0], cwd="/srv/app/releases/R0")]), "do not run from /srv/app/releases/R1"),
    (dict(instances=[dict(ONLINE[0], cwd="/srv/app/releases/R10")]), "do not run from"),
    (dict(expected_count=3), "PM2 runs 2 instances, app_instances is 3"),
])
def test_any_doubt_is_not_live(change, reason):
    args = dict(lock_present=False, current_id="R1", entry=ENTRY, sha=SHA, instances=ONLINE,
                release_dir="/srv/app/releases/R1", expected_count=2)
    args.update(change)
    live, said = lv.decide(**args)
    assert not live and reason in said, said


def test_the_live_version_is_live():
    assert lv.decide(False, "R1", ENTRY, SHA, ONLINE, "/srv/app/releases/R1", 2) == (
        True, "v2 (de33231bc1) is the current release R1; 2 PM2 instance(s) online in it")


# -- the module on a host laid out in tmp_path, git and PM2 answered by a fake run_command --------

class FakeModule(ModuleRun):
    def __init__(self, params, answers):
        super().__init__(params)
        self.answers = answers

    def run_command(self, args, **kwargs):
        self.calls.append(args)
        for prefix, answer in self.answers:
            if args[len(args) - len(prefix):] == prefix or args[:len(prefix)] == prefix:
                return answer
        raise AssertionError("unexpected command %r" % (args,))


@pytest.fixture
def host(tmp_path, monkeypatch):
    root = tmp_path / "app"
    release = root / "releases" / "R1"
    release.mkdir(parents=True)
    (root / "repo").mkdir()
    os.symlink(str(release), str(root / "current"))
    (root / "history.json").write_text(json.dumps({"releases": [ENTRY], "events": []}))
    home = tmp_path / "pm2home"
    home.mkdir()
    (home / "pm2.pid").write_text(str(os.getpid()))
    pm2 = tmp_path / "pm2"
    pm2.write_text("#!/bin/sh\n")
    pm2.chmod(0o755)
    monkeypatch.chdir(release)  # the instance below is this process: /proc/self/cwd is the release
    return dict(root=str(root), home=str(home), pm2=str(pm2), release=os.path.realpath(str(release)))


def run(monkeypatch, host, remote_sha=SHA, version="v2", more=(), procs=(), **extra):
    params = dict(app_root=host["root"], name="app", version=version, repo=REPO, instances=None,
                  bridge_name="app-maestro-bridge", pm2=host["pm2"], pm2_home=host["home"],
                  health_url=None, health_expect={}, health_within=2.0)
    params.update(extra)
    jlist = [{"name": "app", "pm_id": 0, "pid": os.getpid(),
              "pm2_env": {"status": "online", "pm_cwd": host["root"] + "/current", "exec_mode": "fork_mode"}},
             {"name": "other", "pm_id": 1, "pid": 1, "pm2_env": {"status": "stopped"}}] + list(procs)
    answers = [(["config", "--get", "remote.origin.url"], (0, REPO + "\n", "")),
               (["/usr/bin/git", "-C", host["root"] + "/repo", "ls-remote"],
                (0, "%s\trefs/tags/v2\n" % remote_sha, "")),
               ([host["pm2"], "jlist"], (0, json.dumps(jlist), ""))]
    fake = FakeModule(params, list(more) + answers)
    monkeypatch.setattr(live_version, "AnsibleModule", lambda **spec: fake)
    with pytest.raises(Exit):
        live_version.main()
    return fake


def test_the_live_version_reads_git_then_pm2_and_changes_nothing(monkeypatch, host):
    fake = run(monkeypatch, host)
    mirror = host["root"] + "/repo"
    assert fake.calls == [
        ["/usr/bin/git", "-C", mirror, "config", "--get", "remote.origin.url"],
        ["/usr/bin/git", "-C", mirror, "ls-remote", "--quiet", "origin", "refs/v2", "refs/tags/v2^{}",
         "refs/tags/v2", "refs/heads/v2"],
        [host["pm2"], "jlist"],
    ]
    result = fake.result
    assert result["already_live"] is True and result["changed"] is False, result
    assert result["sha"] == SHA and result["release"]["id"] == "R1"
    assert result["instances"] == [{"pm_id": 0, "status": "online", "cwd": host["release"]}]


def test_a_moved_ref_is_not_live_and_pm2_is_not_asked(monkeypatch, host):
    fake = run(monkeypatch, host, remote_sha=OTHER)
    assert fake.result["already_live"] is False and fake.result["sha"] == OTHER
    assert "app_version is abababab" in fake.result["reason"]
    assert [c[-1] for c in fake.calls] == ["remote.origin.url", "refs/heads/v2"]


def test_a_lock_file_answers_before_any_command(monkeypatch, host):
    open(os.path.join(host["root"], ".deploy.lock"), "w").close()
    fake = run(monkeypatch, host)
    assert fake.result["already_live"] is False and "lock" in fake.result["reason"] and fake.calls == []


def test_a_commit_id_is_looked_up_in_the_mirror_as_it_is(monkeypatch, host):
    mirror = host["root"] + "/repo"
    rev_parse = ["/usr/bin/git", "-C", mirror, "rev-parse", "--verify", "--quiet", "--end-of-options",
                 SHA[:12] + "^{commit}"]
    fake = run(monkeypatch, host, version=SHA[:12], remote_sha=OTHER, more=[(rev_parse, (0, SHA + "\n", ""))])
    # no ref of that name on the remote: the id resolves in the mirror, not fetched
    assert fake.calls[1][3:6] == ["ls-remote", "--quiet", "origin"] and fake.calls[2] == rev_parse
    assert fake.result["already_live"] is True and fake.result["sha"] == SHA


def test_a_full_commit_id_is_not_asked_of_the_remote(monkeypatch, host):
    mirror = host["root"] + "/repo"
    rev_parse = ["/usr/bin/git", "-C", mirror, "rev-parse", "--verify", "--quiet", "--end-of-options",
                 SHA + "^{commit}"]
    fake = run(monkeypatch, host, version=SHA, more=[(rev_parse, (0, SHA + "\n", ""))])
    assert [c[3] for c in fake.calls[:2]] == ["config", "rev-parse"], fake.calls
    assert fake.result["already_live"] is True


def test_a_ref_named_refs_name_wins_as_in_rev_parse(monkeypatch, host):
    ls_remote = (["/usr/bin/git", "-C", host["root"] + "/repo", "ls-remote"],
                 (0, "%s\trefs/v2\n%s\trefs/tags/v2\n" % (OTHER, SHA), ""))
    fake = run(monkeypatch, host, more=[ls_remote])
    assert fake.result["already_live"] is False and fake.result["sha"] == OTHER


def test_a_mirror_of_another_url_is_not_live(monkeypatch, host):
    fake = run(monkeypatch, host, repo="https://git.example/other.git")
    assert fake.result["already_live"] is False and "does not fetch from app_repo" in fake.result["reason"]
    assert len(fake.calls) == 1


def test_a_current_link_outside_releases_is_not_live(monkeypatch, host, tmp_path):
    elsewhere = tmp_path / "R1"
    elsewhere.mkdir()
    os.unlink(os.path.join(host["root"], "current"))
    os.symlink(str(elsewhere), os.path.join(host["root"], "current"))
    fake = run(monkeypatch, host)
    assert fake.result["already_live"] is False and "outside" in fake.result["reason"] and fake.calls == []


def test_a_bridge_process_left_by_a_lost_switch_takes_the_full_path(monkeypatch, host):
    """The old no-op's pm2_app pass removed a `<app>-maestro-bridge` left by a run lost mid-switch."""
    bridge = {"name": "app-maestro-bridge", "pm_id": 2, "pid": os.getpid(),
              "pm2_env": {"status": "online", "pm_cwd": host["release"], "exec_mode": "fork_mode"}}
    result = run(monkeypatch, host, procs=[bridge]).result
    assert result["already_live"] is False
    assert "app-maestro-bridge" in result["reason"] and "full path removes it" in result["reason"]
    # the app's own name is never taken for the bridge's
    assert run(monkeypatch, host, bridge_name="app").result["already_live"] is True


@pytest.fixture
def health_server():
    """A real HTTP server on loopback answering GET /health with the body the test sets."""
    state = {"status": 200, "body": {}, "asked": 0}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            state["asked"] += 1
            body = json.dumps(state["body"]).encode()
            self.send_response(state["status"])
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    state["url"] = "http://127.0.0.1:%d/health" % server.server_address[1]
    yield state
    server.shutdown()
    server.server_close()


def test_the_live_version_answering_its_health_check_as_expected_is_live(monkeypatch, host, health_server):
    health_server["body"] = {"status": "ok", "revision": SHA, "version": "v2"}
    result = run(monkeypatch, host, health_url=health_server["url"],
                 health_expect={"revision": "{revision}", "version": "{version}"}).result
    assert result["already_live"] is True, result
    assert result["health"].startswith("status 200, body ") and SHA in result["health"]
    assert result["reason"].endswith("; the health check answers as expected")
    assert health_server["asked"] == 1


def test_a_health_answer_of_another_revision_takes_the_full_path(monkeypatch, host, health_server):
    health_server["body"] = {"status": "ok", "revision": OTHER}
    result = run(monkeypatch, host, health_url=health_server["url"], health_expect={"revision": "{revision}"},
                 health_within=0.6).result
    assert result["already_live"] is False
    assert "the health check did not answer as expected within 0.6s: revision=%s, expected %s" % (OTHER, SHA) \
        in result["reason"], result["reason"]
    assert health_server["asked"] >= 1


def test_a_health_check_answering_500_or_nothing_takes_the_full_path(monkeypatch, host, health_server):
    health_server["status"] = 500
    result = run(monkeypatch, host, health_url=health_server["url"], health_within=0.2).result
    assert result["already_live"] is False and "status 500, expected 200" in result["reason"], result["reason"]
    closed = health_server["url"].replace("/health", "").rsplit(":", 1)[0] + ":9/health"  # discard port: refused
    result = run(monkeypatch, host, health_url=closed, health_within=0.2).result
    assert result["already_live"] is False and "no HTTP answer" in result["reason"], result["reason"]


def test_the_health_check_is_not_asked_when_the_release_is_not_live(monkeypatch, host, health_server):
    result = run(monkeypatch, host, remote_sha=OTHER, health_url=health_server["url"]).result
    assert result["already_live"] is False and result["health"] is None and health_server["asked"] == 0


def test_an_empty_health_url_is_not_live_and_no_expectation_means_a_200_is_enough(monkeypatch, host, health_server):
    result = run(monkeypatch, host, health_url="").result
    assert result["already_live"] is False and "healthcheck_url is empty" in result["reason"], result["reason"]
    health_server["body"] = {"anything": 1}
    result = run(monkeypatch, host, health_url=health_server["url"], health_expect=None).result
    assert result["already_live"] is True and result["health"].startswith("status 200"), result


def test_a_password_in_the_health_url_is_never_in_the_answer(monkeypatch, host, health_server):
    secret_url = health_server["url"].replace("http://", "http://probe:s3cr%2Ft@")
    for status in (200, 500):
        health_server["status"] = status
        result = run(monkeypatch, host, health_url=secret_url, health_within=0.2).result
        assert result["already_live"] is (status == 200), result
        assert "s3cr" not in json.dumps(result), result
