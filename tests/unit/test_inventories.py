"""The privilege model of the shipped inventories (issue 14, least privilege and host keys).

The app hosts' tasks (release, npm, the build, PM2, the app) run as the deploy user with no
become; only the database side becomes postgres. The staging and production inventories and the
Molecule SSH scenario (which proves the model on a real sshd) must use the same split, and
host keys are checked everywhere but the local inventory (connection local).
"""
import configparser
import os
import pathlib

import pytest
import yaml
from ansible.inventory.manager import InventoryManager
from ansible.parsing.dataloader import DataLoader
from ansible.parsing.vault import VaultSecret
from ansible.template import Templar
from ansible.vars.manager import VariableManager

pytestmark = pytest.mark.unit

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHIPPED = ["production", "staging"]
# What decides who a task runs as, and as whom the connection logs in.
PRIVILEGE_KEYS = ["ansible_user", "ansible_become", "ansible_become_user", "ansible_become_method"]
# The placeholder vaults' password (README, "The inventory contract").
VAULT_PASSWORD = b"placeholder-vault-password-change-me"
BECOME_DEFAULTS = {"ansible_become": False, "ansible_become_user": "root", "ansible_become_method": "sudo"}


def _loader():
    loader = DataLoader()
    loader.set_vault_secrets([("default", VaultSecret(VAULT_PASSWORD))])
    return loader


def _privileges(source):
    """{group: {host: {key: value}}} of the privilege keys, templated, with Ansible's defaults."""
    loader = _loader()
    inventory = InventoryManager(loader=loader, sources=[str(source)])
    variables = VariableManager(loader=loader, inventory=inventory)
    out = {}
    for group in ("app", "db"):
        out[group] = {}
        for host in inventory.get_groups_dict()[group]:
            hostvars = variables.get_vars(host=inventory.get_host(host))
            templar = Templar(loader=loader, variables=hostvars)
            seen = {}
            for key in PRIVILEGE_KEYS:
                value = templar.template(hostvars[key]) if key in hostvars else BECOME_DEFAULTS.get(key)
                seen[key] = value.lower() in ("true", "yes", "1") if key == "ansible_become" and isinstance(
                    value, str) else value
            seen["ansible_become_method"] = str(seen["ansible_become_method"]).removeprefix("ansible.builtin.")
            out[group][host] = seen
    return out


def _molecule_ssh_inventory(tmp_path):
    """The Molecule SSH scenario as an inventory: its platforms (molecule.yml) and its group_vars."""
    scenario = ROOT / "molecule" / "ssh"
    platforms = yaml.safe_load((scenario / "molecule.yml").read_text())["platforms"]
    groups = {}
    for platform in platforms:
        for group in platform["groups"]:
            groups.setdefault(group, {"hosts": {}})["hosts"][platform["name"]] = None
    (tmp_path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": groups}}))
    os.symlink(scenario / "inventory" / "group_vars", tmp_path / "group_vars")
    return tmp_path / "hosts.yml"


@pytest.mark.parametrize("name", SHIPPED)
def test_app_hosts_run_as_the_deploy_user_and_db_hosts_become_postgres(name):
    seen = _privileges(ROOT / "inventories" / name)
    assert seen["app"] and seen["db"]
    for host, keys in seen["app"].items():
        assert keys["ansible_user"] == "deploy", (name, host, keys)
        assert keys["ansible_become"] is False, (name, host, keys)  # npm, the build, PM2 never as root
    for host, keys in seen["db"].items():
        assert keys["ansible_user"] == "deploy", (name, host, keys)
        assert keys["ansible_become"] is True, (name, host, keys)
        assert keys["ansible_become_user"] == "postgres", (name, host, keys)
    # One inventory name per side: a host name in both groups would merge the two sides' become.
    assert not set(seen["app"]) & set(seen["db"]), name


@pytest.mark.parametrize("name", SHIPPED)
def test_molecule_ssh_scenario_uses_the_shipped_privilege_model(name, tmp_path):
    shipped = _privileges(ROOT / "inventories" / name)
    scenario = _privileges(_molecule_ssh_inventory(tmp_path))
    for group in ("app", "db"):
        want = {tuple(sorted(keys.items())) for keys in shipped[group].values()}
        got = {tuple(sorted(keys.items())) for keys in scenario[group].values()}
        assert got == want, (group, scenario[group], shipped[group])


def test_ansible_cfg_checks_host_keys():
    cfg = configparser.ConfigParser()
    cfg.read(ROOT / "ansible.cfg")
    for section in cfg.sections():
        for key, value in cfg.items(section, raw=True):
            if key == "host_key_checking":
                assert value.strip().lower() not in ("false", "no", "0", "off"), f"[{section}] {key} = {value}"
        if cfg.has_option(section, "ssh_args"):
            assert "StrictHostKeyChecking=no" not in cfg.get(section, "ssh_args", raw=True)


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_inventories_do_not_turn_host_key_checking_off(name):
    loader = _loader()
    inventory = InventoryManager(loader=loader, sources=[str(ROOT / "inventories" / name)])
    variables = VariableManager(loader=loader, inventory=inventory)
    for host in inventory.get_hosts():
        hostvars = variables.get_vars(host=host)
        assert str(hostvars.get("ansible_host_key_checking", True)).lower() not in ("false", "no", "0")
        for key in ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args"):
            assert "StrictHostKeyChecking=no" not in str(hostvars.get(key, "")), (host.name, key)


def test_molecule_ssh_scenario_trusts_only_its_own_host_key():
    group_vars = ROOT / "molecule" / "ssh" / "inventory" / "group_vars"
    for group in ("app", "db"):
        args = yaml.safe_load((group_vars / f"{group}.yml").read_text())["ansible_ssh_common_args"]
        assert "StrictHostKeyChecking=yes" in args and "UserKnownHostsFile=" in args, group
    # Molecule's generated ansible.cfg says host_key_checking = false unless the scenario says not.
    cfg = yaml.safe_load((ROOT / "molecule" / "ssh" / "molecule.yml").read_text())["ansible"]["cfg"]
    assert cfg["defaults"]["host_key_checking"] is True


def test_local_inventory_needs_no_ssh():
    data = yaml.safe_load((ROOT / "inventories" / "local" / "hosts.yml").read_text())
    assert data["all"]["vars"]["ansible_connection"] == "local"


def _tasks(node):
    """Every task, handler and play (dicts) of a YAML document, blocks included."""
    if isinstance(node, list):
        for item in node:
            yield from _tasks(item)
    elif isinstance(node, dict):
        yield node
        for key in ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers"):
            yield from _tasks(node.get(key))


def test_no_deploy_task_becomes_root():
    """Only playbooks/prepare_host.yml (run once by an admin) becomes root; every other become
    in the roles and playbooks goes to postgres, never to root (npm, the build, PM2 never)."""
    offenders = []
    for path in sorted([*ROOT.glob("roles/*/tasks/*.yml"), *ROOT.glob("roles/*/handlers/*.yml"),
                        *ROOT.glob("playbooks/*.yml"), *ROOT.glob("playbooks/tasks/*.yml")]):
        if path.name == "prepare_host.yml" or path.parent.parent.name == "prepare_host":
            continue
        for task in _tasks(yaml.safe_load(path.read_text())):
            settings = {**task.get("vars", {}), **task}
            become = settings.get("become", settings.get("ansible_become"))
            user = settings.get("become_user", settings.get("ansible_become_user"))
            if become or user:
                if user != "postgres":
                    offenders.append(f"{path.relative_to(ROOT)}: {task.get('name')}")
    assert offenders == []
