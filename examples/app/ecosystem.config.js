'use strict';
// PM2 process definition: cluster mode, 2 workers, each signals `ready` once listening
// (wait_ready) and closes gracefully on SIGINT, so `pm2 reload` drops no request.
const path = require('path');

module.exports = {
  apps: [{
    name: process.env.APP_NAME || 'example-app',
    script: path.join(__dirname, 'dist', 'server.js'),
    cwd: __dirname,
    exec_mode: 'cluster',
    instances: Number(process.env.APP_INSTANCES || 2),
    wait_ready: true,
    listen_timeout: 10000,
    kill_timeout: 5000,
    max_restarts: 5,
    min_uptime: 3000,
    env: { PORT: process.env.PORT || '3000' },
  }],
};
