"""The app contract's filters: the inventory's start/build/health settings checked for their
grammar (preflight), the build as argv lists, what a start command runs in a release."""

import pytest
from ansible.errors import AnsibleFilterError
from ansible_collections.maestro.deploy.plugins.filter.app import (
    app_build_argv,
    app_settings_problems,
    app_start_resolve,
)

pytestmark = pytest.mark.unit


def test_good_settings_have_no_problems():
    assert app_settings_problems("npm start", "fork", 1, ["npx prisma generate", ["npx", "tsc"]],
                                 {"PRISMA_SCHEMA_ENGINE_BINARY": "/bin/false"}, {"revision": "{revision}"}) == []
    assert app_settings_problems("", "cluster", "2", None, {}, {}) == []


def test_bad_settings_are_named_with_their_value():
    bad = app_settings_problems("node server.js; curl x | sh", "forked", 0, ["npm run build && rm -rf /", []],
                                {"BAD-KEY": "x", "OK": "two\nlines"}, ["revision"])
    assert bad[0].startswith("app_start=node server.js; curl x | sh (") and "shell syntax" in bad[0]
    assert "app_exec_mode=forked (fork or cluster)" in bad
    assert "app_instances=0 (a number, 1 or more)" in bad
    assert any(b.startswith("app_build_commands item npm run build && rm -rf / (") for b in bad)
    assert "app_build_commands item [] ([] is an empty command)" in bad
    assert "app_build_env key BAD-KEY (letters, digits and _, not starting with a digit)" in bad
    assert "app_build_env OK (a value on one line)" in bad
    assert "healthcheck_expect=['revision'] (a mapping of response field to value)" in bad


def test_the_build_defaults_to_npm_run_build_only_when_package_json_has_one():
    assert app_build_argv(None, "npm", '{"scripts": {"build": "prisma generate"}}') == [["npm", "run", "build"]]
    assert app_build_argv(None, "npm", '{"scripts": {"start": "node server.js"}}') == []
    assert app_build_argv(None, "npm", "not json") == []
    assert app_build_argv(["npx prisma generate", ["node", "scripts/build.js", "a b"]], "npm", "{}") == [
        ["npx", "prisma", "generate"], ["node", "scripts/build.js", "a b"]]
    with pytest.raises(AnsibleFilterError, match="shell syntax"):
        app_build_argv(["make > log"], "npm", "{}")


def test_the_start_command_names_the_file_the_release_must_have():
    assert app_start_resolve("npm start", '{"scripts": {"start": "node dist/main.js"}}')["script"] == "dist/main.js"
    assert app_start_resolve("npm start", "{}")["script"] == "server.js"
    assert app_start_resolve("next start", "{}")["script"] == "node_modules/.bin/next"
    assert app_start_resolve("npm run serve", "{}") == {
        "error": "package.json has no scripts.serve (and 'npm run serve' needs one): add it or set app_start"}
