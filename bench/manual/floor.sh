#!/usr/bin/env bash
# The floor: how fast pg_dump can read the database at all (no compression, no disk write).
source "$(dirname "$0")/lib.sh"
mark floor_start
pg_dump -U postgres -Fc -Z0 "$DB_NAME" > /dev/null
mark floor_end
