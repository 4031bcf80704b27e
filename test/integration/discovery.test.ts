// SPEC Part 2 "OAuth conformance": discovery documents strict parsers accept (issue 11 item 4), caching and CORS on
// /jwks and discovery, Pragma on token responses (item 5), JWKS and discovery prepared in memory (issue 17 item 5).
import { execFileSync, spawnSync } from 'node:child_process';
import * as oauth from 'oauth4webapi';
import * as oidc from 'openid-client';
import { decodeProtectedHeader } from 'jose';
import { rotateSigningKey } from '../../src/keys/index.js';
import { loadConfig } from '../../src/config/index.js';
import { SERVER_TOP_LEVEL_PATHS } from '../../src/config/schema.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

// An https issuer, as in production: Authlib refuses http ones. Requests still go to the test server over http.
const ISSUER = 'https://sat.example.test';
const OIDC_PATH = '/.well-known/openid-configuration';
const OAUTH_PATH = '/.well-known/oauth-authorization-server';

/** Debian's python3-authlib (CI installs it): the interpreter that has it, or undefined. */
function findAuthlib(): string | undefined {
  for (const python of ['/usr/bin/python3', 'python3']) {
    const r = spawnSync(python, ['-c', 'import authlib'], { stdio: 'ignore' });
    if (r.status === 0) return python;
  }
  return undefined;
}
const python = findAuthlib();
if (!python) console.warn('discovery.test.ts: SKIPPING the Authlib checks: python3-authlib is not installed (apt-get install python3-authlib)');
const withAuthlib = python ? it : it.skip;

/** Authlib's validators, run on both documents: prints "ok" or the first error. */
const AUTHLIB_CHECK = `
import json, sys
from authlib.oauth2.rfc8414 import AuthorizationServerMetadata
from authlib.oidc.discovery import OpenIDProviderMetadata
docs = json.load(sys.stdin)
AuthorizationServerMetadata(docs["oauth"]).validate()
OpenIDProviderMetadata(docs["oidc"]).validate()
print("ok")
`;

