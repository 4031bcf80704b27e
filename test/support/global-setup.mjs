// jest globalSetup (integration and e2e projects): build dist/ once, so tests that run the `sat` command never
// run a stale build, and make one migrated database that each test file copies instead of paying a fresh
// initdb and migration run: a PGlite data directory for the embedded engine, and, when TEST_DATABASE_URL is
// set, a PostgreSQL template database. Plain JavaScript: it runs before any TypeScript transform, on dist/.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function seconds(since) {
  return ((performance.now() - since) / 1000).toFixed(1);
}

export default async function globalSetup() {
  // Both projects name this file: the first call does the work, for the whole run.
  if (process.env.SAT_TEST_SETUP_DONE === '1') return;
  const started = performance.now();

  if (process.env.SAT_TEST_SKIP_BUILD !== '1') {
    execFileSync(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.json'], {
      cwd: root,
      stdio: 'inherit',
    });
    execFileSync(process.execPath, ['-e', "require('node:fs').chmodSync('dist/src/cli/index.js', 0o755)"], { cwd: root });
  }
  const built = performance.now();

  const { loadConfig } = await import(pathToFileURL(path.join(root, 'dist', 'src', 'config', 'index.js')).href);
  const { openDb, migrateLatest } = await import(pathToFileURL(path.join(root, 'dist', 'src', 'db', 'index.js')).href);

  // The embedded template: a migrated PGlite data directory (DATA_DIR/pgdata), copied by createTestDb.
  const templateDir = mkdtempSync(path.join(os.tmpdir(), 'sat-template-'));
  const embedded = await openDb(loadConfig({ DATA_DIR: templateDir }));
  try {
    await migrateLatest(embedded.knex);
  } finally {
    await embedded.close();
  }
  process.env.SAT_TEST_TEMPLATE_DIR = templateDir;

  // The PostgreSQL template: CREATE DATABASE … TEMPLATE copies it in a fraction of a second.
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (adminUrl) {
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
    const db = await openDb(loadConfig({ DATABASE_URL: url.toString(), DATA_DIR: templateDir }));
    try {
      await migrateLatest(db.knex);
    } finally {
      await db.close(); // no connection may stay open on a template while it is copied
    }
    process.env.SAT_TEST_PG_TEMPLATE = name;
  }
  process.env.SAT_TEST_SETUP_DONE = '1';
  process.stderr.write(
    `\n[global setup] build ${((built - started) / 1000).toFixed(1)} s, template databases ${seconds(built)} s\n`,
  );
}
