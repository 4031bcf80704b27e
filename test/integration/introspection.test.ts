import { exportJWK, generateKeyPair, importJWK, SignJWT, type JWK } from 'jose';
import { randomUUID } from 'node:crypto';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken, setTokenExpiry } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { rotateSigningKey } from '../../src/keys/index.js';
import { pruneRevokedAccessTokens, type Actor, type GeneratedToken } from '../../src/tokens/index.js';

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe.each(testDatabases())('introspection (RFC 7662) and revocation (RFC 7009) on %s', (kind) => {
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

  const post = (url: string, path: string, fields: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: form(fields),
    });

  async function accessToken(t: GeneratedToken, url = server.url): Promise<string> {
    const res = await post(url, '/token', { grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  /** Introspects `token` as `caller` (Basic unless `post`). */
  async function introspect(caller: GeneratedToken, token: string, how: 'basic' | 'post' = 'basic', url = server.url) {
    const res =
      how === 'basic'
        ? await post(url, '/token/introspection', { token }, { authorization: basic(caller.client_id, caller.client_secret) })
        : await post(url, '/token/introspection', { token, client_id: caller.client_id, client_secret: caller.client_secret });
    return { status: res.status, headers: res.headers, body: (await res.json()) as Record<string, unknown> };
  }

  const revoke = (caller: GeneratedToken, token: string) =>
    post(server.url, '/token/revocation', { token, token_type_hint: 'access_token' }, { authorization: basic(caller.client_id, caller.client_secret) });

  /** Our current signing key, to forge tokens that differ from real ones in one claim only. */
  async function ourKey() {
    const row = await server.deps.db.knex('signing_keys').orderBy('not_before', 'desc').first();
    const jwk = server.oauth.keyRing.privateJwk(row);
    return { key: await importJWK(jwk, jwk.alg), kid: jwk.kid!, alg: jwk.alg! };
  }

  function claimsFor(t: GeneratedToken, admin: Actor, over: Record<string, unknown> = {}) {
    const now = Math.floor(Date.now() / 1000);
    return {
      iss: server.issuer,
      aud: `${server.issuer}/api`,
      sub: t.client_id,
      client_id: t.client_id,
      org_id: admin.organisation_id,
      scope: 'candidates',
      jti: randomUUID(),
      iat: now,
      exp: now + 300,
      ...over,
    };
  }

  it('reports a live access token active with its claims, to a caller of the same organisation (Basic and post)', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
    const colleague = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);

    const self = await introspect(t, jwt);
    expect(self.status).toBe(200);
    expect(self.headers.get('cache-control')).toBe('no-store');
    expect(self.body).toEqual({
      active: true,
      scope: 'candidates jobs',
      client_id: t.client_id,
      sub: t.client_id,
      aud: `${server.issuer}/api`,
      iss: server.issuer,
      exp: expect.any(Number),
      iat: expect.any(Number),
      jti: expect.any(String),
      org_id: admin.organisation_id,
      token_type: 'Bearer',
    });
    expect((self.body.exp as number) - (self.body.iat as number)).toBe(900);
    const other = await introspect(colleague, jwt, 'post');
    expect(other.status).toBe(200);
    expect(other.body.active).toBe(true);
  });

  it('reports another organisation’s access token inactive', async () => {
    const a = await makeAdmin(server.deps);
    const b = await makeAdmin(server.deps);
    const ta = await makeToken(server.deps, a);
    const tb = await makeToken(server.deps, b);
    const res = await introspect(tb, await accessToken(ta));
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ active: false });
  });

  it('reports the access tokens of a revoked token inactive from the moment of revocation', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const caller = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    expect((await introspect(caller, jwt)).body.active).toBe(true);
    const s = await signIn(server, admin.email, admin.password);
    expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: s.token })).status).toBe(200);
    expect((await introspect(caller, jwt)).body).toEqual({ active: false });
  });

  it('reports the access tokens of an expired token inactive', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const caller = await makeToken(server.deps, admin);
    const jwt = await accessToken(t);
    await setTokenExpiry(server.deps, t.id, new Date(Date.now() - 1000));
    expect((await introspect(caller, jwt)).body).toEqual({ active: false });
  });

  it('is active only for tokens signed with our keys, for our issuer and audience, of type at+jwt, and not expired', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin, { services: ['candidates'] });
    const { key, kid, alg } = await ourKey();
    const sign = (claims: Record<string, unknown>, header: Record<string, unknown> = {}) =>
      new SignJWT(claims).setProtectedHeader({ alg, kid, typ: 'at+jwt', ...header }).sign(key);

    // Control: a token like ours, signed with our key, is active, so each refusal below is about its one difference.
    expect((await introspect(t, await sign(claimsFor(t, admin)))).body.active).toBe(true);

    const now = Math.floor(Date.now() / 1000);
    const refused: Record<string, string> = {
      expired: await sign(claimsFor(t, admin, { exp: now - 1, iat: now - 60 })),
      'other issuer': await sign(claimsFor(t, admin, { iss: 'https://evil.example' })),
      'other audience': await sign(claimsFor(t, admin, { aud: 'https://elsewhere.example/api' })),
      'plain JWT type': await sign(claimsFor(t, admin), { typ: 'JWT' }),
      'other organisation claim': await sign(claimsFor(t, admin, { org_id: randomUUID() })),
      'unknown client': await sign(claimsFor(t, admin, { client_id: 'sat_AAAAAAAAAAAAAAAAAAAAAA', sub: 'sat_AAAAAAAAAAAAAAAAAAAAAA' })),
      'no jti': await sign({ ...claimsFor(t, admin), jti: undefined }),
    };
    const foreign = await generateKeyPair('ES256');
    refused['foreign key with our kid'] = await new SignJWT(claimsFor(t, admin))
      .setProtectedHeader({ alg: 'ES256', kid, typ: 'at+jwt' })
      .sign(foreign.privateKey);
    refused['foreign key with its own kid'] = await new SignJWT(claimsFor(t, admin))
      .setProtectedHeader({ alg: 'ES256', kid: 'not-ours', typ: 'at+jwt' })
      .sign(foreign.privateKey);
    const pub = await exportJWK(foreign.publicKey);
    refused['embedded jwk header'] = await new SignJWT(claimsFor(t, admin))
      .setProtectedHeader({ alg: 'ES256', jwk: pub, typ: 'at+jwt' })
      .sign(foreign.privateKey);
    const real = await accessToken(t);
    const [h, p] = real.split('.');
    refused['alg none'] = `${Buffer.from(JSON.stringify({ alg: 'none', typ: 'at+jwt', kid })).toString('base64url')}.${p}.`;
    refused['tampered payload'] = `${h}.${Buffer.from(JSON.stringify({ ...JSON.parse(Buffer.from(p!, 'base64url').toString()), scope: 'jobs employees' })).toString('base64url')}.${real.split('.')[2]}`;
    refused['garbage'] = 'not-a-jwt';
    refused['client secret'] = t.client_secret;

    for (const [label, token] of Object.entries(refused)) {
      const res = await introspect(t, token);
      expect({ label, status: res.status, body: res.body }).toEqual({ label, status: 200, body: { active: false } });
    }
  });

  it('accepts a token signed with a key that another instance just added, before this one reloaded its keys', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const { kid } = await rotateSigningKey(server.deps.db.knex, server.oauth.keyRing, server.deps.config.signingAlg, new Date(), 0);
    const row = await server.deps.db.knex('signing_keys').where({ kid }).first();
    const jwk = server.oauth.keyRing.privateJwk(row);
    const jwt = await new SignJWT(claimsFor(t, admin))
      .setProtectedHeader({ alg: jwk.alg!, kid, typ: 'at+jwt' })
      .sign(await importJWK(jwk, jwk.alg));
    expect((await introspect(t, jwt)).body.active).toBe(true);
  });

  it('lets a client revoke its own access token (RFC 7009): inactive at once, its other tokens and the client unaffected', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const first = await accessToken(t);
    const second = await accessToken(t);

    const res = await revoke(t, first);
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
    expect((await introspect(t, first)).body).toEqual({ active: false });
    expect((await introspect(t, second)).body.active).toBe(true);
    expect((await introspect(t, await accessToken(t))).body.active).toBe(true); // the client still works
    expect((await revoke(t, first)).status).toBe(200); // again: still fine

    const row = await server.deps.db.knex('revoked_access_tokens').first();
    expect(row).toMatchObject({ client_id: t.client_id, organisation_id: admin.organisation_id });
    expect(row.expires_at.getTime()).toBeGreaterThan(Date.now());
  });

  it('forgets revoked access tokens once they would have expired anyway (housekeeping job)', async () => {
    const admin = await makeAdmin(server.deps);
    const knex = server.deps.db.knex;
    const base = { client_id: 'sat_AAAAAAAAAAAAAAAAAAAAAA', organisation_id: admin.organisation_id, revoked_at: new Date() };
    const [old, fresh] = [randomUUID(), randomUUID()];
    await knex('revoked_access_tokens').insert([
      { ...base, jti: old, expires_at: new Date(Date.now() - 1000) },
      { ...base, jti: fresh, expires_at: new Date(Date.now() + 60_000) },
    ]);
    expect(await pruneRevokedAccessTokens(knex, new Date())).toBeGreaterThanOrEqual(1);
    expect((await knex('revoked_access_tokens').whereIn('jti', [old, fresh])).map((r: { jti: string }) => r.jti)).toEqual([fresh]);
  });

  it('refuses to let one client revoke another’s access token of its organisation (RFC 7009 §2.1), and answers 200 for tokens it does not know, another organisation’s too', async () => {
    const admin = await makeAdmin(server.deps);
    const owner = await makeToken(server.deps, admin);
    const other = await makeToken(server.deps, admin);
    const elsewhere = await makeToken(server.deps, await makeAdmin(server.deps));
    const jwt = await accessToken(owner);
    const refused = await revoke(other, jwt);
    expect(refused.status).toBe(400);
    const body = (await refused.json()) as { error: string; error_description: string };
    expect(body.error).toBe('unauthorized_client');
    expect(body.error_description).toMatch(/not issued to the calling client/);
    // Another organisation's client learns nothing about this token (as at introspection): 200, nothing recorded.
    expect((await revoke(elsewhere, jwt)).status).toBe(200);
    for (const token of ['garbage', owner.client_secret]) expect((await revoke(other, token)).status).toBe(200);
    expect((await introspect(owner, jwt)).body.active).toBe(true);
    expect(await server.deps.db.knex('revoked_access_tokens').where({ client_id: owner.client_id })).toEqual([]);
    expect((await revoke(owner, jwt)).status).toBe(200);
    expect((await introspect(owner, jwt)).body.active).toBe(false);
  });

  describe.each([['/token/introspection'], ['/token/revocation']])('%s request errors', (path) => {
    it('answers 401 invalid_client for failed client authentication', async () => {
      const admin = await makeAdmin(server.deps);
      const t = await makeToken(server.deps, admin);
      const other = await makeToken(server.deps, admin);
      const jwt = await accessToken(t);

      const wrongBasic = await post(server.url, path, { token: jwt }, { authorization: basic(t.client_id, other.client_secret) });
      expect(wrongBasic.status).toBe(401);
      expect(wrongBasic.headers.get('www-authenticate')).toMatch(/^Basic /);
      expect(((await wrongBasic.json()) as { error: string }).error).toBe('invalid_client');

      const wrongPost = await post(server.url, path, { token: jwt, client_id: t.client_id, client_secret: t.client_secret + 'x' });
      expect(wrongPost.status).toBe(401);
      expect(((await wrongPost.json()) as { error: string }).error).toBe('invalid_client');

      const none = await post(server.url, path, { token: jwt });
      expect(none.status).toBe(401);
      expect(((await none.json()) as { error: string }).error).toBe('invalid_client');

      await setTokenExpiry(server.deps, other.id, new Date(Date.now() - 1000));
      const expiredCaller = await post(server.url, path, { token: jwt }, { authorization: basic(other.client_id, other.client_secret) });
      expect(expiredCaller.status).toBe(401);
    });

    it('answers 400 invalid_request for a missing token, a repeated parameter or a non-form body; 405 for GET', async () => {
      const admin = await makeAdmin(server.deps);
      const t = await makeToken(server.deps, admin);
      const auth = { authorization: basic(t.client_id, t.client_secret) };
      const missing = await post(server.url, path, {}, auth);
      expect(missing.status).toBe(400);
      expect(await missing.json()).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('token') });
      const twice = await fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...auth },
        body: 'token=a&token=b',
      });
      expect(twice.status).toBe(400);
      const json = await fetch(`${server.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...auth },
        body: JSON.stringify({ token: 'x' }),
      });
      expect(json.status).toBe(400);
      expect(((await json.json()) as { error: string }).error).toBe('invalid_request');
      expect((await fetch(`${server.url}${path}`)).status).toBe(405);
    });
  });

  const onPostgres = kind === 'postgres' ? it : it.skip;
  onPostgres('sees a revocation made on another instance at once', async () => {
    // A second instance on the same database and issuer, as behind a load balancer.
    const second = await startServer(db, { ISSUER: server.issuer });
    try {
      const admin = await makeAdmin(server.deps);
      const t = await makeToken(server.deps, admin);
      const caller = await makeToken(server.deps, admin);
      const jwt = await accessToken(t);
      expect((await introspect(caller, jwt, 'basic', second.url)).body.active).toBe(true);
      const s = await signIn(server, admin.email, admin.password);
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: s.token })).status).toBe(200);
      expect((await introspect(caller, jwt, 'basic', second.url)).body).toEqual({ active: false });
      const ex = await post(second.url, '/token', { grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
      expect(ex.status).toBe(401);

      const jwt2 = await accessToken(caller, second.url);
      expect((await revoke(caller, jwt2)).status).toBe(200); // revoked through the first instance
      expect((await introspect(caller, jwt2, 'basic', second.url)).body).toEqual({ active: false });
    } finally {
      await second.close();
    }
  });
});
