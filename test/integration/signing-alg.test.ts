import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { createTestDb, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe('SIGNING_ALG=RS256', () => {
  let db: TestDb;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb('embedded');
    server = await startServer(db, { SIGNING_ALG: 'RS256', ACCESS_TOKEN_TTL_SECONDS: '300' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('signs with an RSA key from the database and honours the configured lifetime', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
      body: 'grant_type=client_credentials',
    });
    const body = (await res.json()) as { access_token: string; expires_in: number };
    expect(res.status).toBe(200);
    expect(body.expires_in).toBe(300);
    expect(decodeProtectedHeader(body.access_token)).toMatchObject({ alg: 'RS256', typ: 'at+jwt' });
    const { payload } = await jwtVerify(body.access_token, createRemoteJWKSet(new URL(`${server.issuer}/jwks`)), {
      issuer: server.issuer,
      algorithms: ['RS256'],
    });
    expect(payload.exp! - payload.iat!).toBe(300);
    const jwks = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: Array<Record<string, unknown>> };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]).toMatchObject({ kty: 'RSA', alg: 'RS256', use: 'sig' });
    for (const privatePart of ['d', 'p', 'q', 'dp', 'dq', 'qi']) expect(jwks.keys[0]![privatePart]).toBeUndefined();
  });
});
