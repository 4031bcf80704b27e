// Fresh databases for tests: the embedded engine always, PostgreSQL when TEST_DATABASE_URL is set.
import { randomBytes } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export type DbKind = 'embedded' | 'postgres';

/**
 * The engines this run covers: `describe.each(testDatabases())`. The embedded one, and PostgreSQL when
 * TEST_DATABASE_URL is set; `TEST_DATABASES=embedded` or `=postgres` (comma-separated) picks among them, as CI does
 * to run each engine on one Node version (README "What CI does"). Files and blocks about one engine only (the
 * embedded lock, backups, the console pages, PostgreSQL's migration lock) use describeEmbedded / describePostgres,
 * so they run in the run that covers their engine. Throws on a name it does not know, or on `postgres` without
 * TEST_DATABASE_URL.
 */
export function testDatabases(): DbKind[] {
  const available: DbKind[] = process.env.TEST_DATABASE_URL ? ['embedded', 'postgres'] : ['embedded'];
  const chosen = process.env.TEST_DATABASES?.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (!chosen?.length) return available;
  for (const kind of chosen) {
    if (kind !== 'embedded' && kind !== 'postgres') throw new Error(`TEST_DATABASES: unknown database "${kind}" (embedded, postgres)`);
    if (!available.includes(kind)) throw new Error('TEST_DATABASES names postgres but TEST_DATABASE_URL is not set');
  }
  return available.filter((kind) => chosen.includes(kind));
}

/**
 * `describe` for a file or block that runs on the embedded database only: skipped when this run leaves it out
 * (TEST_DATABASES=postgres, CI's PostgreSQL leg), so such a test runs once per CI run, in the embedded leg.
 */
export const describeEmbedded: jest.Describe = testDatabases().includes('embedded') ? describe : describe.skip;

/** `describe` for a file or block that runs on PostgreSQL only: skipped when this run does not cover it. */
export const describePostgres: jest.Describe = testDatabases().includes('postgres') ? describe : describe.skip;

export interface TestDb {
  kind: DbKind;
  /** Environment that points the server at this database. */
  env: Record<string, string>;
  /** For PostgreSQL, the database URL. */
  url?: string;
  dataDir: string;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export interface CreateTestDbOptions {
  /**
   * `true`: an empty database (no schema), as on a first install. Default: a copy of the migrated template the
   * jest global setup made (test/support/global-setup.mjs), which skips initdb and the migrations.
   */
  empty?: boolean;
}

/**
 * A database of its own for one test file: a PGlite data directory, or a PostgreSQL database made from the
 * global setup's template. Without a template (a run without the global setup) it starts empty.
 */
export async function createTestDb(kind: DbKind, options: CreateTestDbOptions = {}): Promise<TestDb> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-'));
  if (kind === 'embedded') {
    const template = process.env.SAT_TEST_TEMPLATE_DIR;
    if (!options.empty && template && existsSync(path.join(template, 'pgdata'))) {
      cpSync(path.join(template, 'pgdata'), path.join(dataDir, 'pgdata'), { recursive: true });
    }
    return {
      kind,
      env: { DATA_DIR: dataDir },
      dataDir,
      drop: async () => rmSync(dataDir, { recursive: true, force: true }),
    };
  }
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set');
  const name = `t_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  const template = options.empty ? undefined : process.env.SAT_TEST_PG_TEMPLATE;
  await admin.query(template ? `create database ${name} template ${template}` : `create database ${name}`);
  // A test database need not survive a crash of the PostgreSQL server: commits stop waiting for the disk (0.2 ms
  // instead of 0.7-2 ms each here). What other sessions see, and when, is unchanged.
  await admin.query(`alter database ${name} set synchronous_commit = off`);
  await admin.end();
  const url = withDatabase(adminUrl, name);
  return {
    kind,
    // PostgreSQL mode refuses to start without a key-encryption key (SPEC): one per test database.
    env: { DATABASE_URL: url, DATA_DIR: dataDir, KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64') },
    url,
    dataDir,
    drop: async () => {
      const c = new pg.Client({ connectionString: adminUrl });
      await c.connect();
      await c.query(`drop database if exists ${name} with (force)`);
      await c.end();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Runs statements on the PostgreSQL server of TEST_DATABASE_URL as its administrator (ALTER DATABASE and the like). */
export async function onPostgresServer<T>(work: (query: (sql: string, params?: unknown[]) => Promise<unknown[]>) => Promise<T>): Promise<T> {
  const adminUrl = process.env.TEST_DATABASE_URL;
  if (!adminUrl) throw new Error('TEST_DATABASE_URL is not set');
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    return await work(async (sql, params) => (await admin.query(sql, params)).rows);
  } finally {
    await admin.end();
  }
}

/** How many other sessions of the current database wait for a lock now (read on `observer`, outside any transaction). */
export async function lockWaits(observer: pg.Client): Promise<number> {
  const { rows } = await observer.query(
    "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and pid <> pg_backend_pid()",
  );
  return (rows[0] as { n: number }).n;
}

/**
 * Resolves once at least `n` sessions of the current database wait for a lock in a statement whose text matches
 * `pattern` (ILIKE), polled every 20 ms on `observer`: a client outside any transaction, since pg_stat_activity is
 * a snapshot for the length of one. For PostgreSQL tests that hold a lock and let a request run into it.
 */
export async function untilWaitingOnLock(observer: pg.Client, pattern: string, n = 1): Promise<void> {
  for (;;) {
    const { rows } = await observer.query(
      "select count(*)::int as n from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query ilike $1",
      [pattern],
    );
    if ((rows[0] as { n: number }).n >= n) return;
    await new Promise((r) => setTimeout(r, 20));
  }
}
