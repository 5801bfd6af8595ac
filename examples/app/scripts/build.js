'use strict';
// The build stage: check the sources parse, copy them into dist/ and stamp build.json.
// Small, but real: without it dist/server.js does not exist and the app cannot start.
const fs = require('fs');
const path = require('path');
const vm = require('vm');

const root = path.resolve(__dirname, '..');
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));
const dist = path.join(root, 'dist');
fs.rmSync(dist, { recursive: true, force: true });
fs.mkdirSync(dist);
for (const name of fs.readdirSync(path.join(root, 'src'))) {
  const code = fs.readFileSync(path.join(root, 'src', name), 'utf8');
  new vm.Script(code, { filename: name }); // throws on a syntax error: a broken build fails here
  fs.writeFileSync(path.join(dist, name), `// built from src/${name} for ${pkg.name} ${pkg.version}\n${code}`);
}
const info = { name: pkg.name, version: pkg.version, built_at: new Date().toISOString() };
fs.writeFileSync(path.join(dist, 'build.json'), JSON.stringify(info, null, 2) + '\n');
console.log(`built ${pkg.name} ${pkg.version} into dist/`);
