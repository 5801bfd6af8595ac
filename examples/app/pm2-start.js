'use strict';
// PM2's entry for the app: runs dist/server.js. In cluster mode a worker writes its own log
// files through asynchronous streams, so when it throws during start-up and exits, the stack
// never reaches the error log (the deploy then fails with nothing to show). Write a start-up
// error synchronously to PM2's error log first, then let it crash as before.
const fs = require('fs');
const path = require('path');

try {
  require(path.join(__dirname, 'dist', 'server.js'));
} catch (err) {
  if (process.env.exec_mode === 'cluster_mode' && process.env.pm_err_log_path) {
    try {
      const detail = err && err.stack ? err.stack : String(err);
      fs.appendFileSync(process.env.pm_err_log_path, `${new Date().toISOString()} start-up failed: ${detail}\n`);
    } catch (writeErr) { /* the log is best effort; the crash below is what matters */ }
  }
  throw err;
}
