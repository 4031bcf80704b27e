// SPEC Part 2: a client assertion jti and a DPoP proof jti are refused on every instance, not only the one that saw
// them first (oidc-provider's ReplayDetection stored in PostgreSQL). Two servers on one database.
import http from 'node:http';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { assertion, clientKey, dpopProof } from '../support/sender.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** POST /token to `url` with a chosen Host header (fetch does not let us set it): both servers then see one URL. */
function postToken(url: string, host: string, body: string, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/token`, { method: 'POST', headers: { host, 'content-type': 'application/x-www-form-urlencoded', ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(Buffer.concat(chunks).toString('utf8') || 'null') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

const kinds = testDatabases().filter((k) => k === 'postgres');
const suite = kinds.length ? describe.each(kinds) : describe.skip.each(['postgres' as const]);

suite('replay refused across two instances on one %s database', (kind) => {
  let db: TestDb;
  let a: TestServer;
  let b: TestServer;
  let host: string;

  beforeAll(async () => {
    db = await createTestDb(kind);
    a = await startServer(db);
    // One issuer for both, as behind a load balancer.
    b = await startServer(db, { ISSUER: a.issuer });
    host = new URL(a.issuer).host;
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('an assertion used on one instance is refused on the other', async () => {
    const admin = await makeAdmin(a.deps);
    const session = await signIn(a, admin.email, admin.password);
    const key = await clientKey();
    const t = (await call(a, 'POST', '/tokens', { token: session.token, json: tokenBody({ auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] } }) })).body;
    const body = new URLSearchParams({
      grant_type: 'client_credentials',
      client_assertion_type: JWT_BEARER,
      client_assertion: await assertion(key, t.client_id, a.issuer),
    }).toString();
    expect((await postToken(a.url, host, body)).status).toBe(200);
    const replayed = await postToken(b.url, host, body);
    expect(replayed).toMatchObject({ status: 401, body: { error: 'invalid_client' } });
  });

  it('a DPoP proof used on one instance is refused on the other', async () => {
    const admin = await makeAdmin(b.deps);
    const session = await signIn(b, admin.email, admin.password);
    const t = (await call(b, 'POST', '/tokens', { token: session.token, json: tokenBody() })).body;
    const dpopKey = await clientKey();
    const proof = await dpopProof(dpopKey, `${a.issuer}/token`);
    const headers = { authorization: basic(t.client_id, t.client_secret), dpop: proof };
    const first = await postToken(b.url, host, 'grant_type=client_credentials', headers);
    expect(first).toMatchObject({ status: 200, body: { token_type: 'DPoP' } });
    const replayed = await postToken(a.url, host, 'grant_type=client_credentials', headers);
    expect(replayed.status).toBe(400);
    expect(replayed.body.error).toBe('invalid_dpop_proof'); // RFC 9449 §5
    // A fresh proof with the same key works on either.
    const fresh = await postToken(a.url, host, 'grant_type=client_credentials', { ...headers, dpop: await dpopProof(dpopKey, `${a.issuer}/token`) });
    expect(fresh.status).toBe(200);
  });
});
