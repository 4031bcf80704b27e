// Migrations on PostgreSQL run under pg_advisory_lock: instances that start together take turns.
import pg from 'pg';
import { loadConfig } from '../../src/config/index.js';
import { MIGRATION_LOCK_KEY, MigrationLockTimeoutError, migrateLatest, openDb } from '../../src/db/index.js';
import { createLogger } from '../../src/log.js';
import { migrations } from '../../migrations/index.js';
import { runSat } from '../support/cli.js';
import { createTestDb, describePostgres, type TestDb } from '../support/db.js';

const onPostgres = describePostgres;
if (!process.env.TEST_DATABASE_URL) process.stdout.write('migrations-lock: skipped, TEST_DATABASE_URL is not set\n');

onPostgres('migrations under pg_advisory_lock', () => {
  const dbs: TestDb[] = [];
  afterAll(async () => {
    for (const db of dbs) await db.drop();
  });

  it('two processes migrating a fresh database at once: one applies, the other waits and finds nothing to do', async () => {
    const db = await createTestDb('postgres', { empty: true });
    dbs.push(db);
    const [a, b] = await Promise.all([runSat(['migrate'], db.env), runSat(['migrate'], db.env)]);
    expect(a.stderr + b.stderr).not.toMatch(/sat: |error/i);
    expect([a.code, b.code]).toEqual([0, 0]);
    const outputs = [a.stdout, b.stdout].sort();
    expect(outputs[0]).toMatch(/^Applied: 0001_initial/);
    expect(outputs[1]).toMatch(/^Up to date/);
    const client = new pg.Client({ connectionString: db.url });
    await client.connect();
    try {
      const rows = (await client.query('select name, count(*)::int as n from knex_migrations group by name order by name')).rows;
      expect(rows).toEqual(migrations.map((m) => ({ name: m.name, n: 1 })));
    } finally {
      await client.end();
    }
  });

  it('waits while another session holds the lock, then migrates', async () => {
    const db = await createTestDb('postgres', { empty: true });
    dbs.push(db);
    const holder = new pg.Client({ connectionString: db.url, application_name: 'an operator session' });
    await holder.connect();
    try {
      await holder.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      const migrating = runSat(['migrate'], db.env);
      // The migrating process is seen waiting on the advisory lock, having changed nothing.
      const deadline = Date.now() + 30_000;
      for (;;) {
        const waiting = await holder.query(
          `select 1 from pg_stat_activity
            where datname = current_database() and application_name = 'sat migrate lock'
              and wait_event_type = 'Lock' and wait_event = 'advisory'`,
        );
        if (waiting.rowCount) break;
        if (Date.now() > deadline) throw new Error('sat migrate never waited on the advisory lock');
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await holder.query(`select to_regclass('public.knex_migrations') as t`)).rows[0].t).toBeNull();
      await holder.query('select pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
      const done = await migrating;
      expect(done.code).toBe(0);
      expect(done.stdout).toMatch(/^Applied: 0001_initial/);
    } finally {
      await holder.end();
    }
  });

  it('gives up after its timeout with an error naming the lock, its holder and what to do', async () => {
    const db = await createTestDb('postgres', { empty: true });
    dbs.push(db);
    const holder = new pg.Client({ connectionString: db.url, application_name: 'a stuck session' });
    await holder.connect();
    const database = await openDb(loadConfig({ ...db.env }), createLogger('silent'));
    try {
      await holder.query('select pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      const holderPid = (await holder.query('select pg_backend_pid() as pid')).rows[0].pid as number;
      const told: string[] = [];
      const failed = await migrateLatest(database.knex, { timeoutMs: 300, noticeAfterMs: 0, onWait: (h) => told.push(h) }).catch((err: unknown) => err);
      expect(failed).toBeInstanceOf(MigrationLockTimeoutError);
      expect((failed as Error).message).toMatch(new RegExp(`^gave up after 0 s waiting for the migration lock \\(pg_advisory_lock ${MIGRATION_LOCK_KEY}\\), held by process ${holderPid} \\(a stuck session`));
      expect((failed as Error).message).toContain('pg_terminate_backend(pid)');
      expect(told).toEqual([expect.stringContaining(`process ${holderPid} (a stuck session`)]);
      expect((await holder.query(`select to_regclass('public.knex_migrations') as t`)).rows[0].t).toBeNull();
    } finally {
      await database.close();
      await holder.end();
    }
  });
});
