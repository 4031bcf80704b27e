import { call, signIn, tokenBody, type ApiResponse } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, daysFromNow, makeAdmin, setTokenExpiry } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const DAY = 86_400_000;

describe.each(testDatabases())('admin token API on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  /** A new organisation with a signed-in administrator. */
  async function session() {
    const admin = await makeAdmin(server.deps);
    const s = await signIn(server, admin.email, admin.password);
    const api = {
      get: (path: string) => call(server, 'GET', path, { token: s.token }),
      post: (path: string, json?: unknown) => call(server, 'POST', path, { token: s.token, ...(json === undefined ? {} : { json }) }),
    };
    return { admin, token: s.token, api };
  }

  const exchange = (clientId: string, secret: string) =>
    fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
      body: 'grant_type=client_credentials',
    });

  it('lists the service catalogue', async () => {
    const { api } = await session();
    const res = await api.get('/services');
    expect(res.status).toBe(200);
    expect(res.body.items.map((s: { id: string }) => s.id)).toEqual(['candidates', 'employees', 'jobs', 'clients', 'contacts', 'master-lists']);
    expect(res.body.items[0]).toEqual({ id: 'candidates', name: 'Candidate API', description: expect.any(String) });
  });

  describe('POST /tokens', () => {
    it('generates a token: 201 with the resource and the secret, usable at the token endpoint at once', async () => {
      const { admin, api } = await session();
      const expires = daysFromNow(30);
      const res = await api.post('/tokens', { name: '  HR_API_Token  ', expires_at: expires, services: ['jobs', 'candidates', 'jobs'] });
      expect(res.status).toBe(201);
      expect(res.headers.get('location')).toBe(`/admin/api/tokens/${res.body.id}`);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.body).toEqual({
        id: expect.stringMatching(/^[0-9a-f-]{36}$/),
        name: 'HR_API_Token',
        client_id: expect.stringMatching(/^sat_[0-9A-Za-z]{22}$/),
        client_secret: expect.stringMatching(/^sats_[0-9A-Za-z]{49}$/),
        services: ['candidates', 'jobs'],
        scopes: 'candidates jobs',
        status: 'active',
        expires_at: `${expires}T23:59:59.999Z`,
        created_at: expect.any(String),
        created_by: { id: admin.id, email: admin.email },
        last_used_at: null,
        leaked_at: null,
        expiring: false,
        dormant: false,
        allowed_ips: [],
        max_tokens_per_hour: null,
        auth_method: 'client_secret',
        jwk_thumbprints: null,
        require_dpop: false,
        secrets: [{ id: expect.stringMatching(/^[0-9a-f-]{36}$/), created_at: res.body.created_at, expires_at: null, last_used_at: null, last4: res.body.client_secret.slice(-4) }],
        tokens_last_hour: 0,
      });
      expect(Math.abs(Date.parse(res.body.created_at) - Date.now())).toBeLessThan(10_000);
      const ex = await exchange(res.body.client_id, res.body.client_secret);
      expect(ex.status).toBe(200);
    });

    it('accepts an ISO date-time with an offset', async () => {
      const { api } = await session();
      // With an offset, in the local time it names: 400 days ahead is beyond the maximum lifetime (366 days)…
      const withOffset = (at: Date, offset: string, offsetMs: number) =>
        new Date(at.getTime() + offsetMs).toISOString().slice(0, 19) + offset;
      const res = await api.post('/tokens', tokenBody({ expires_at: withOffset(new Date(Date.now() + 400 * DAY), '+02:00', 2 * 3600_000) }));
      expect(res.status).toBe(400);
      expect(res.body.details).toEqual([{ path: 'expires_at', message: expect.stringContaining('366 days') }]);
      // …and 10 days ahead is inside it, at the same instant as its UTC reading.
      const inside = new Date(Date.now() + 10 * DAY);
      const local = new Date(inside.getTime() + 5.5 * 3600_000).toISOString().slice(0, 19) + '+05:30';
      const ok = await api.post('/tokens', tokenBody({ expires_at: local }));
      expect(ok.status).toBe(201);
      expect(ok.body.expires_at).toBe(new Date(Math.floor(inside.getTime() / 1000) * 1000).toISOString());
    });

    const tooFar = () => new Date(Date.now() + 367 * DAY).toISOString().slice(0, 10);
    const cases: Array<[string, () => unknown, string[]]> = [
      ['a missing name', () => ({ expires_at: daysFromNow(5), services: ['jobs'] }), ['name']],
      ['a blank name', () => tokenBody({ name: '   ' }), ['name']],
      ['a name of 65 characters', () => tokenBody({ name: 'x'.repeat(65) }), ['name']],
      ['a name of 65 characters written decomposed (NFD)', () => tokenBody({ name: 'e\u0301'.repeat(65) }), ['name']],
      ['a name of 65 flags', () => tokenBody({ name: '🇫🇷'.repeat(65) }), ['name']],
      ['a name of 3 letters carrying 300 combining marks', () => tokenBody({ name: `a${'\u0301'.repeat(100)}b${'\u0301'.repeat(100)}c${'\u0301'.repeat(100)}` }), ['name']],
      ['a name of one letter under 20 combining marks', () => tokenBody({ name: `a${'\u0301'.repeat(20)}` }), ['name']],
      ['a name of 128 emoji chained by ZWJs (one cluster no font draws as one)', () => tokenBody({ name: `👩${'\u200d👩'.repeat(127)}` }), ['name']],
      ['a name with a control character', () => tokenBody({ name: 'tab\there' }), ['name']],
      ['a name with a newline', () => tokenBody({ name: 'two\nlines' }), ['name']],
      ['a name that is not a string', () => tokenBody({ name: 42 }), ['name']],
      ['a missing expiry', () => ({ name: 'n', services: ['jobs'] }), ['expires_at']],
      ['an expiry that is no date', () => tokenBody({ expires_at: 'next tuesday' }), ['expires_at']],
      ['an impossible date', () => tokenBody({ expires_at: '2027-02-30' }), ['expires_at']],
      ['a date-time without offset', () => tokenBody({ expires_at: `${daysFromNow(5)}T10:00:00` }), ['expires_at']],
      ['an expiry in the past', () => tokenBody({ expires_at: '2020-01-01' }), ['expires_at']],
      ['an expiry of yesterday', () => tokenBody({ expires_at: new Date(Date.now() - DAY).toISOString().slice(0, 10) }), ['expires_at']],
      ['an expiry beyond the maximum lifetime', () => tokenBody({ expires_at: tooFar() }), ['expires_at']],
      ['a missing services list', () => ({ name: 'n', expires_at: daysFromNow(5) }), ['services']],
      ['an empty services list', () => tokenBody({ services: [] }), ['services']],
      ['an unknown service', () => tokenBody({ services: ['jobs', 'payroll'] }), ['services']],
      ['services as a string', () => tokenBody({ services: 'jobs' }), ['services']],
      ['a service that is not a string', () => tokenBody({ services: [7] }), ['services.0']],
      ['101 services', () => tokenBody({ services: Array(101).fill('jobs') }), ['services']],
      ['an unknown field', () => tokenBody({ scope: 'jobs' }), ['scope']],
      ['a body that is an array', () => [tokenBody()], ['body']],
      ['several problems at once', () => ({ name: '', expires_at: 5, services: [], extra: 1 }), ['expires_at', 'extra', 'name', 'services']],
    ];
    it.each(cases)('refuses %s with 400 validation_failed naming the field', async (_label, body, paths) => {
      const { admin, api } = await session();
      const res = await api.post('/tokens', body());
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('validation_failed');
      expect(typeof res.body.message).toBe('string');
      expect(res.body.details.map((d: { path: string }) => d.path).sort()).toEqual(paths);
      for (const d of res.body.details) expect(typeof d.message).toBe('string');
      expect(await server.deps.db.knex('tokens').where({ organisation_id: admin.organisation_id })).toHaveLength(0);
    });

    it('refuses a name already used in the organisation, whatever its case, with 409 name_taken', async () => {
      const { api } = await session();
      expect((await api.post('/tokens', tokenBody({ name: 'Payroll_Integration' }))).status).toBe(201);
      const dup = await api.post('/tokens', tokenBody({ name: ' payroll_integration ' }));
      expect(dup.status).toBe(409);
      expect(dup.body).toEqual({ error: 'name_taken', message: expect.any(String), details: [{ path: 'name', message: expect.any(String) }] });
      // Another organisation may use it.
      const other = await session();
      expect((await other.api.post('/tokens', tokenBody({ name: 'Payroll_Integration' }))).status).toBe(201);
    });

    it.each([
      ['an XSS-looking name', '<img src=x onerror="alert(1)">&amp;</script>'],
      ['a right-to-left name', 'رمز الوصول للنظام (الرواتب)'], // SPEC Part 2: bidi marks such as U+200F are refused
      ['a name with emoji and a ZWJ sequence', 'evil gnp.exe 🔑👩🏽‍💻'], // a bidi override is refused (token-names.test.ts)
      ['a Chinese name of 64 characters', '系'.repeat(64)],
      // Characters as a reader counts them: an accent written decomposed, a flag, an emoji sequence are one each.
      ['a name of 64 characters with accents written decomposed (NFD: 80 code points)', 'Cafe\u0301'.repeat(16)],
      ['a name of 64 characters that are flags and emoji sequences', '🇫🇷👩‍💻'.repeat(32)],
    ])('returns %s unchanged as data, in generate, get and list', async (_label, name) => {
      const { api } = await session();
      const created = await api.post('/tokens', tokenBody({ name: `  ${name}\u00a0 ` }));
      expect(created.status).toBe(201);
      expect(created.headers.get('content-type')).toMatch(/^application\/json/);
      expect(created.body.name).toBe(name);
      expect((await api.get(`/tokens/${created.body.id}`)).body.name).toBe(name);
      const listed = await api.get(`/tokens?q=${encodeURIComponent(name.slice(0, 6))}`);
      expect(listed.body.items.map((t: { name: string }) => t.name)).toEqual([name]);
      const audit = await api.get('/audit');
      expect(audit.body.items[0]).toMatchObject({ action: 'token.generated', token_name: name });
    });
  });

  describe('the limit of 25 active tokens', () => {
    it('holds under 50 concurrent generate calls: exactly 25 × 201 and 25 × 409', async () => {
      const { admin, api } = await session();
      const results = await Promise.all(Array.from({ length: 50 }, (_, i) => api.post('/tokens', tokenBody({ name: `race-${i}` }))));
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 201)).toHaveLength(25);
      expect(statuses.filter((s) => s === 409)).toHaveLength(25);
      for (const r of results.filter((x) => x.status === 409)) {
        expect(r.body).toEqual({ error: 'token_limit_reached', message: expect.any(String) });
      }
      const rows = await server.deps.db.knex('tokens').where({ organisation_id: admin.organisation_id });
      expect(rows).toHaveLength(25);
      const list = await api.get('/tokens?limit=100');
      expect(list.body).toMatchObject({ active_count: 25, max_active: 25, next_cursor: null });
      expect(list.body.items).toHaveLength(25);
    });

    it('does not count expired tokens, lists them as expired, and frees a slot on revoke', async () => {
      const { api } = await session();
      const made: ApiResponse[] = [];
      for (let i = 0; i < 25; i += 1) made.push(await api.post('/tokens', tokenBody({ name: `slot-${i}` })));
      expect(made.every((r) => r.status === 201)).toBe(true);
      expect((await api.post('/tokens', tokenBody())).status).toBe(409);

      await setTokenExpiry(server.deps, made[0]!.body.id, new Date(Date.now() - 1000));
      const expired = await api.get(`/tokens/${made[0]!.body.id}`);
      expect(expired.body.status).toBe('expired');
      expect((await api.get('/tokens')).body.active_count).toBe(24);
      expect((await api.post('/tokens', tokenBody({ name: 'after-expiry' }))).status).toBe(201);
      expect((await api.post('/tokens', tokenBody())).status).toBe(409);

      expect((await api.post(`/tokens/${made[1]!.body.id}/revoke`)).status).toBe(200);
      expect((await api.post('/tokens', tokenBody({ name: 'after-revoke' }))).status).toBe(201);
      expect((await api.post('/tokens', tokenBody())).status).toBe(409);
      // The expired token still holds its name (it was not revoked).
      expect((await api.post(`/tokens/${made[2]!.body.id}/revoke`)).status).toBe(200);
      expect((await api.post('/tokens', tokenBody({ name: 'SLOT-0' }))).status).toBe(409);
    });
  });

  describe('GET /tokens', () => {
    it('pages through every token exactly once while tokens are added and revoked', async () => {
      const { api } = await session();
      const initial: string[] = [];
      for (let i = 0; i < 13; i += 1) initial.push((await api.post('/tokens', tokenBody({ name: `page-${String(i).padStart(2, '0')}` }))).body.id);

      const seen: string[] = [];
      let page = await api.get('/tokens?limit=5');
      expect(page.status).toBe(200);
      expect(page.body.items.map((t: { name: string }) => t.name)).toEqual(['page-12', 'page-11', 'page-10', 'page-09', 'page-08']);
      seen.push(...page.body.items.map((t: { id: string }) => t.id));

      // Between pages: two new tokens, one revoked that was already seen, one revoked not yet seen.
      await api.post('/tokens', tokenBody({ name: 'late-1' }));
      await api.post('/tokens', tokenBody({ name: 'late-2' }));
      await api.post(`/tokens/${initial[12]}/revoke`);
      await api.post(`/tokens/${initial[2]}/revoke`);

      let guard = 0;
      while (page.body.next_cursor) {
        expect(typeof page.body.next_cursor).toBe('string');
        page = await api.get(`/tokens?limit=5&cursor=${encodeURIComponent(page.body.next_cursor)}`);
        expect(page.status).toBe(200);
        seen.push(...page.body.items.map((t: { id: string }) => t.id));
        if (guard === 0) await api.post('/tokens', tokenBody({ name: 'late-3' }));
        guard += 1;
        expect(guard).toBeLessThan(10);
      }
      expect(new Set(seen).size).toBe(seen.length); // nothing twice
      const expected = initial.filter((id) => id !== initial[2]);
      expect([...seen].sort()).toEqual([...expected].sort()); // everything that existed throughout, once
    });

    it('filters by name or client ID substring, case-insensitively, with % and _ taken literally', async () => {
      const { api } = await session();
      const mk = async (name: string) => (await api.post('/tokens', tokenBody({ name }))).body;
      const a = await mk('Payroll_Export');
      const b = await mk('payroll-export');
      const c = await mk('100% done');
      const c2 = await mk('100 percent done');
      const d = await mk('back\\slash');
      const e = await mk('HR API');
      const names = async (q: string) =>
        ((await api.get(`/tokens?q=${encodeURIComponent(q)}`)).body.items as Array<{ name: string }>).map((t) => t.name).sort();
      expect(await names('PAYROLL')).toEqual([a.name, b.name].sort());
      expect(await names('roll_ex')).toEqual([a.name]); // `_` is no wildcard
      expect(await names('0% d')).toEqual([c.name]); // nor is `%`
      expect(await names('0 p')).toEqual([c2.name]);
      expect(await names('k\\s')).toEqual([d.name]); // nor is `\` an escape
      expect(await names(e.client_id.slice(6, 16).toLowerCase())).toEqual([e.name]);
      expect(await names(e.client_id)).toEqual([e.name]);
      expect(await names('')).toHaveLength(6);
      // As sent, spaces included: no trimming.
      expect(await names(' ')).toEqual([c.name, c2.name, e.name].sort());
      expect(await names('HR ')).toEqual([e.name]);
      expect(await names('API ')).toEqual([]);
      expect(await names('nothing-like-this')).toEqual([]);
    });

    it('filters by status', async () => {
      const { api } = await session();
      const live = (await api.post('/tokens', tokenBody({ name: 'live' }))).body;
      const old = (await api.post('/tokens', tokenBody({ name: 'old' }))).body;
      await setTokenExpiry(server.deps, old.id, new Date(Date.now() - 60_000));
      const active = await api.get('/tokens?status=active');
      expect(active.body.items.map((t: { id: string }) => t.id)).toEqual([live.id]);
      const expired = await api.get('/tokens?status=expired');
      expect(expired.body.items.map((t: { id: string; status: string }) => [t.id, t.status])).toEqual([[old.id, 'expired']]);
      const all = await api.get('/tokens');
      expect(all.body.items).toHaveLength(2);
      expect(all.body.active_count).toBe(1);
      // Empty parameters, as URL templates and forms send them, mean "not given".
      const blank = await api.get('/tokens?q=&status=&limit=&cursor=');
      expect(blank.status).toBe(200);
      expect(blank.body.items).toHaveLength(2);
      expect((await api.get('/audit?limit=&cursor=')).status).toBe(200);
      expect((await api.get('/audit?foo')).body.details).toEqual([{ path: 'foo', message: 'is not a known field' }]); // not an empty known one
    });

    it.each([
      ['limit=0', 'limit'],
      ['limit=101', 'limit'],
      ['limit=ten', 'limit'],
      ['limit=5&limit=6', 'limit'],
      ['status=revoked', 'status'],
      ['cursor=not-a-cursor', 'cursor'],
      [`cursor=${Buffer.from('["2024-01-01", "x"]').toString('base64url')}`, 'cursor'],
      ['sort=name', 'sort'],
      ['sort=', 'sort'], // unknown, though empty: as /me?x= (found by an edge-fuzzing helper: was 200)
      ['foo', 'foo'],
    ])('refuses ?%s with 400 naming %s', async (query, field) => {
      const { api } = await session();
      const res = await api.get(`/tokens?${query}`);
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('validation_failed');
      expect(res.body.details.map((d: { path: string }) => d.path)).toEqual([field]);
    });
  });

  describe('GET /tokens/{id} and POST /tokens/{id}/revoke', () => {
    it('revokes: 200, gone from get and list, token exchange refused at once, and recorded in the audit log', async () => {
      const { admin, api } = await session();
      const t = (await api.post('/tokens', tokenBody({ name: 'to-revoke' }))).body;
      expect((await exchange(t.client_id, t.client_secret)).status).toBe(200);

      const res = await api.post(`/tokens/${t.id}/revoke`);
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ id: t.id, name: 'to-revoke', client_id: t.client_id, revoked_at: expect.any(String) });
      expect(Math.abs(Date.parse(res.body.revoked_at) - Date.now())).toBeLessThan(10_000);

      const ex = await exchange(t.client_id, t.client_secret);
      expect(ex.status).toBe(401);
      expect(((await ex.json()) as { error: string }).error).toBe('invalid_client');
      expect((await api.get(`/tokens/${t.id}`)).status).toBe(404);
      expect((await api.get('/tokens')).body.items).toHaveLength(0);
      const again = await api.post(`/tokens/${t.id}/revoke`);
      expect(again.status).toBe(404);
      expect(again.body).toEqual({ error: 'not_found', message: expect.any(String) });

      const audit = await api.get('/audit');
      expect(audit.body.items.slice(0, 2)).toEqual([
        {
          id: expect.any(String),
          action: 'token.revoked',
          actor_id: admin.id,
          actor_email: admin.email,
          token_id: t.id,
          token_name: 'to-revoke',
          client_id: t.client_id,
          ip: expect.stringMatching(/127\.0\.0\.1/),
          created_at: expect.any(String),
          leak: null,
          details: null,
        },
        expect.objectContaining({ action: 'token.generated', token_id: t.id, actor_email: admin.email }),
      ]);
    });

    it('answers 404 for malformed and unknown ids', async () => {
      const { api } = await session();
      for (const id of ['nope', '1', "1' or '1'='1", '00000000-0000-0000-0000-000000000000', '%E2%9C%93']) {
        const get = await api.get(`/tokens/${id}`);
        expect(get.status).toBe(404);
        expect(get.body.error).toBe('not_found');
        expect((await api.post(`/tokens/${id}/revoke`)).status).toBe(404);
      }
    });

    it('isolates organisations: another organisation’s token is a 404 to read and to revoke, and absent from lists', async () => {
      const a = await session();
      const b = await session();
      const t = (await a.api.post('/tokens', tokenBody({ name: 'a-secret-project' }))).body;
      expect((await b.api.get(`/tokens/${t.id}`)).status).toBe(404);
      const revoke = await b.api.post(`/tokens/${t.id}/revoke`);
      expect(revoke.status).toBe(404);
      expect(revoke.body.error).toBe('not_found');
      expect((await exchange(t.client_id, t.client_secret)).status).toBe(200); // untouched
      expect((await b.api.get('/tokens')).body).toMatchObject({ items: [], active_count: 0 });
      expect((await b.api.get(`/tokens?q=${t.client_id}`)).body.items).toEqual([]);
      const audit = await b.api.get('/audit');
      expect(audit.text).not.toContain(t.id);
      expect(audit.text).not.toContain('a-secret-project');
    });
  });

  it('never returns the client secret or its hash after the 201 of generate', async () => {
    const { api } = await session();
    const t = (await api.post('/tokens', tokenBody({ name: 'secret-keeper' }))).body;
    const row = await server.deps.db.knex('tokens').where({ id: t.id }).first();
    const responses = [
      await api.get('/tokens'),
      await api.get(`/tokens?q=secret`),
      await api.get(`/tokens/${t.id}`),
      await api.get('/audit'),
      await api.post(`/tokens/${t.id}/revoke`),
      await api.get('/audit'),
    ];
    for (const r of responses) {
      expect(r.status).toBe(200);
      expect(r.text).not.toContain(t.client_secret);
      expect(r.text).not.toContain(t.client_secret.slice(5, 30));
      expect(r.text).not.toContain(row.secret_hash);
      expect(r.text).not.toContain('secret_hash');
      expect(r.text).not.toMatch(/"client_secret"\s*:/); // the member; "client_secret" is also an auth_method value
    }
    expect(server.logLines.join('\n')).not.toContain(t.client_secret.slice(5, 30));
  });

  describe('audit log', () => {
    it('pages newest first with an opaque cursor', async () => {
      const { api } = await session();
      for (let i = 0; i < 5; i += 1) await api.post('/tokens', tokenBody({ name: `audit-${i}` }));
      const first = await api.get('/audit?limit=2');
      expect(first.status).toBe(200);
      expect(first.body.items.map((e: { token_name: string }) => e.token_name)).toEqual(['audit-4', 'audit-3']);
      const all: Array<{ action: string; token_name: string | null }> = [...first.body.items];
      let next = first.body.next_cursor;
      while (next) {
        const page = await api.get(`/audit?limit=2&cursor=${encodeURIComponent(next)}`);
        all.push(...page.body.items);
        next = page.body.next_cursor;
      }
      expect(all.map((e) => `${e.action}:${e.token_name ?? ''}`)).toEqual([
        'token.generated:audit-4',
        'token.generated:audit-3',
        'token.generated:audit-2',
        'token.generated:audit-1',
        'token.generated:audit-0',
        'admin.signed_in:',
      ]);
      expect((await api.get('/audit?cursor=zzz')).status).toBe(400);
      expect((await api.get('/audit?limit=500')).body.details).toEqual([{ path: 'limit', message: expect.any(String) }]);
    });

    it("filters by token_id: that token's events only, revoked ones included, paged, within the organisation", async () => {
      const { api, token } = await session();
      const a = (await api.post('/tokens', tokenBody({ name: 'audit-a' }))).body;
      const b = (await api.post('/tokens', tokenBody({ name: 'audit-b' }))).body;
      const patched = await call(server, 'PATCH', `/tokens/${a.id}`, { token, json: { name: 'audit-a2', allowed_ips: ['10.0.0.0/8'] } });
      expect(patched.status).toBe(200);
      expect((await api.post(`/tokens/${b.id}/revoke`)).status).toBe(200);
      expect((await api.post(`/tokens/${a.id}/revoke`)).status).toBe(200);

      const seen: Array<{ action: string; token_id: string; token_name: string; details: unknown }> = [];
      let next: string | null = null;
      do {
        const page: ApiResponse = await api.get(`/audit?token_id=${a.id}&limit=2${next ? `&cursor=${encodeURIComponent(next)}` : ''}`);
        expect(page.status).toBe(200);
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        seen.push(...page.body.items);
        next = page.body.next_cursor;
      } while (next);
      expect(seen.map((e) => `${e.action}:${e.token_name}`)).toEqual(['token.revoked:audit-a2', 'token.updated:audit-a2', 'token.generated:audit-a']);
      expect(new Set(seen.map((e) => e.token_id))).toEqual(new Set([a.id]));
      expect(seen[1]!.details).toEqual({ changes: { name: { old: 'audit-a', new: 'audit-a2' }, allowed_ips: { old: [], new: ['10.0.0.0/8'] } } });
      // The id is a UUID in any case; the whole log stays as it was.
      expect((await api.get(`/audit?token_id=${b.id.toUpperCase()}`)).body.items.map((e: { action: string }) => e.action)).toEqual([
        'token.revoked',
        'token.generated',
      ]);
      expect((await api.get('/audit?limit=100')).body.items.length).toBe(6); // 5 token events and the sign-in
      expect((await api.get('/audit?limit=100&token_id=')).body.items.length).toBe(6); // empty = not given, as for every query

      // Another organisation sees nothing of this token's events, and an unknown id has none.
      const other = await session();
      expect((await other.api.get(`/audit?token_id=${a.id}`)).body).toEqual({ items: [], next_cursor: null });
      expect((await api.get('/audit?token_id=00000000-0000-4000-8000-000000000000')).body.items).toEqual([]);

      for (const bad of ['not-a-uuid', `${a.id}x`, "1' or '1'='1"]) {
        const res = await api.get(`/audit?token_id=${encodeURIComponent(bad)}`);
        expect(res.status).toBe(400);
        expect(res.body).toEqual({ error: 'validation_failed', message: expect.any(String), details: [{ path: 'token_id', message: 'must be a token id (a UUID)' }] });
      }
      const twice = await api.get(`/audit?token_id=${a.id}&token_id=${b.id}`);
      expect(twice.status).toBe(400);
      expect(twice.body.details).toEqual([{ path: 'token_id', message: 'must be a single token id' }]);
    });
  });

  describe('bad input', () => {
    it('answers 413 payload_too_large for a body over 1 MB, declared or streamed', async () => {
      const { api, token } = await session();
      const big = JSON.stringify({ ...tokenBody(), name: 'x'.repeat(1024 * 1024) });
      const declared = await call(server, 'POST', '/tokens', { token, raw: big, headers: { 'content-type': 'application/json' } });
      expect(declared.status).toBe(413);
      expect(declared.body).toEqual({ error: 'payload_too_large', message: expect.any(String) });

      const encoder = new TextEncoder();
      const chunk = encoder.encode(' '.repeat(64 * 1024));
      let sent = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (sent >= 20) return controller.close();
          sent += 1;
          controller.enqueue(chunk);
        },
      });
      const streamed = await fetch(`${server.url}/admin/api/tokens`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
        body: stream,
        duplex: 'half',
      } as RequestInit & { duplex: 'half' });
      expect(streamed.status).toBe(413);
      expect(((await streamed.json()) as { error: string }).error).toBe('payload_too_large');
      // Just under the limit is read (and then judged on its content).
      const justUnder = JSON.stringify({ ...tokenBody(), padding: 'y'.repeat(1024 * 1024 - 200) });
      const under = await call(server, 'POST', '/tokens', { token, raw: justUnder, headers: { 'content-type': 'application/json' } });
      expect(under.status).toBe(400);
      expect(under.body.details).toEqual([{ path: 'padding', message: expect.any(String) }]);
      expect((await api.get('/tokens')).body.items).toHaveLength(0);
    });

    it('answers 415 unsupported_media_type for a body that is not JSON', async () => {
      const { token } = await session();
      const body = JSON.stringify(tokenBody());
      for (const type of ['text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/json; charset=latin1']) {
        const res = await call(server, 'POST', '/tokens', { token, raw: body, headers: { 'content-type': type } });
        expect(res.status).toBe(415);
        expect(res.body).toEqual({ error: 'unsupported_media_type', message: expect.any(String) });
      }
      const none = await fetch(`${server.url}/admin/api/tokens`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: new Blob([body]),
      });
      expect(none.status).toBe(415);
      const ok = await call(server, 'POST', '/tokens', { token, raw: body, headers: { 'content-type': 'application/json; charset=utf-8' } });
      expect(ok.status).toBe(201);
    });

    it('answers 400 invalid_json for malformed JSON, without echoing internals', async () => {
      const { token } = await session();
      for (const raw of ['{"name": ', '{name: "x"}', "{'a': 1}", '\u00ff\u00fe', '{"a":1}{"b":2}']) {
        const res = await call(server, 'POST', '/tokens', { token, raw, headers: { 'content-type': 'application/json' } });
        expect(res.status).toBe(400);
        expect(res.body).toEqual({ error: 'invalid_json', message: 'The request body is not valid JSON.' });
      }
      const bytes = await call(server, 'POST', '/tokens', { token, raw: Buffer.from([0x7b, 0xff, 0x7d]), headers: { 'content-type': 'application/json' } });
      expect(bytes.status).toBe(400);
    });

    it('refuses query parameters a call does not take, and any that is not UTF-8 once decoded, with 400 naming them', async () => {
      const { api } = await session();
      // Routes that take none: a script passing limit and cursor to /admins must not believe it pages.
      for (const path of ['/admins?limit=5&cursor=abc', '/me/sessions?foo=bar', '/policy?x=1', '/me?x=', '/services?x=1']) {
        const res = await api.get(path);
        expect({ path, status: res.status, error: res.body.error }).toEqual({ path, status: 400, error: 'validation_failed' });
        expect(res.body.details.every((d: { message: string }) => d.message === 'is not a known field')).toBe(true);
      }
      expect((await api.get('/admins?limit=5&cursor=abc')).body.details.map((d: { path: string }) => d.path)).toEqual(['limit', 'cursor']);
      expect((await api.get('/admins?')).status).toBe(200);
      // Bytes that are not UTF-8 (a stray byte, an encoded lone surrogate, an overlong form), as in a JSON body.
      for (const q of ['%FF', '%E2%82', '%ED%A0%80', '%C0%AF']) {
        const res = await api.get(`/tokens?q=${q}`);
        expect({ q, status: res.status, details: res.body.details }).toEqual({ q, status: 400, details: [{ path: 'q', message: 'is not valid UTF-8' }] });
      }
      expect((await api.get('/tokens?q=%E2%82%AC')).status).toBe(200); // €
      // Also on the calls that need no session.
      const login = await call(server, 'POST', '/login?x=%FF', { json: { email: 'x@example.com', password: 'whatever-it-is' } });
      expect([login.status, login.body.details]).toEqual([400, [{ path: 'x', message: 'is not valid UTF-8' }]]);
      expect((await api.get('/audit?limit=5')).status).toBe(200);
    });

    it('answers unknown paths with a JSON 404 and wrong methods with a JSON 405', async () => {
      const { token } = await session();
      const missing = await call(server, 'GET', '/nothing-here', { token });
      expect(missing.status).toBe(404);
      expect(missing.body.error).toBe('not_found');
      const wrong = await call(server, 'DELETE', '/tokens', { token });
      expect(wrong.status).toBe(405);
      expect(wrong.body.error).toBe('method_not_allowed');
    });
  });
});

