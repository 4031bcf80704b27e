// The token endpoint's fast path (src/oauth/fast-path.ts) against oidc-provider's own pipeline: the same request
// answered both ways must give the same status, headers, body and JWT (apart from the values that differ per
// token); /metrics must say which path answered, and the tests fail when the fast path silently falls back.
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createLogger } from '../../src/log.js';
import { createClientFactory } from '../../src/oauth/clients.js';
import { checkFastPath, createTokenFastPath, type FastPathShared } from '../../src/oauth/fast-path.js';
import { createProvider } from '../../src/oauth/provider.js';
import type { Actor } from '../../src/tokens/index.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { metricValue, scrape } from '../support/metrics.js';
import { startServer, type TestServer } from '../support/server.js';

/** Headers that differ from response to response whatever path answered. */
const perResponse = new Set(['date', 'x-request-id', 'content-length', 'connection', 'keep-alive']);

function headersOf(res: Response): Record<string, string> {
  return Object.fromEntries([...res.headers].filter(([name]) => !perResponse.has(name)));
}

/** Token requests answered so far, by path, and the fast path's fallbacks. */
async function paths(url: string) {
  const text = await scrape(url);
  return {
    fast: metricValue(text, 'sat_token_requests_total', { outcome: 'ok', path: 'fast' }),
    provider: metricValue(text, 'sat_token_requests_total', { outcome: 'ok', path: 'provider' }),
    fallbacks: metricValue(text, 'sat_token_fast_path_fallbacks_total'),
    enabled: metricValue(text, 'sat_token_fast_path_enabled'),
  };
}

