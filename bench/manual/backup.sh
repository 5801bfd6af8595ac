#!/usr/bin/env bash
# The guide's backup script (database-guide.md, "Backup Script"):
#   pg_dump -U postgres $DB_NAME | gzip > $BACKUP_DIR/manumaestro_$DATE.sql.gz
# Env: DB_NAME BACKUP_DIR MARKS (PGHOST/PGPORT set by the benchmark); prints the backup path.
source "$(dirname "$0")/lib.sh"
DATE=$(date +%Y%m%d_%H%M%S)
OUT="$BACKUP_DIR/manumaestro_$DATE.sql.gz"
mark backup_start
pg_dump -U postgres "$DB_NAME" | gzip > "$OUT"
mark backup_end
echo "$OUT"
