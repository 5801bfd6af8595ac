// Prisma's own schema engine (wasm) driven through @prisma/adapter-pg, at the version installed in one of the
// v<version>/ directories beside this file.
//   node oracle.mjs <version dir> diagnose|deploy|rolled-back|applied|version <migrations_dir> [migration name]
// DATABASE_URL comes from the environment. Prints one JSON line: {ok, out} or {ok: false, error}.
// The package's own entry imports the .wasm as an ES module (needs --experimental-wasm-modules), so the
// module is instantiated here by hand with its JS glue as the import object.
import fs from 'node:fs'
import { createRequire } from 'node:module'
import path from 'node:path'
import { pathToFileURL } from 'node:url'

const [versionDir, command, dir, name] = process.argv.slice(2)
const require = createRequire(path.join(path.resolve(versionDir), 'package.json'))
const load = async (pkg) => import(pathToFileURL(require.resolve(pkg)).href)
const { PrismaPg } = await load('@prisma/adapter-pg')
const { bindMigrationAwareSqlAdapterFactory } = await load('@prisma/driver-adapter-utils')

const pkgDir = path.join(path.resolve(versionDir), 'node_modules', '@prisma', 'schema-engine-wasm')
const bg = await import(path.join(pkgDir, 'schema_engine_bg.js'))
const { instance } = await WebAssembly.instantiate(fs.readFileSync(path.join(pkgDir, 'schema_engine_bg.wasm')),
  { './schema_engine_bg.js': bg })
bg.__wbg_set_wasm(instance.exports)
instance.exports.__wbindgen_start?.()

if (command === 'version') {
  console.log(JSON.stringify({ ok: true, out: bg.version() }))
  process.exit()
}
const migrationsList = {
  baseDir: dir,
  lockfile: { path: 'migration_lock.toml', content: fs.existsSync(path.join(dir, 'migration_lock.toml')) ? fs.readFileSync(path.join(dir, 'migration_lock.toml'), 'utf8') : null },
  shadowDbInitScript: '',
  migrationDirectories: fs.readdirSync(dir).filter((d) => fs.statSync(path.join(dir, d)).isDirectory()).sort().map((d) => ({
    path: d, migrationFile: { path: 'migration.sql', content: { tag: 'ok', value: fs.readFileSync(path.join(dir, d, 'migration.sql'), 'utf8') } },
  })),
}
const filters = { externalTables: [], externalEnums: [] }
const factory = bindMigrationAwareSqlAdapterFactory(new PrismaPg({ connectionString: process.env.DATABASE_URL }))
const engine = await bg.SchemaEngine.new({ datamodels: undefined }, (log) => {}, factory)
let out
try {
  if (command === 'diagnose') out = await engine.diagnoseMigrationHistory({ migrationsList, optInToShadowDatabase: false, filters })
  else if (command === 'deploy') out = await engine.applyMigrations({ migrationsList, filters })
  else if (command === 'rolled-back') out = await engine.markMigrationRolledBack({ migrationName: name })
  else if (command === 'applied') out = await engine.markMigrationApplied({ migrationName: name, migrationsList })
  console.log(JSON.stringify({ ok: true, out }))
} catch (e) {
  console.log(JSON.stringify({ ok: false, error: String(e?.message ?? e), meta: e?.meta ?? null }))
  process.exitCode = 1
}
process.exit()
