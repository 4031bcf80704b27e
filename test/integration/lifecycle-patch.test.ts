// SPEC "Network and rate limits per token": PATCH /admin/api/tokens/{id} (name, services, allowed_ips,
// max_tokens_per_hour), the fields on generate and in the token resource, and the next access token's services.
import { calculateJwkThumbprint, decodeJwt, type JWK } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, setTokenExpiry } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe.each(testDatabases())('PATCH /admin/api/tokens/{id} on %s', (kind) => {
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

  async function session() {
    const admin = await makeAdmin(server.deps);
    const s = await signIn(server, admin.email, admin.password);
    const api = (method: string, path: string, json?: unknown) =>
      call(server, method, path, { token: s.token, headers: { 'x-forwarded-for': '198.51.100.9' }, ...(json === undefined ? {} : { json }) });
    const generate = async (overrides: Record<string, unknown> = {}) => {
      const res = await api('POST', '/tokens', tokenBody(overrides));
      expect(res.status).toBe(201);
      return res.body as { id: string; name: string; client_id: string; client_secret: string; services: string[] };
    };
    return { admin, api, generate, session: s };
  }

  const accessToken = async (clientId: string, secret: string, scope?: string) => {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
      body: `grant_type=client_credentials${scope ? `&scope=${encodeURIComponent(scope)}` : ''}`,
    });
    return { status: res.status, body: (await res.json()) as { access_token?: string; scope?: string; error?: string } };
  };

  it('changes name and services; the next access token carries the new services, issued ones keep theirs', async () => {
    const { admin, api, generate } = await session();
    const t = await generate({ name: 'before', services: ['candidates', 'jobs'] });
    const first = await accessToken(t.client_id, t.client_secret);
    expect(first.body.scope).toBe('candidates jobs');

    const res = await api('PATCH', `/tokens/${t.id}`, { name: '  after  ', services: ['master-lists', 'employees', 'employees'] });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      id: t.id,
      name: 'after',
      client_id: t.client_id,
      services: ['employees', 'master-lists'],
      scopes: 'employees master-lists',
      status: 'active',
      created_by: { id: admin.id, email: admin.email },
    });
    expect(res.body.client_secret).toBeUndefined();
    expect((await api('GET', `/tokens/${t.id}`)).body).toEqual(res.body);

    const next = await accessToken(t.client_id, t.client_secret);
    expect(next.status).toBe(200);
    expect(next.body.scope).toBe('employees master-lists');
    expect(decodeJwt(next.body.access_token!).scope).toBe('employees master-lists');
    expect((await accessToken(t.client_id, t.client_secret, 'jobs')).body.error).toBe('invalid_scope');
    // The access token issued before the change is unchanged.
    expect(decodeJwt(first.body.access_token!).scope).toBe('candidates jobs');

    const events = (await api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'token.updated');
    expect(events).toEqual([
      expect.objectContaining({
        actor_id: admin.id,
        actor_email: admin.email,
        token_id: t.id,
        token_name: 'after',
        client_id: t.client_id,
        ip: '198.51.100.9',
        details: {
          changes: {
            name: { old: 'before', new: 'after' },
            services: { old: ['candidates', 'jobs'], new: ['employees', 'master-lists'] },
          },
        },
      }),
    ]);
  });

  it('stores allowed_ips normalised and max_tokens_per_hour, on generate and on update', async () => {
    const { api, generate } = await session();
    const t = await generate({ allowed_ips: ['10.1.2.3/8', '2001:DB8::1', '::ffff:192.0.2.1', '192.0.2.1'], max_tokens_per_hour: 100 });
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({
      allowed_ips: ['10.0.0.0/8', '2001:db8::1', '192.0.2.1'],
      max_tokens_per_hour: 100,
    });

    const res = await api('PATCH', `/tokens/${t.id}`, { allowed_ips: ['203.0.113.0/24'], max_tokens_per_hour: null });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ allowed_ips: ['203.0.113.0/24'], max_tokens_per_hour: null, name: t.name, services: t.services });
    const cleared = await api('PATCH', `/tokens/${t.id}`, { allowed_ips: [], max_tokens_per_hour: 1_000_000 });
    expect(cleared.body).toMatchObject({ allowed_ips: [], max_tokens_per_hour: 1_000_000 });

    const events = (await api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'token.updated');
    expect(events.map((e: { details: unknown }) => e.details)).toEqual([
      { changes: { allowed_ips: { old: ['203.0.113.0/24'], new: [] }, max_tokens_per_hour: { old: null, new: 1_000_000 } } },
      {
        changes: {
          allowed_ips: { old: ['10.0.0.0/8', '2001:db8::1', '192.0.2.1'], new: ['203.0.113.0/24'] },
          max_tokens_per_hour: { old: 100, new: null },
        },
      },
    ]);
  });

  it('records no event when nothing changes', async () => {
    const { api, generate } = await session();
    const t = await generate({ services: ['jobs'] });
    const res = await api('PATCH', `/tokens/${t.id}`, { name: t.name, services: ['jobs'], allowed_ips: [] });
    expect(res.status).toBe(200);
    expect((await api('GET', '/audit')).body.items.filter((e: { action: string }) => e.action === 'token.updated')).toEqual([]);
  });

  const tooMany = Array.from({ length: 21 }, (_, i) => `192.0.2.${i}`);
  it.each([
    ['an empty body', {}, 'body'],
    ['an unknown field', { expires_at: '2030-01-01' }, 'expires_at'],
    ['an empty name', { name: '   ' }, 'name'],
    ['a name with a control character', { name: 'a\u0007b' }, 'name'],
    ['no services', { services: [] }, 'services'],
    ['an unknown service', { services: ['jobs', 'payroll'] }, 'services'],
    ['21 addresses', { allowed_ips: tooMany }, 'allowed_ips'],
    ['a host name', { allowed_ips: ['10.0.0.1', 'example.com'] }, 'allowed_ips.1'],
    ['a prefix too long', { allowed_ips: ['10.0.0.0/33'] }, 'allowed_ips.0'],
    ['a short IPv4 address', { allowed_ips: ['10.1'] }, 'allowed_ips.0'],
    ['allowed_ips not an array', { allowed_ips: '10.0.0.1' }, 'allowed_ips'],
    ['max_tokens_per_hour 0', { max_tokens_per_hour: 0 }, 'max_tokens_per_hour'],
    ['max_tokens_per_hour 1000001', { max_tokens_per_hour: 1_000_001 }, 'max_tokens_per_hour'],
    ['max_tokens_per_hour 2.5', { max_tokens_per_hour: 2.5 }, 'max_tokens_per_hour'],
    ['max_tokens_per_hour as text', { max_tokens_per_hour: '10' }, 'max_tokens_per_hour'],
  ])('refuses %s with 400 validation_failed and changes nothing', async (_label, body, path) => {
    const { api, generate } = await session();
    const t = await generate({ services: ['jobs'] });
    const before = (await api('GET', `/tokens/${t.id}`)).body;
    const res = await api('PATCH', `/tokens/${t.id}`, body);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('validation_failed');
    expect(res.body.details.map((d: { path: string }) => d.path)).toContain(path);
    expect((await api('GET', `/tokens/${t.id}`)).body).toEqual(before);
  });

  it('refuses generate with a bad allowed_ips entry or hourly limit', async () => {
    const { api } = await session();
    const bad = await api('POST', '/tokens', tokenBody({ allowed_ips: ['300.1.1.1'] }));
    expect(bad.status).toBe(400);
    expect(bad.body.details[0].path).toBe('allowed_ips.0');
    expect((await api('POST', '/tokens', tokenBody({ max_tokens_per_hour: 0 }))).status).toBe(400);
    expect((await api('GET', '/tokens')).body.items).toEqual([]);
  });

  it('answers 409 name_taken for a name another token of the organisation has', async () => {
    const { api, generate } = await session();
    await generate({ name: 'Payroll' });
    const t = await generate({ name: 'Other' });
    const res = await api('PATCH', `/tokens/${t.id}`, { name: 'payroll' });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('name_taken');
    expect((await api('GET', `/tokens/${t.id}`)).body.name).toBe('Other');
  });

  it('applies all of a PATCH or none of it: a taken name leaves require_dpop and the services as they were', async () => {
    const { api, generate } = await session();
    await generate({ name: 'Ledger' });
    const t = await generate({ name: 'Books', services: ['jobs'] });
    const before = (await api('GET', `/tokens/${t.id}`)).body;
    expect(before.require_dpop).toBe(false);
    const res = await api('PATCH', `/tokens/${t.id}`, { require_dpop: true, services: ['jobs', 'employees'], name: 'ledger' });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('name_taken');
    expect((await api('GET', `/tokens/${t.id}`)).body).toEqual(before);
    const events = (await api('GET', '/audit')).body.items.filter((e: { action: string; token_id: string }) => e.action === 'token.updated' && e.token_id === t.id);
    expect(events).toEqual([]);

    const ok = await api('PATCH', `/tokens/${t.id}`, { require_dpop: true, name: 'Books 2' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ require_dpop: true, name: 'Books 2', tokens_last_hour: 0 });
  });

  it('records what a credentials change changed (require_dpop, key thumbprints); the same values again record nothing', async () => {
    const { api, generate } = await session();
    const events = async (id: string) =>
      ((await api('GET', `/audit?token_id=${id}`)).body.items as Array<{ action: string; details: unknown }>).filter((e) => e.action === 'token.updated');
    const t = await generate({ name: 'Dpop switch' });
    expect((await api('PATCH', `/tokens/${t.id}`, { require_dpop: true })).status).toBe(200);
    expect((await events(t.id)).map((e) => e.details)).toEqual([{ changes: { require_dpop: { old: false, new: true } } }]);
    const again = await api('PATCH', `/tokens/${t.id}`, { require_dpop: true });
    expect([again.status, again.body.require_dpop]).toEqual([200, true]);
    expect(await events(t.id)).toHaveLength(1);

    const jwk = () => generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'jwk' }) as JWK;
    const [a, b] = [jwk(), jwk()];
    const [ta, tb] = [await calculateJwkThumbprint(a), await calculateJwkThumbprint(b)];
    const keyed = await generate({ name: 'Keyed', auth_method: 'private_key_jwt', jwks: { keys: [a] } });
    expect((await api('PATCH', `/tokens/${keyed.id}`, { jwks: { keys: [a, b] }, require_dpop: false })).status).toBe(200);
    expect((await events(keyed.id)).map((e) => e.details)).toEqual([{ changes: { jwk_thumbprints: { old: [ta], new: [ta, tb] } } }]);
    expect((await api('PATCH', `/tokens/${keyed.id}`, { jwks: { keys: [a, b] } })).status).toBe(200);
    expect(await events(keyed.id)).toHaveLength(1);
    const audit = JSON.stringify((await api('GET', `/audit?token_id=${keyed.id}`)).body);
    expect(audit).not.toContain(String(a.x)); // thumbprints only, never the keys
  });

  it("answers 404 for another organisation's token, a revoked one, and unknown or malformed ids", async () => {
    const a = await session();
    const b = await session();
    const theirs = await a.generate({ services: ['jobs'] });
    const res = await b.api('PATCH', `/tokens/${theirs.id}`, { name: 'mine now' });
    expect(res.status).toBe(404);
    expect(res.body.error).toBe('not_found');
    expect((await a.api('GET', `/tokens/${theirs.id}`)).body.name).toBe(theirs.name);

    const revoked = await a.generate();
    expect((await a.api('POST', `/tokens/${revoked.id}/revoke`)).status).toBe(200);
    expect((await a.api('PATCH', `/tokens/${revoked.id}`, { name: 'back' })).status).toBe(404);
    for (const id of ['00000000-0000-0000-0000-000000000000', 'nope']) {
      expect((await a.api('PATCH', `/tokens/${id}`, { name: 'x' })).status).toBe(404);
    }
  });

  it('answers 409 conflict for an expired token', async () => {
    const { api, generate } = await session();
    const t = await generate();
    await setTokenExpiry(server.deps, t.id, new Date(Date.now() - 1000));
    const res = await api('PATCH', `/tokens/${t.id}`, { name: 'renamed' });
    expect(res.status).toBe(409);
    expect(res.body.error).toBe('conflict');
    // The sender-constraint fields too, alone or with the others: nothing changes, no event is written.
    for (const body of [{ require_dpop: true }, { require_dpop: true, name: 'renamed' }]) {
      const again = await api('PATCH', `/tokens/${t.id}`, body);
      expect(again.status).toBe(409);
      expect(again.body.error).toBe('conflict');
    }
    const after = await api('GET', `/tokens/${t.id}`);
    expect(after.body).toMatchObject({ require_dpop: false, status: 'expired', name: t.name });
    const events = await api('GET', `/audit?token_id=${t.id}`);
    expect((events.body.items as Array<{ action: string }>).map((e) => e.action)).toEqual(['token.generated']);
  });

  it('needs a session, and the CSRF header with the session cookie', async () => {
    const { generate, session: s } = await session();
    const t = await generate();
    expect((await call(server, 'PATCH', `/tokens/${t.id}`, { json: { name: 'x' } })).status).toBe(401);
    const cookieOnly = await call(server, 'PATCH', `/tokens/${t.id}`, { json: { name: 'x' }, headers: { cookie: s.cookie } });
    expect(cookieOnly.status).toBe(403);
    const withCsrf = await call(server, 'PATCH', `/tokens/${t.id}`, { json: { name: 'x' }, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
    expect(withCsrf.status).toBe(200);
  });
});
