// Database access: knex over PostgreSQL (DATABASE_URL) or the embedded PGlite engine in DATA_DIR.
import path from 'node:path';
import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import type { Config } from '../config/index.js';
import type { Logger } from '../log.js';
import { finishInterruptedRestore, removeStaleRestores } from './backup.js';
import { diskSpaceProbe, type DiskSpace } from './disk.js';
import { newEmbeddedEngine } from './embedded.js';
import { makeDirectories, makeOwnerOnly } from './files.js';
import { noteDatabaseOutage } from './outage.js';
import { acquireDataDirLock, acquireDataDirLockWaiting, refuseOlderServer, type DataDirLock } from './lock.js';

export type Db = Knex | Knex.Transaction;
export type DbKind = 'postgres' | 'embedded';

export interface Database {
  readonly knex: Knex;
  readonly kind: DbKind;
  close(): Promise<void>;
  /** Embedded database: free space under DATA_DIR (writes are refused when low). Absent on PostgreSQL. */
  readonly diskSpace?: () => DiskSpace;
}

export { acquireDataDirLock, DataDirLockedError, OlderServerRunningError, readLockHolder, refuseOlderServer, TRY_AGAIN, waitForDataDir, type DataDirLock } from './lock.js';
export {
  BackupTargetError,
  backupEmbedded,
  checkBackupTarget,
  finishInterruptedRestore,
  hasInterruptedRestore,
  removeStaleRestores,
  restoreEmbedded,
  RestoreRefusedError,
  type BackupSigningKey,
} from './backup.js';
export {
  DatabaseNewerError,
  LATEST_MIGRATION,
  MIGRATION_LOCK_KEY,
  MIGRATION_WAIT_MESSAGE,
  MigrationLockTimeoutError,
  migrateLatest,
  migrationStatus,
  type MigrateOptions,
} from './migrate.js';
export { briefDatabaseError, isConnectionRefusedByDatabase, isDatabaseUnavailable, isForeignKeyViolation, isUniqueViolation } from './errors.js';
export { noteDatabaseOutage, OUTAGE_RETRY_AFTER_SECONDS } from './outage.js';
export { cursorTimeSql, decodeCursor, encodeCursor, escapeLike, isUuid, UUID_PATTERN, type PageKey } from './keyset.js';
export { affectedRows } from './affected.js';
export { lockOrganisation } from './org-lock.js';
export { transactionWithRetry } from './retry.js';
export { sharedRead } from './batch.js';
export { diskSpaceProbe, type DiskSpace } from './disk.js';
export { checkDataDirEntries, makeDirectories, makeOwnerOnly, restrictUmask, OWNER_ONLY_UMASK, UnsafeDataDirError } from './files.js';
export * from './rows.js';

// node-postgres returns int8 as a string; our bigint columns (counts) fit in a JS number.
pg.types.setTypeParser(20, (v) => Number.parseInt(v, 10));

/** The embedded database's files: DATA_DIR/pgdata. */
export function embeddedDataPath(dataDir: string): string {
  return path.join(dataDir, 'pgdata');
}

/**
 * knex's own messages (connection errors and the like) go through our redacting logger, not console.log. A
 * connection error is counted into the server's outage summary (outage.ts), or, with `quietOutage` (a `sat`
 * command, which reports the failed call itself), left out.
 */
function knexLog(log: Logger | undefined, quietOutage: boolean | (() => boolean) = false): Knex.Config['log'] {
  if (!log) return undefined;
  // First line only: knex puts whole stack traces into some of its messages.
  const text = (m: unknown) => (typeof m === 'string' ? m : m instanceof Error ? m.message : JSON.stringify(m)).split('\n')[0]!.slice(0, 300);
  // A pool that cannot connect says so on every try: counted into the outage summary instead (outage.ts).
  const connection = /Acquire connection error|Connection Error|connection error/i;
  const emit = (level: 'warn' | 'error', m: unknown) => {
    const line = text(m);
    const quiet = typeof quietOutage === 'function' ? quietOutage() : quietOutage;
    if (connection.test(line)) return quiet ? undefined : noteDatabaseOutage(log, { message: line }, 'database pool');
    log[level]('database: ' + line);
  };
  return {
    warn: (m: unknown) => emit('warn', m),
    error: (m: unknown) => emit('error', m),
    deprecate: (m: unknown) => log.debug('database: ' + text(m)),
    debug: (m: unknown) => log.debug('database: ' + text(m)),
  };
}

