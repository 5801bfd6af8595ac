#!/usr/bin/env bash
# The guide's step 3 alone: `pm2 restart <app>` (cluster mode restarts every worker).
source "$(dirname "$0")/lib.sh"
mark restart_start
pm2 restart "$APP_NAME" > /dev/null
mark restart_end
