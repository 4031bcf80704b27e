// Database access: knex over PostgreSQL (DATABASE_URL) or the embedded PGlite engine in DATA_DIR.
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import type { Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { makeOwnerOnly } from './files.js';
import { acquireDataDirLock, type DataDirLock } from './lock.js';

export type Db = Knex | Knex.Transaction;
export type DbKind = 'postgres' | 'embedded';

export interface Database {
  readonly knex: Knex;
  readonly kind: DbKind;
  close(): Promise<void>;
}

export { DataDirLockedError, readLockHolder } from './lock.js';
export { migrateLatest, migrationStatus } from './migrate.js';
export { isUniqueViolation } from './errors.js';
export { cursorTimeSql, decodeCursor, encodeCursor, escapeLike, isUuid, type PageKey } from './keyset.js';
export { affectedRows } from './affected.js';
export { makeOwnerOnly, restrictUmask, OWNER_ONLY_UMASK } from './files.js';
export * from './rows.js';

// node-postgres returns int8 as a string; our bigint columns (counts) fit in a JS number.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

export function embeddedDataPath(dataDir: string): string {
  return path.join(dataDir, 'pgdata');
}

/** knex's own messages (connection errors and the like) go through our redacting logger, not console.log. */
function knexLog(log: Logger | undefined): Knex.Config['log'] {
  if (!log) return undefined;
  const text = (m: unknown) => (typeof m === 'string' ? m : m instanceof Error ? m.message : JSON.stringify(m));
  return {
    warn: (m: unknown) => log.warn('database: ' + text(m)),
    error: (m: unknown) => log.error('database: ' + text(m)),
    deprecate: (m: unknown) => log.debug('database: ' + text(m)),
    debug: (m: unknown) => log.debug('database: ' + text(m)),
  };
}

/** Opens the configured database. The embedded one takes an exclusive lock on DATA_DIR first. */
export async function openDb(
  config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir'>,
  log?: Logger,
): Promise<Database> {
  if (config.databaseUrl) {
    const knex = knexFactory({
      log: knexLog(log),
      client: 'pg',
      connection: { connectionString: config.databaseUrl, application_name: 'sat' },
      pool: { min: 0, max: config.databasePoolMax },
      acquireConnectionTimeout: 10_000,
    });
    return { knex, kind: 'postgres', close: () => knex.destroy() };
  }

  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  const lock: DataDirLock = acquireDataDirLock(config.dataDir);
  try {
    const { default: ClientPgLite } = await import('knex-pglite');
    const knex = knexFactory({
      client: ClientPgLite as unknown as Knex.Config['client'],
      dialect: 'postgres',
      log: knexLog(log),
      connection: { filename: embeddedDataPath(config.dataDir) } as Knex.StaticConnectionConfig,
      acquireConnectionTimeout: 60_000,
    } as Knex.Config);
    await knex.raw('select 1');
    // The engine writes its initial files with the modes of its bundled data directory (0666), whatever the
    // umask: made owner-only here, once they exist (SPEC Part 2 "Nothing readable by other OS users").
    makeOwnerOnly(embeddedDataPath(config.dataDir), false);
    return {
      knex,
      kind: 'embedded',
      close: async () => {
        try {
          await knex.destroy();
        } finally {
          lock.release();
        }
      },
    };
  } catch (err) {
    lock.release();
    throw err;
  }
}

/** `select 1` with a deadline: readiness probe. */
export async function pingDb(knex: Knex, timeoutMs = 2_000): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      knex.raw('select 1').then(() => true),
      new Promise<boolean>((resolve) => {
        timer = setTimeout(() => resolve(false), timeoutMs);
      }),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}
