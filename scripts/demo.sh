#!/usr/bin/env bash
# `make demo`: a project-local PostgreSQL under .local/pg, the example app as a git repository
# under .local/, then playbooks/deploy.yml against inventories/local, then what serves.
set -euo pipefail
cd "$(dirname "$0")/.."
port=${1:-5433}
version=${2:-v2}
py=.venv/bin/python
say() { printf '\n==> %s\n' "$*"; }

say "PostgreSQL cluster for the demo (port $port, reused when running; settings in .local/pg)"
# As root the server runs as postgres, which may not traverse this clone's parents (root's 0700
# home): its data then goes to /var/tmp/maestro-demo-<hash of this path> (make clean removes it).
info=$($py -m tests.support.pgcluster start .local/pg --port "$port" --database example_app --demo)
echo "$info"
echo "Server data: $($py -c 'import json, sys; print(json.loads(sys.argv[1])["data"])' "$info")"
say "Example app repository in .local/example-app.git"
$py -m tests.support.apprepo .local/example-app.git
say "ansible-playbook playbooks/deploy.yml -i inventories/local -e app_version=$version"
.venv/bin/ansible-playbook playbooks/deploy.yml -i inventories/local -e "app_version=$version"

say "The app answers at http://127.0.0.1:3100"
$py -c 'import json, urllib.request; print(json.dumps(json.load(urllib.request.urlopen("http://127.0.0.1:3100/health")), indent=4))'
$py - <<'PY'
import json
history = json.load(open(".local/www/example-app/history.json"))
live = [r for r in history["releases"] if r.get("status") == "success"][-1]
print(f"\n==> Release {live['id']} ({live['version']}) is live; its backup: {live.get('backup_path') or 'none'}")
PY
echo "Next: ansible-playbook playbooks/status.yml | playbooks/rollback.yml --check; stop it all with: make demo-stop"
