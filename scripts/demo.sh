#!/usr/bin/env bash
# `make demo`: a project-local PostgreSQL under .local/pg, the example app as a git repository
# under .local/, then playbooks/deploy.yml against inventories/local, then what serves.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-5433}
version=${2:-v2}
py=.venv/bin/python
say() { printf '\n==> %s\n' "$*"; }

say "PostgreSQL cluster in .local/pg (port $port, reused when running)"
$py -m tests.support.pgcluster start .local/pg --port "$port" --database example_app
say "Example app repository in .local/example-app.git"
$py -m tests.support.apprepo .local/example-app.git
say "ansible-playbook playbooks/deploy.yml -i inventories/local -e app_version=$version"
.venv/bin/ansible-playbook playbooks/deploy.yml -i inventories/local -e "app_version=$version"

url=$(.venv/bin/ansible-inventory -i inventories/local --host localhost 2>/dev/null \
  | $py -c 'import json,sys; v=json.load(sys.stdin); print(v.get("healthcheck_url",""))')
[ -n "$url" ] && [[ "$url" != *"{{"* ]] || url="http://127.0.0.1:3100/health"
say "The app answers at ${url%/health}"
curl -fsS "$url" | $py -m json.tool
backups=$(ls -t .local/backups/*/* 2>/dev/null | grep -v '\.json$' | head -1 || true)
say "Latest backup: ${backups:-none yet (the backup stage comes with the staged deploy)}"
echo "Stop it all with: make demo-stop"
