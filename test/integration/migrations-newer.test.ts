// A database already migrated by a newer version of sat (a rolling upgrade: an instance of this version restarts
// after a newer one migrated; or a rollback to this version): serve and every command refuse, naming the
// migrations this version does not know and what to do, and change nothing. Both databases.
import { loadConfig } from '../../src/config/index.js';
import { openDb } from '../../src/db/index.js';
import { createLogger } from '../../src/log.js';
import { runSatInProcess } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer } from '../support/server.js';

const FUTURE = '9990_from_a_newer_version';

async function appliedMigrations(db: TestDb, insertFuture = false): Promise<string[]> {
  const database = await openDb(loadConfig({ ...db.env }), createLogger('error', {}, () => undefined));
  try {
    if (insertFuture) {
      const batch = (await database.knex('knex_migrations').max({ b: 'batch' }).first()) as { b: number };
      await database.knex('knex_migrations').insert({ name: FUTURE, batch: Number(batch.b) + 1, migration_time: new Date() });
    }
    return (await database.knex('knex_migrations').orderBy('id').select('name')).map((r: { name: string }) => r.name);
  } finally {
    await database.close();
  }
}

describe.each(testDatabases())('a database migrated by a newer version, on %s', (kind) => {
  let db: TestDb;
  let before: string[];
  beforeAll(async () => {
    db = await createTestDb(kind);
    before = await appliedMigrations(db, true);
    expect(before).toContain(FUTURE);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const newer = new RegExp(`newer version of sat.*${FUTURE}`);

  it('sat migrate and other commands refuse with what happened and what to do', async () => {
    const migrate = await runSatInProcess(['migrate'], db.env);
    expect(migrate.code).toBe(1);
    expect(migrate.stderr).toMatch(newer);
    expect(migrate.stderr).toMatch(/backup taken before the upgrade/);
    expect(migrate.stderr).not.toMatch(/corrupt|see the server log/);

    const list = await runSatInProcess(['token', 'list', '--org', 'Default'], db.env);
    expect(list.code).toBe(1);
    expect(list.stderr).toMatch(newer);
    expect(await appliedMigrations(db)).toEqual(before);
  });

  it('serve does not start, with the same reason', async () => {
    await expect(startServer(db)).rejects.toThrow(newer);
    expect(await appliedMigrations(db)).toEqual(before);
  });
});
