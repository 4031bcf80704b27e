// The server's PostgreSQL sessions run with the settings the code is written for, whatever the database's defaults
// (src/db/index.ts SESSION_SETTINGS). Found by a black-box tester: with `default_transaction_isolation =
// serializable` concurrent generates and token requests answered 500 (40001), with `standard_conforming_strings =
// off` every token search was a 500, and with `DateStyle = 'SQL, DMY'` the server did not start.
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, describePostgres, onPostgresServer, type TestDb } from '../support/db.js';
import { basic, makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describePostgres('a PostgreSQL database with other defaults', () => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb('postgres');
    const name = new URL(db.url!).pathname.slice(1);
    await onPostgresServer(async (query) => {
      for (const setting of [
        `default_transaction_isolation = 'serializable'`,
        'standard_conforming_strings = off',
        `DateStyle = 'SQL, DMY'`,
        `IntervalStyle = 'sql_standard'`,
        `TimeZone = 'Pacific/Kiritimati'`,
      ]) {
        await query(`alter database ${name} set ${setting}`);
      }
    });
    server = await startServer(db); // did not start with DateStyle 'SQL, DMY'
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('runs every session of the pool with ours', async () => {
    const knex = server.deps.db.knex;
    const shown = await knex.transaction(async (trx) => ({
      isolation: (await trx.raw('show transaction_isolation')).rows[0].transaction_isolation,
      strings: (await trx.raw('show standard_conforming_strings')).rows[0].standard_conforming_strings,
      dates: (await trx.raw('show datestyle')).rows[0].DateStyle,
      intervals: (await trx.raw('show intervalstyle')).rows[0].IntervalStyle,
      zone: (await trx.raw('show timezone')).rows[0].TimeZone,
    }));
    expect(shown).toEqual({ isolation: 'read committed', strings: 'on', dates: 'ISO, MDY', intervals: 'postgres', zone: 'UTC' });
  });

  it('answers a search, concurrent generates and concurrent token requests without a 500', async () => {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const generated = await Promise.all(Array.from({ length: 20 }, () => call(server, 'POST', '/tokens', { token, json: tokenBody() })));
    expect(generated.map((r) => r.status)).toEqual(Array(20).fill(201));
    const search = await call(server, 'GET', '/tokens?q=t-', { token });
    expect([search.status, search.body.items.length]).toEqual([200, 20]);

    const limited = await call(server, 'POST', '/tokens', { token, json: tokenBody({ max_tokens_per_hour: 10 }) });
    expect(limited.status).toBe(201);
    const { client_id, client_secret } = limited.body as { client_id: string; client_secret: string };
    const answers = await Promise.all(
      Array.from({ length: 30 }, () =>
        fetch(`${server.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(client_id, client_secret) },
          body: 'grant_type=client_credentials',
        }).then((r) => r.status),
      ),
    );
    expect(answers.filter((s) => s === 200)).toHaveLength(10);
    expect(answers.filter((s) => s !== 200 && s !== 429)).toEqual([]);
  });
});
