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

/**
 * Applies pending migrations. On PostgreSQL, instances starting together take turns under a session-level
 * `pg_advisory_lock` held on a connection of its own (outside the pool, so a pool of one still migrates): the
 * first applies the migrations, the others wait, then find nothing to do. Waiting longer than `timeoutMs` fails
 * (lock_timeout). Migrations run on a one-connection knex without the request timeouts. The embedded engine is
 * single-process (DATA_DIR lock) and needs no lock.
 */
export async function migrateLatest(knex: Knex, timeoutMs = 60_000): Promise<string[]> {
  const pgSettings = unboundedPostgresConnection(knex);
  if (!pgSettings) return latest(knex);
  const lockClient = new pg.Client({ ...(pgSettings.connection as pg.ClientConfig), application_name: 'sat migrate lock' });
  await lockClient.connect();
  const unbounded = knexFactory({ ...pgSettings.config, connection: pgSettings.connection, pool: { min: 0, max: 1 } });
  try {
    await lockClient.query(`set lock_timeout = ${Math.max(1, Math.round(timeoutMs))}`);
    await lockClient.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
    try {
      return await latest(unbounded);
    } finally {
      await lockClient.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
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