describe.each(testDatabases())('discovery and JWKS on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { ISSUER });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  /** Our URLs (under ISSUER) → the test server. */
  const local = (url: string | URL) => new URL(String(url).replace(ISSUER, server.url));
  const getJson = async (p: string) => {
    const res = await fetch(server.url + p);
    expect(res.status).toBe(200);
    return { res, body: (await res.json()) as Record<string, unknown> };
  };

  withAuthlib("both documents pass Authlib's RFC 8414 and OpenID Connect Discovery validators", async () => {
    const oidcDoc = (await getJson(OIDC_PATH)).body;
    const oauthDoc = (await getJson(OAUTH_PATH)).body;
    const out = execFileSync(python!, ['-c', AUTHLIB_CHECK], { input: JSON.stringify({ oidc: oidcDoc, oauth: oauthDoc }), encoding: 'utf8' });
    expect(out.trim()).toBe('ok');
  });

  it('lists only endpoints that exist, the access tokens’ algorithm, and the auth methods of every endpoint', async () => {
    const doc = (await getJson(OIDC_PATH)).body;
    expect(doc).toMatchObject({
      issuer: ISSUER,
      token_endpoint: `${ISSUER}/token`,
      jwks_uri: `${ISSUER}/jwks`,
      grant_types_supported: ['client_credentials'],
      subject_types_supported: ['public'],
      response_types_supported: ['none'],
    });
    expect(doc.id_token_signing_alg_values_supported).toContain(server.deps.config.signingAlg);
    const oauthDoc = (await getJson(OAUTH_PATH)).body;
    for (const key of ['token_endpoint', 'introspection_endpoint', 'revocation_endpoint'] as const) {
      expect(oauthDoc[`${key}_auth_methods_supported`]).toEqual(['client_secret_basic', 'client_secret_post', 'private_key_jwt']);
    }
    expect(oauthDoc.response_types_supported).toEqual(['none']);

    // Every URL in either document answers (no 404): GET for the JWKS and the authorization endpoint, POST otherwise.
    for (const d of [doc, oauthDoc]) {
      for (const [key, value] of Object.entries(d)) {
        if (!/(_endpoint|_uri)$/.test(key)) continue;
        const method = key === 'jwks_uri' || key === 'authorization_endpoint' ? 'GET' : 'POST';
        const res = await fetch(local(value as string), { method, ...(method === 'POST' ? { headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: '' } : {}) });
        expect({ key, status: res.status }).toEqual({ key, status: key === 'jwks_uri' ? 200 : expect.any(Number) });
        expect(res.status).not.toBe(404);
        expect(res.status).toBeLessThan(500);
      }
    }
  });

  it('the authorization endpoint answers every request with an OAuth error: no client may use it', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const query = new URLSearchParams({ client_id: t.client_id, response_type: 'none', redirect_uri: 'https://client.example/cb', scope: 'openid', state: 's' });
    // OpenID Connect Core §3.1.2.1: GET and POST alike (a POST was a plain-text 404 from the provider).
    for (const init of [{}, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: query.toString() }]) {
      const res = await fetch(`${server.url}/auth${'method' in init ? '' : `?${query}`}`, { redirect: 'manual', ...init });
      expect(res.status).toBe(400);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(res.headers.get('set-cookie')).toBeNull();
      const body = (await res.json()) as { error: string };
      expect(['invalid_client', 'invalid_redirect_uri', 'unauthorized_client', 'invalid_request']).toContain(body.error);
    }
  });

  it("openid-client's default discovery reads the OpenID document and gets a token", async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const config = await oidc.discovery(new URL(ISSUER), t.client_id, t.client_secret, oidc.ClientSecretBasic(t.client_secret), {
      [oidc.customFetch]: (url: string, options: oidc.CustomFetchOptions) => fetch(local(url), options as RequestInit),
    });
    expect(config.serverMetadata().token_endpoint).toBe(`${ISSUER}/token`);
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'candidates' });
    expect(tokens.token_type.toLowerCase()).toBe('bearer');
    expect(decodeProtectedHeader(tokens.access_token).alg).toBe(server.deps.config.signingAlg);
  });

  it('serves /jwks and both documents with Cache-Control (max-age ≤ 300), an ETag, and 204 to CORS preflights', async () => {
    for (const p of ['/jwks', OIDC_PATH, OAUTH_PATH]) {
      const res = await fetch(server.url + p);
      expect(res.status).toBe(200);
      const maxAge = /^public, max-age=(\d+)$/.exec(res.headers.get('cache-control') ?? '');
      expect({ p, cacheControl: res.headers.get('cache-control') }).toEqual({ p, cacheControl: expect.stringMatching(/^public, max-age=\d+$/) });
      expect(Number(maxAge![1])).toBeLessThanOrEqual(300);
      expect(res.headers.get('access-control-allow-origin')).toBe('*');
      const etag = res.headers.get('etag')!;
      expect((await fetch(server.url + p, { headers: { 'if-none-match': etag } })).status).toBe(304);
      // RFC 9110 §13.1.2: If-None-Match compares weakly, may list several tags, or be "*".
      for (const inm of [`W/${etag}`, `"other", ${etag}`, '*']) {
        const again = await fetch(server.url + p, { headers: { 'if-none-match': inm } });
        expect({ p, inm, status: again.status, body: await again.text() }).toEqual({ p, inm, status: 304, body: '' });
      }
      expect((await fetch(server.url + p, { headers: { 'if-none-match': '"other"' } })).status).toBe(200);

      const preflight = await fetch(server.url + p, {
        method: 'OPTIONS',
        headers: { origin: 'https://spa.example', 'access-control-request-method': 'GET', 'access-control-request-headers': 'x-requested-with' },
      });
      expect(preflight.status).toBe(204);
      expect(preflight.headers.get('access-control-allow-origin')).toBe('*');
      expect(preflight.headers.get('access-control-allow-methods')).toContain('GET');
    }
  });

  it("keeps the JWKS's max-age within half of a short KEY_PUBLISH_AHEAD_SECONDS: a cache never holds a JWKS without the next key when it signs", async () => {
    expect((await fetch(server.url + '/jwks')).headers.get('cache-control')).toBe('public, max-age=300'); // 600 s ahead
    const shortDb = await createTestDb(kind); // the embedded database takes one server at a time
    const short = await startServer(shortDb, { KEY_PUBLISH_AHEAD_SECONDS: '120' });
    try {
      expect((await fetch(short.url + '/jwks')).headers.get('cache-control')).toBe('public, max-age=60');
      expect((await fetch(short.url + OIDC_PATH)).headers.get('cache-control')).toBe('public, max-age=300'); // names no key
    } finally {
      await short.close();
      await shortDb.drop();
    }
  });

  it('token responses carry Cache-Control: no-store and Pragma: no-cache, success and error alike', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    for (const authorization of [basic(t.client_id, t.client_secret), basic(t.client_id, 'sats_wrong')]) {
      const res = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization },
        body: 'grant_type=client_credentials',
      });
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(res.headers.get('pragma')).toBe('no-cache');
    }
  });

  it('prepares the JWKS once per key change: the same bytes until a key is added, then the new set', async () => {
    const first = await fetch(`${server.url}/jwks`);
    const etag = first.headers.get('etag');
    expect((await fetch(`${server.url}/jwks`)).headers.get('etag')).toBe(etag);
    const { kid } = await rotateSigningKey(server.deps.db.knex, server.oauth.keyRing, server.deps.config.signingAlg, new Date(), 600);
    await server.oauth.reloadKeys();
    const after = await fetch(`${server.url}/jwks`);
    expect(after.headers.get('etag')).not.toBe(etag);
    expect(((await after.json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid)).toContain(kid);
  });
});

