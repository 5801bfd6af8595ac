'use strict';
// PM2 process definition: cluster mode, 2 workers, each signals `ready` once listening
// (wait_ready) and closes gracefully on SIGINT, so `pm2 reload` drops no request.
//
// Releases layout (<root>/releases/<id>/, <root>/current -> releases/<id>): PM2 keeps the script
// path and cwd it was started with, and Node resolves symlinks when it loads this file, so
// __dirname is the real release directory. Giving PM2 that path would make every later
// `pm2 reload` start the old release again (pm2#1663, pm2#2963). So in that layout PM2 gets
// `<root>/current/...`: each worker started by a reload chdirs and requires through the symlink
// and runs the release `current` points to at that moment. Anywhere else the real directory is used.
const fs = require('fs');
const path = require('path');

function appDir() {
  const releases = path.dirname(__dirname);
  if (path.basename(releases) === 'releases') {
    const current = path.join(path.dirname(releases), 'current');
    try {
      if (fs.lstatSync(current).isSymbolicLink()) return current;
    } catch (err) { /* no current link yet: run from the real directory */ }
  }
  return __dirname;
}

const dir = appDir();

module.exports = {
  apps: [{
    name: process.env.APP_NAME || 'example-app',
    script: path.join(dir, 'pm2-start.js'),
    cwd: dir,
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
