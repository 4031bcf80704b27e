// Fresh databases for tests: the embedded engine always, PostgreSQL when TEST_DATABASE_URL is set.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';

export type DbKind = 'embedded' | 'postgres';

/** The engines this run covers: `describe.each(testDatabases())`. */
export function testDatabases(): DbKind[] {
  return process.env.TEST_DATABASE_URL ? ['embedded', 'postgres'] : ['embedded'];
}

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

export async function createTestDb(kind: DbKind): Promise<TestDb> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-'));
  if (kind === 'embedded') {
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
  await admin.query(`create database ${name}`);
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
