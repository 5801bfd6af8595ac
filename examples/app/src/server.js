'use strict';
// Example app for maestro.deploy: GET /health (a real database round trip), GET/POST /items.
// Configuration comes from the environment, then from a `.env` file in the working directory
// (the deploy links it to shared/.env), read at every start so a reload picks up changes.
const fs = require('fs');
const http = require('http');
const path = require('path');
const { Pool } = require('pg');

function loadDotEnv(file) {
  let text;
  try { text = fs.readFileSync(file, 'utf8'); } catch (err) { return; }
  for (const line of text.split('\n')) {
    const m = line.match(/^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)\s*$/);
    if (!m || process.env[m[1]] !== undefined) continue;
    let value = m[2];
    if (/^".*"$|^'.*'$/.test(value)) value = value.slice(1, -1);
    process.env[m[1]] = value;
  }
}

const appDir = path.resolve(__dirname, '..');
loadDotEnv(path.join(process.cwd(), '.env'));
loadDotEnv(path.join(appDir, '.env'));

const build = JSON.parse(fs.readFileSync(path.join(__dirname, 'build.json'), 'utf8'));
let revision = null;
try { revision = fs.readFileSync(path.join(appDir, 'REVISION'), 'utf8').trim(); } catch (err) { /* not deployed */ }

if (process.env.CRASH_ON_START === '1') {
  throw new Error('CRASH_ON_START=1: refusing to start (used by tests)');
}

const pool = new Pool(process.env.DATABASE_URL ? { connectionString: process.env.DATABASE_URL } : {});
pool.on('error', () => { /* a dropped idle client is retried on the next request */ });

async function schemaVersion(client) {
  const found = await client.query(
    "SELECT to_regclass('public._prisma_migrations') AS prisma, to_regclass('public.alembic_version') AS alembic");
  if (found.rows[0].prisma) {
    const r = await client.query(
      'SELECT migration_name FROM _prisma_migrations WHERE finished_at IS NOT NULL AND rolled_back_at IS NULL ' +
      'ORDER BY migration_name DESC LIMIT 1');
    if (r.rows.length) return r.rows[0].migration_name;
  }
  if (found.rows[0].alembic) {
    const r = await client.query('SELECT version_num FROM alembic_version LIMIT 1');
    if (r.rows.length) return r.rows[0].version_num;
  }
  return null;
}

function send(res, status, body) {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let data = '';
    req.on('data', (chunk) => { data += chunk; if (data.length > 1e6) req.destroy(); });
    req.on('end', () => resolve(data));
    req.on('error', reject);
  });
}

async function handle(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (req.method === 'GET' && url.pathname === '/health') {
    const client = await pool.connect();
    try {
      await client.query('SELECT 1');
      send(res, 200, {
        status: 'ok', app: build.name, version: build.version, revision,
        schema_version: await schemaVersion(client), pid: process.pid, cwd: appDir,
      });
    } finally { client.release(); }
    return;
  }
  if (url.pathname === '/items' && req.method === 'GET') {
    const r = await pool.query('SELECT * FROM items ORDER BY id');
    send(res, 200, r.rows);
    return;
  }
  if (url.pathname === '/items' && req.method === 'POST') {
    const body = JSON.parse((await readBody(req)) || '{}');
    if (typeof body.name !== 'string' || body.name === '') { send(res, 400, { error: 'name is required' }); return; }
    const r = body.notes === undefined
      ? await pool.query('INSERT INTO items (name) VALUES ($1) RETURNING *', [body.name])
      : await pool.query('INSERT INTO items (name, notes) VALUES ($1, $2) RETURNING *', [body.name, body.notes]);
    send(res, 201, r.rows[0]);
    return;
  }
  send(res, 404, { error: 'not found' });
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => send(res, 503, { status: 'error', error: err.message }));
});
server.keepAliveTimeout = 1000;

const port = Number(process.env.PORT || 3000);
server.listen(port, process.env.HOST || '127.0.0.1', () => {
  console.log(`${build.name} ${build.version} listening on ${port} (pid ${process.pid}, ${appDir})`);
  if (process.send) process.send('ready');
});

// In cluster mode the PM2 daemon accepts connections and hands each to a worker over IPC. A
// connection handed over just before this worker's close reached the daemon is answered
// "not accepted" and given to another worker, but only while this process still reads its IPC
// channel: exiting the moment the last connection ends loses it (the client waits forever). So
// after closing, linger briefly before exiting.
const LINGER_MS = 300;

function shutdown(signal) {
  console.log(`${signal}: closing gracefully`);
  server.close(() => pool.end().finally(() => setTimeout(() => process.exit(0), LINGER_MS)));
  setTimeout(() => process.exit(0), 4000).unref();
}
process.on('SIGINT', () => shutdown('SIGINT'));
process.on('SIGTERM', () => shutdown('SIGTERM'));
