import knexFactory, { type Knex } from 'knex';
import { migrations, type Migration } from '../../migrations/index.js';

const source: Knex.MigrationSource<Migration> = {
  getMigrations: async () => [...migrations],
  getMigrationName: (m) => m.name,
  getMigration: async (m) => m,
};

const migrationConfig: Knex.MigratorConfig = { migrationSource: source, tableName: 'knex_migrations' };

/**
 * Applies pending migrations. Instances starting together race for knex's migration lock;
 * the loser waits and retries instead of failing.
 */
export async function migrateLatest(knex: Knex, timeoutMs = 60_000): Promise<string[]> {
  // Migrations may take longer than a request's database timeout: they run on a connection without one.
  const unbounded = withoutTimeouts(knex);
  try {
    return await migrateWith(unbounded ?? knex, timeoutMs);
  } finally {
    await unbounded?.destroy();
  }
}

/** A one-connection copy of a PostgreSQL knex without statement/query timeouts; undefined when there are none. */
function withoutTimeouts(knex: Knex): Knex | undefined {
  const config = (knex as unknown as { client: { config: Knex.Config } }).client.config;
  const connection = config.connection as Record<string, unknown> | undefined;
  if (config.client !== 'pg' || !connection || typeof connection !== 'object') return undefined;
  if (connection.statement_timeout === undefined && connection.query_timeout === undefined) return undefined;
  const { statement_timeout: _s, query_timeout: _q, ...rest } = connection;
  return knexFactory({ ...config, connection: rest as Knex.PgConnectionConfig, pool: { min: 0, max: 1 } });
}

async function migrateWith(knex: Knex, timeoutMs: number): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const [, applied] = (await knex.migrate.latest(migrationConfig)) as [number, string[]];
      return applied;
    } catch (err) {
      const e = err as { name?: string; code?: string; message?: string };
      const raced =
        e.name === 'MigrationLocked' ||
        // two instances creating knex's own bookkeeping tables at once
        (e.code === '23505' && /knex_migrations|pg_type/.test(e.message ?? '')) ||
        e.code === '42P07' ||
        e.code === '42710'; // `type "knex_migrations" already exists`: the same race, seen on the table's row type
      if (!raced || Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200 + Math.random() * 300));
    }
  }
}

export async function migrationStatus(knex: Knex): Promise<{ applied: string[]; pending: string[] }> {
  const [applied, pending] = (await knex.migrate.list(migrationConfig)) as [Array<{ name: string }>, Migration[]];
  return { applied: applied.map((m) => m.name), pending: pending.map((m) => m.name) };
}
