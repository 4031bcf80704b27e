// SPEC "Admin API": a bad request is one 400 validation_failed naming every problem ({path, message} each), on
// POST /tokens, PATCH /tokens/{id} and PUT /policy, whether a problem is of shape, catalogue, clock or policy;
// the forms of expires_at (docs/admin-api.md); the policy's maximum lifetime for a date (docs/lifecycle.md).
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const NOW = new Date('2026-12-01T09:00:00Z');
const policy = (overrides: Record<string, unknown> = {}) => ({
  max_lifetime_days: 30,
  allowed_services: ['jobs', 'candidates'],
  revoke_dormant_after_days: null,
  default_max_tokens_per_hour: null,
  ...overrides,
});

describe.each(testDatabases())('validation of the admin API on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    server.clock.set(NOW);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  async function session() {
    const admin = await makeAdmin(server.deps);
    const s = await signIn(server, admin.email, admin.password);
    return (method: string, path: string, json?: unknown) => call(server, method, path, { token: s.token, ...(json === undefined ? {} : { json }) });
  }

  describe('every problem of a request in one 400', () => {
    it('says "at most 100" of a list of 101 services, not "must be an array of service ids"', async () => {
    const admin = await makeAdmin(server.deps);
    const session = await signIn(server, admin.email, admin.password);
    const res = await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody({ services: Array(101).fill('jobs') }) });
    expect(res.status).toBe(400);
    expect(res.body.details).toEqual([{ path: 'services', message: 'must have at most 100 service ids' }]);
    const put = await call(server, 'PUT', '/policy', { token: session.token, json: policy({ allowed_services: Array(101).fill('jobs') }) });
    expect(put.body.details).toEqual([{ path: 'allowed_services', message: 'must have at most 100 service ids' }]);
  });

  it('answers a body of 60,000 unknown fields with at most 50 details, the last saying how many more (a short answer, linear work)', async () => {
    const body = JSON.stringify({ email: 'a@example.com', ...Object.fromEntries(Array.from({ length: 60_000 }, (_, i) => [`k${i}`, i])) });
    for (const path of ['/password-reset', '/login']) {
      const res = await fetch(`${server.url}/admin/api${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
      const text = await res.text();
      expect({ path, status: res.status }).toEqual({ path, status: 400 });
      expect(text.length).toBeLessThan(10_000); // it echoed every unknown field: 3 MB
      const answer = JSON.parse(text) as { error: string; details: Array<{ path: string; message: string }> };
      expect(answer.error).toBe('validation_failed');
      expect(answer.details).toHaveLength(50);
      expect(answer.details[0]).toEqual({ path: expect.stringMatching(/^(k0|password)$/), message: expect.any(String) });
      expect(answer.details.at(-1)).toEqual({ path: 'body', message: expect.stringMatching(/^and \d+ more problems$/) });
    }
  });

  it('refuses a name of 200,000 characters as too long, on POST and PATCH (counting them all took minutes, the server stalled)', async () => {
    const api = await session();
    for (const name of ['x'.repeat(200_000), '👩‍💻'.repeat(60_000)]) {
      const res = await api('POST', '/tokens', tokenBody({ name }));
      expect(res.status).toBe(400);
      expect(res.body.details).toEqual([{ path: 'name', message: 'must be at most 64 characters' }]);
    }
    const made = await api('POST', '/tokens', tokenBody({ name: 'Long_Name_Patch' }));
    const patched = await api('PATCH', `/tokens/${made.body.id}`, { name: 'x'.repeat(200_000) });
    expect(patched.body.details).toEqual([{ path: 'name', message: 'must be at most 64 characters' }]);
  });

  it('refuses a name holding a working client secret (it would go into mails, the audit log and lists), without echoing it', async () => {
    const api = await session();
    const made = await api('POST', '/tokens', tokenBody({ name: 'Secret_Source' }));
    const secret = made.body.client_secret as string;
    for (const name of [secret, `copy of ${secret.slice(0, 54)}`]) {
      const res = await api('POST', '/tokens', tokenBody({ name }));
      expect(res.status).toBe(400);
      expect(res.body.details).toEqual([{ path: 'name', message: 'must not contain a client secret (names appear in mails, the audit log and lists)' }]);
      expect(JSON.stringify(res.body)).not.toContain(secret.slice(5));
    }
    const renamed = await api('PATCH', `/tokens/${made.body.id}`, { name: secret });
    expect(renamed.status).toBe(400);
    // A look-alike that is no secret (its checksum fails) is a name like any other.
    const lookAlike = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A');
    expect((await api('POST', '/tokens', tokenBody({ name: lookAlike }))).status).toBe(201);
  });

  it('PUT /policy names the fields out of range, above the server maximum and outside the catalogue together', async () => {
      const api = await session();
      const res = await api('PUT', '/policy', {
        max_lifetime_days: 367,
        allowed_services: ['nope'],
        revoke_dormant_after_days: 366,
        default_max_tokens_per_hour: 1_000_001,
      });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('validation_failed');
      expect(res.body.details).toEqual(
        expect.arrayContaining([
          { path: 'max_lifetime_days', message: "must be at most 366 days (the server's maximum lifetime)" },
          { path: 'allowed_services', message: 'unknown service: nope' },
          { path: 'revoke_dormant_after_days', message: 'must be null or a whole number of days from 30 to 365' },
          { path: 'default_max_tokens_per_hour', message: 'must be null or a whole number from 1 to 1000000' },
        ]),
      );
      expect(res.body.details).toHaveLength(4);
      // Shape right, rules wrong: both rules at once, and nothing changed.
      const rules = await api('PUT', '/policy', policy({ max_lifetime_days: 367, allowed_services: ['jobs', 'nope'] }));
      expect(rules.status).toBe(400);
      expect(rules.body.details.map((d: { path: string }) => d.path)).toEqual(['max_lifetime_days', 'allowed_services']);
      expect((await api('GET', '/policy')).body.max_lifetime_days).toBe(366);
    });

    it('POST /tokens names a too-distant expiry and a service outside the policy together, with the shape problems', async () => {
      const api = await session();
      expect((await api('PUT', '/policy', policy())).status).toBe(200);
      const policyOnly = await api('POST', '/tokens', tokenBody({ expires_at: '2027-01-15', services: ['jobs', 'employees'] }));
      expect(policyOnly.status).toBe(400);
      expect(policyOnly.body.message).toBe("The request breaks the organisation's policy.");
      expect(policyOnly.body.details).toEqual([
        { path: 'expires_at', message: 'must be at most 30 days ahead (max_lifetime_days) (organisation policy)' },
        { path: 'services', message: 'not in the allowed_services of this organisation: employees (organisation policy)' },
      ]);

      const mixed = await api('POST', '/tokens', { name: '', expires_at: '2026-11-30', services: ['nope', 'employees'], require_dpop: 'yes' });
      expect(mixed.status).toBe(400);
      expect(mixed.body.message).toBe('The request is not valid.');
      expect(mixed.body.details).toEqual(
        expect.arrayContaining([
          { path: 'name', message: 'must not be empty' },
          { path: 'require_dpop', message: 'must be true or false' },
          { path: 'expires_at', message: 'must be in the future' },
          { path: 'services', message: 'unknown service: nope' },
          { path: 'services', message: 'not in the allowed_services of this organisation: employees (organisation policy)' },
        ]),
      );
      expect(mixed.body.details).toHaveLength(5);
      expect((await api('GET', '/tokens')).body.items).toHaveLength(0);
    });

    it('PATCH /tokens/{id} names the shape problems, unknown services and the policy together, and changes nothing', async () => {
      const api = await session();
      const t = await api('POST', '/tokens', tokenBody({ services: ['jobs'] }));
      expect(t.status).toBe(201);
      expect((await api('PUT', '/policy', policy())).status).toBe(200);
      const res = await api('PATCH', `/tokens/${t.body.id}`, { name: '', services: ['nope', 'contacts'], public_key: 'not a key' });
      expect(res.status).toBe(400);
      expect(res.body.details).toEqual([
        { path: 'name', message: 'must not be empty' },
        { path: 'services', message: 'unknown service: nope' },
        { path: 'services', message: 'not in the allowed_services of this organisation: contacts (organisation policy)' },
        { path: 'public_key', message: expect.stringContaining('is neither a JWK') },
      ]);
      // The shape right: the rules still all reported, before anything is written.
      const rules = await api('PATCH', `/tokens/${t.body.id}`, { services: ['contacts'], require_dpop: true, public_key: 'not a key' });
      expect(rules.status).toBe(400);
      expect(rules.body.details.map((d: { path: string }) => d.path)).toEqual(['services', 'public_key']);
      const after = (await api('GET', `/tokens/${t.body.id}`)).body;
      expect(after).toMatchObject({ name: t.body.name, services: ['jobs'], require_dpop: false });
    });
  });

  describe('PATCH with an unknown field', () => {
    it('names the unknown field only, and asks for a field only when none was given', async () => {
      const api = await session();
      const t = await api('POST', '/tokens', tokenBody());
      for (const body of [{ expires_at: '2027-01-01' }, { auth_method: 'private_key_jwt' }]) {
        const res = await api('PATCH', `/tokens/${t.body.id}`, body);
        expect(res.status).toBe(400);
        expect(res.body.details).toEqual([{ path: Object.keys(body)[0], message: 'is not a known field' }]);
      }
      const empty = await api('PATCH', `/tokens/${t.body.id}`, {});
      expect(empty.status).toBe(400);
      expect(empty.body.details).toEqual([
        { path: 'body', message: 'give at least one of name, services, allowed_ips, max_tokens_per_hour, jwks, public_key, require_dpop' },
      ]);
    });
  });

  describe('the maximum lifetime of the policy', () => {
    it('says "1 day", and lets a date be the day the maximum reaches (valid through its end)', async () => {
      const api = await session();
      expect((await api('PUT', '/policy', policy({ max_lifetime_days: 1 }))).status).toBe(200);
      const far = await api('POST', '/tokens', tokenBody({ expires_at: '2026-12-03', services: ['jobs'] }));
      expect(far.status).toBe(400);
      expect(far.body.details).toEqual([{ path: 'expires_at', message: 'must be at most 1 day ahead (max_lifetime_days) (organisation policy)' }]);
      // Tomorrow's date ends 2026-12-02T23:59:59.999Z, about 39 h ahead: the date is compared by day.
      const tomorrow = await api('POST', '/tokens', tokenBody({ expires_at: '2026-12-02', services: ['jobs'] }));
      expect(tomorrow.status).toBe(201);
      expect(tomorrow.body.expires_at).toBe('2026-12-02T23:59:59.999Z');
      // A date-time is compared by the instant.
      const late = await api('POST', '/tokens', tokenBody({ expires_at: '2026-12-02T09:00:01Z', services: ['jobs'] }));
      expect(late.status).toBe(400);
    });
  });

  describe('expires_at', () => {
    it.each([
      ['2027-01-15T10:00:00,5Z', '2027-01-15T10:00:00.500Z'],
      ['2027-01-15T10:00:00.5+02', '2027-01-15T08:00:00.500Z'],
      ['2027-01-15T10:00:00+0200', '2027-01-15T08:00:00.000Z'],
      ['2027-01-15T10:00-0130', '2027-01-15T11:30:00.000Z'],
      ['2027-01-15T10:00:00.25+02:00', '2027-01-15T08:00:00.250Z'],
    ])('takes the ISO 8601 extended-format date-time %s', async (value, instant) => {
      const api = await session();
      const res = await api('POST', '/tokens', tokenBody({ expires_at: value }));
      expect(res.status).toBe(201);
      expect(res.body.expires_at).toBe(instant);
    });

    it.each(['2027-01-15T10:00:00', '2027-01-15T10:00:00+2', '2027-01-15T24:00:00Z', '2027-02-29T10:00Z', '20270115T100000Z', '2027-01-15 10:00Z'])(
      'refuses %s',
      async (value) => {
        const api = await session();
        const res = await api('POST', '/tokens', tokenBody({ expires_at: value }));
        expect(res.status).toBe(400);
        expect(res.body.details).toEqual([{ path: 'expires_at', message: 'must be a date (YYYY-MM-DD) or an ISO 8601 date-time with an offset' }]);
      },
    );
  });
});
