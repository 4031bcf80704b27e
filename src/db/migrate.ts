import knexFactory, { type Knex } from 'knex';
import pg from 'pg';
import { migrations, type Migration } from '../../migrations/index.js';

const source: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

const migrationConfig: Knex.MigratorConfig = { migrationSource: source, tableName: 'knex_migrations' };

/** The name of this build's newest migration: what a `sat` and a server of the same version agree on. */
export const LATEST_MIGRATION: string = migrations.at(-1)!.name;

/** The pg_advisory_lock key that serialises migrations across instances (an arbitrary constant of ours). */
export const MIGRATION_LOCK_KEY = 7_305_411_297_314_032n;

/**
 * The connection settings of a knex instance on PostgreSQL without the per-request statement/query timeouts
 * (DATABASE_TIMEOUT_SECONDS): waiting for the migration lock and running a migration may take longer than a
 * request may. Undefined for the embedded engine.
 */
function unboundedPostgresConnection(knex: Knex): { config: Knex.Config; connection: Knex.PgConnectionConfig } | undefined {
  const config = (knex as unknown as { client: { config: Knex.Config } }).client.config;
  if (config.client !== 'pg' || !config.connection || typeof config.connection !== 'object') return undefined;
  const { statement_timeout: _s, query_timeout: _q, ...connection } = config.connection as Knex.PgConnectionConfig & {
    statement_timeout?: unknown;
    query_timeout?: unknown;
  };
  return { config, connection };
}

/** The log line of a start or `sat migrate` that waits for the migration lock (MigrateOptions.onWait). */
export const MIGRATION_WAIT_MESSAGE = 'waiting for the migration lock: another instance is migrating, or a session holds it (gives up after 60 s)';

/** A wait shorter than this is not told (commands started together on PostgreSQL take turns for milliseconds). */
const WAIT_NOTICE_MS = 2_000;

/** What migrateLatest may be told: how long to wait for the lock, and whom to tell that it waits. */
export interface MigrateOptions {
  /** How long to wait for the migration lock before MigrationLockTimeoutError, in ms (default 60,000). */
  timeoutMs?: number;
  /**
   * Called once when the lock is still held by another session after `noticeAfterMs` (default 2,000) of waiting, with
   * the holders as text (pid, application, address, since).
   */
  onWait?: (holders: string) => void;
  noticeAfterMs?: number;
}

/**
 * A start or `sat migrate` gave up waiting for the migration lock (PostgreSQL): another instance is still migrating,
 * or a session holds the lock (a stuck migration, an operator's session). Names the holders and what to do.
 */
export class MigrationLockTimeoutError extends Error {
  constructor(seconds: number, holders: string) {
    super(
      `gave up after ${seconds} s waiting for the migration lock (pg_advisory_lock ${MIGRATION_LOCK_KEY}), held by ${holders}: ` +
        'another instance may still be migrating (start again once it has finished), or a session holds it (end it ' +
        'with pg_terminate_backend(pid) if it is stuck) (docs/operations.md#several-instances-migrations-and-rolling-upgrades)',
    );
    this.name = 'MigrationLockTimeoutError';
  }
}

/**
 * The sessions holding the migration lock, as text for a log line or an error ("nobody now" once it is free), read
 * through `knex` (not the connection waiting in the lock).
 */
async function lockHolders(knex: Knex): Promise<string> {
  const { rows } = (await knex.raw(
    `select a.pid, a.application_name, host(a.client_addr) as address, a.backend_start
       from pg_locks l join pg_stat_activity a on a.pid = l.pid
      where l.locktype = 'advisory' and l.granted and l.objsubid = 1
        and ((l.classid::bigint << 32) | l.objid::bigint) = ?::bigint`,
    [MIGRATION_LOCK_KEY.toString()],
  )) as { rows: Array<{ pid: number; application_name: string; address: string | null; backend_start: Date }> };
  if (rows.length === 0) return 'nobody now';
  return rows
    .map((r) => `process ${r.pid} (${r.application_name || 'no application name'}${r.address ? ` from ${r.address}` : ''}, connected since ${new Date(r.backend_start).toISOString()})`)
    .join(', ');
}

