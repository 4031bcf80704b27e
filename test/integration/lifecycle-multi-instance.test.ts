// SPEC "Organisation policy": a dormant token is revoked exactly once however many instances run the job at once
// (two servers on one PostgreSQL, the job triggered on both with the same injected clock), and a token just used on
// one instance is not revoked by the other's job.
import { revokeDormantTokens } from '../../src/tokens/index.js';
import { TestClock } from '../support/clock.js';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, daysFromNow, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const DAY = 86_400_000;
const kinds = testDatabases().filter((k) => k === 'postgres');
const suite = kinds.length ? describe.each(kinds) : describe.skip.each(['postgres' as const]);

suite('dormant revocation on two instances of one %s database', (kind) => {
  let db: TestDb;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    a = await startServer(db, { POLICY_CHECK_INTERVAL_MS: '86400000' });
    b = await startServer(db, { POLICY_CHECK_INTERVAL_MS: '86400000' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('revokes each dormant token once: one audit event and one mail each', async () => {
    const admin = await makeAdmin(a.deps);
    const s = await signIn(a, admin.email, admin.password);
    const put = await call(b, 'PUT', '/policy', {
      token: s.token,
      json: { max_lifetime_days: 366, allowed_services: ['candidates', 'jobs'], revoke_dormant_after_days: 30, default_max_tokens_per_hour: null },
    });
    expect(put.status).toBe(200);
    const tokens = [];
    for (let i = 0; i < 12; i += 1) tokens.push(await makeToken(a.deps, admin, { name: `t${i}`, expires_at: daysFromNow(300) }));

    const later = Date.now() + 31 * DAY;
    const runs = await Promise.all(
      [a, b, a, b].map((server) => revokeDormantTokens({ ...server.deps, clock: () => new Date(later) })),
    );
    expect(runs.reduce((x, y) => x + y, 0)).toBe(tokens.length);

    const knex = a.deps.db.knex;
    const events = await knex('audit_events').where({ organisation_id: admin.organisation_id, action: 'token.revoked' });
    expect(events).toHaveLength(tokens.length);
    expect(new Set(events.map((e: { token_id: string }) => e.token_id)).size).toBe(tokens.length);
    expect(events.every((e: { actor_email: string }) => e.actor_email === 'policy')).toBe(true);
    expect(await knex('mail_outbox').where({ kind: 'token_revoked_dormant', recipient: admin.email })).toHaveLength(tokens.length);
    expect(await knex('tokens').where({ organisation_id: admin.organisation_id })).toHaveLength(0);
  });

  it('does not revoke a token used a moment ago on the other instance (its use not yet written)', async () => {
    const clock = new TestClock(Date.now());
    const [c, d] = [
      await startServer(db, {}, { clock, jobs: 'manual' }),
      await startServer(db, {}, { clock, jobs: 'manual' }),
    ];
    try {
      const admin = await makeAdmin(c.deps);
      const s = await signIn(c, admin.email, admin.password);
      const policy = { max_lifetime_days: 366, allowed_services: ['candidates', 'jobs'], revoke_dormant_after_days: 30, default_max_tokens_per_hour: null };
      expect((await call(c, 'PUT', '/policy', { token: s.token, json: policy })).status).toBe(200);
      const t = await makeToken(c.deps, admin, { name: 'monthly-batch', expires_at: daysFromNow(300) });
      const exchange = (server: TestServer) =>
        fetch(`${server.url}/token`, {
          method: 'POST',
          headers: { authorization: basic(t.client_id, t.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
          body: 'grant_type=client_credentials',
        });

      clock.advance(31 * DAY); // unused for 31 days: dormant under the policy
      expect((await exchange(c)).status).toBe(200); // the monthly batch runs, on C; C's 5 s bookkeeping has not run
      await d.runJob('revoke-dormant'); // D's hourly job, a moment later
      expect((await exchange(c)).status).toBe(200);
      expect((await exchange(d)).status).toBe(200);
      const events = await c.deps.db.knex('audit_events').where({ organisation_id: admin.organisation_id, action: 'token.revoked' });
      expect(events).toEqual([]);

      clock.advance(31 * DAY); // now really unused for 31 days
      expect(await d.runJob('revoke-dormant')).toBe(1);
      expect((await exchange(c)).status).toBe(401);
    } finally {
      await c.close();
      await d.close();
    }
  });
});