/**
 * What every PostgreSQL connection of ours runs first: these five session settings as the code is written for them,
 * whatever the database's or role's defaults (`ALTER DATABASE … SET`, postgresql.conf). READ COMMITTED (a `serializable` default
 * made concurrent writes fail with 40001: 500s); standard strings (a `\` in a literal is a `\`: with
 * `standard_conforming_strings = off` every search failed); ISO dates, which the driver parses (`SQL, DMY` stopped
 * the server from starting); UTC, the zone every date of SPEC is in. One round trip per new connection.
 */
export const SESSION_SETTINGS = [
  'SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED',
  'SET standard_conforming_strings = on',
  "SET DateStyle = 'ISO, MDY'",
  "SET IntervalStyle = 'postgres'",
  "SET TimeZone = 'UTC'",
].join('; ');

/**
 * Opens the configured database. The embedded one takes an exclusive lock on DATA_DIR first: at once or
 * DataDirLockedError, or with `options.lockWaitMs` (the server) after waiting up to that long for a `sat` command
 * that holds it (acquireDataDirLockWaiting; a running server still refuses at once). `options.quietOutage`: the
 * pool's connection errors are not logged as the server's outage (a `sat` command reports its failure itself).
 */
export async function openDb(
  config: Pick<Config, 'databaseUrl' | 'databasePoolMax' | 'dataDir'> & Partial<Pick<Config, 'databaseTimeoutMs' | 'minFreeDiskBytes'>>,
  log?: Logger,
  options: { lockWaitMs?: number; quietOutage?: boolean } = {},
): Promise<Database> {
  if (config.databaseUrl) {
    // Every call is bounded (issue 10 item 11): the server stops a statement after `timeout`, the client gives up
    // on an answer 1 s later (a stalled server or network), connecting and waiting for a pooled connection too.
    const timeout = config.databaseTimeoutMs ?? 5_000;
    const knex = knexFactory({
      log: knexLog(log, options.quietOutage),
      client: 'pg',
      connection: {
        connectionString: config.databaseUrl,
        application_name: 'sat',
        statement_timeout: timeout,
        query_timeout: timeout + 1_000,
        connectionTimeoutMillis: timeout,
      } as Knex.PgConnectionConfig,
      pool: {
        min: 0,
        max: config.databasePoolMax,
        afterCreate: (connection: { query: (sql: string, done: (err?: Error) => void) => void; end: () => void }, done: (err: Error | undefined, c: unknown) => void) =>
          connection.query(SESSION_SETTINGS, (err) => {
            if (err) connection.end(); // knex neither returns nor destroys a connection whose afterCreate failed
            done(err, connection);
          }),
      },
      acquireConnectionTimeout: timeout + 1_000,
    });
    return { knex, kind: 'postgres', close: () => knex.destroy() };
  }

  makeDirectories(config.dataDir);
  const diskSpace = diskSpaceProbe(config.dataDir, config.minFreeDiskBytes ?? 64 * 1024 * 1024, (space) =>
    space.low
      ? log?.error('disk almost full under DATA_DIR: refusing writes until space is freed', { free_mb: Math.floor(space.freeBytes / 1048576) })
      : log?.info('disk space under DATA_DIR is sufficient again', { free_mb: Math.floor(space.freeBytes / 1048576) }),
  );
  if (diskSpace().low) {
    // The embedded engine cannot start (nor work) on a full disk: say so and fail, rather than hang.
    throw new Error(
      `not enough free disk space under ${config.dataDir} for the embedded database ` +
        `(${Math.floor(diskSpace().freeBytes / 1048576)} MB free, MIN_FREE_DISK_MB is ${Math.round((config.minFreeDiskBytes ?? 0) / 1048576)})`,
    );
  }
  await refuseOlderServer(config.dataDir); // an upgrade with the older server still running
  const lock: DataDirLock =
    options.lockWaitMs === undefined
      ? acquireDataDirLock(config.dataDir)
      : await acquireDataDirLockWaiting(config.dataDir, options.lockWaitMs, () =>
          log?.info('DATA_DIR is in use by a sat command (or a server starting): waiting for it', { data_dir: config.dataDir, wait_ms: options.lockWaitMs }),
        );
  try {
    // Holding the lock, no restore runs: a `pgdata.restoring-*` beside the database is what a killed one left, and a
    // `pgdata.restored-*` with no database in place one killed just before it moved the checked backup in.
    const finished = finishInterruptedRestore(embeddedDataPath(config.dataDir));
    if (finished !== undefined) log?.warn('finished an interrupted sat restore: the backup it had checked is the database now', { from: finished });
    const stale = removeStaleRestores(embeddedDataPath(config.dataDir));
    if (stale.length > 0) log?.warn('removed what an interrupted sat restore left in DATA_DIR', { removed: stale });
    const { default: ClientPgLite } = await import('knex-pglite');
    // Until the engine has answered once, a failure is this open's own (reported by the caller), not an outage of a
    // running server: no "answering 503" line for a server that never listened.
    let opening = true;
    const knex = knexFactory({
      client: ClientPgLite as unknown as Knex.Config['client'],
      dialect: 'postgres',
      log: knexLog(log, () => opening || options.quietOutage === true),
      // knex-pglite takes the engine it is given (one connection, as always) instead of making one with defaults.
      connection: { pglite: newEmbeddedEngine(embeddedDataPath(config.dataDir)) } as Knex.StaticConnectionConfig,
      acquireConnectionTimeout: 60_000,
    } as Knex.Config);
    try {
      await knex.raw('select 1');
    } catch (err) {
      throw cannotOpenEmbedded(embeddedDataPath(config.dataDir), err);
    }
    opening = false;
    // The engine writes its initial files with the modes of its bundled data directory (0666), whatever the
    // umask: made owner-only here, once they exist (SPEC Part 2 "Nothing readable by other OS users").
    makeOwnerOnly(embeddedDataPath(config.dataDir), false);
    return {
      knex,
      kind: 'embedded',
      diskSpace,
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

/**
 * The error for an embedded engine that does not answer its first query: names the data directory and the way back
 * (a backup), instead of the engine's own words alone ("Aborted(). Build with -sASSERTIONS…" for damaged files).
 * A full disk keeps its own message (the probe above says it first).
 */
function cannotOpenEmbedded(dir: string, err: unknown): Error {
  const raw = (err instanceof Error ? err.message : String(err)).replace(/^Acquire connection error: /, '').split('\n')[0]!;
  const reason = /^(RuntimeError: )?Aborted\(\)/.test(raw) ? 'the engine stopped while reading its files' : raw.slice(0, 300);
  return new Error(
    `cannot open the embedded database in ${dir}: ${reason}. If its files are damaged, restore the latest backup ` +
      '(sat restore FILE; docs/operations.md)',
    { cause: err },
  );
}

/**
 * A clock that follows the database server's (`now()`), for a `sat` command on PostgreSQL: what it writes with a
 * time (a signing key's `not_before`, a token's expiry check) is compared later by the servers, whose clocks agree
 * with the database far more often than an administrator's laptop or a CI runner does. Reads `now()` once and keeps
 * the offset from this machine's clock, measured at the middle of the round trip. Returns the clock and the offset
 * in ms (positive: this machine is behind).
 */
export async function databaseClock(knex: Knex): Promise<{ clock: () => Date; offsetMs: number }> {
  const before = Date.now();
  const { rows } = await knex.raw<{ rows: Array<{ now: Date }> }>('select now() as now');
  const after = Date.now();
  const offsetMs = new Date(rows[0]!.now).getTime() - Math.round((before + after) / 2);
  return { clock: () => new Date(Date.now() + offsetMs), offsetMs };
}

/**
 * The readiness probe's query, with a deadline of `timeoutMs`: 'ok' when the database answers, holds our schema
 * (the `tokens` table) and takes writes; 'schema_missing' when it answers without it (a database dropped and created
 * again empty under a running server: every request would fail); 'read_only' when its transactions are read-only (a
 * standby after a failover, `default_transaction_read_only`: every change would fail); 'unreachable' when it does
 * not answer in time or fails.
 */
export async function pingDb(knex: Knex, timeoutMs = 2_000): Promise<'ok' | 'schema_missing' | 'read_only' | 'unreachable'> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      knex
        .raw("select to_regclass('tokens') is not null as ok, current_setting('transaction_read_only') = 'on' as read_only")
        .then((r: { rows?: Array<{ ok?: unknown; read_only?: unknown }> }) =>
          !r.rows?.[0]?.ok ? ('schema_missing' as const) : r.rows[0].read_only ? ('read_only' as const) : ('ok' as const),
        ),
      new Promise<'unreachable'>((resolve) => {
        timer = setTimeout(() => resolve('unreachable'), timeoutMs);
      }),
    ]);
  } catch {
    return 'unreachable';
  } finally {
    clearTimeout(timer);
  }
}
