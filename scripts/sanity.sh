#!/usr/bin/env bash
# `ansible-test sanity` for maestro.deploy, locally (no containers) and offline except for PyPI.
#
# Why a copy: ansible-test resolves the real path of the working directory and requires it to sit
# under .../ansible_collections/<namespace>/<name>; our .collections/ansible_collections/maestro/deploy
# is a symlink to the repo root, so it refuses to run there. We copy the files git would commit
# (tracked + untracked-but-not-ignored, minus the .collections symlink) into a temp tree and run there.
#
# Usage: scripts/sanity.sh [extra ansible-test sanity arguments, e.g. --test validate-modules]
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
VENV=${VENV:-$REPO/.venv}
PY=$VENV/bin/python

# What runs: every sanity test ansible-test lists for this collection (`--list-tests`); none needs the
# network once its virtual environment exists (kept in ~/.ansible/test/venv, requirements from PyPI;
# the first run builds them). One narrowing: the style linters pylint and pep8 check plugins/ only (the
# code Ansible ships to hosts, which their rules are written for), not the pytest harness under tests/
# or the benchmarks under bench/ (there they object to `_` for unused values and to subprocess.run with
# its returncode checked by hand); ruff (ruff.toml) lints the whole tree. Every other sanity test covers
# the whole tree. Per-file exceptions, each with its reason: tests/sanity/ignore-2.19.txt.
STYLE_TESTS=(--test pylint --test pep8)

# get-pip stand-in. Each sanity test gets its own virtual environment, created without pip; ansible-test
# then bootstraps pip by downloading https://ci-files.testing.ansible.com/ansible-test/get-pip-<ver>.py,
# which is not reachable here. It first looks in ~/.ansible/test/cache/get_pip_<ver>.py, so we seed that
# path with a small script that does the same job from what we have: `python -m ensurepip` (bundled
# pip wheel, in a subprocess) and then `pip install <the packages ansible-test asked for>` from PyPI.
# A real get-pip.py already in the cache is left alone.
pip_version=$("$PY" - <<'EOF'
import re, ansible_test._internal.python_requirements as m
src = open(m.__file__).read()
print(re.search(r"pip='([0-9.]+)'", src).group(1))
EOF
)
getpip=$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py
if [ ! -e "$getpip" ]; then
  mkdir -p "$(dirname "$getpip")"
  cat >"$getpip" <<'EOF'
"""Stand-in for get-pip.py written by maestro.deploy scripts/sanity.sh (no internet for the real one)."""
import subprocess
import sys

# get-pip options that `pip install` does not know
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
subprocess.run([sys.executable, '-m', 'ensurepip', '--default-pip'], check=True, stdout=subprocess.DEVNULL)
subprocess.run([sys.executable, '-m', 'pip', 'install', *args], check=True)
EOF
fi

# The shellcheck binary comes from Debian, not PyPI: without it ansible-test skips that test with a warning.
if ! command -v shellcheck >/dev/null; then
  if [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null \
      || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends shellcheck >/dev/null; }
  else
    echo "shellcheck missing (apt-get install shellcheck): the shellcheck sanity test will be skipped" >&2
  fi
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/maestro-sanity.XXXXXX")
trap 'rm -rf "$work"' EXIT
dest=$work/ansible_collections/maestro/deploy
mkdir -p "$dest"
git ls-files -z --cached --others --exclude-standard \
  | while IFS= read -r -d '' f; do
      case $f in .collections/*) continue ;; esac
      if [ -e "$f" ] || [ -L "$f" ]; then printf '%s\0' "$f"; fi
    done \
  | tar --null -T - -cf - | tar -xf - -C "$dest"
# ansible-test lists a collection's files through git when it finds a repository; give it one so that
# what it checks is exactly what we copied.
git -C "$dest" init -q && git -C "$dest" add -A

cd "$dest"
export PATH=$VENV/bin:$PATH
python_version=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
sanity() { ansible-test sanity --local --python "$python_version" --color no "$@"; }
start=$SECONDS
rc=0
if [ $# -gt 0 ]; then
  sanity "$@" || rc=$?
else
  sanity --skip-test pylint --skip-test pep8 || rc=$?
  sanity "${STYLE_TESTS[@]}" plugins/ || rc=$?
fi
echo "ansible-test sanity: rc=$rc in $((SECONDS - start)) s"
exit $rc
