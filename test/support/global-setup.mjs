// jest globalSetup (integration and e2e projects): build dist/ once (incrementally), so tests that run the `sat`
// command never run a stale build, and make one migrated database that each test file copies instead of paying a
// fresh initdb and migration run: a PGlite data directory for the embedded engine (kept between runs), and, when
// TEST_DATABASE_URL is set, a PostgreSQL template database. Plain JavaScript: it runs before any TypeScript
// transform, on dist/.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, utimesSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function seconds(since) {
  return ((performance.now() - since) / 1000).toFixed(1);
}

/**
 * The embedded template, a migrated PGlite data directory (DIR/pgdata) that createTestDb copies. Kept between runs
 * under node_modules/.cache/sat-test-template/KEY, KEY a hash of what decides its content (the built migrations,
 * database code and what a migration imports, the PGlite and knex versions): a later run (the e2e part, the next
 * Node version in CI, the next local run) reuses it instead of paying initdb and the migrations again. Made in a
 * temporary folder and renamed into place, so a run that stops half-way or runs alongside leaves no half-made
 * template. SAT_TEST_TEMPLATE_CACHE=0 makes a fresh one in a temporary folder (removed by the teardown).
 */
async function embeddedTemplateDir(loadConfig, openDb, migrateLatest) {
  const make = async (dir) => {
    const embedded = await openDb(loadConfig({ DATA_DIR: dir }));
    try {
      await migrateLatest(embedded.knex);
    } finally {
      await embedded.close();
    }
    rmSync(path.join(dir, 'sat.lock'), { force: true });
  };
  if (process.env.SAT_TEST_TEMPLATE_CACHE === '0') {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-template-'));
    await make(dir);
    return { dir, temporary: true, made: true };
  }
  const hash = createHash('sha256');
  const files = (dir) =>
    readdirSync(dir, { recursive: true })
      .map(String)
      .filter((f) => f.endsWith('.js'))
      .sort()
      .map((f) => path.join(dir, f));
  const sources = [...files(path.join(root, 'dist', 'migrations')), ...files(path.join(root, 'dist', 'src', 'db'))];
  sources.push(path.join(root, 'dist', 'src', 'accounts', 'email.js')); // a migration imports it
  for (const file of sources) {
    hash.update(path.relative(root, file)).update(readFileSync(file));
  }
  for (const pkg of ['@electric-sql/pglite', 'knex-pglite', 'knex']) {
    hash.update(pkg).update(JSON.parse(readFileSync(path.join(root, 'node_modules', pkg, 'package.json'), 'utf8')).version);
  }
  const cache = path.join(root, 'node_modules', '.cache', 'sat-test-template');
  const dir = path.join(cache, hash.digest('hex').slice(0, 16));
  if (existsSync(path.join(dir, 'pgdata'))) {
    utimesSync(dir, new Date(), new Date()); // in use: not pruned
    return { dir, temporary: false, made: false };
  }
  mkdirSync(cache, { recursive: true });
  // Templates of older migrations (40 MB each): gone after a day unused, so a run still copying one is left alone.
  for (const name of readdirSync(cache)) {
    const old = path.join(cache, name);
    if (Date.now() - statSync(old).mtimeMs > 86_400_000) rmSync(old, { recursive: true, force: true });
  }
  const staging = mkdtempSync(path.join(cache, 'staging-'));
  try {
    await make(staging);
    try {
      renameSync(staging, dir);
    } catch (err) {
      if (!existsSync(path.join(dir, 'pgdata'))) throw err; // another run put one there first: use that
    }
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return { dir, temporary: false, made: true };
}

/** The PostgreSQL template database when TEST_DATABASE_URL is set: CREATE DATABASE … TEMPLATE copies it. */
async function pgTemplateDb(loadConfig, openDb, migrateLatest) {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) return undefined;
  const { default: pg } = await import('pg');
  const name = `sat_template_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    await admin.query(`create database ${name}`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-pg-template-'));
  try {
    const db = await openDb(loadConfig({ DATABASE_URL: url.toString(), DATA_DIR: dataDir }));
    try {
      await migrateLatest(db.knex);
    } finally {
      await db.close(); // no connection may stay open on a template while it is copied
    }
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
  return name;
}

export default async function globalSetup() {
  // Both projects name this file: the first call does the work, for the whole run.
  if (process.env.SAT_TEST_SETUP_DONE === '1') return;
  const started = performance.now();

  if (process.env.SAT_TEST_SKIP_BUILD !== '1') {
    // Incremental, with the same build-info file as `npm run build` (inside dist/, so removing dist/ forgets it):
    // when nothing changed since the last build (CI: `npm ci` built it; the second Node run) this takes a few
    // seconds instead of a full compile (~20 s on 2 busy cores).
    const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    execFileSync(process.execPath, [tsc, '-p', 'tsconfig.json', '--incremental', '--tsBuildInfoFile', 'dist/.tsbuildinfo'], {
      cwd: root,
      stdio: 'inherit',
    });
    execFileSync(process.execPath, ['-e', "require('node:fs').chmodSync('dist/src/cli/index.js', 0o755)"], { cwd: root });
  }
  const built = performance.now();

  const { loadConfig } = await import(pathToFileURL(path.join(root, 'dist', 'src', 'config', 'index.js')).href);
  const { openDb, migrateLatest } = await import(pathToFileURL(path.join(root, 'dist', 'src', 'db', 'index.js')).href);

  // Both templates at once: the embedded one is CPU in this process, the PostgreSQL one mostly waits on the server.
  const [embeddedTemplate, pgTemplate] = await Promise.all([embeddedTemplateDir(loadConfig, openDb, migrateLatest), pgTemplateDb(loadConfig, openDb, migrateLatest)]);
  process.env.SAT_TEST_TEMPLATE_DIR = embeddedTemplate.dir;
  if (embeddedTemplate.temporary) process.env.SAT_TEST_TEMPLATE_TEMPORARY = '1';
  if (pgTemplate) process.env.SAT_TEST_PG_TEMPLATE = pgTemplate;
  process.env.SAT_TEST_SETUP_DONE = '1';
  process.stderr.write(
    `\n[global setup] build ${((built - started) / 1000).toFixed(1)} s, template databases ${seconds(built)} s` +
      ` (embedded: ${embeddedTemplate.temporary ? 'made' : embeddedTemplate.made ? 'made and kept' : 'reused'} ${embeddedTemplate.dir})\n`,
  );
}
