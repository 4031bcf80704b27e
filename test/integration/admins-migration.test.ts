// Migration 0040 on a database that already has administrators: the identity key is backfilled (an address that
// collides with an earlier one after normalisation keeps no key), earlier sign-ins become last_sign_in_at; down
// reverts it. Both databases.
import { randomUUID } from 'node:crypto';
import { migrations } from '../../migrations/index.js';
import { hashPassword } from '../../src/accounts/index.js';
import { loadConfig } from '../../src/config/index.js';
import { openDb, type Database } from '../../src/db/index.js';
import { createLogger } from '../../src/log.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';

describe.each(testDatabases())('migration 0040 on %s', (kind) => {
  let db: TestDb;
  let database: Database;

  beforeAll(async () => {
    db = await createTestDb(kind);
    database = await openDb(loadConfig({ ...db.env }), createLogger('error', {}, () => undefined));
  });
  afterAll(async () => {
    await database?.close();
    await db?.drop();
  });

  it('backfills email_key (no key for a later look-alike) and last_sign_in_at, and reverts', async () => {
    const knex = database.knex;
    for (const m of migrations.filter((x) => x.name < '0040')) await m.up(knex);
    const org = randomUUID();
    await knex('organisations').insert({ id: org, name: 'Old Org' });
    const hash = await hashPassword('old-password');
    const first = { id: randomUUID(), email: 'Ann@Example.com', created_at: new Date('2025-01-01T00:00:00Z') };
    const lookalike = { id: randomUUID(), email: '\uff41nn@example.com', created_at: new Date('2025-02-01T00:00:00Z') };
    const other = { id: randomUUID(), email: 'bob@example.com', created_at: new Date('2025-03-01T00:00:00Z') };
    for (const a of [first, lookalike, other]) await knex('admins').insert({ ...a, organisation_id: org, password_hash: hash });
    const signedInAt = new Date('2025-04-01T12:00:00Z');
    await knex('audit_events').insert({
      id: randomUUID(),
      organisation_id: org,
      actor_id: other.id,
      actor_email: other.email,
      action: 'admin.signed_in',
      created_at: signedInAt,
    });

    const m0040 = migrations.find((x) => x.name === '0040_admins')!;
    await m0040.up(knex);

    const rows = await knex('admins').select('id', 'email_key', 'last_sign_in_at').orderBy('created_at');
    expect(rows.map((r) => [r.id, r.email_key])).toEqual([
      [first.id, 'ann@example.com'],
      [lookalike.id, null], // collides with the earlier Ann: no key, so no second identity
      [other.id, 'bob@example.com'],
    ]);
    expect(new Date(rows[2].last_sign_in_at).toISOString()).toBe(signedInAt.toISOString());
    expect(rows[0].last_sign_in_at).toBeNull();

    // And back down: the schema of 0003 again.
    await m0040.down(knex);
    expect(await knex.schema.hasColumn('admins', 'email_key')).toBe(false);
    expect(await knex.schema.hasTable('admin_one_time_tokens')).toBe(false);
  });
});
