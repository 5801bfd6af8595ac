#!/usr/bin/env bash
# The guide's "Option 1: Restore from Backup", database part (the app is not involved here):
#   psql -U postgres -c "DROP DATABASE ..."; psql -U postgres -c "CREATE DATABASE ..."
#   gunzip < backup.sql.gz | psql -U postgres $DB_NAME
# Env: DB_NAME BACKUP MARKS. The database is unavailable from drop_start to restore_end.
source "$(dirname "$0")/lib.sh"
mark drop_start
psql -U postgres -q -c "DROP DATABASE $DB_NAME;"
psql -U postgres -q -c "CREATE DATABASE $DB_NAME;"
mark restore_start
gunzip -c "$BACKUP" | psql -U postgres -q "$DB_NAME" > /dev/null
mark restore_end
