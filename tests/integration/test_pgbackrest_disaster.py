"""The disaster restore (issue 16, items 3a and 7) against real pgBackRest 2.45, real PostgreSQL
and a real app: examples/app-plain, deployed the way it runs (npm start, fork mode), takes a POST
/notes at a fixed rate, each a committed row; the server is killed (pg_ctl stop -m immediate: no
shutdown checkpoint, no last WAL switch) and its data directory lost; restore.yml
restore_mode=disaster rebuilds the whole cluster from the repository, starts it, and the app's
health check answers again without a restart. Counted after: the committed rows lost are only the
last ones, written within archive_timeout (plus the time to push a segment) before the crash;
measured and printed, with the time the app could not write."""

import os
import shutil
import threading
import time
import urllib.error

import pytest

from tests.integration.test_pgbackrest import wait_for
from tests.integration.test_pgbackrest_restore import pitr_host  # noqa: F401 (the fixture)
from tests.support.apprepo import make_plain_app_repo
from tests.support.http import post_json
from tests.support.inventory import plain_app_inventory
from tests.support.paths import VENV_BIN
from tests.support.pgbackrest_host import stub_crontab

pytestmark = pytest.mark.skipif(shutil.which("pgbackrest") is None,
                                reason="pgbackrest is not installed (scripts/setup.sh installs it)")

DB = "shop"
ARCHIVE_TIMEOUT = 3  # seconds; production uses 60 (pgbackrest_archive_timeout)
PUSH_ALLOWANCE = 3  # seconds for the checkpointer to switch and pgBackRest to push one segment
RATE = 20  # notes per second


