#!/usr/bin/env bash
# Set-up for maestro.deploy, safe to run twice: system packages when missing (as root), the
# Python venv from requirements.txt, the project-local Node tools (PM2, Prisma CLI) and the
# example app's dependencies. Each step is skipped when its inputs have not changed.
# Nothing is downloaded from outside the package registries.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }
as_root() { [ "$(id -u)" -eq 0 ]; }
apt_updated=
apt_install() {
  if ! as_root; then
    echo "missing: $* -- install them (as root: apt-get install -y $*) and run this again" >&2
    exit 1
  fi
  if [ -z "$apt_updated" ]; then DEBIAN_FRONTEND=noninteractive apt-get update -qq; apt_updated=1; fi
  say "apt-get install -y $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# -- system packages ---------------------------------------------------------------------------
need=()
command -v python3 >/dev/null || need+=(python3)
command -v git >/dev/null || need+=(git)
command -v make >/dev/null || need+=(make)
command -v node >/dev/null || need+=(nodejs)
command -v npm >/dev/null || need+=(npm)
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v pg_dump >/dev/null || need+=(postgresql-client)
command -v zstd >/dev/null || need+=(zstd)
command -v runuser >/dev/null || need+=(util-linux)
command -v strace >/dev/null || need+=(strace)  # tests: secret files are never given a mode but 0600
command -v pgbackrest >/dev/null || need+=(pgbackrest)  # roles/pgbackrest and its tests (Debian 12: 2.45)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)  # tests: repo2 on a repository host over SSH (an sshd of their own)
[ ${#need[@]} -eq 0 ] || apt_install "${need[@]}"
for bin in initdb pg_ctl pg_dump pg_restore psql; do
  ls /usr/lib/postgresql/*/bin/$bin >/dev/null 2>&1 || { echo "PostgreSQL binary $bin not found under /usr/lib/postgresql/*/bin" >&2; exit 1; }
done

# -- Python venv -------------------------------------------------------------------------------
stamp() { sha256sum "$@" | sha256sum | cut -c1-16; }
want=$(stamp requirements.txt)
if [ ! -x .venv/bin/python ] || [ "$(cat .venv/.stamp 2>/dev/null)" != "$want" ]; then
  say "Python venv .venv from requirements.txt"
  [ -x .venv/bin/python ] || python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > .venv/.stamp
else
  say "Python venv up to date"
fi
# ansible.cfg's strategy_plugins: Mitogen's strategies at a path that does not name the Python version.
ln -sfn "$(.venv/bin/python -c 'import ansible_mitogen, os; print(os.path.dirname(ansible_mitogen.__file__))')/plugins/strategy" \
  .venv/mitogen-strategy

# -- Node tools and the example app ------------------------------------------------------------
# --ignore-scripts: the Prisma CLI's install scripts would fetch its native engine from
# Prisma's own servers, which cannot be reached here (nor from air-gapped hosts).
export CHECKPOINT_DISABLE=1 PRISMA_HIDE_UPDATE_MESSAGE=1
for dir in . examples/app examples/app-plain; do
  want=$(stamp "$dir/package.json" "$dir/package-lock.json")
  if [ ! -d "$dir/node_modules" ] || [ "$(cat "$dir/node_modules/.maestro-stamp" 2>/dev/null)" != "$want" ]; then
    say "npm ci in $dir"
    (cd "$dir" && npm ci --no-audit --no-fund --ignore-scripts --loglevel=error)
    echo "$want" > "$dir/node_modules/.maestro-stamp"
  else
    say "node_modules in $dir up to date"
  fi
done
(cd examples/app && npm run -s build >/dev/null)
# PM2's version from its package.json: `pm2 --version` would start a PM2 daemon in ~/.pm2.
say "set-up done: $(.venv/bin/ansible --version | head -1), pm2 $(node -p "require('./node_modules/pm2/package.json').version"), $(ls -d /usr/lib/postgresql/*/bin | tail -1)"
