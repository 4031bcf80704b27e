// SPEC "Credential lifecycle" / "Organisation policy": GET and PUT /admin/api/policy, its enforcement on generate
// and update, the audit event, and the revocation of dormant tokens (job triggered directly, with an injected clock).
import type { CryptoKey } from 'jose';
import { createLogger } from '../../src/log.js';
import { deliverDueMail } from '../../src/mail/delivery.js';
import { createMailTransport } from '../../src/mail/transport.js';
import { revokeDormantTokens } from '../../src/tokens/index.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, daysFromNow, makeAdmin, makeToken, setTokenTimes } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { assertion, clientKey } from '../support/sender.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const DAY = 86_400_000;
const CATALOGUE = ['candidates', 'employees', 'jobs', 'clients', 'contacts', 'master-lists'];
const policy = (overrides: Record<string, unknown> = {}) => ({
  max_lifetime_days: 90,
  allowed_services: ['jobs', 'candidates'],
  revoke_dormant_after_days: null,
  default_max_tokens_per_hour: null,
  ...overrides,
});

describe.each(testDatabases())('organisation policy on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let smtp: TestSmtp;

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    // The job's own timer is set far out: the tests trigger it themselves.
    server = await startServer(db, { SMTP_URL: smtp.url, MAIL_POLL_INTERVAL_MS: '100', POLICY_CHECK_INTERVAL_MS: '86400000' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  async function session() {
    const admin = await makeAdmin(server.deps);
    const s = await signIn(server, admin.email, admin.password);
    const api = (method: string, path: string, json?: unknown) => call(server, method, path, { token: s.token, ...(json === undefined ? {} : { json }) });
    return { admin, api };
  }

  const exchange = (clientId: string, secret: string) =>
    fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
      body: 'grant_type=client_credentials',
    });

  describe('GET and PUT /policy', () => {
    it('starts with the defaults: server maximum lifetime, every service, no revocation, no hourly default', async () => {
      const { api } = await session();
      const res = await api('GET', '/policy');
      expect(res.status).toBe(200);
      expect(res.body).toEqual({
        max_lifetime_days: 366,
        allowed_services: CATALOGUE,
        revoke_dormant_after_days: null,
        default_max_tokens_per_hour: null,
      });
    });

    it('replaces the whole document, for the caller organisation only, and audits old and new values', async () => {
      const a = await session();
      const b = await session();
      const doc = policy({ allowed_services: ['jobs', 'candidates', 'jobs'], revoke_dormant_after_days: 30, default_max_tokens_per_hour: 500 });
      const put = await a.api('PUT', '/policy', doc);
      expect(put.status).toBe(200);
      const stored = { ...doc, allowed_services: ['candidates', 'jobs'] };
      expect(put.body).toEqual(stored);
      expect((await a.api('GET', '/policy')).body).toEqual(stored);
      expect((await b.api('GET', '/policy')).body.allowed_services).toEqual(CATALOGUE);

      const again = await a.api('PUT', '/policy', policy({ max_lifetime_days: 366, allowed_services: CATALOGUE }));
      expect(again.status).toBe(200);
      const audit = (await a.api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'policy.updated');
      expect(audit).toHaveLength(2);
      expect(audit[0]).toMatchObject({
        actor_id: a.admin.id,
        actor_email: a.admin.email,
        details: { old: stored, new: policy({ max_lifetime_days: 366, allowed_services: CATALOGUE }) },
      });
      expect(audit[1].details).toEqual({
        old: { max_lifetime_days: 366, allowed_services: CATALOGUE, revoke_dormant_after_days: null, default_max_tokens_per_hour: null },
        new: stored,
      });
      expect((await b.api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'policy.updated')).toEqual([]);
    });

    it('writes nothing and records no event for a PUT of the policy in force (Save without a change)', async () => {
      const { api } = await session();
      const defaults = (await api('GET', '/policy')).body;
      const same = await api('PUT', '/policy', defaults);
      expect(same.status).toBe(200);
      expect(same.body).toEqual(defaults);
      const doc = policy({ revoke_dormant_after_days: 45 });
      expect((await api('PUT', '/policy', doc)).status).toBe(200);
      // The same document again, once as stored and once with its services in another order and repeated.
      for (const body of [doc, { ...doc, allowed_services: ['candidates', 'jobs', 'candidates'] }]) {
        const res = await api('PUT', '/policy', body);
        expect(res.status).toBe(200);
        expect(res.body).toEqual({ ...doc, allowed_services: ['candidates', 'jobs'] });
      }
      const audit = (await api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'policy.updated');
      expect(audit).toHaveLength(1);
      expect(audit[0].details.new).toEqual({ ...doc, allowed_services: ['candidates', 'jobs'] });
    });

    it.each([
      ['a missing field', { max_lifetime_days: 30, allowed_services: ['jobs'], revoke_dormant_after_days: null }, 'default_max_tokens_per_hour'],
      ['an unknown field', policy({ extra: 1 }), 'extra'],
      ['max_lifetime_days 0', policy({ max_lifetime_days: 0 }), 'max_lifetime_days'],
      ['max_lifetime_days past the server maximum', policy({ max_lifetime_days: 367 }), 'max_lifetime_days'],
      ['max_lifetime_days 1.5', policy({ max_lifetime_days: 1.5 }), 'max_lifetime_days'],
      ['an unknown service', policy({ allowed_services: ['jobs', 'payroll'] }), 'allowed_services'],
      ['no service', policy({ allowed_services: [] }), 'allowed_services'],
      ['revoke_dormant_after_days 29', policy({ revoke_dormant_after_days: 29 }), 'revoke_dormant_after_days'],
      ['revoke_dormant_after_days 366', policy({ revoke_dormant_after_days: 366 }), 'revoke_dormant_after_days'],
      ['revoke_dormant_after_days "30"', policy({ revoke_dormant_after_days: '30' }), 'revoke_dormant_after_days'],
      ['default_max_tokens_per_hour 0', policy({ default_max_tokens_per_hour: 0 }), 'default_max_tokens_per_hour'],
      ['default_max_tokens_per_hour 1000001', policy({ default_max_tokens_per_hour: 1_000_001 }), 'default_max_tokens_per_hour'],
    ])('refuses %s with 400 validation_failed and changes nothing', async (_label, body, path) => {
      const { api } = await session();
      const res = await api('PUT', '/policy', body);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('validation_failed');
      expect(res.body.details.map((d: { path: string }) => d.path)).toContain(path);
      expect((await api('GET', '/policy')).body.max_lifetime_days).toBe(366);
    });

    it('accepts the bounds: 1 day, 30 and 365 days, 1 and 1,000,000 per hour', async () => {
      const { api } = await session();
      for (const doc of [
        policy({ max_lifetime_days: 1, allowed_services: ['jobs'], revoke_dormant_after_days: 30, default_max_tokens_per_hour: 1 }),
        policy({ max_lifetime_days: 366, allowed_services: CATALOGUE, revoke_dormant_after_days: 365, default_max_tokens_per_hour: 1_000_000 }),
      ]) {
        const res = await api('PUT', '/policy', doc);
        expect(res.status).toBe(200);
        expect(res.body).toEqual(doc);
      }
    });

    it('needs a signed-in administrator', async () => {
      expect((await call(server, 'GET', '/policy')).status).toBe(401);
      expect((await call(server, 'PUT', '/policy', { json: policy() })).status).toBe(401);
    });
  });

  describe('enforcement', () => {
    it('refuses on generate an expiry past max_lifetime_days and a service outside allowed_services, naming the policy', async () => {
      const { api } = await session();
      expect((await api('PUT', '/policy', policy({ max_lifetime_days: 30 }))).status).toBe(200);

      const far = await api('POST', '/tokens', tokenBody({ expires_at: daysFromNow(45), services: ['jobs'] }));
      expect(far.status).toBe(400);
      expect(far.body).toMatchObject({
        error: 'validation_failed',
        message: expect.stringContaining('policy'),
        details: [{ path: 'expires_at', message: expect.stringMatching(/30 days.*max_lifetime_days.*organisation policy/) }],
      });
      const outside = await api('POST', '/tokens', tokenBody({ expires_at: daysFromNow(20), services: ['jobs', 'employees'] }));
      expect(outside.status).toBe(400);
      expect(outside.body.details).toEqual([{ path: 'services', message: expect.stringMatching(/allowed_services.*employees.*organisation policy/) }]);

      const ok = await api('POST', '/tokens', tokenBody({ expires_at: daysFromNow(30), services: ['jobs'] }));
      expect(ok.status).toBe(201);
      expect((await api('GET', '/tokens')).body.items).toHaveLength(1);
    });

    it('refuses on update a service outside allowed_services', async () => {
      const { api } = await session();
      const t = await api('POST', '/tokens', tokenBody({ services: ['jobs'] }));
      expect(t.status).toBe(201);
      expect((await api('PUT', '/policy', policy())).status).toBe(200);
      const res = await api('PATCH', `/tokens/${t.body.id}`, { services: ['jobs', 'contacts'] });
      expect(res.status).toBe(400);
      expect(res.body.details).toEqual([{ path: 'services', message: expect.stringMatching(/allowed_services.*contacts.*organisation policy/) }]);
      expect((await api('GET', `/tokens/${t.body.id}`)).body.services).toEqual(['jobs']);
      expect((await api('PATCH', `/tokens/${t.body.id}`, { services: ['candidates'] })).status).toBe(200);
    });

    it('gives a new token the policy default hourly limit unless the request says otherwise', async () => {
      const { api } = await session();
      expect((await api('PUT', '/policy', policy({ default_max_tokens_per_hour: 120 }))).status).toBe(200);
      const byDefault = await api('POST', '/tokens', tokenBody({ services: ['jobs'] }));
      expect(byDefault.body.max_tokens_per_hour).toBe(120);
      const unlimited = await api('POST', '/tokens', tokenBody({ services: ['jobs'], max_tokens_per_hour: null }));
      expect(unlimited.body.max_tokens_per_hour).toBeNull();
      const own = await api('POST', '/tokens', tokenBody({ services: ['jobs'], max_tokens_per_hour: 7 }));
      expect(own.body.max_tokens_per_hour).toBe(7);
      expect((await api('GET', `/tokens/${byDefault.body.id}`)).body.max_tokens_per_hour).toBe(120);
    });
  });

  describe('revocation of dormant tokens', () => {
    const at = (ms: number) => ({ ...server.deps, clock: () => new Date(ms) });

    it('revokes tokens unused for revoke_dormant_after_days: audit actor "policy", mail to the creator, nothing else touched', async () => {
      const { admin, api } = await session();
      const other = await makeAdmin(server.deps); // an organisation without the policy
      const now = Date.now();
      const idle = await makeToken(server.deps, admin, { name: 'idle', expires_at: daysFromNow(200) });
      await setTokenTimes(server.deps, idle.id, { created_at: new Date(now - 10 * DAY) });
      const busy = await makeToken(server.deps, admin, { name: 'busy', expires_at: daysFromNow(200) });
      const elsewhere = await makeToken(server.deps, other, { name: 'elsewhere', expires_at: daysFromNow(200) });
      await setTokenTimes(server.deps, elsewhere.id, { created_at: new Date(now - 100 * DAY) });
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, max_lifetime_days: 366, revoke_dormant_after_days: 30 }))).status).toBe(200);

      // `busy` is used now, through the token endpoint.
      expect((await exchange(busy.client_id, busy.client_secret)).status).toBe(200);
      await server.oauth.flushUsage();

      // 19 days on: idle has been unused for 29 days, nothing is due yet.
      expect(await revokeDormantTokens(at(now + 19 * DAY))).toBe(0);
      // 25 days on: idle for 35 days (revoked), busy for 25 (kept).
      expect(await revokeDormantTokens(at(now + 25 * DAY))).toBe(1);
      expect(await revokeDormantTokens(at(now + 25 * DAY))).toBe(0);

      expect((await api('GET', `/tokens/${idle.id}`)).status).toBe(404);
      expect((await exchange(idle.client_id, idle.client_secret)).status).toBe(401);
      expect((await api('GET', `/tokens/${busy.id}`)).status).toBe(200);
      expect((await exchange(elsewhere.client_id, elsewhere.client_secret)).status).toBe(200);

      const events = (await api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'token.revoked');
      expect(events).toEqual([
        expect.objectContaining({
          actor_id: null,
          actor_email: 'policy',
          token_id: idle.id,
          token_name: 'idle',
          client_id: idle.client_id,
          details: expect.objectContaining({ reason: 'dormant', revoke_dormant_after_days: 30 }),
        }),
      ]);

      // The notice was queued at the job's (injected) time: the mail worker sends it once that time has come.
      const transport = createMailTransport(server.deps.config, createLogger('silent'));
      try {
        expect((await deliverDueMail(at(now + 25 * DAY + 1000), transport)).sent).toBeGreaterThanOrEqual(1);
      } finally {
        transport.close();
      }
      await smtp.waitFor(() => smtp.to(admin.email).some((m) => m.subject.includes('unused for 30 days')));
      const mails = smtp.to(admin.email).filter((m) => m.subject.includes('unused for 30 days'));
      expect(mails).toHaveLength(1);
      expect(mails[0]!.subject).toBe('System access token "idle" was revoked: unused for 30 days');
      expect(mails[0]!.text).toContain(idle.client_id);
      expect(mails[0]!.text).toContain('never'); // last used
      expect(mails[0]!.raw).not.toContain(idle.client_secret);
      expect(smtp.to(other.email).filter((m) => m.subject.includes('revoked'))).toEqual([]);

      // 60 days on, busy (last used 60 days before) goes too.
      expect(await revokeDormantTokens(at(now + 60 * DAY))).toBe(1);
      expect((await api('GET', `/tokens/${busy.id}`)).status).toBe(404);
    });

    it('dates each revocation (event and mail) when it happens, not when the run started', async () => {
      const { admin, api } = await session();
      const now = Date.now();
      const idle = await makeToken(server.deps, admin, { name: 'late-idle', expires_at: daysFromNow(200) });
      await setTokenTimes(server.deps, idle.id, { created_at: new Date(now - 40 * DAY) });
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, max_lifetime_days: 366, revoke_dormant_after_days: 30 }))).status).toBe(200);
      // The run starts at `start`; every later reading of the clock is 5 s on (a long run, a wait for a row lock).
      const start = now + DAY;
      let reads = 0;
      const later = { ...server.deps, clock: () => new Date(reads++ === 0 ? start : start + 5_000) };
      expect(await revokeDormantTokens(later)).toBe(1);
      const event = await server.deps.db.knex('audit_events').where({ token_id: idle.id, action: 'token.revoked' }).first();
      expect(event.created_at.getTime()).toBe(start + 5_000);
      const mail = await server.deps.db.knex('mail_outbox').where({ kind: 'token_revoked_dormant', recipient: admin.email }).first();
      expect(mail.created_at.getTime()).toBe(start + 5_000);
    });

    it('writes the first use of a token quiet for a month at once, so no job takes it for dormant meanwhile', async () => {
      const { admin, api } = await session();
      const now = Date.now();
      const quiet = await makeToken(server.deps, admin, { name: 'quiet', expires_at: daysFromNow(200) });
      await setTokenTimes(server.deps, quiet.id, { created_at: new Date(now - 40 * DAY) });
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, max_lifetime_days: 366, revoke_dormant_after_days: 30 }))).status).toBe(200);
      expect((await exchange(quiet.client_id, quiet.client_secret)).status).toBe(200);
      // Written by the request itself, not by the 5 s bookkeeping (not run here); the job finds it in use.
      const row = await server.deps.db.knex('tokens').where({ id: quiet.id }).first();
      expect(row.last_used_at).not.toBeNull();
      expect(await revokeDormantTokens(at(now + 1000))).toBe(0);
      expect((await exchange(quiet.client_id, quiet.client_secret)).status).toBe(200);
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, revoke_dormant_after_days: null }))).status).toBe(200);
    });

    it('writes it at once too when the quiet token is only the caller of introspection or revocation', async () => {
      const { admin, api } = await session();
      const now = Date.now();
      const client = await makeToken(server.deps, admin, { name: 'client', expires_at: daysFromNow(200) });
      const first = await makeToken(server.deps, admin, { name: 'first-introspector', expires_at: daysFromNow(200) });
      const introspector = await makeToken(server.deps, admin, { name: 'introspector', expires_at: daysFromNow(200) });
      const revoker = await makeToken(server.deps, admin, { name: 'revoker', expires_at: daysFromNow(200) });
      for (const t of [introspector, revoker]) await setTokenTimes(server.deps, t.id, { created_at: new Date(now - 40 * DAY) });
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, max_lifetime_days: 366, revoke_dormant_after_days: 30 }))).status).toBe(200);
      const issued = await exchange(client.client_id, client.client_secret);
      const accessToken = ((await issued.json()) as { access_token: string }).access_token;
      const post = (path: string, who: { client_id: string; client_secret: string }, token: string) =>
        fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(who.client_id, who.client_secret) },
          body: new URLSearchParams({ token }).toString(),
        });
      // The first introspection verifies the signature; the introspector's call then takes the one-statement path.
      expect(await (await post('/token/introspection', first, accessToken)).json()).toMatchObject({ active: true });
      expect(await (await post('/token/introspection', introspector, accessToken)).json()).toMatchObject({ active: true });
      expect((await post('/token/revocation', revoker, 'not-one-of-ours')).status).toBe(200);
      // Written by the requests themselves (the 5 s bookkeeping is not run here): the job finds both in use.
      for (const t of [introspector, revoker]) {
        expect((await server.deps.db.knex('tokens').where({ id: t.id }).first()).last_used_at).not.toBeNull();
      }
      expect(await revokeDormantTokens(at(now + 1000))).toBe(0);
      expect((await post('/token/introspection', introspector, accessToken)).status).toBe(200);
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, revoke_dormant_after_days: null }))).status).toBe(200);
    });

    /** A private_key_jwt token made 40 days ago (quiet), and a token request with an assertion signed by `signer`. */
    const quietKeyToken = async (extra: Record<string, unknown> = {}) => {
      const { api } = await session();
      const key = await clientKey();
      const made = await api('POST', '/tokens', tokenBody({ services: ['jobs'], auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] }, ...extra }));
      expect(made.status).toBe(201);
      const clientId = made.body.client_id as string;
      await setTokenTimes(server.deps, made.body.id, { created_at: new Date(Date.now() - 40 * DAY) });
      const send = async (signer: { privateKey: CryptoKey }) =>
        fetch(`${server.url}/token`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: new URLSearchParams({
            grant_type: 'client_credentials',
            client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
            client_assertion: await assertion(signer, clientId, server.issuer),
          }).toString(),
        });
      const lastUsed = async () => (await server.deps.db.knex('tokens').where({ id: made.body.id }).first()).last_used_at;
      return { key, send, lastUsed };
    };

    it('writes it for a private_key_jwt token only once the assertion verifies: a client ID alone keeps nothing alive', async () => {
      const { key, send, lastUsed } = await quietKeyToken();
      expect((await send(await clientKey())).status).toBe(401); // signed by a key that is not the token's
      expect(await lastUsed()).toBeNull();
      expect((await send(key)).status).toBe(200);
      expect(await lastUsed()).not.toBeNull();
    });

    it('writes no use for a signed private_key_jwt request from outside allowed_ips (it is refused)', async () => {
      const { key, send, lastUsed } = await quietKeyToken({ allowed_ips: ['192.0.2.0/24'] });
      expect((await send(key)).status).toBe(401); // the test client's 127.0.0.1 is outside 192.0.2.0/24
      // A refused request is no use (as for a secret, whose address is checked first): the token stays dormant.
      expect(await lastUsed()).toBeNull();
    });

    it('does nothing once the policy no longer asks for it', async () => {
      const { admin, api } = await session();
      const t = await makeToken(server.deps, admin, { expires_at: daysFromNow(300) });
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, revoke_dormant_after_days: 30 }))).status).toBe(200);
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, revoke_dormant_after_days: null }))).status).toBe(200);
      await revokeDormantTokens(at(Date.now() + 100 * DAY));
      expect((await api('GET', `/tokens/${t.id}`)).status).toBe(200);
      expect((await api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'token.revoked')).toEqual([]);
    });

    it('revokes each token exactly once when several runs race', async () => {
      const { admin, api } = await session();
      const now = Date.now();
      const tokens = await Promise.all([1, 2, 3, 4, 5].map((i) => makeToken(server.deps, admin, { name: `race-${i}`, expires_at: daysFromNow(300) })));
      expect((await api('PUT', '/policy', policy({ allowed_services: CATALOGUE, revoke_dormant_after_days: 30 }))).status).toBe(200);
      const runs = await Promise.all([1, 2, 3, 4].map(() => revokeDormantTokens(at(now + 40 * DAY))));
      expect(runs.reduce((a, b) => a + b, 0)).toBe(tokens.length);
      const events = (await api('GET', '/audit?limit=100')).body.items.filter((e: { action: string }) => e.action === 'token.revoked');
      expect(events.map((e: { token_name: string }) => e.token_name).sort()).toEqual(tokens.map((t) => t.name).sort());
      const queued = await server.deps.db.knex('mail_outbox').where({ kind: 'token_revoked_dormant', recipient: admin.email });
      expect(queued).toHaveLength(tokens.length);
    });
  });
});
