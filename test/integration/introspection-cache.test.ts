// Issue 17 item 1: introspection verifies a JWT's signature once and remembers it, but nothing it remembers may hide
// a revocation: every request still reads the caller's row, the token's client row and the RFC 7009 revocations.
import { randomUUID } from 'node:crypto';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken, setTokenExpiry } from '../support/fixtures.js';
import { resetClock, TestClock } from '../support/clock.js';
import { startServer, type TestServer } from '../support/server.js';
import { addResourceServer, revokeResourceServer, type GeneratedToken } from '../../src/tokens/index.js';

describe.each(testDatabases())('introspection with remembered signatures on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  const clock = new TestClock(); // the server's clock: real time unless a test moves it

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, {}, { clock });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });
  afterEach(() => {
    resetClock(clock);
  });

  const post = (path: string, fields: Record<string, string>, authorization: string) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
      body: new URLSearchParams(fields).toString(),
    });

  async function accessToken(t: GeneratedToken): Promise<string> {
    const res = await post('/token', { grant_type: 'client_credentials' }, basic(t.client_id, t.client_secret));
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  async function introspect(clientId: string, secret: string, token: string) {
    const res = await post('/token/introspection', { token }, basic(clientId, secret));
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** Introspects once so the signature is remembered, and checks that it is. */
  async function remembered(caller: GeneratedToken, jwt: string) {
    expect(server.oauth.verifyAccessToken.cached(jwt)).toBeUndefined();
    const first = await introspect(caller.client_id, caller.client_secret, jwt);
    expect(first.body.active).toBe(true);
    expect(server.oauth.verifyAccessToken.cached(jwt)).toMatchObject({ client_id: expect.any(String), jti: expect.any(String) });
    return first.body;
  }

  it('answers a remembered token exactly as a first verification does', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin, { services: ['candidates'] });
    const caller = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    const first = await remembered(caller, jwt);
    const again = await introspect(caller.client_id, caller.client_secret, jwt);
    expect(again).toEqual({ status: 200, body: first });
    // A tampered copy is another string: never answered from what was remembered.
    const [h, p, sig] = jwt.split('.');
    const tampered = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), scope: 'jobs' })).toString('base64url')}.${sig}`;
    expect((await introspect(caller.client_id, caller.client_secret, tampered)).body).toEqual({ active: false });
  });

  it('sees an RFC 7009 revocation at once, though the signature is remembered', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    await remembered(t, jwt);
    expect((await post('/token/revocation', { token: jwt }, basic(t.client_id, t.client_secret))).status).toBe(200);
    expect(server.oauth.verifyAccessToken.cached(jwt)).toBeDefined();
    expect((await introspect(t.client_id, t.client_secret, jwt)).body).toEqual({ active: false });
  });

  it('sees the revocation of the token’s client, and of the caller, at once', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const caller = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    const callerJwt = await accessToken(caller);
    await remembered(caller, jwt);
    await remembered(t, callerJwt);

    const s = await signIn(server, admin.email, admin.password);
    expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: s.token })).status).toBe(200);
    expect(server.oauth.verifyAccessToken.cached(jwt)).toBeDefined();
    expect((await introspect(caller.client_id, caller.client_secret, jwt)).body).toEqual({ active: false });
    // The revoked client as the caller, asking about a remembered token: its credentials no longer authenticate.
    const res = await introspect(t.client_id, t.client_secret, callerJwt);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });

  it('sees the expiry of the token’s client, and the access token’s own exp, on a remembered token', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const caller = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    await remembered(caller, jwt);

    const exp = server.oauth.verifyAccessToken.cached(jwt)!.exp;
    clock.set(exp * 1000); // the server's clock at the token's exp
    expect(server.oauth.verifyAccessToken.cached(jwt)).toBeUndefined();
    expect((await introspect(caller.client_id, caller.client_secret, jwt)).body).toEqual({ active: false });
    resetClock(clock);

    expect((await introspect(caller.client_id, caller.client_secret, jwt)).body.active).toBe(true);
    await setTokenExpiry(server.deps, t.id, new Date(Date.now() - 1000));
    expect((await introspect(caller.client_id, caller.client_secret, jwt)).body).toEqual({ active: false });
  });

  it('refuses a revoked resource server at once, though the token it asks about is remembered', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    const rs = await addResourceServer(server.deps, `cache test ${randomUUID()}`);
    const first = await introspect(rs.client_id, rs.client_secret, jwt);
    expect(first.body.active).toBe(true);
    expect(server.oauth.verifyAccessToken.cached(jwt)).toBeDefined();
    expect((await introspect(rs.client_id, rs.client_secret, jwt)).body).toEqual(first.body);
    expect((await introspect(rs.client_id, rs.client_secret + 'x', jwt)).status).toBe(401);

    await revokeResourceServer(server.deps, rs.id);
    const res = await introspect(rs.client_id, rs.client_secret, jwt);
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('invalid_client');
  });
});