// SPEC "Running it": ISSUER is "the discovery `issuer` and every JWT's `iss` equal it exactly", also when it ends in
// a slash (jose's jwtVerify compares `iss` as a string); the endpoint URLs under it get no doubled slash.
describe.each(testDatabases())('an ISSUER that ends in a slash on %s', (kind) => {
  const SLASHED = 'https://sat-slash.example.test/';
  let db: TestDb;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { ISSUER: SLASHED });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('keeps it exactly in both documents and in every access token', async () => {
    for (const p of [OIDC_PATH, OAUTH_PATH]) {
      const doc = (await (await fetch(server.url + p)).json()) as Record<string, string>;
      expect(doc.issuer).toBe(SLASHED);
      expect(doc.token_endpoint).toBe('https://sat-slash.example.test/token');
      expect(doc.jwks_uri).toBe('https://sat-slash.example.test/jwks');
      expect(doc.introspection_endpoint).toBe('https://sat-slash.example.test/token/introspection');
    }
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    // The fast path, and oidc-provider's pipeline (an extra parameter sends the request there).
    for (const body of ['grant_type=client_credentials', 'grant_type=client_credentials&extra=1']) {
      const res = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
        body,
      });
      expect(res.status).toBe(200);
      const { access_token } = (await res.json()) as { access_token: string };
      const claims = JSON.parse(Buffer.from(access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
      expect(claims.iss).toBe(SLASHED);
      expect(claims.aud).toBe('https://sat-slash.example.test/api');
    }
  });
});

