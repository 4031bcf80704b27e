import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { packageRoot } from '../../src/config/index.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken, setTokenExpiry } from '../support/fixtures.js';
import { metricValue, scrape } from '../support/metrics.js';
import { startServer, type TestServer } from '../support/server.js';
import type { Actor } from '../../src/tokens/index.js';

const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();

describe.each(testDatabases())('OAuth token endpoint on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let admin: Actor;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, {}, { jobs: 'manual' }); // background jobs run when a test says so
    admin = await makeAdmin(server.deps);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const tokenRequest = (body: Record<string, string>, headers: Record<string, string> = {}, path = '/token') =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: form(body),
    });

  it('publishes both discovery documents with the contract fields', async () => {
    for (const path of ['/.well-known/oauth-authorization-server', '/.well-known/openid-configuration']) {
      const res = await fetch(server.url + path);
      expect(res.status).toBe(200);
      const doc = (await res.json()) as Record<string, unknown>;
      expect(doc.issuer).toBe(server.issuer);
      expect(doc.token_endpoint).toBe(`${server.issuer}/token`);
      expect(doc.jwks_uri).toBe(`${server.issuer}/jwks`);
      expect(doc.introspection_endpoint).toBe(`${server.issuer}/token/introspection`);
      expect(doc.revocation_endpoint).toBe(`${server.issuer}/token/revocation`);
      expect(doc.grant_types_supported).toEqual(['client_credentials']);
      expect(doc.token_endpoint_auth_methods_supported).toEqual(
        expect.arrayContaining(['client_secret_basic', 'client_secret_post']),
      );
      // private_key_jwt (docs/sender-constrained.md), never client_secret_jwt: secrets are stored hashed.
      expect(doc.token_endpoint_auth_methods_supported).toContain('private_key_jwt');
      expect(doc.token_endpoint_auth_methods_supported).not.toContain('client_secret_jwt');
      expect(doc.scopes_supported).toEqual(['candidates', 'employees', 'jobs', 'clients', 'contacts', 'master-lists']);
      // oidc-provider's authorization endpoint, which no client may use (docs/keys.md "Discovery").
      expect(doc.authorization_endpoint).toBe(`${server.issuer}/auth`);
    }
    // Endpoints follow ISSUER, not the Host header of the request.
    const viaOtherHost = (await (await fetch(server.url.replace('127.0.0.1', 'localhost') + '/.well-known/openid-configuration')).json()) as Record<string, unknown>;
    expect(viaOtherHost.token_endpoint).toBe(`${server.issuer}/token`);
    expect(viaOtherHost.jwks_uri).toBe(`${server.issuer}/jwks`);
  });

  it('issues an RFC 9068 JWT over Basic auth that verifies against the JWKS', async () => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
    const res = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toContain('no-store');
    const body = (await res.json()) as Record<string, unknown>;
    expect(body).toMatchObject({ token_type: 'Bearer', expires_in: 900, scope: 'candidates jobs' });
    const jwt = body.access_token as string;

    const header = decodeProtectedHeader(jwt);
    expect(header).toMatchObject({ typ: 'at+jwt', alg: 'ES256' });
    const jwks = (await (await fetch(`${server.issuer}/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys.map((k) => k.kid)).toContain(header.kid);
    for (const k of jwks.keys) expect(k.d).toBeUndefined(); // public keys only

    const { payload } = await jwtVerify(jwt, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
      issuer: server.issuer,
      audience: `${server.issuer}/api`,
      typ: 'at+jwt',
    });
    expect(payload.sub).toBe(t.client_id);
    expect(payload.client_id).toBe(t.client_id);
    expect(payload.org_id).toBe(admin.organisation_id);
    expect(payload.scope).toBe('candidates jobs');
    expect(typeof payload.jti).toBe('string');
    expect(payload.exp! - payload.iat!).toBe(900);
    expect(Math.abs(payload.iat! - Date.now() / 1000)).toBeLessThan(5);
  });

  it('accepts client_secret_post', async () => {
    const t = await makeToken(server.deps, admin, { services: ['employees'] });
    const res = await tokenRequest({ grant_type: 'client_credentials', client_id: t.client_id, client_secret: t.client_secret });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { scope: string }).scope).toBe('employees');
  });

  describe('scope rules', () => {
    it('grants a requested subset, and every service when scope is absent or empty', async () => {
      const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs', 'contacts'] });
      const auth = { authorization: basic(t.client_id, t.client_secret) };
      const subset = await tokenRequest({ grant_type: 'client_credentials', scope: 'jobs' }, auth);
      expect(((await subset.json()) as { scope: string }).scope).toBe('jobs');
      const two = await tokenRequest({ grant_type: 'client_credentials', scope: 'contacts candidates' }, auth);
      expect(((await two.json()) as { scope: string }).scope.split(' ').sort()).toEqual(['candidates', 'contacts']);
      const empty = await tokenRequest({ grant_type: 'client_credentials', scope: '' }, auth);
      expect(((await empty.json()) as { scope: string }).scope).toBe('candidates jobs contacts');
    });

    it.each([['employees'], ['jobs employees'], ['no-such-service'], ['openid'], ['jobs offline_access']])(
      'refuses scope "%s" outside the token services with invalid_scope',
      async (scope) => {
        const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
        const res = await tokenRequest({ grant_type: 'client_credentials', scope }, { authorization: basic(t.client_id, t.client_secret) });
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toBe('invalid_scope');
      },
    );
  });

  describe('invalid_client', () => {
    it('answers 401 with WWW-Authenticate for a wrong secret, a malformed secret and an unknown client over Basic', async () => {
      const t = await makeToken(server.deps, admin);
      const other = await makeToken(server.deps, admin);
      const cases = [
        basic(t.client_id, other.client_secret), // well-formed, wrong
        basic(t.client_id, t.client_secret.slice(0, -1) + (t.client_secret.endsWith('A') ? 'B' : 'A')), // checksum fails
        basic(t.client_id, 'not-a-secret'),
        basic('sat_AAAAAAAAAAAAAAAAAAAAAA', t.client_secret),
        basic('someone-else', t.client_secret),
      ];
      for (const authorization of cases) {
        const res = await tokenRequest({ grant_type: 'client_credentials' }, { authorization });
        expect(res.status).toBe(401);
        expect(res.headers.get('www-authenticate')).toMatch(/^Basic /);
        expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
      }
    });

    it('answers 401 for a wrong secret posted in the form', async () => {
      const t = await makeToken(server.deps, admin);
      const other = await makeToken(server.deps, admin);
      const res = await tokenRequest({ grant_type: 'client_credentials', client_id: t.client_id, client_secret: other.client_secret });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    });

    it('refuses an expired token at once, with no clock tolerance', async () => {
      const t = await makeToken(server.deps, admin);
      await setTokenExpiry(server.deps, t.id, new Date(Date.now() - 1000));
      const res = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    });

    it('refuses a deleted token on the very next request', async () => {
      const t = await makeToken(server.deps, admin);
      const auth = { authorization: basic(t.client_id, t.client_secret) };
      expect((await tokenRequest({ grant_type: 'client_credentials' }, auth)).status).toBe(200);
      await server.deps.db.knex('tokens').where({ id: t.id }).delete();
      const res = await tokenRequest({ grant_type: 'client_credentials' }, auth);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    });
  });

  it('caps the access token lifetime at the token expiry', async () => {
    const t = await makeToken(server.deps, admin);
    const expiresAt = new Date(Date.now() + 100_000);
    await setTokenExpiry(server.deps, t.id, expiresAt);
    const res = await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect(body.expires_in).toBeLessThanOrEqual(100);
    expect(body.expires_in).toBeGreaterThan(90);
    const { payload } = await jwtVerify(body.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)));
    expect(payload.exp).toBe(Math.floor(expiresAt.getTime() / 1000));
  });

  it('refuses other grants, malformed requests and the endpoints we do not serve', async () => {
    const t = await makeToken(server.deps, admin);
    const auth = { authorization: basic(t.client_id, t.client_secret) };
    for (const grant_type of ['password', 'authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code']) {
      const res = await tokenRequest({ grant_type, username: 'u', password: 'p', code: 'c', refresh_token: 'r' }, auth);
      expect(res.status).toBe(400);
      expect(['unsupported_grant_type', 'unauthorized_client']).toContain(((await res.json()) as { error: string }).error);
    }
    const noGrant = await tokenRequest({}, auth);
    expect(noGrant.status).toBe(400);
    expect(((await noGrant.json()) as { error: string }).error).toBe('invalid_request');
    const otherResource = await tokenRequest({ grant_type: 'client_credentials', resource: 'https://elsewhere.example/' }, auth);
    expect(otherResource.status).toBe(400);
    for (const path of ['/reg', '/me', '/session/end', '/device/auth', '/request', '/backchannel']) {
      expect((await fetch(server.url + path)).status).toBe(404);
    }
    expect((await fetch(server.url + '/auth')).status).toBe(400); // exists for discovery; refuses every request
    expect((await fetch(`${server.url}/token`)).status).toBe(405);
  });

  it('writes error_description only with the characters RFC 6749 §5.2 allows, whatever the request echoed', async () => {
    const t = await makeToken(server.deps, admin);
    const auth = { authorization: basic(t.client_id, t.client_secret) };
    const answers = [
      await tokenRequest({ grant_type: 'client_credentials', scope: 'jobs  candidates' }, auth),
      await tokenRequest({ grant_type: 'client_credentials', scope: ' jobs' }, auth),
      await tokenRequest({ grant_type: 'client_credentials', scope: 'jöbs' }, auth),
      await tokenRequest({ grant_type: 'client_credentials' }, { ...auth, origin: 'https://a"b\\c.example' }),
      await tokenRequest({ grant_type: 'x"ö\\' }, auth),
    ];
    for (const res of answers) {
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: string; error_description: string };
      // error_description = 1*( %x20-21 / %x23-5B / %x5D-7E ): printable ASCII without '"' and '\'.
      expect(body.error_description).toMatch(/^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/);
      expect(body.error).toMatch(/^[\x20-\x21\x23-\x5B\x5D-\x7E]+$/);
    }
  });

  it('keeps secrets out of the database and the logs', async () => {
    const t = await makeToken(server.deps, admin);
    await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
    await tokenRequest({ grant_type: 'client_credentials', client_id: t.client_id, client_secret: t.client_secret + 'x' });
    const rows = await server.deps.db.knex('tokens').select('*');
    const dump = JSON.stringify(rows);
    expect(dump).not.toContain(t.client_secret);
    expect(dump).not.toContain(t.client_secret.slice(5, 40));
    const row = rows.find((r: { id: string }) => r.id === t.id) as Record<string, unknown>;
    expect(row.secret_hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(server.logLines.join('\n')).not.toContain(t.client_secret.slice(5, 40));
  });

  it('answers health, readiness and metrics', async () => {
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toEqual({ status: 'ready', database: 'ok' });
    // A database that answers without our tables (dropped and created again empty under the server) is not ready,
    // and what needs them answers 503 with Retry-After as in an outage: no 500, no SQL or stack in the log.
    const t = await makeToken(server.deps, admin);
    const errorsBefore = server.logLines.filter((l) => l.includes('"level":"error"')).length;
    await server.deps.db.knex.raw('alter table tokens rename to tokens_away');
    try {
      const empty = await fetch(`${server.url}/readyz`);
      expect([empty.status, await empty.json()]).toEqual([503, { status: 'unavailable', database: 'schema_missing' }]);
      for (const path of ['/token', '/token/introspection']) {
        const res = await tokenRequest({ grant_type: 'client_credentials', token: 'x' }, { authorization: basic(t.client_id, t.client_secret) }, path);
        expect({ path, status: res.status, retryAfter: res.headers.get('retry-after') }).toEqual({ path, status: 503, retryAfter: expect.any(String) });
      }
      // One line for the outage, as for a database out of reach; no statement, no stack.
      const errors = server.logLines.filter((l) => l.includes('"level":"error"')).slice(errorsBefore);
      expect(errors).toEqual([expect.stringContaining('database unavailable')]);
      expect(errors[0]).not.toMatch(/select |insert |"stack"/i);
    } finally {
      await server.deps.db.knex.raw('alter table tokens_away rename to tokens');
    }
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    expect(metrics).toMatch(/sat_token_requests_total\{outcome="ok",path="fast"\} \d+/);
    expect(metrics).toMatch(/sat_token_requests_total\{outcome="invalid_client",path="provider"\} \d+/);
    expect(metrics).toContain('sat_token_request_duration_seconds_bucket');
    expect(metrics).toContain('process_cpu_seconds_total');
  });

  it('records last use without holding up the response', async () => {
    const t = await makeToken(server.deps, admin);
    await tokenRequest({ grant_type: 'client_credentials' }, { authorization: basic(t.client_id, t.client_secret) });
    const before = await server.deps.db.knex('tokens').where({ id: t.id }).first();
    expect(before.last_used_at).toBeNull(); // not written by the request itself
    await server.runJob('flush-last-used'); // every 5 s in production
    const after = await server.deps.db.knex('tokens').where({ id: t.id }).first();
    expect(after.last_used_at).toBeInstanceOf(Date);
    expect(Math.abs(after.last_used_at.getTime() - server.clock.now().getTime())).toBeLessThan(15_000);
  });
});

// A service taken out of the catalogue (CONFIG_FILE `services`) after tokens were made with it: those tokens keep
// working for their other services, on the fast path and in oidc-provider's pipeline; a token left with none gets
// invalid_scope. (oidc-provider refused every such client as invalid_client_metadata, and the fast path fell back.)
describe.each(testDatabases())('a service removed from the catalogue on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('is no longer granted; the token keeps its other services; with none left, invalid_scope', async () => {
    db = await createTestDb(kind);
    server = await startServer(db, {}, { jobs: 'manual' });
    const admin = await makeAdmin(server.deps);
    const both = await makeToken(server.deps, admin, { services: ['jobs', 'contacts'] });
    const only = await makeToken(server.deps, admin, { services: ['contacts'] });
    await server.close();
    server = undefined;

    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-catalogue-'));
    const configFile = path.join(dir, 'config.json');
    const services = JSON.parse(readFileSync(path.join(packageRoot(), 'config', 'default.json'), 'utf8')).services as Array<{ id: string }>;
    writeFileSync(configFile, JSON.stringify({ services: services.filter((s) => s.id !== 'contacts') }));
    try {
      server = await startServer(db, { CONFIG_FILE: configFile }, { jobs: 'manual' });
      const url = server.url;
      const token = (t: { client_id: string; client_secret: string }, body: string) =>
        fetch(`${url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) }, body });
      const before = metricValue(await scrape(url), 'sat_token_fast_path_fallbacks_total');
      // The fast path, and oidc-provider's pipeline (an extra parameter sends the request there).
      for (const body of ['grant_type=client_credentials', 'grant_type=client_credentials&extra=1']) {
        const res = await token(both, body);
        expect(res.status).toBe(200);
        const { access_token, scope } = (await res.json()) as { access_token: string; scope: string };
        expect(scope).toBe('jobs');
        expect(JSON.parse(Buffer.from(access_token.split('.')[1]!, 'base64url').toString()).scope).toBe('jobs');
      }
      expect(metricValue(await scrape(url), 'sat_token_fast_path_fallbacks_total')).toBe(before);
      for (const [t, body] of [[both, 'grant_type=client_credentials&scope=contacts'], [only, 'grant_type=client_credentials']] as const) {
        const res = await token(t, body);
        expect(res.status).toBe(400);
        expect(((await res.json()) as { error: string }).error).toBe('invalid_scope');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