// SPEC "Token resource": `last_used_at` is `null` only "when never used". The token endpoint records uses in memory
// (written every 5 s); an admin call on tokens writes this instance's pending uses first, so a token used a moment
// ago never reads as unused. Jobs are manual here: no timer flushes in between.
describe.each(testDatabases())('last use in the token resource on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, {}, { jobs: 'manual' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('shows a use made a moment ago on get and list, for the token and the secret that was used', async () => {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const t = (await call(server, 'POST', '/tokens', { token, json: tokenBody({ name: 'used-just-now' }) })).body;
    expect(t.last_used_at).toBeNull();

    const ex = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
      body: 'grant_type=client_credentials',
    });
    expect(ex.status).toBe(200);

    const one = await call(server, 'GET', `/tokens/${t.id}`, { token });
    expect(one.status).toBe(200);
    expect(one.body.last_used_at).toEqual(expect.any(String));
    expect(Math.abs(Date.parse(one.body.last_used_at) - server.clock.now().getTime())).toBeLessThan(15_000);
    expect(one.body.secrets).toEqual([expect.objectContaining({ last_used_at: one.body.last_used_at })]);
    const list = await call(server, 'GET', '/tokens', { token });
    expect(list.body.items.find((i: { id: string }) => i.id === t.id).last_used_at).toBe(one.body.last_used_at);
  });
});
