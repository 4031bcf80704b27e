// SPEC "Network and rate limits per token", enforcement: `allowed_ips` at the token endpoint, introspection and
// revocation (invalid_client, the rate-limited `token.denied_address` audit event), `max_tokens_per_hour` (429 +
// Retry-After, the rolling hour, `tokens_last_hour`), and the hourly count across two instances on PostgreSQL.
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { TestClock } from '../support/clock.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin } from '../support/fixtures.js';
import { assertion, clientKey } from '../support/sender.js';
import { startServer, type TestServer } from '../support/server.js';
import { AccessTokenAllowance, reservationSize, unusedReservationBound } from '../../src/tokens/index.js';

const MINUTE = 60_000;
const INSIDE = '203.0.113.7';
const OUTSIDE = '198.51.100.1';

interface Generated {
  id: string;
  client_id: string;
  client_secret: string;
}

const post = (url: string, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
  fetch(`${url}${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
    body: new URLSearchParams(fields).toString(),
  });

/** A client-credentials request of `t` from `from` (X-Forwarded-For, TRUST_PROXY on). */
async function tokenRequest(url: string, t: Generated, from: string, fields: Record<string, string> = {}, secret = t.client_secret) {
  const res = await post(url, '/token', { grant_type: 'client_credentials', ...fields }, { authorization: basic(t.client_id, secret), 'x-forwarded-for': from });
  return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
}

async function adminSession(server: TestServer) {
  const admin = await makeAdmin(server.deps);
  const s = await signIn(server, admin.email, admin.password);
  const api = (method: string, path: string, json?: unknown) => call(server, method, path, { token: s.token, ...(json === undefined ? {} : { json }) });
  const generate = async (overrides: Record<string, unknown> = {}): Promise<Generated> => {
    const res = await api('POST', '/tokens', tokenBody(overrides));
    expect(res.status).toBe(201);
    return res.body as Generated;
  };
  return { admin, api, generate };
}

describe.each(testDatabases())('per-token network and rate limits on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  const clock = new TestClock();

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { TRUST_PROXY: 'true' }, { clock, jobs: 'manual' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });
  afterEach(() => {
    clock.resume();
  });

  const deniedEvents = (tokenId: string) =>
    server.deps.db.knex('audit_events').where({ token_id: tokenId, action: 'token.denied_address' }).orderBy('created_at', 'asc');

  it('refuses a token request from outside allowed_ips with invalid_client, whatever the secret; inside is served', async () => {
    const { generate } = await adminSession(server);
    const t = await generate({ allowed_ips: ['203.0.113.0/24', '2001:db8::/32'] });
    expect((await tokenRequest(server.url, t, INSIDE)).status).toBe(200);
    expect((await tokenRequest(server.url, t, '2001:db8::5')).status).toBe(200);

    const outside = await tokenRequest(server.url, t, OUTSIDE);
    expect(outside.status).toBe(401);
    expect(outside.body.error).toBe('invalid_client');
    const wrongSecret = await tokenRequest(server.url, t, OUTSIDE, {}, `${t.client_secret.slice(0, -1)}x`);
    expect(wrongSecret.status).toBe(401);
    expect(wrongSecret.body).toEqual(outside.body); // nothing tells the two apart
    // Not through the provider's path either (a parameter the fast path leaves to oidc-provider).
    const slow = await tokenRequest(server.url, t, OUTSIDE, { resource: 'https://example.com/api' });
    expect(slow.status).toBe(401);
    expect(slow.body.error).toBe('invalid_client');

    // A token without an allowlist is served from anywhere.
    const open = await generate();
    expect((await tokenRequest(server.url, open, OUTSIDE)).status).toBe(200);
  });

  it('refuses introspection and revocation callers from outside allowed_ips', async () => {
    const { generate } = await adminSession(server);
    const caller = await generate({ allowed_ips: ['203.0.113.0/24'] });
    const subject = await generate();
    const jwt = (await tokenRequest(server.url, subject, OUTSIDE)).body.access_token as string;
    const as = (from: string) => ({ authorization: basic(caller.client_id, caller.client_secret), 'x-forwarded-for': from });

    const denied = await post(server.url, '/token/introspection', { token: jwt }, as(OUTSIDE));
    expect(denied.status).toBe(401);
    expect(((await denied.json()) as { error: string }).error).toBe('invalid_client');
    const allowed = await post(server.url, '/token/introspection', { token: jwt }, as(INSIDE));
    expect(allowed.status).toBe(200);
    expect(((await allowed.json()) as { active: boolean }).active).toBe(true);

    const refused = await post(server.url, '/token/revocation', { token: jwt }, as(OUTSIDE));
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as { error: string }).error).toBe('invalid_client');
    const stillActive = await post(server.url, '/token/introspection', { token: jwt }, as(INSIDE));
    expect(((await stillActive.json()) as { active: boolean }).active).toBe(true);
  });

  it('records token.denied_address with the address, at most once per token per minute', async () => {
    const { generate, api } = await adminSession(server);
    const t = await generate({ allowed_ips: ['203.0.113.0/24'] });
    clock.set(Date.now());
    for (let i = 0; i < 3; i++) expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(401);
    expect((await post(server.url, '/token/introspection', { token: 'x' }, { authorization: basic(t.client_id, t.client_secret), 'x-forwarded-for': '192.0.2.9' })).status).toBe(401);
    let events = await deniedEvents(t.id);
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ ip: OUTSIDE, client_id: t.client_id, actor_id: null });

    clock.advance(59_000);
    expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(401);
    expect(await deniedEvents(t.id)).toHaveLength(1);

    clock.advance(2_000);
    expect((await tokenRequest(server.url, t, '192.0.2.9')).status).toBe(401);
    events = await deniedEvents(t.id);
    expect(events).toHaveLength(2);
    expect(events[1]!.ip).toBe('192.0.2.9');

    // The administrators see it in the organisation's audit log, with the address.
    const audit = await api('GET', '/audit');
    expect(audit.status).toBe(200);
    const listed = (audit.body.items as Array<{ action: string; ip: string; token_id: string }>).filter((e) => e.action === 'token.denied_address' && e.token_id === t.id);
    expect(listed.map((e) => e.ip).sort()).toEqual(['192.0.2.9', OUTSIDE].sort());
  });

  it('records an IPv4-mapped IPv6 address (a dual-stack socket, HOST=::) as the IPv4 address, everywhere', async () => {
    const { generate, api } = await adminSession(server);
    const t = await generate({ allowed_ips: ['203.0.113.0/24'] });
    expect((await tokenRequest(server.url, t, `::ffff:${INSIDE}`)).status).toBe(200);
    expect((await tokenRequest(server.url, t, `::FFFF:${OUTSIDE}`)).status).toBe(401);
    const [denied] = await deniedEvents(t.id);
    expect(denied).toMatchObject({ ip: OUTSIDE });
    expect(typeof denied.details === 'string' ? JSON.parse(denied.details) : denied.details).toEqual({ address: OUTSIDE });
    // The administrator's own address too: audit events and sessions.
    const other = await makeAdmin(server.deps);
    const s = await call(server, 'POST', '/login', { json: { email: other.email, password: other.password }, headers: { 'x-forwarded-for': '::ffff:192.0.2.44' } });
    expect(s.status).toBe(200);
    const sessions = await call(server, 'GET', '/me/sessions', { token: s.body.token as string });
    expect((sessions.body.items as Array<{ ip: string }>).map((x) => x.ip)).toEqual(['192.0.2.44']);
    const audit = await api('GET', '/audit');
    expect((audit.body.items as Array<{ action: string; ip: string; token_id: string }>).find((e) => e.token_id === t.id && e.action === 'token.denied_address')?.ip).toBe(OUTSIDE);
  });

  it('judges the address and hourly limit of a client assertion only once it verified: a forged one trips and uses up nothing', async () => {
    const { generate } = await adminSession(server);
    const key = await clientKey();
    const stranger = await clientKey(); // not registered: what someone who knows only the client ID can sign with
    const t = await generate({ auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] }, allowed_ips: ['203.0.113.0/24'], max_tokens_per_hour: 1 });
    const request = async (signer: typeof key, from: string) => {
      const res = await post(
        server.url,
        '/token',
        {
          grant_type: 'client_credentials',
          client_assertion_type: 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer',
          client_assertion: await assertion(signer, t.client_id, `${server.issuer}/token`),
        },
        { 'x-forwarded-for': from },
      );
      return { status: res.status, body: (await res.json()) as Record<string, unknown>, retryAfter: res.headers.get('retry-after') };
    };

    // Outside allowed_ips: a forged assertion is refused as forged; the audit log does not blame the token.
    expect(await request(stranger, OUTSIDE)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await deniedEvents(t.id)).toHaveLength(0);
    expect(await request(key, OUTSIDE)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    expect(await deniedEvents(t.id)).toHaveLength(1);

    // At the hourly limit: a forged assertion is 401, not 429 (it takes nothing from the limit); a signed one is 429.
    expect((await request(key, INSIDE)).status).toBe(200);
    expect(await request(stranger, INSIDE)).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
    const limited = await request(key, INSIDE);
    expect(limited).toMatchObject({ status: 429, body: { error: 'rate_limited' } });
    // Retry-After as for a secret (SPEC), though the provider's pipeline rendered this answer.
    expect(Number(limited.retryAfter)).toBeGreaterThan(3500);
    expect(Number(limited.retryAfter)).toBeLessThanOrEqual(3600);
  });

  it('answers 429 rate_limited with Retry-After past max_tokens_per_hour, and serves again when the hour rolls', async () => {
    const { generate, api } = await adminSession(server);
    const start = Math.floor(Date.now() / MINUTE) * MINUTE + 10_000; // 10 s into a minute
    clock.set(start);
    const t = await generate({ max_tokens_per_hour: 3 });
    for (let i = 0; i < 2; i++) expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);
    // A request that ends in an error does not count.
    expect((await tokenRequest(server.url, t, OUTSIDE, { scope: 'no-such-service' })).status).toBe(400);
    expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);

    const limited = await tokenRequest(server.url, t, OUTSIDE);
    expect(limited.status).toBe(429);
    expect(limited.body.error).toBe('rate_limited');
    expect(typeof limited.body.error_description).toBe('string');
    expect(limited.headers.get('retry-after')).toBe(String(3600 - 10));
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({ max_tokens_per_hour: 3, tokens_last_hour: 3 });

    clock.advance(30 * MINUTE);
    const later = await tokenRequest(server.url, t, OUTSIDE);
    expect(later.status).toBe(429);
    expect(later.headers.get('retry-after')).toBe(String(1800 - 10));

    clock.advance((1800 - 10) * 1000); // the first minute's access tokens leave the rolling hour
    expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);
    const page = await api('GET', '/tokens?limit=100');
    expect((page.body.items as Array<{ id: string; tokens_last_hour: number }>).find((i) => i.id === t.id)?.tokens_last_hour).toBe(1);

    // The prune job deletes the buckets that left the hour; the count stays right.
    await server.runJob('prune-expired');
    const buckets = server.deps.db.knex('token_issuance_buckets').where({ token_id: t.id });
    expect(await buckets.clone().where('minute', '<=', new Date(start)).count({ n: '*' })).toEqual([{ n: 0 }]);
    expect(await buckets.clone().sum({ n: 'count' })).toEqual([{ n: 1 }]);
    expect((await api('GET', `/tokens/${t.id}`)).body.tokens_last_hour).toBe(1);
  });

  it('a token revoked after its request authenticated, before the hourly count, is revoked: invalid_client, not a 500', async () => {
    // The race a running server meets when a revocation commits between a request's authentication (an unlocked
    // read of the token's row) and its hourly count (an insert that refers to that row): replayed step by step.
    const { generate, api } = await adminSession(server);
    for (const limit of [100, 20_000]) {
      // 100: counted one by one (the exact path); 20,000: reserved 200 at a time.
      const t = await generate({ max_tokens_per_hour: limit });
      const row = await server.deps.db.knex('tokens').where({ id: t.id }).first();
      expect((await api('POST', `/tokens/${t.id}/revoke`)).status).toBe(200);
      await expect(new AccessTokenAllowance(server.deps).take(row)).resolves.toEqual({ allowed: false, revoked: true });
    }
  });

  it('reserves the next batch while half of the current one is left, and gives back what a past minute left', async () => {
    const { generate } = await adminSession(server);
    const limit = 20_000;
    const size = reservationSize(limit); // 200
    expect(size).toBe(200);
    const start = Math.floor(Date.now() / MINUTE) * MINUTE + 5_000;
    clock.set(start);
    const t = await generate({ max_tokens_per_hour: limit });
    const counted = async () =>
      Number((await server.deps.db.knex('token_issuance_buckets').where({ token_id: t.id }).sum({ n: 'count' }))[0]?.n ?? 0);
    const reach = async (n: number) => {
      const deadline = Date.now() + 10_000;
      while ((await counted()) !== n && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
      return counted();
    };
    const take = async (n: number) => {
      for (let i = 0; i < n; i++) expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);
    };

    await take(size / 2 - 1);
    expect(await counted()).toBe(size); // the first reservation, more than half of it left
    await take(1); // half used: the next one is reserved in the background
    expect(await reach(2 * size)).toBe(2 * size);
    await take(size); // 300 used of 400: the next one again
    expect(await reach(3 * size)).toBe(3 * size);

    // A new minute: the unused part of the last minute's reservations is given back, a new one taken.
    clock.advance(MINUTE);
    await take(1);
    const buckets = (await server.deps.db.knex('token_issuance_buckets').where({ token_id: t.id }).orderBy('minute')) as Array<{ count: number }>;
    expect(buckets.map((b) => Number(b.count))).toEqual([(3 * size) / 2, size]);
    expect(unusedReservationBound(limit)).toBe(size + size / 2);
  });

  it('applies a lowered limit at once to what the instance had reserved under the old one', async () => {
    const { generate, api } = await adminSession(server);
    clock.set(Math.floor(Date.now() / MINUTE) * MINUTE + 5_000); // all in one minute
    const count = async (t: Generated, n: number) => {
      const statuses: number[] = [];
      for (let i = 0; i < n; i++) statuses.push((await tokenRequest(server.url, t, OUTSIDE)).status);
      return statuses.filter((s) => s === 200).length;
    };
    // Lowered, still reserving in batches (300: 3 at a time): the 200 reserved under 20,000 are not handed out.
    const a = await generate({ max_tokens_per_hour: 20_000 });
    expect(await count(a, 1)).toBe(1); // 200 reserved, 1 used
    expect((await api('PATCH', `/tokens/${a.id}`, { max_tokens_per_hour: 300 })).status).toBe(200);
    expect(await count(a, 320)).toBe(299);
    expect((await api('GET', `/tokens/${a.id}`)).body.tokens_last_hour).toBe(300);
    // Lowered under 200 (counted one by one): what was reserved and not used no longer counts as issued.
    const b = await generate({ max_tokens_per_hour: 20_000 });
    expect(await count(b, 1)).toBe(1);
    expect((await api('PATCH', `/tokens/${b.id}`, { max_tokens_per_hour: 100 })).status).toBe(200);
    expect(await count(b, 110)).toBe(99);
    expect((await api('GET', `/tokens/${b.id}`)).body.tokens_last_hour).toBe(100);
  });

  it('counts tokens_last_hour for a token without a limit too, in the same rolling hour, never refusing', async () => {
    const { generate, api } = await adminSession(server);
    const start = Math.floor(Date.now() / MINUTE) * MINUTE + 10_000;
    clock.set(start);
    const t = await generate();
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({ max_tokens_per_hour: null, tokens_last_hour: 0 });
    for (let i = 0; i < 3; i++) expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);
    expect((await tokenRequest(server.url, t, OUTSIDE, { scope: 'no-such-service' })).status).toBe(400); // not issued: not counted
    // Written by the 5 s bookkeeping job, or (as here) before an admin call on tokens of this instance.
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({ max_tokens_per_hour: null, tokens_last_hour: 3 });

    clock.advance(30 * MINUTE);
    expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);
    const page = await api('GET', '/tokens?limit=100');
    expect((page.body.items as Array<{ id: string; tokens_last_hour: number }>).find((i) => i.id === t.id)?.tokens_last_hour).toBe(4);

    clock.advance(30 * MINUTE); // the first minute's three left the rolling hour
    expect((await api('GET', `/tokens/${t.id}`)).body.tokens_last_hour).toBe(1);

    // A limit set later counts what was issued in the hour before it: 1 of 2 used, one more, then 429.
    expect((await api('PATCH', `/tokens/${t.id}`, { max_tokens_per_hour: 2 })).status).toBe(200);
    expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(200);
    expect((await tokenRequest(server.url, t, OUTSIDE)).status).toBe(429);
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({ max_tokens_per_hour: 2, tokens_last_hour: 2 });
  });
});

const pg = testDatabases().filter((k) => k === 'postgres');
const pgSuite = pg.length ? describe.each(pg) : describe.skip.each(['postgres' as const]);

pgSuite('the hourly limit across two instances on %s', (kind) => {
  let db: TestDb;
  let a: TestServer;
  let b: TestServer;
  const clock = new TestClock(Date.now());

  beforeAll(async () => {
    db = await createTestDb(kind);
    a = await startServer(db, { TRUST_PROXY: 'true' }, { clock, jobs: 'manual' });
    b = await startServer(db, { TRUST_PROXY: 'true' }, { clock, jobs: 'manual' });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it.each([
    ['one statement per request', 60],
    ['reservations of 1 % per instance', 1000],
  ])('lets at most 5 %% more than max_tokens_per_hour through when both hammer one token (%s)', async (_how, limit) => {
    const { generate } = await adminSession(a);
    const t = await generate({ max_tokens_per_hour: limit });
    const total = Math.round(limit * 1.2) + 50;
    let next = 0;
    const statuses: number[] = [];
    const worker = async (server: TestServer) => {
      while (next < total) {
        next++;
        statuses.push((await tokenRequest(server.url, t, OUTSIDE)).status);
      }
    };
    await Promise.all([a, b, a, b, a, b, a, b, a, b, a, b].map(worker));
    const ok = statuses.filter((s) => s === 200).length;
    expect(statuses.filter((s) => s !== 200 && s !== 429)).toEqual([]);
    expect(ok).toBeLessThanOrEqual(Math.floor(limit * 1.05));
    // Not undercut either, but for what each instance reserved and had not used (1 % of the limit, and as much again
    // reserved ahead: unusedReservationBound).
    expect(ok).toBeGreaterThanOrEqual(limit - 2 * unusedReservationBound(limit));
  }, 60_000); // 1,250 token requests on two instances: past 30 s at load 9 (another run of the suite beside it)

  it('an instance gives back what it reserved and left unused once the minute is over, even with no more requests', async () => {
    const { generate, api } = await adminSession(a);
    clock.set(Math.floor(Date.now() / MINUTE) * MINUTE + 5_000);
    try {
      const t = await generate({ max_tokens_per_hour: 20_000 });
      expect((await tokenRequest(b.url, t, OUTSIDE)).status).toBe(200); // B reserves 200, uses 1, and sees no more
      expect((await api('PATCH', `/tokens/${t.id}`, { max_tokens_per_hour: 10 })).status).toBe(200);
      clock.advance(MINUTE);
      await b.runJob('flush-last-used'); // B's 5 s bookkeeping, in the next minute
      let ok = 0;
      for (let i = 0; i < 12; i++) if ((await tokenRequest(a.url, t, OUTSIDE)).status === 200) ok++;
      expect(ok).toBe(9); // 10 in the hour, 1 of them B's
      expect((await api('GET', `/tokens/${t.id}`)).body.tokens_last_hour).toBe(10);
    } finally {
      clock.resume();
    }
  });

  it('a limit lowered while both instances hold reservations made under the old one is kept', async () => {
    const { generate, api } = await adminSession(a);
    clock.set(Math.floor(Date.now() / MINUTE) * MINUTE + 5_000);
    try {
      const t = await generate({ max_tokens_per_hour: 20_000 });
      expect((await tokenRequest(a.url, t, OUTSIDE)).status).toBe(200); // 200 reserved on A
      expect((await tokenRequest(b.url, t, OUTSIDE)).status).toBe(200); // and 200 on B
      expect((await api('PATCH', `/tokens/${t.id}`, { max_tokens_per_hour: 300 })).status).toBe(200);
      let ok = 2;
      for (let i = 0; i < 400; i++) if ((await tokenRequest(i % 2 ? a.url : b.url, t, OUTSIDE)).status === 200) ok++;
      expect(ok).toBeLessThanOrEqual(300);
    } finally {
      clock.resume();
    }
  });

  it('a limit set on one instance counts at once what the other issued just before it, before its bookkeeping job', async () => {
    const { generate, api } = await adminSession(b);
    const t = await generate();
    for (let i = 0; i < 3; i++) expect((await tokenRequest(a.url, t, OUTSIDE)).status).toBe(200); // A, not written yet
    expect((await api('PATCH', `/tokens/${t.id}`, { max_tokens_per_hour: 3 })).status).toBe(200);
    // A's next request: its own three count (written before the limit counts), so the hour is used up.
    expect((await tokenRequest(a.url, t, OUTSIDE)).status).toBe(429);
    expect((await tokenRequest(b.url, t, OUTSIDE)).status).toBe(429);
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({ max_tokens_per_hour: 3, tokens_last_hour: 3 });
  });

  it('a limit set on one instance counts what the other issued just before it, not yet written', async () => {
    const { generate, api } = await adminSession(b);
    const t = await generate();
    // A issues three without a limit; its count waits for its 5 s bookkeeping job.
    for (let i = 0; i < 3; i++) expect((await tokenRequest(a.url, t, OUTSIDE)).status).toBe(200);
    expect((await api('PATCH', `/tokens/${t.id}`, { max_tokens_per_hour: 4 })).status).toBe(200);
    await a.runJob('flush-last-used'); // A's job runs after the limit was set
    expect((await tokenRequest(a.url, t, OUTSIDE)).status).toBe(200); // the fourth of the hour
    expect((await tokenRequest(a.url, t, OUTSIDE)).status).toBe(429);
    expect((await tokenRequest(b.url, t, OUTSIDE)).status).toBe(429);
    expect((await api('GET', `/tokens/${t.id}`)).body).toMatchObject({ max_tokens_per_hour: 4, tokens_last_hour: 4 });
  });
});

describe.each(testDatabases())('the hourly limit at shutdown on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('gives back what the instance reserved and did not use, so tokens_last_hour is exact after a restart', async () => {
    const limit = 20_000;
    const first = await startServer(db, { TRUST_PROXY: 'true' }, { jobs: 'manual' });
    let t: Generated;
    let admin: { email: string; password: string };
    try {
      const session = await adminSession(first);
      admin = session.admin;
      t = await session.generate({ max_tokens_per_hour: limit });
      expect((await tokenRequest(first.url, t, OUTSIDE)).status).toBe(200);
      const reserved = await first.deps.db.knex('token_issuance_buckets').where({ token_id: t.id }).sum({ n: 'count' });
      expect(Number(reserved[0]?.n)).toBe(reservationSize(limit)); // 200 counted, 1 used
    } finally {
      await first.close(); // SIGTERM's path: drain, then the pending bookkeeping
    }
    const second = await startServer(db, { TRUST_PROXY: 'true' }, { jobs: 'manual' });
    try {
      const again = await signIn(second, admin.email, admin.password); // the same organisation
      expect((await call(second, 'GET', `/tokens/${t.id}`, { token: again.token })).body).toMatchObject({
        max_tokens_per_hour: limit,
        tokens_last_hour: 1,
      });
    } finally {
      await second.close();
    }
  });
});
