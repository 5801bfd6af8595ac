"""deploy.yml through ansible-runner on a generated inventory: v1 then v2, data kept."""

from tests.support.http import get_json, post_json, wait_for_health
from tests.support.inventory import local_inventory


def test_deploy_v1_then_v2_keeps_data(pg_cluster, pg_db, pm2_home, app_repo, tmp_path, playbook):
    repo, _ = app_repo
    inventory = local_inventory(tmp_path, pg_cluster, pg_db, repo, pm2_home)
    url = inventory["all"]["vars"]["healthcheck_url"]

    first = playbook("deploy.yml", inventory, extravars={"app_version": "v1"})
    assert first.ok, first.stdout[-3000:]
    body = wait_for_health(url)
    assert body["version"] == "1.0.0" and body["schema_version"] == "0001_init"
    post_json(url.replace("/health", "/items"), {"name": "written-on-v1"})

    second = playbook("deploy.yml", inventory, extravars={"app_version": "v2"})
    assert second.ok, second.stdout[-3000:]
    body = wait_for_health(url)
    assert body["version"] == "2.0.0" and body["schema_version"] == "0002_add_item_notes"
    assert [i["name"] for i in get_json(url.replace("/health", "/items"))[1]] == ["written-on-v1"]
    assert pg_cluster.app_password not in first.stdout + second.stdout