describe.each(testDatabases())('token endpoint fast path on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let admin: Actor;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    admin = await makeAdmin(server.deps);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const post = (body: string, headers: Record<string, string>, url = server.url) =>
    fetch(`${url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });

  it('answers plain requests on the fast path, with no fallback (metrics say which path answered)', async () => {
    const t = await makeToken(server.deps, admin);
    const before = await paths(server.url);
    expect(before.enabled).toBe(1);
    for (const body of ['grant_type=client_credentials', 'grant_type=client_credentials&scope=jobs', `grant_type=client_credentials&client_id=`]) {
      const res = await post(body, { authorization: basic(t.client_id, t.client_secret) });
      expect(res.status).toBe(200);
    }
    const posted = await post(`grant_type=client_credentials&client_id=${t.client_id}&client_secret=${t.client_secret}`, {});
    expect(posted.status).toBe(200);
    const after = await paths(server.url);
    expect(after.fast - before.fast).toBe(4);
    expect(after.provider - before.provider).toBe(0);
    expect(after.fallbacks - before.fallbacks).toBe(0);
  });

  // An unknown parameter (`x=1`) is ignored by oidc-provider and is not the plain case: the provider answers it.
  it.each([
    ['no scope', 'grant_type=client_credentials'],
    ['a scope subset', 'grant_type=client_credentials&scope=jobs'],
    ['two scopes', 'scope=contacts+candidates&grant_type=client_credentials'],
  ])('answers exactly as oidc-provider does, with %s', async (_label, body) => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs', 'contacts'] });
    const auth = { authorization: basic(t.client_id, t.client_secret) };
    const before = await paths(server.url);
    const fast = await post(body, auth);
    const slow = await post(`${body}&x=1`, auth);
    const after = await paths(server.url);
    expect([after.fast - before.fast, after.provider - before.provider]).toEqual([1, 1]);
    expect(fast.status).toBe(200);
    expect(slow.status).toBe(200);
    expect(headersOf(fast)).toEqual(headersOf(slow));

    const a = (await fast.json()) as Record<string, unknown>;
    const b = (await slow.json()) as Record<string, unknown>;
    expect(Object.keys(a)).toEqual(Object.keys(b));
    expect({ ...a, access_token: undefined }).toEqual({ ...b, access_token: undefined });

    const [ja, jb] = [a.access_token as string, b.access_token as string];
    expect(decodeProtectedHeader(ja)).toEqual(decodeProtectedHeader(jb));
    const [pa, pb] = [decodeJwt(ja), decodeJwt(jb)];
    expect(Object.keys(pa)).toEqual(Object.keys(pb));
    const fixed = (p: Record<string, unknown>) => ({ ...p, jti: undefined, iat: undefined, exp: undefined });
    expect(fixed(pa)).toEqual(fixed(pb));
    expect(pa.jti).not.toEqual(pb.jti);
    expect(pa.exp! - pa.iat!).toBe(pb.exp! - pb.iat!);
    expect(Math.abs(pa.iat! - pb.iat!)).toBeLessThanOrEqual(2);
  });

  // One decoding (src/oauth/form.ts): oidc-provider is handed the body as the edge decoded it. It used to get the bytes
  // as sent and read them as UTF-8 with the BOM kept: "missing required parameter 'grant_type'" on its path only.
  it.each([
    ['a UTF-8 BOM', (text: string) => Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), undefined],
    ['charset=utf-16le', (text: string) => Buffer.from(text, 'utf16le'), 'utf-16le'],
    ['charset=ISO-8859-1', (text: string) => Buffer.from(text, 'latin1'), 'ISO-8859-1'],
  ])('decodes a body with %s once, for both paths', async (_label, encode, charset) => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs', 'contacts'] });
    const headers = {
      authorization: basic(t.client_id, t.client_secret),
      'content-type': `application/x-www-form-urlencoded${charset ? `; charset=${charset}` : ''}`,
    };
    const send = (text: string) => fetch(`${server.url}/token`, { method: 'POST', headers, body: encode(text) });
    const before = await paths(server.url);
    const fast = await send('grant_type=client_credentials&scope=jobs');
    const slow = await send('grant_type=client_credentials&scope=jobs&x=1');
    const after = await paths(server.url);
    expect([after.fast - before.fast, after.provider - before.provider]).toEqual([1, 1]);
    expect([fast.status, slow.status]).toEqual([200, 200]);
    expect(headersOf(fast)).toEqual(headersOf(slow));
    const [a, b] = [(await fast.json()) as Record<string, unknown>, (await slow.json()) as Record<string, unknown>];
    expect({ ...a, access_token: undefined }).toEqual({ ...b, access_token: undefined });
    expect(a.scope).toBe('jobs');
  });

  it('drops one leading BOM only: after two, the first name starts with U+FEFF for the provider too', async () => {
    const t = await makeToken(server.deps, admin);
    const bom = Buffer.from([0xef, 0xbb, 0xbf]);
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
      body: Buffer.concat([bom, bom, Buffer.from('grant_type=client_credentials')]),
    });
    expect(res.status).toBe(400);
    expect(await res.json()).toEqual({ error: 'invalid_request', error_description: "missing required parameter 'grant_type'" });
  });

  it('leaves every other request to oidc-provider', async () => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
    const auth = { authorization: basic(t.client_id, t.client_secret) };
    const before = await paths(server.url);
    // Parameters it does not know are ignored by the provider; a repeated scope value is collapsed (on either path).
    const extra = await post('grant_type=client_credentials&foo=bar', auth);
    expect(extra.status).toBe(200);
    const dup = await post('grant_type=client_credentials&scope=jobs+jobs', auth);
    expect(((await dup.json()) as { scope: string }).scope).toBe('jobs');
    // Twice the same parameter: the provider's invalid_request.
    const twice = await post('grant_type=client_credentials&grant_type=client_credentials', auth);
    expect(twice.status).toBe(400);
    expect(((await twice.json()) as { error: string }).error).toBe('invalid_request');
    // A charset parameter on the content type is fine either way.
    const charset = await post('grant_type=client_credentials', { ...auth, 'content-type': 'application/x-www-form-urlencoded; charset=UTF-8' });
    expect(charset.status).toBe(200);
    // Another grant: the provider's unsupported_grant_type, after authenticating the client.
    const password = await post('grant_type=password&username=a&password=b', auth);
    expect(password.status).toBe(400);
    expect(((await password.json()) as { error: string }).error).toBe('unsupported_grant_type');
    // A browser (Origin): the provider's CORS rules (its default clientBasedCORS allows no origin).
    const cors = await post('grant_type=client_credentials', { ...auth, origin: 'https://app.example' });
    expect(cors.status).toBe(400);
    expect(await cors.json()).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('origin https://app.example not allowed') });
    const after = await paths(server.url);
    expect(after.fast - before.fast).toBe(2); // dup, charset
    expect(after.provider - before.provider).toBe(1); // extra
    expect(after.fallbacks - before.fallbacks).toBe(0);
  });

  it('answers a scope outside the token as oidc-provider does, from the same scope policy', async () => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
    const auth = { authorization: basic(t.client_id, t.client_secret) };
    const [plain, viaProvider] = [
      await post('grant_type=client_credentials&scope=employees+jobs', auth),
      await post('grant_type=client_credentials&scope=employees+jobs&x=1', auth),
    ];
    expect(plain.status).toBe(400);
    expect(await plain.json()).toEqual({ error: 'invalid_scope', error_description: 'requested scope is not allowed', scope: 'employees' });
    expect(await viaProvider.json()).toEqual({ error: 'invalid_scope', error_description: 'requested scope is not allowed', scope: 'employees' });
    // The scope echoed keeps to RFC 6749's characters whatever was asked (a control character, an invalid byte).
    // The edge refuses these before either path (checkScopeSyntax); the provider path echoes only scopes that
    // passed it, printable ASCII, as above.
    for (const scope of ['jobs%00', 'jobs%FF', '%E2%80%AEjobs']) {
      const res = await post(`grant_type=client_credentials&scope=${scope}`, auth);
      const body = (await res.json()) as Record<string, string>;
      expect({ scope, status: res.status, error: body.error }).toEqual({ scope, status: 400, error: 'invalid_scope' });
      for (const text of Object.values(body)) expect(text).toMatch(/^[\x20-\x21\x23-\x5B\x5D-\x7E]*$/);
    }
  });

  it('gives each of many concurrent requests its own client, found or not (lookups share statements)', async () => {
    const owner = await makeAdmin(server.deps); // its own organisation: the active-token limit stays out of the way
    const tokens = await Promise.all(Array.from({ length: 12 }, () => makeToken(server.deps, owner, { services: ['jobs'] })));
    const revoked = tokens[11]!;
    await server.deps.db.knex('tokens').where({ id: revoked.id }).delete();
    const requests = [
      ...tokens.flatMap((t) => [t, t]).map((t) => ({ auth: basic(t.client_id, t.client_secret), expect: t === revoked ? 401 : 200, id: t.client_id })),
      { auth: basic(tokens[0]!.client_id, tokens[1]!.client_secret), expect: 401, id: tokens[0]!.client_id },
      { auth: basic('sat_' + 'A'.repeat(22), tokens[1]!.client_secret), expect: 401, id: '' },
    ];
    const answers = await Promise.all(requests.map((r) => post('grant_type=client_credentials', { authorization: r.auth })));
    for (const [i, res] of answers.entries()) {
      expect(res.status).toBe(requests[i]!.expect);
      const body = (await res.json()) as { access_token?: string };
      if (res.status === 200) expect(decodeJwt(body.access_token!).client_id).toBe(requests[i]!.id);
    }
  });

  describe('startup self-check', () => {
    /** The provider of a fresh build, and what the fast path shares with it. */
    async function shared(): Promise<{ shared: FastPathShared; lines: string[] }> {
      const lines: string[] = [];
      const log = createLogger('debug', {}, (line) => lines.push(line));
      const { provider } = await createProvider(server.deps, server.oauth.keySet, { onTokenIssued: () => undefined });
      return {
        lines,
        shared: {
          provider,
          audience: server.deps.config.apiAudience,
          resourceServerInfo: (scope) => ({ scope, audience: server.deps.config.apiAudience, accessTokenFormat: 'jwt', accessTokenTTL: 60 }),
          clientFor: createClientFactory(provider),
          issued: () => undefined,
          probeService: 'jobs',
          log,
        },
      };
    }

    it('passes on the installed oidc-provider', async () => {
      const { shared: s } = await shared();
      expect(await checkFastPath(s)).toBeUndefined();
      expect((await createTokenFastPath(s, true)).enabled).toBe(true);
    });

    it.each([
      ['a token model whose constructor throws', { ClientCredentials: class { constructor() { throw new Error('renamed internal'); } } }],
      ['a token model without save()', { ClientCredentials: class {} }],
      ['no ResourceServer', { ResourceServer: undefined }],
    ])('turns the fast path off with a warning for %s', async (_label, members) => {
      const { shared: s, lines } = await shared();
      for (const [name, value] of Object.entries(members)) Object.defineProperty(s.provider, name, { value, configurable: true });
      expect(await checkFastPath(s)).toEqual(expect.any(String));
      const fastPath = await createTokenFastPath(s, true);
      expect(fastPath.enabled).toBe(false);
      expect(lines.join('\n')).toMatch(/"level":"warn".*token fast path disabled/);
    });
  });
});

describe.each(testDatabases())('TOKEN_FAST_PATH=off on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { TOKEN_FAST_PATH: 'off' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('sends every token request through oidc-provider', async () => {
    const t = await makeToken(server.deps, await makeAdmin(server.deps));
    const before = await paths(server.url);
    expect(before.enabled).toBe(0);
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
      body: 'grant_type=client_credentials',
    });
    expect(res.status).toBe(200);
    const after = await paths(server.url);
    expect([after.fast - before.fast, after.provider - before.provider, after.fallbacks - before.fallbacks]).toEqual([0, 1, 0]);
  });

  it('reads a body with a UTF-8 BOM or in UTF-16LE as the fast path would (docs/oauth.md: the same answers)', async () => {
    const t = await makeToken(server.deps, await makeAdmin(server.deps));
    const authorization = basic(t.client_id, t.client_secret);
    const text = 'grant_type=client_credentials&scope=jobs';
    for (const [body, type] of [
      [Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(text)]), 'application/x-www-form-urlencoded'],
      [Buffer.from(text, 'utf16le'), 'application/x-www-form-urlencoded; charset=utf-16le'],
    ] as const) {
      const res = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': type, authorization }, body });
      expect({ type, status: res.status }).toEqual({ type, status: 200 });
      expect(((await res.json()) as { scope: string }).scope).toBe('jobs');
    }
  });

  it('treats an empty parameter as omitted, also beside the same parameter with a value (RFC 6749 §3.2, as the fast path)', async () => {
    const t = await makeToken(server.deps, await makeAdmin(server.deps));
    const authorization = basic(t.client_id, t.client_secret);
    for (const body of [
      'grant_type=client_credentials&scope=jobs&scope=',
      'grant_type=client_credentials&scope=&scope=jobs',
      'grant_type=client_credentials&grant_type=&scope=jobs',
      `grant_type=client_credentials&scope=jobs&resource=&resource=${encodeURIComponent(`${server.issuer}/api`)}`,
      'grant_type=client_credentials&scope=jobs&client_secret=&client_id=',
      'grant_type=client_credentials&scope=jobs&empty',
    ]) {
      const res = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization }, body });
      const answer = (await res.json()) as { scope?: string; error?: string; error_description?: string };
      expect({ body, status: res.status, scope: answer.scope, error: answer.error_description }).toEqual({ body, status: 200, scope: 'jobs', error: undefined });
    }
  });
});
