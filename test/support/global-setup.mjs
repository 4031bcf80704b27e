// jest globalSetup (integration and e2e projects): build dist/ once (incrementally), so tests that run the `sat`
// command never run a stale build, and make one migrated database that each test file copies instead of paying a
// fresh initdb and migration run: a PGlite data directory for the embedded engine (kept between runs), and, when
// TEST_DATABASE_URL is set, a PostgreSQL template database. Plain JavaScript: it runs before any TypeScript
// transform, on dist/.
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statfsSync, statSync, utimesSync } from 'node:fs';
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
  // What the migrations import from src/ outside db/ (read from their import statements, so a moved file is followed).
  for (const file of files(path.join(root, 'dist', 'migrations'))) {
    for (const m of readFileSync(file, 'utf8').matchAll(/from\s+['"](\.\.\/src\/[^'"]+)['"]/g)) {
      const imported = path.resolve(path.dirname(file), m[1]);
      if (!sources.includes(imported)) sources.push(imported);
    }
  }
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

const TMPFS_MAGIC = 0x01021994;
const SCRATCH_MIN_FREE = 2 * 1024 ** 3;

/**
 * Where the run's temporary files go: a folder of its own on the tmpfs /dev/shm when there is one with 2 GiB free
 * (else the usual temporary folder), made the run's TMPDIR so every test file's DATA_DIR, the embedded databases in
 * them and Chromium's profiles live in memory. Copying a 40 MB PGlite data directory and removing it afterwards,
 * which every embedded test file does, took 0.7 s CPU and up to 2.5 s on this machine's disk, 0.09 s on tmpfs.
 * SAT_TEST_TMPDIR names another folder; SAT_TEST_TMPDIR=system keeps the system's.
 */
function scratchDir() {
  const chosen = process.env.SAT_TEST_TMPDIR;
  if (chosen === 'system') return undefined;
  let parent = chosen;
  if (!parent) {
    try {
      const fs = statfsSync('/dev/shm');
      if (fs.type !== TMPFS_MAGIC || fs.bavail * fs.bsize < SCRATCH_MIN_FREE) return undefined;
      parent = '/dev/shm';
    } catch {
      return undefined; // no /dev/shm
    }
    // Folders of runs that were killed before their teardown: gone after a day (memory, not disk).
    for (const name of readdirSync(parent).filter((n) => n.startsWith('sat-test-'))) {
      const old = path.join(parent, name);
      try {
        if (Date.now() - statSync(old).mtimeMs > 86_400_000) rmSync(old, { recursive: true, force: true });
      } catch {
        /* another run removed it */
      }
    }
  }
  return mkdtempSync(path.join(parent, 'sat-test-')); // mode 0700
}

export default async function globalSetup() {
  // Both projects name this file: the first call does the work, for the whole run.
  if (process.env.SAT_TEST_SETUP_DONE === '1') return;
  const started = performance.now();
  const scratch = scratchDir();
  if (scratch) {
    process.env.SAT_TEST_SCRATCH_DIR = scratch;
    process.env.TMPDIR = scratch; // os.tmpdir() here and in the workers, which inherit this environment
  }

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
  if (scratch) {
    // One copy into memory, so each file's copy is memory to memory.
    process.env.SAT_TEST_TEMPLATE_DIR = path.join(scratch, 'template');
    cpSync(path.join(embeddedTemplate.dir, 'pgdata'), path.join(scratch, 'template', 'pgdata'), { recursive: true });
  }
  if (embeddedTemplate.temporary) process.env.SAT_TEST_TEMPLATE_TEMPORARY = '1';
  if (pgTemplate) process.env.SAT_TEST_PG_TEMPLATE = pgTemplate;
  process.env.SAT_TEST_SETUP_DONE = '1';
  process.stderr.write(
    `\n[global setup] build ${((built - started) / 1000).toFixed(1)} s, template databases ${seconds(built)} s` +
      ` (embedded: ${embeddedTemplate.temporary ? 'made' : embeddedTemplate.made ? 'made and kept' : 'reused'} ${embeddedTemplate.dir});` +
      ` temporary files in ${scratch ?? os.tmpdir()}\n`,
  );
}