class Writer(threading.Thread):
    """POSTs a note every 1/RATE s through the app; remembers when each 201 (a committed row) came
    back, by the row (id, body: the id alone may come again after the rebuild, as a sequence is
    recovered up to 32 values ahead), and when the app could not write."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.committed, self.failures, self.stop = url, {}, [], threading.Event()

    def run(self):
        while not self.stop.is_set():
            try:
                status, note = post_json(self.url, {}, timeout=2)
                if status == 201:
                    self.committed[(note["id"], note["body"])] = time.time()
            except (urllib.error.URLError, ConnectionError, OSError, ValueError):
                self.failures.append(time.time())
            time.sleep(1.0 / RATE)

    def outage(self, after):
        """Seconds from the first failed write after `after` to the next one that committed."""
        first = min((t for t in self.failures if t >= after), default=None)
        back = min((t for t in self.committed.values() if first is not None and t > first), default=None)
        return None if first is None or back is None else back - first


@pytest.mark.serial  # measures the rows lost against archive_timeout: runs alone, after the parallel part
@pytest.mark.timeout(900)
def test_disaster_rebuild_loses_only_the_rows_of_the_last_archive_timeout(pitr_host, playbook, pm2_home,  # noqa: F811
                                                                           tmp_path):
    host, cluster = pitr_host, pitr_host.cluster
    env = {"PATH": os.pathsep.join([stub_crontab(host.base), VENV_BIN, os.environ["PATH"]])}
    setup = playbook("pgbackrest.yml", host.inventory(pgbackrest_restart_allowed=True,
                                                      pgbackrest_archive_timeout=ARCHIVE_TIMEOUT), envvars=env)
    assert setup.ok, setup.stdout
    cluster.create_database(DB)

    repo = str(tmp_path / "plain-app.git")
    make_plain_app_repo(repo)
    start = host.start_command()
    inventory = plain_app_inventory(tmp_path, cluster, DB, repo, pm2_home, pm2_app_stable_for=1,
                                    smoke_test_timeout=60)
    inventory["all"]["vars"].update(host.vars, restore_start_command=start, restore_log_file=cluster.log,
                                    restore_timeout=300)
    deployed = playbook("deploy.yml", inventory, envvars=env)
    assert deployed.ok, deployed.stdout[-5000:]
    # Globals (issue 16 item 6): a role of its own with a grant, which the cluster backup holds.
    cluster.psql("CREATE ROLE reporting LOGIN PASSWORD 'r3port'; GRANT SELECT ON notes TO reporting", db=DB)
    host.pgbackrest("--type=full", "backup")
    url = inventory["all"]["vars"]["healthcheck_url"].replace("/health", "/notes")

    def rebuild(check=False):
        return playbook("restore.yml", inventory, envvars=env, check=check, extravars={"restore_mode": "disaster"})

    writer = Writer(url)
    writer.start()
    wait_for("the writer's first rows", lambda: len(writer.committed) > RATE)

    # While the server runs, the rebuild is refused and nothing changes: the writer goes on.
    pid = host.postmaster_pid()
    written_before = len(writer.committed)
    refused = rebuild()
    assert not refused.ok
    (failed,) = refused.failed_tasks()
    assert failed["task"] == "Plan the rebuild from the stanza's backups (pgbackrest info; nothing changes)"
    assert "PostgreSQL is running (it answers on the socket, serving %s)" % cluster.data in failed["res"]["msg"]
    assert "never stops a running one. Nothing was changed" in failed["res"]["msg"]
    assert host.postmaster_pid() == pid and len(writer.committed) > written_before  # it kept serving
    assert not [n for n in os.listdir(os.path.dirname(cluster.data)) if ".before-" in n]

    time.sleep(4 * ARCHIVE_TIMEOUT)  # several segments archived by archive_timeout alone
    # The disaster: the server dies without a shutdown checkpoint, then its disk is lost; what
    # remains on the new disk is a stray file.
    crashed = time.time()
    host.crash()
    committed = {i: t for i, t in dict(writer.committed).items() if t <= crashed}
    shutil.rmtree(cluster.data)
    os.mkdir(cluster.data, 0o700)
    with open(os.path.join(cluster.data, "left-over"), "w") as fh:
        fh.write("what the lost disk left\n")

    # Check mode: the plan, and nothing changed.
    preview = rebuild(check=True)
    assert preview.ok, preview.stdout
    (shown,) = [r["res"]["msg"] for r in preview.task_results("Show the rebuild plan")]
    print("\n".join(shown))
    backup = host.info()["repos"][0]["newest_backup"]
    assert shown[0].startswith("Would rebuild the cluster %s on localhost to the end of the archived WAL (00000001"
                               % cluster.data), shown[0]
    assert shown[1].startswith("Backup set: %s in repo1 (full, " % backup["label"])
    assert shown[3].startswith("What is in %s is moved aside to %s.before-rebuild-" % (cluster.data, cluster.data))
    assert os.listdir(cluster.data) == ["left-over"]

    run = rebuild()
    assert run.ok, run.stdout
    (summary,) = [r["res"]["msg"] for r in run.task_results("Summarise the rebuild")]
    print("\n".join(summary))
    (rebuilt,) = [r["res"] for r in run.task_results("Restore the cluster from the repository, start it and wait "
                                                     "until it has promoted")]
    assert rebuilt["changed"] and rebuilt["action"] == "aside" and rebuilt["timeline"] == 2
    assert rebuilt["recovery"]["fatal"] is None and rebuilt["recovery"]["new_timeline"] == 2
    argv = [c["cmd"] for c in rebuilt["commands"] if "restore" in c["cmd"]][0]
    assert "--pg1-path=%s" % cluster.data in argv and "--set=%s" % backup["label"] in argv
    assert not [a for a in argv if a.startswith(("--archive-mode", "--type", "--target"))]
    # Nothing was deleted: what was there is beside it.
    aside = rebuilt["plan"]["moved_aside_to"]
    assert open(os.path.join(aside, "left-over")).read() == "what the lost disk left\n"

    # The app serves on the rebuilt cluster (the health check of the play on the app hosts) and
    # writes again, without a restart.
    (health,) = [r["res"] for r in run.task_results("Wait until the health check answers as expected")]
    assert health["status"] == 200, health
    wait_for("a note written after the rebuild", lambda: max(dict(writer.committed).values()) > crashed, timeout=60)
    writer.stop.set()
    writer.join(10)
    outage = writer.outage(crashed)

    # The count: the lost rows are the last ones committed before the crash, none in between.
    rows = cluster.psql("SELECT id || '|' || body FROM notes", db=DB).splitlines()
    present = {(int(i), body) for i, body in (r.split("|", 1) for r in rows)}
    kept = set(committed) & present
    lost = set(committed) - present
    assert kept
    assert not lost or max(committed[k] for k in kept) < min(committed[k] for k in lost), \
        "a hole: rows lost before rows kept"
    seconds_lost = crashed - min(committed[k] for k in lost) if lost else 0.0
    print("disaster: %d rows committed at %d/s through the app, %d lost = the last %.2f s before the crash "
          "(archive_timeout %d s); restore %.1f s + recovery %.1f s; the app could not write for %.1f s (crash, "
          "rebuild playbook and all)" % (len(committed), RATE, len(lost), seconds_lost, ARCHIVE_TIMEOUT,
                                         rebuilt["seconds"]["restore"], rebuilt["seconds"]["recovery"], outage or -1))
    assert seconds_lost <= ARCHIVE_TIMEOUT + PUSH_ALLOWANCE, (len(lost), seconds_lost)
    assert len(lost) <= (ARCHIVE_TIMEOUT + PUSH_ALLOWANCE) * RATE + 1

    # Again: nothing to do, nothing changed.
    again = rebuild()
    assert again.ok, again.stdout
    (planned,) = [r["res"] for r in again.task_results("Plan the rebuild from the stanza's backups (pgbackrest info; "
                                                       "nothing changes)")]
    assert planned["action"] == "none" and planned["timeline"] == 2
    assert [t["task"] for t in again.task_results() if t["res"].get("changed")] == []
    assert not [t for t in again.task_results("Restore the cluster from the repository, start it and wait until it "
                                              "has promoted") if t["event"] != "runner_on_skipped"]
    (said,) = [r["res"]["msg"] for r in again.task_results("Summarise the rebuild")]
    assert said == ["The cluster %s on localhost is a rebuild of ours that serves (timeline 2): nothing changed."
                    % cluster.data]
    assert sorted(n for n in os.listdir(os.path.dirname(cluster.data)) if ".before-" in n) == [os.path.basename(aside)]

    # The roles and their grants came back with the cluster: none had to be made again by hand.
    assert cluster.psql("SELECT rolcanlogin FROM pg_roles WHERE rolname = 'reporting'") == "t"
    assert cluster.psql("SELECT has_table_privilege('reporting', 'notes', 'SELECT'), "
                        "has_table_privilege('reporting', 'notes', 'INSERT')", db=DB) == "t|f"
    assert cluster.psql("SELECT rolname FROM pg_roles WHERE rolname = '%s'" % inventory["all"]["vars"]["db_user"]) \
        == inventory["all"]["vars"]["db_user"]

    # Continuous backup carries on: the rebuilt server archives on its new timeline.
    segment = cluster.psql("SELECT pg_walfile_name(pg_switch_wal())")
    assert segment.startswith("00000002")
    wait_for("WAL %s archived" % segment, lambda: (
        lambda w: w and w["max"] >= segment)(host.info()["repos"][0]["newest_wal"]))
