// SPEC "Credential lifecycle" / "Expiry reminders, expiring and dormant tokens": the token resource's `expiring` and
// `dormant` flags and the list's `status=expiring|dormant` filters, through the admin API.
import { decodeJwt } from 'jose';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, daysFromNow, makeAdmin, makeToken, setTokenExpiry, setTokenTimes } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const DAY = 86_400_000;

describe.each(testDatabases())('expiring and dormant tokens on %s', (kind) => {
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

  async function session() {
    const admin = await makeAdmin(server.deps);
    const s = await signIn(server, admin.email, admin.password);
    return { admin, get: (path: string) => call(server, 'GET', path, { token: s.token }) };
  }

  /** Every item of a filtered list, walking the cursor pages. */
  async function listAll(get: (path: string) => Promise<{ status: number; body: any }>, query: string, limit = 2) {
    const names: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await get(`/tokens?${query}&limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`);
      expect(res.status).toBe(200);
      names.push(...res.body.items.map((t: { name: string }) => t.name));
      cursor = res.body.next_cursor;
      pages += 1;
    } while (cursor && pages < 20);
    return names;
  }

  it('flags a token expiring within 7 days, and only while it is active', async () => {
    const { admin, get } = await session();
    const soon = await makeToken(server.deps, admin, { name: 'so-soon', expires_at: daysFromNow(3) });
    const later = await makeToken(server.deps, admin, { name: 'later', expires_at: daysFromNow(30) });
    const edge = await makeToken(server.deps, admin, { name: 'edge', expires_at: daysFromNow(30) });
    await setTokenExpiry(server.deps, edge.id, new Date(Date.now() + 7 * DAY - 60_000)); // just inside 7 days
    const gone = await makeToken(server.deps, admin, { name: 'gone', expires_at: daysFromNow(3) });
    await setTokenExpiry(server.deps, gone.id, new Date(Date.now() - 60_000));

    const one = await get(`/tokens/${soon.id}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({ status: 'active', expiring: true, dormant: false });
    expect((await get(`/tokens/${later.id}`)).body).toMatchObject({ status: 'active', expiring: false });
    expect((await get(`/tokens/${edge.id}`)).body).toMatchObject({ expiring: true });
    expect((await get(`/tokens/${gone.id}`)).body).toMatchObject({ status: 'expired', expiring: false, dormant: false });

    expect((await listAll(get, 'status=expiring')).sort()).toEqual(['edge', 'so-soon']);
    // `q` matches names and client IDs: a hyphen is in no client ID (random base62), so only the name can match.
    expect((await listAll(get, 'status=expiring&q=SO-'))).toEqual(['so-soon']);
  });

  it('flags a token unused for 90 days, counted from creation when never used', async () => {
    const { admin, get } = await session();
    const now = Date.now();
    const t = async (name: string, times: { created_at?: Date; last_used_at?: Date | null }) => {
      const token = await makeToken(server.deps, admin, { name, expires_at: daysFromNow(200) });
      await setTokenTimes(server.deps, token.id, times);
      return token;
    };
    const neverUsedOld = await t('never-used-old', { created_at: new Date(now - 100 * DAY) });
    await t('never-used-new', { created_at: new Date(now - 89 * DAY) });
    const usedLongAgo = await t('used-long-ago', { created_at: new Date(now - 200 * DAY), last_used_at: new Date(now - 91 * DAY) });
    await t('used-lately', { created_at: new Date(now - 200 * DAY), last_used_at: new Date(now - 10 * DAY) });
    const expiredOld = await t('expired-old', { created_at: new Date(now - 150 * DAY) });
    await setTokenExpiry(server.deps, expiredOld.id, new Date(now - DAY));

    expect((await get(`/tokens/${neverUsedOld.id}`)).body).toMatchObject({ dormant: true, last_used_at: null, expiring: false });
    expect((await get(`/tokens/${usedLongAgo.id}`)).body).toMatchObject({ dormant: true });
    expect((await get(`/tokens/${expiredOld.id}`)).body).toMatchObject({ status: 'expired', dormant: false });

    const all = (await get('/tokens?limit=100')).body.items as Array<{ name: string; dormant: boolean }>;
    expect(Object.fromEntries(all.map((i) => [i.name, i.dormant]))).toEqual({
      'never-used-old': true,
      'never-used-new': false,
      'used-long-ago': true,
      'used-lately': false,
      'expired-old': false,
    });
    // Paged one by one, the filter still yields each dormant token exactly once.
    expect((await listAll(get, 'status=dormant', 1)).sort()).toEqual(['never-used-old', 'used-long-ago']);
    expect((await listAll(get, 'status=active', 2)).sort()).toEqual(['never-used-new', 'never-used-old', 'used-lately', 'used-long-ago']);
  });

  it('stops calling a token dormant once it is used at the token endpoint', async () => {
    const { admin, get } = await session();
    const token = await makeToken(server.deps, admin, { expires_at: daysFromNow(100) });
    await setTokenTimes(server.deps, token.id, { created_at: new Date(Date.now() - 120 * DAY) });
    expect((await get(`/tokens/${token.id}`)).body.dormant).toBe(true);

    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(token.client_id, token.client_secret) },
      body: 'grant_type=client_credentials',
    });
    expect(res.status).toBe(200);
    expect(decodeJwt(((await res.json()) as { access_token: string }).access_token).client_id).toBe(token.client_id);
    await server.oauth.flushUsage(); // the bookkeeping job's work, done now instead of within 5 s
    const after = (await get(`/tokens/${token.id}`)).body;
    expect(after.last_used_at).not.toBeNull();
    expect(after.dormant).toBe(false);
    expect(await listAll(get, 'status=dormant')).toEqual([]);
  });

  it('counts authenticating as the caller of introspection or revocation as a use, of the token and of its secret', async () => {
    const { admin, get } = await session();
    const client = await makeToken(server.deps, admin, { expires_at: daysFromNow(100) });
    const introspector = await makeToken(server.deps, admin, { expires_at: daysFromNow(100) });
    const revoker = await makeToken(server.deps, admin, { expires_at: daysFromNow(100) });
    for (const t of [introspector, revoker]) {
      await setTokenTimes(server.deps, t.id, { created_at: new Date(Date.now() - 120 * DAY), last_used_at: new Date(Date.now() - 100 * DAY) });
      expect((await get(`/tokens/${t.id}`)).body.dormant).toBe(true);
    }
    const post = (path: string, who: { client_id: string; client_secret: string }, body: string) =>
      fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(who.client_id, who.client_secret) },
        body,
      });
    const issued = await post('/token', client, 'grant_type=client_credentials');
    const accessToken = ((await issued.json()) as { access_token: string }).access_token;
    const before = Date.now();
    expect(await (await post('/token/introspection', introspector, `token=${accessToken}`)).json()).toMatchObject({ active: true });
    expect((await post('/token/revocation', revoker, 'token=not-one-of-ours')).status).toBe(200);
    // A wrong secret is no use.
    expect((await post('/token/introspection', { ...client, client_secret: introspector.client_secret }, `token=${accessToken}`)).status).toBe(401);
    await server.oauth.flushUsage(); // the bookkeeping job's work, done now instead of within 5 s
    for (const t of [introspector, revoker]) {
      const after = (await get(`/tokens/${t.id}`)).body;
      expect(Date.parse(after.last_used_at)).toBeGreaterThanOrEqual(before - 1000);
      expect(after.dormant).toBe(false);
      expect(after.secrets).toHaveLength(1);
      expect(after.secrets[0].last_used_at).toBe(after.last_used_at);
      expect(after.tokens_last_hour).toBe(0); // no access token was issued to it
    }
    expect(await listAll(get, 'status=dormant')).toEqual([]);
  });

  it('refuses an unknown status filter with 400 validation_failed', async () => {
    const { get } = await session();
    const res = await get('/tokens?status=sleeping');
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'status', message: expect.stringContaining('dormant') }] });
  });

  it('keeps the flags and filters inside the organisation', async () => {
    const a = await session();
    const b = await session();
    const token = await makeToken(server.deps, a.admin, { expires_at: daysFromNow(2) });
    expect((await a.get('/tokens?status=expiring')).body.items.map((t: { id: string }) => t.id)).toEqual([token.id]);
    expect((await b.get('/tokens?status=expiring')).body.items).toEqual([]);
    expect((await b.get(`/tokens/${token.id}`)).status).toBe(404);
  });
});
