#!/usr/bin/env bash
# The guide's "Production Deployment" steps, in order, on the app's checkout $APP_DIR:
#   1. backup (the guide's backup script: pg_dump | gzip)
#   2. git pull; npm install; npx prisma migrate deploy (*)
#   3. npm run build; pm2 restart <app>
#   4. smoke test: wait until /health answers with the new version
# (*) Prisma's native engine cannot be downloaded here, so `prisma migrate deploy` is replaced
#     by the same native apply the automation uses (maestro.deploy.prisma_migrate engine=native).
# Env: DB_NAME BACKUP_DIR APP_DIR APP_NAME PM2_HOME HEALTH_URL EXPECT_VERSION DATABASE_URL MARKS
source "$(dirname "$0")/lib.sh"
mark deploy_start
DATE=$(date +%Y%m%d_%H%M%S)
pg_dump -U postgres "$DB_NAME" | gzip > "$BACKUP_DIR/manumaestro_$DATE.sql.gz"
echo "$BACKUP_DIR/manumaestro_$DATE.sql.gz" > "$BACKUP_DIR/last"
mark backup_end
cd "$APP_DIR" || exit 1
git pull -q
mark pull_end
npm install --no-audit --no-fund --silent
mark install_end
"$PY" -m bench.prisma_apply "$APP_DIR"
mark migrate_end
npm run --silent build > /dev/null
mark build_end
pm2 restart "$APP_NAME" > /dev/null
mark restart_end
"$PY" -m bench.wait_version "$HEALTH_URL" "$EXPECT_VERSION"
mark deploy_end