/** lockHolders, or "unknown holders" when the database does not answer within `ms` (the error must not hang). */
async function holdersWithin(knex: Knex, ms: number): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('unknown holders (the database did not say in time)'), ms);
  });
  try {
    return await Promise.race([lockHolders(knex).catch(() => 'unknown holders'), late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Applies pending migrations. On PostgreSQL, instances starting together take turns under a session-level
 * `pg_advisory_lock` held on a connection of its own (outside the pool, so a pool of one still migrates): the
 * first applies the migrations, the others wait, then find nothing to do. A wait is told once through
 * `options.onWait`, naming the holders; waiting longer than `options.timeoutMs` (default 60 s) throws
 * MigrationLockTimeoutError. Migrations run on a one-connection knex without the request timeouts. The embedded
 * engine is single-process (DATA_DIR lock) and needs no lock. Throws DatabaseNewerError for a newer database.
 */
export async function migrateLatest(knex: Knex, options: MigrateOptions = {}): Promise<string[]> {
  const timeoutMs = options.timeoutMs ?? 60_000;
  const pgSettings = unboundedPostgresConnection(knex);
  if (!pgSettings) return latest(knex);
  const lockClient = new pg.Client({ ...(pgSettings.connection as pg.ClientConfig), application_name: 'sat migrate lock' });
  await lockClient.connect();
  const unbounded = knexFactory({ ...pgSettings.config, connection: pgSettings.connection, pool: { ...pgSettings.config.pool, min: 0, max: 1 } }); // the pool's afterCreate: SESSION_SETTINGS
  try {
    const key = MIGRATION_LOCK_KEY.toString();
    const { rows } = await lockClient.query('select pg_try_advisory_lock($1) as taken', [key]);
    if (!(rows[0] as { taken: boolean }).taken) {
      await lockClient.query(`set lock_timeout = ${Math.max(1, Math.round(timeoutMs))}`);
      // Told once the wait is long enough to matter, asking on another connection (this one waits in the lock); not
      // once the lock is ours. A throwing onWait is the caller's problem, never an unhandled rejection.
      let waiting = true;
      const onWait = options.onWait;
      const notice = onWait
        ? setTimeout(() => {
            void lockHolders(unbounded)
              .then((holders) => {
                if (waiting) onWait(holders);
              })
              .catch(() => undefined);
          }, options.noticeAfterMs ?? WAIT_NOTICE_MS)
        : undefined;
      try {
        await lockClient.query('select pg_advisory_lock($1)', [key]);
      } catch (err) {
        if ((err as { code?: unknown }).code !== '55P03') throw err; // lock_not_available: the lock_timeout
        throw new MigrationLockTimeoutError(Math.round(timeoutMs / 1000), await holdersWithin(unbounded, 2_000));
      } finally {
        waiting = false;
        clearTimeout(notice);
      }
    }
    try {
      return await latest(unbounded);
    } finally {
      await lockClient.query('select pg_advisory_unlock($1)', [key]);
    }
  } finally {
    await unbounded.destroy();
    await lockClient.end(); // ending the session would release the lock too
  }
}

/**
 * The database has migrations this version does not know: a newer version of sat migrated it (a rolling upgrade
 * where an instance of this version restarts after a newer one started, or a rollback). Nothing is changed.
 */
export class DatabaseNewerError extends Error {
  constructor(readonly unknown: string[]) {
    super(
      `this database was upgraded by a newer version of sat: it has migrations this version does not know ` +
        `(${unknown.join(', ')}). Run that newer version, or restore the backup taken before the upgrade to run ` +
        `this one (docs/operations.md#upgrades)`,
    );
    this.name = 'DatabaseNewerError';
  }
}

/** The applied migrations `names` that this version does not know (a newer version made them), in order. */
export function unknownMigrations(names: readonly string[]): string[] {
  const known = new Set(migrations.map((m) => m.name));
  return names.filter((name) => !known.has(name));
}

/** Throws DatabaseNewerError when the database holds migrations not in this version's list (knex: "corrupt"). */
async function refuseNewerDatabase(knex: Knex): Promise<void> {
  if (!(await knex.schema.hasTable(migrationConfig.tableName!))) return;
  const rows = (await knex(migrationConfig.tableName!).orderBy('id').select('name')) as Array<{ name: string }>;
  const unknown = unknownMigrations(rows.map((r) => r.name));
  if (unknown.length) throw new DatabaseNewerError(unknown);
}

async function latest(knex: Knex): Promise<string[]> {
  await refuseNewerDatabase(knex);
  const [, applied] = (await knex.migrate.latest(migrationConfig)) as [number, string[]];
  return applied;
}

/**
 * The migrations applied to this database and those still pending, by name, in order (`sat migrate --status`).
 * Applies nothing. Throws DatabaseNewerError when the database holds migrations this version does not know.
 */
export async function migrationStatus(knex: Knex): Promise<{ applied: string[]; pending: string[] }> {
  await refuseNewerDatabase(knex);
  const [applied, pending] = (await knex.migrate.list(migrationConfig)) as [Array<{ name: string }>, Migration[]];
  return { applied: applied.map((m) => m.name), pending: pending.map((m) => m.name) };
}
