# maestro.deploy: `make demo` deploys the example app locally; `make test` runs the suite.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(CURDIR)/node_modules/.bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export CHECKPOINT_DISABLE := 1
LOCAL := $(CURDIR)/.local
DEMO_PORT ?= 5433
DEMO_VERSION ?= v2

.PHONY: setup demo demo-stop test test-unit test-integration lint sanity bench bench-quick clean

setup:
	@bash scripts/setup.sh

demo: setup
	@bash scripts/demo.sh $(DEMO_PORT) $(DEMO_VERSION)

demo-stop:
	@-PM2_HOME=$(LOCAL)/pm2 node_modules/.bin/pm2 kill >/dev/null 2>&1 && echo "PM2 ($(LOCAL)/pm2) stopped"
	@-[ ! -f $(LOCAL)/pg/cluster.json ] || { dir=$$($(PY) -m tests.support.pgcluster stop $(LOCAL)/pg) && echo "PostgreSQL ($$dir) stopped"; }

# The integration tests mostly wait (PM2 stability windows, npm, health checks), so they run
# on TEST_WORKERS processes; tests marked serial measure dropped requests and run alone after.
# worksteal: an idle worker takes queued tests from a busy one, so the long ones do not pile up at the end.
TEST_WORKERS ?= 3
# ansible.cfg's strategy is Mitogen's; the deploy flow tests also run with Ansible's own linear
# strategy (the accelerator must be optional: issue 17).
test: setup
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) --dist worksteal -m "not serial" --durations=25
	ANSIBLE_STRATEGY=linear $(PY) -m pytest tests/integration/test_deploy_flow.py -q -n $(TEST_WORKERS) --dist worksteal
	$(PY) -m pytest tests -q -m serial

test-unit: setup
	$(PY) -m pytest tests -q -m unit

test-integration: setup
	$(PY) -m pytest tests -q -n $(TEST_WORKERS) -m "integration and not serial"
	$(PY) -m pytest tests -q -m "integration and serial"

# Molecule (molecule/*, offline, no Docker: localhost, unmanaged default driver). `molecule` runs
# the default scenario (deploy v1, v2, idempotent rerun, rollback, status; ~2 min);
# `molecule-roles` the per-role scenarios (backup, release, pm2_app; ~1 min each);
# `molecule-ssh` the deploy over a scenario-local sshd as a deploy user with sudo (root, apt).
MOLECULE := $(VENV)/bin/molecule
.PHONY: molecule molecule-roles molecule-ssh
molecule: setup
	$(MOLECULE) test -s default

molecule-roles: setup
	$(MOLECULE) test -s backup
	$(MOLECULE) test -s release
	$(MOLECULE) test -s pm2_app

molecule-ssh: setup
	$(MOLECULE) test -s ssh

lint: setup sanity
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ansible-lint -q

# ansible-test sanity on a copy of the tree (see scripts/sanity.sh for why a copy and what runs).
sanity: setup
	@bash scripts/sanity.sh

# Benchmarks (bench/README.md): matplotlib for the chart goes into .venv from bench/requirements.txt.
BENCH_ARGS ?=
bench: setup
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	$(PY) -m bench.run $(BENCH_ARGS)

bench-quick: setup
	$(VENV)/bin/pip install -q -r bench/requirements.txt
	$(PY) -m bench.run --quick $(BENCH_ARGS)

# The demo cluster's server files may live outside .local (see scripts/demo.sh): destroy finds them.
clean: demo-stop
	@-[ ! -f $(LOCAL)/pg/cluster.json ] || $(PY) -m tests.support.pgcluster destroy $(LOCAL)/pg
	rm -rf $(LOCAL)
