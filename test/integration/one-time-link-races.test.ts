// docs/admin-api.md: inviting an address again "replaces the earlier link", and "a newer request replaces the older
// link" of a password reset. Fuzzing a running server on PostgreSQL with the same call 20 times at once left up to 10
// live invitation links for one address: each request deleted the links it could see, and none could see the others'
// uncommitted ones. Issuing a link now takes the organisation's lock first.
import { randomBytes } from 'node:crypto';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe.each(testDatabases())('one-time links requested at once on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { TRUST_PROXY: 'true' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const liveLinks = async (purpose: string, email: string) =>
    Number(
      (
        (await server.deps.db.knex('admin_one_time_tokens').where({ purpose, email }).whereNull('used_at').count({ n: '*' }).first()) as {
          n: number | string;
        }
      ).n,
    );

  const queued = async (recipient: string) =>
    Number(((await server.deps.db.knex('mail_outbox').where({ recipient }).count({ n: '*' }).first()) as { n: number | string }).n);
  /** sat_password_resets_throttled_total as /metrics shows it. */
  const resetsNotSent = async () =>
    Number(/^sat_password_resets_throttled_total (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);

  it('leaves one live invitation for an address invited 10 times at once', async () => {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const email = `invitee-${randomBytes(4).toString('hex')}@example.com`;
    const answers = await Promise.all(Array.from({ length: 10 }, () => call(server, 'POST', '/admins', { token, json: { email } })));
    expect(answers.map((a) => a.status)).toEqual(Array(10).fill(201));
    expect(await liveLinks('invitation', email)).toBe(1);
  });

  it('leaves one live reset link, and mails no more than the limit, for an address that asked 5 times at once', async () => {
    const admin = await makeAdmin(server.deps);
    const before = await resetsNotSent();
    const answers = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        call(server, 'POST', '/password-reset', { json: { email: admin.email }, headers: { 'x-forwarded-for': `198.51.100.${i + 1}` } }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array(5).fill(202));
    // The links are made after the answers: wait until every request has either queued its mail or, past the
    // limit of 3 reset mails per address an hour (passwordReset.mailsPerEmail), counted itself as not sent.
    for (let tries = 0; ; tries++) {
      expect(tries).toBeLessThan(800);
      const done = (await queued(admin.email)) + (await resetsNotSent()) - before;
      if (done >= 5) break;
      await new Promise((r) => setTimeout(r, 25));
    }
    // Counted under the organisation's lock, so requests at once see each other's mails.
    expect(await queued(admin.email)).toBe(3);
    expect(await liveLinks('password_reset', admin.email)).toBe(1);
  });
});
