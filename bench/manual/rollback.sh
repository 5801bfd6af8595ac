#!/usr/bin/env bash
# Back to the previous version by hand: the code (git checkout, npm install, build), then the
# guide's "Option 1: Restore from Backup" (pm2 stop, DROP/CREATE, gunzip | psql, pm2 restart),
# then wait until /health serves the previous version.
# Env: DB_NAME BACKUP APP_DIR APP_NAME TARGET PM2_HOME HEALTH_URL EXPECT_VERSION MARKS
source "$(dirname "$0")/lib.sh"
mark rollback_start
cd "$APP_DIR" || exit 1
git checkout -q "$TARGET"
npm install --no-audit --no-fund --silent
npm run --silent build > /dev/null
mark code_end
pm2 stop "$APP_NAME" > /dev/null
mark drop_start
psql -U postgres -q -c "DROP DATABASE $DB_NAME;"
psql -U postgres -q -c "CREATE DATABASE $DB_NAME;"
gunzip -c "$BACKUP" | psql -U postgres -q "$DB_NAME" > /dev/null
mark restore_end
pm2 restart "$APP_NAME" > /dev/null
"$PY" -m bench.wait_version "$HEALTH_URL" "$EXPECT_VERSION"
mark rollback_end
