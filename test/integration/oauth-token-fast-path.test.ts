// The token endpoint's fast path (src/oauth/provider.ts tokenFastPath) against oidc-provider's own pipeline:
// the same request answered both ways must give the same status, headers, body and JWT (apart from the values
// that differ per token), and every request the fast path does not take must be answered by the provider.
import { decodeJwt, decodeProtectedHeader } from 'jose';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import type { Actor } from '../../src/tokens/index.js';

/** Headers that differ from response to response whatever path answered. */
const perResponse = new Set(['date', 'x-request-id', 'content-length', 'connection', 'keep-alive']);

function headersOf(res: Response): Record<string, string> {
  return Object.fromEntries([...res.headers].filter(([name]) => !perResponse.has(name)));
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

  const post = (body: string, headers: Record<string, string>) =>
    fetch(`${server.url}/token`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });

  // `basic …` (lower case) is valid HTTP Basic for oidc-provider, and not the exact form the fast path takes.
  const viaProvider = (authorization: string) => authorization.replace(/^Basic /, 'basic ');

  it.each([
    ['no scope', 'grant_type=client_credentials'],
    ['a scope subset', 'grant_type=client_credentials&scope=jobs'],
    ['two scopes', 'scope=contacts+candidates&grant_type=client_credentials'],
  ])('answers exactly as oidc-provider does, with %s', async (_label, body) => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs', 'contacts'] });
    const auth = basic(t.client_id, t.client_secret);
    const fast = await post(body, { authorization: auth });
    const slow = await post(body, { authorization: viaProvider(auth) });
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

  it('leaves every other request to oidc-provider, body included', async () => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
    const auth = { authorization: basic(t.client_id, t.client_secret) };
    // Parameters it does not know are ignored by the provider; a repeated scope is collapsed.
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
    // A browser (Origin): the provider's CORS rules, whichever way the request is written.
    const origin = 'https://app.example';
    const cors = await post('grant_type=client_credentials', { ...auth, origin });
    const corsSlow = await post('grant_type=client_credentials', { authorization: viaProvider(auth.authorization), origin });
    expect(cors.status).toBe(corsSlow.status);
    expect(headersOf(cors)).toEqual(headersOf(corsSlow));
  });

  it('answers failures as oidc-provider does: wrong secret, scope outside the token, revoked token', async () => {
    const t = await makeToken(server.deps, admin, { services: ['candidates', 'jobs'] });
    const other = await makeToken(server.deps, admin, { services: ['jobs'] });
    const wrong = basic(t.client_id, other.client_secret);
    const fastWrong = await post('grant_type=client_credentials', { authorization: wrong });
    const slowWrong = await post('grant_type=client_credentials', { authorization: viaProvider(wrong) });
    expect(fastWrong.status).toBe(401);
    expect(headersOf(fastWrong)).toEqual(headersOf(slowWrong));
    expect(await fastWrong.json()).toEqual(await slowWrong.json());

    const auth = basic(t.client_id, t.client_secret);
    const [fastScope, slowScope] = [
      await post('grant_type=client_credentials&scope=employees', { authorization: auth }),
      await post('grant_type=client_credentials&scope=employees', { authorization: viaProvider(auth) }),
    ];
    expect(fastScope.status).toBe(400);
    expect(await fastScope.json()).toEqual(await slowScope.json());

    await server.deps.db.knex('tokens').where({ id: t.id }).delete();
    const revoked = await post('grant_type=client_credentials', { authorization: auth });
    expect(revoked.status).toBe(401);
    expect(((await revoked.json()) as { error: string }).error).toBe('invalid_client');
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

  it('counts fast-path tokens in the metrics', async () => {
    const t = await makeToken(server.deps, admin);
    const ok = async () => {
      const text = await (await fetch(`${server.url}/metrics`)).text();
      const m = /^sat_token_requests_total\{outcome="ok"\} (\d+)/m.exec(text);
      return m ? Number(m[1]) : 0;
    };
    const before = await ok();
    for (let i = 0; i < 3; i++) {
      const res = await post('grant_type=client_credentials', { authorization: basic(t.client_id, t.client_secret) });
      expect(res.status).toBe(200);
    }
    expect((await ok()) - before).toBe(3);
  });
});