// An ISSUER with a path (`https://host/sat`): discovery advertises `ISSUER/token` etc., so every endpoint is served
// under the path too (a proxy forwarding /sat/... as is), as well as at the root (a proxy stripping the prefix).
// Clients find the documents where their specs look: OpenID Connect Discovery §4 appends the well-known path to
// the issuer, RFC 8414 §3.1 inserts it before the issuer's path.
describe.each(testDatabases())('an ISSUER with a path on %s', (kind) => {
  const ORIGIN = 'https://sat-path.example.test';
  const PATHED = `${ORIGIN}/sat`;
  let db: TestDb;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { ISSUER: PATHED });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  /** The public origin → the test server, the path kept. */
  const local = (url: string | URL) => new URL(String(url).replace(ORIGIN, server.url));

  it("serves the endpoints under the issuer's path and at the root; real clients discover it and get a token", async () => {
    const doc = (await (await fetch(`${server.url}/sat${OIDC_PATH}`)).json()) as Record<string, string>;
    expect(doc).toMatchObject({ issuer: PATHED, token_endpoint: `${PATHED}/token`, jwks_uri: `${PATHED}/jwks` });
    for (const url of [doc.jwks_uri!, `${server.url}/jwks`]) expect((await fetch(local(url))).status).toBe(200);

    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    // openid-client: OpenID Connect discovery (appended well-known path), then the grant at the advertised URL.
    const config = await oidc.discovery(new URL(PATHED), t.client_id, t.client_secret, oidc.ClientSecretBasic(t.client_secret), {
      [oidc.customFetch]: (url: string, options: oidc.CustomFetchOptions) => fetch(local(url), options as RequestInit),
    });
    const tokens = await oidc.clientCredentialsGrant(config, { scope: 'candidates' });
    const claims = JSON.parse(Buffer.from(tokens.access_token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;
    expect(claims.iss).toBe(PATHED);
    const introspected = await oidc.tokenIntrospection(config, tokens.access_token);
    expect(introspected.active).toBe(true);

    // oauth4webapi: RFC 8414 discovery (path-inserted well-known URL), which also checks the document's issuer.
    const issuer = new URL(PATHED);
    const response = await oauth.discoveryRequest(issuer, { algorithm: 'oauth2', [oauth.customFetch]: (url, init) => fetch(local(url), init) });
    expect(new URL(response.url).pathname).toBe('/.well-known/oauth-authorization-server/sat');
    const as = await oauth.processDiscoveryResponse(issuer, response);
    expect(as.token_endpoint).toBe(`${PATHED}/token`);

    // The access log shows the path as asked.
    expect(server.logLines.some((l) => l.includes('"msg":"request"') && l.includes('"path":"/sat/token"'))).toBe(true);
    // Only the issuer's own path is stripped: a look-alike prefix is not.
    expect((await fetch(`${server.url}/satx/jwks`)).status).toBe(404);
  });

  it("knows the server's own top-level paths, which an ISSUER path may not start with", async () => {
    // Every advertised endpoint is under one of them, and each of them is answered at the root (not the JSON 404).
    const doc = (await (await fetch(`${server.url}${OIDC_PATH}`)).json()) as Record<string, unknown>;
    const advertised = Object.entries(doc).filter(([k, v]) => /_(endpoint|uri)$/.test(k) && typeof v === 'string');
    expect(advertised.length).toBeGreaterThanOrEqual(4);
    for (const [, url] of advertised) expect(SERVER_TOP_LEVEL_PATHS).toContain(new URL(url as string).pathname.split('/')[2]);
    const paths = ['/token', '/auth', '/jwks', OIDC_PATH, '/admin', '/healthz', '/readyz', '/metrics', '/secret-scanning/verify', '/credentials/revoke'];
    expect(paths.map((p) => p.split('/')[1]).sort()).toEqual([...SERVER_TOP_LEVEL_PATHS].sort());
    for (const path of paths) {
      const res = await fetch(`${server.url}${path}`);
      expect({ path, status: res.status }).not.toEqual({ path, status: 404 });
    }
    expect(() => loadConfig({ ISSUER: `${ORIGIN}/admin` })).toThrow(/ISSUER: must not have a path whose first segment/);
  });
});
