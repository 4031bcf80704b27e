// SPEC Part 2 "OAuth conformance": one client-authentication rule at the token, introspection and revocation
// endpoints (RFC 6749 §2.3.1, §3.2, §5.2; RFC 9110 §11), and a scope error that says what is wrong.
import * as oidc from 'openid-client';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import type { GeneratedToken } from '../../src/tokens/index.js';

const endpoints = ['/token', '/token/introspection', '/token/revocation'] as const;

describe.each(testDatabases())('client authentication at every OAuth endpoint on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let t: GeneratedToken;
  let accessToken: string;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    t = await makeToken(server.deps, await makeAdmin(server.deps));
    const res = await post('/token', 'grant_type=client_credentials', { authorization: basic(t.client_id, t.client_secret) });
    accessToken = ((await res.json()) as { access_token: string }).access_token;
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  function post(path: string, body: string, headers: Record<string, string> = {}) {
    return fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body,
    });
  }

  /** A request body each endpoint accepts once the client is authenticated. */
  const bodyFor = (path: (typeof endpoints)[number]) =>
    path === '/token' ? 'grant_type=client_credentials' : `token=${encodeURIComponent(accessToken)}`;

  it.each(endpoints)('%s: no client authentication at all is 401 invalid_client with WWW-Authenticate', async (path) => {
    const res = await post(path, bodyFor(path));
    expect(res.status).toBe(401);
    expect(res.headers.get('www-authenticate')).toMatch(/^Basic realm=/);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({ error: 'invalid_client', error_description: 'no client authentication mechanism provided' });
  });

  it.each(endpoints)('%s: client_id= and client_secret= without a value beside Basic are omitted parameters', async (path) => {
    const authorization = basic(t.client_id, t.client_secret);
    for (const extra of ['client_secret=', 'client_id=', 'client_id=&client_secret=']) {
      const res = await post(path, `${bodyFor(path)}&${extra}`, { authorization });
      expect(res.status).toBe(200);
    }
  });

  it.each(endpoints)('%s: a client_secret with a value beside Basic is still two mechanisms (400 invalid_request)', async (path) => {
    const res = await post(path, `${bodyFor(path)}&client_secret=${t.client_secret}`, { authorization: basic(t.client_id, t.client_secret) });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
  });

  it.each(endpoints)('%s: HTTP Basic with any number of spaces after the scheme, in any case', async (path) => {
    const credentials = basic(t.client_id, t.client_secret).slice('Basic '.length);
    for (const authorization of [`Basic  ${credentials}`, `Basic    ${credentials}`, `basic ${credentials}`, `BASIC   ${credentials}`]) {
      const res = await post(path, bodyFor(path), { authorization });
      expect(res.status).toBe(200);
    }
  });

  it.each(endpoints)('%s: a wrong secret is 401 invalid_client, with WWW-Authenticate only when Basic was used (SPEC)', async (path) => {
    const other = await makeToken(server.deps, await makeAdmin(server.deps));
    const viaBasic = await post(path, bodyFor(path), { authorization: basic(t.client_id, other.client_secret) });
    expect(viaBasic.status).toBe(401);
    expect(viaBasic.headers.get('www-authenticate')).toBe(`Basic realm="${server.issuer}", error="invalid_client"`);
    expect(((await viaBasic.json()) as { error: string }).error).toBe('invalid_client');
    const viaForm = await post(path, `${bodyFor(path)}&client_id=${t.client_id}&client_secret=${other.client_secret}`);
    expect(viaForm.status).toBe(401);
    // A real client reads a 401 with a challenge as that challenge (openid-client's WWWAuthenticateChallengeError),
    // not as this invalid_client body: see 'real clients' below.
    expect(viaForm.headers.get('www-authenticate')).toBeNull();
    expect(((await viaForm.json()) as { error: string }).error).toBe('invalid_client');
  });

  // openid-client 6 authenticates with client_secret_post unless told otherwise; a wrong secret must reach its user as
  // the error code (ResponseBodyError.error), which a challenge on that 401 would hide (WWWAuthenticateChallengeError).
  it('real clients: openid-client reads invalid_client from a wrong secret, by post and over Basic', async () => {
    const wrong = (await makeToken(server.deps, await makeAdmin(server.deps))).client_secret; // well-formed, not t's
    const metadata: oidc.ServerMetadata = { issuer: server.issuer, token_endpoint: `${server.url}/token`, introspection_endpoint: `${server.url}/token/introspection` };
    const post = new oidc.Configuration(metadata, t.client_id, wrong);
    const overBasic = new oidc.Configuration(metadata, t.client_id, {}, oidc.ClientSecretBasic(wrong));
    for (const config of [post, overBasic]) oidc.allowInsecureRequests(config);
    const refusal = (p: Promise<unknown>) => p.then(() => 'granted', (err: unknown) => err);

    for (const err of [await refusal(oidc.clientCredentialsGrant(post)), await refusal(oidc.tokenIntrospection(post, accessToken))]) {
      expect(err).toBeInstanceOf(oidc.ResponseBodyError);
      expect([(err as oidc.ResponseBodyError).status, (err as oidc.ResponseBodyError).error]).toEqual([401, 'invalid_client']);
    }
    // Over Basic the challenge is RFC 6749 §5.2's; it carries the error code, as oidc-provider's does.
    const basicErr = await refusal(oidc.clientCredentialsGrant(overBasic));
    expect(basicErr).toBeInstanceOf(oidc.WWWAuthenticateChallengeError);
    expect((basicErr as oidc.WWWAuthenticateChallengeError).cause).toEqual([
      { scheme: 'basic', parameters: { realm: server.issuer, error: 'invalid_client' } },
    ]);
  });

  it.each(endpoints)('%s: another scheme or a broken Basic value is 401 invalid_client', async (path) => {
    for (const authorization of [`Bearer ${accessToken}`, 'Basic !!!', `Basic ${Buffer.from('no-colon').toString('base64')}`]) {
      const res = await post(path, bodyFor(path), { authorization });
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    }
  });

  // node:querystring (ours and oidc-provider's) reads at most 1000 `&`-separated fields and silently drops the rest: a
  // `scope` past them was lost and the token granted every service. Now such a body is refused, never read in part.
  describe('more than 1000 parameters', () => {
    /** `last` as field number `fields` of a body, after `head` and fillers (empty fields, or `p<i>=1` ones). */
    const body = (head: string, last: string, fields: number, filler: 'empty' | 'named') =>
      [head, ...Array.from({ length: fields - 2 }, (_, i) => (filler === 'empty' ? '' : `p${i}=1`)), last].join('&');
    const tooMany = { error: 'invalid_request', error_description: 'too many parameters: a request body may have at most 1000' };

    it('at /token, a scope as field 1000 is read on both paths; as field 1001 the body is 400 invalid_request', async () => {
      const authorization = basic(t.client_id, t.client_secret);
      // Empty fillers leave the plain case (fast path); named ones are unknown parameters (oidc-provider's path).
      for (const filler of ['empty', 'named'] as const) {
        const read = await post('/token', body('grant_type=client_credentials', 'scope=jobs', 1000, filler), { authorization });
        expect({ filler, status: read.status }).toEqual({ filler, status: 200 });
        expect(((await read.json()) as { scope: string }).scope).toBe('jobs');
        const refused = await post('/token', body('grant_type=client_credentials', 'scope=jobs', 1001, filler), { authorization });
        expect({ filler, status: refused.status }).toEqual({ filler, status: 400 });
        expect(refused.headers.get('cache-control')).toBe('no-store');
        expect(await refused.json()).toEqual(tooMany);
      }
    });

    it.each(['/token/introspection', '/token/revocation'])('at %s, the same rule', async (path) => {
      const authorization = basic(t.client_id, t.client_secret);
      const token = `token=${encodeURIComponent(accessToken)}`;
      expect((await post(path, body('token_type_hint=access_token', token, 1000, 'named'), { authorization })).status).toBe(200);
      const refused = await post(path, body('token_type_hint=access_token', token, 1001, 'named'), { authorization });
      expect(refused.status).toBe(400);
      expect(await refused.json()).toEqual(tooMany);
    });
  });

  describe('scope syntax at /token', () => {
    const request = (scope: string) =>
      post('/token', `grant_type=client_credentials&scope=${encodeURIComponent(scope)}`, { authorization: basic(t.client_id, t.client_secret) });

    it('says that values are separated by a single space when two spaces are sent', async () => {
      const res = await request('candidates  jobs');
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: string; error_description: string };
      expect(body.error).toBe('invalid_scope');
      expect(body.error_description).toMatch(/single space/);
      expect(body.error_description).not.toMatch(/invalid characters/);
    });

    it('says so for a leading or trailing space, and names a character that is not allowed', async () => {
      const leading = (await (await request(' jobs')).json()) as { error: string; error_description: string };
      expect(leading).toMatchObject({ error: 'invalid_scope', error_description: expect.stringMatching(/start or end with a space/) });
      const quote = (await (await request('jobs "x"')).json()) as { error: string; error_description: string };
      expect(quote).toMatchObject({ error: 'invalid_scope', error_description: expect.stringContaining('U+0022') });
    });
  });
});
