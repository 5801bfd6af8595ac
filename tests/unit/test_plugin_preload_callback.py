"""The plugin_preload callback: it imports every filter and lookup file of the collection in the
controller process, so that the worker forked for each task finds them loaded."""

import os
import subprocess
import sys

from ansible_collections.maestro.deploy.plugins.callback import plugin_preload

from tests.support.paths import REPO

PLUGINS = os.path.join(REPO, "plugins")


def test_it_lists_every_filter_and_lookup_file_of_the_collection():
    names = plugin_preload.plugin_modules(PLUGINS)
    files = sorted(f[:-3] for f in os.listdir(os.path.join(PLUGINS, "filter")) if f.endswith(".py"))
    assert names == ["ansible_collections.maestro.deploy.plugins.filter." + f for f in files] + [
        "ansible_collections.maestro.deploy.plugins.lookup.controller_run"]
    assert "ansible_collections.maestro.deploy.plugins.filter.deploy" in names


def test_a_fresh_process_has_the_plugins_loaded_once_the_callback_is_made():
    """In a new interpreter (nothing imported yet), constructing the callback imports them all."""
    code = (
        "import sys\n"
        "from ansible_collections.maestro.deploy.plugins.callback import plugin_preload as p\n"
        "names = p.plugin_modules(sys.argv[1])\n"
        "before = [n for n in names if n in sys.modules]\n"
        "cb = p.CallbackModule()\n"
        "print(len(names), len(before), cb.loaded == names, all(n in sys.modules for n in names))\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
    out = subprocess.run([sys.executable, "-c", code, PLUGINS], capture_output=True, text=True, env=env,
                         check=True).stdout.split()
    assert int(out[0]) >= 7 and out[1:] == ["0", "True", "True"], out


def test_ansible_cfg_enables_it():
    with open(os.path.join(REPO, "ansible.cfg")) as fh:
        assert "maestro.deploy.plugin_preload" in [
            name.strip() for line in fh if line.startswith("callbacks_enabled")
            for name in line.split("=", 1)[1].split(",")]
