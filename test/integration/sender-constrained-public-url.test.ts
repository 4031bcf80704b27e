// SPEC Part 2 "Sender-constrained and secretless tokens" behind a load balancer: ISSUER is the public URL (https, a
// path) and the server sees another scheme and host. Clients take the endpoint URLs from discovery, so a DPoP proof's
// `htu` (RFC 9449 §4.3) and a client assertion's `aud` (RFC 7523 §3, SPEC: "the issuer or the token endpoint") name
// the advertised token endpoint; both are accepted, as is the URL the server sees. Real clients (openid-client,
// oauth4webapi) reach the server through a fetch that plays the load balancer.
import { decodeJwt } from 'jose';
import * as oauth from 'oauth4webapi';
import * as oidc from 'openid-client';
import { call, signIn, tokenBody, type SignedIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { assertion, clientKey, dpopProof, type ClientKey } from '../support/sender.js';
import { startServer, type TestServer } from '../support/server.js';

const PUBLIC = 'https://auth.example.test/sat';
const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

describe.each(testDatabases())('DPoP and private_key_jwt at the advertised URLs behind a load balancer on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let session: SignedIn;

  /**
   * The load balancer: the public URL's requests (and RFC 8414's well-known URL for an issuer with a path) go to the
   * server, which sees plain http on 127.0.0.1.
   */
  const viaBalancer = (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const rfc8414 = 'https://auth.example.test/.well-known/oauth-authorization-server/sat';
    const path = url === rfc8414 ? '/.well-known/oauth-authorization-server' : url.startsWith(PUBLIC) ? url.slice(PUBLIC.length) : undefined;
    if (path === undefined) throw new Error(`not the public URL: ${url}`);
    return fetch(server.url + path, input instanceof Request ? input : init);
  };

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { ISSUER: PUBLIC });
    const admin = await makeAdmin(server.deps);
    session = await signIn(server, admin.email, admin.password);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const generate = async (overrides: Record<string, unknown>) => {
    const res = await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody({ services: ['jobs'], ...overrides }) });
    expect(res.status).toBe(201);
    return res.body as { client_id: string; client_secret?: string };
  };
  const tokenRequest = (body: Record<string, string>, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
      body: new URLSearchParams({ grant_type: 'client_credentials', ...body }).toString(),
    });
  const basicOf = (t: { client_id: string; client_secret?: string }) => ({
    authorization: `Basic ${Buffer.from(`${t.client_id}:${t.client_secret}`).toString('base64')}`,
  });

  it('discovery advertises the token endpoint under the public URL', async () => {
    const doc = (await (await fetch(`${server.url}/.well-known/oauth-authorization-server`)).json()) as Record<string, unknown>;
    expect(doc).toMatchObject({ issuer: PUBLIC, token_endpoint: `${PUBLIC}/token` });
  });

  it("openid-client's DPoP through discovery gets a DPoP-bound token (htu is the advertised token endpoint)", async () => {
    const t = await generate({ require_dpop: true });
    const dpopKey = await clientKey();
    const config = await oidc.discovery(new URL(PUBLIC), t.client_id, t.client_secret, oidc.ClientSecretBasic(t.client_secret!), {
      [oidc.customFetch]: viaBalancer,
    });
    const DPoP = oidc.getDPoPHandle(config, { privateKey: dpopKey.privateKey, publicKey: dpopKey.publicKey });
    const tokens = await oidc.clientCredentialsGrant(config, {}, { DPoP });
    expect(tokens.token_type.toLowerCase()).toBe('dpop');
    expect((decodeJwt(tokens.access_token) as { cnf?: { jkt?: string } }).cnf?.jkt).toBe(dpopKey.thumbprint);
  });

  it("oauth4webapi's private_key_jwt with the token endpoint as audience, and DPoP, through discovery", async () => {
    const key: ClientKey = await clientKey();
    const t = await generate({ auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] } });
    const as = await oauth.processDiscoveryResponse(
      new URL(PUBLIC),
      await oauth.discoveryRequest(new URL(PUBLIC), { algorithm: 'oauth2', [oauth.customFetch]: viaBalancer }),
    );
    const client: oauth.Client = { client_id: t.client_id };
    const auth = oauth.PrivateKeyJwt(key.privateKey, {
      [oauth.modifyAssertion]: (_header, payload) => {
        payload.aud = as.token_endpoint;
      },
    });
    const dpopKey = await clientKey();
    const DPoP = oauth.DPoP(client, { privateKey: dpopKey.privateKey, publicKey: dpopKey.publicKey });
    const res = await oauth.clientCredentialsGrantRequest(as, client, auth, new URLSearchParams(), { DPoP, [oauth.customFetch]: viaBalancer });
    const tokens = await oauth.processClientCredentialsResponse(as, client, res);
    expect(tokens.token_type).toBe('dpop');
  });

  it('accepts the URL the server sees too; refuses a proof or an assertion naming another URL', async () => {
    const t = await generate({});
    const dpopKey = await clientKey();
    for (const [htu, status] of [
      [`${PUBLIC}/token`, 200],
      [`${PUBLIC}/token?x=1`, 200],
      [`${server.url}/token`, 200],
      ['https://auth.example.test/token', 400],
      [`${PUBLIC}/token/introspection`, 400],
    ] as const) {
      const res = await tokenRequest({}, { ...basicOf(t), dpop: await dpopProof(dpopKey, htu) });
      const body = (await res.json()) as { error?: string; token_type?: string };
      expect({ htu, status: res.status, error: body.error }).toEqual({ htu, status, error: status === 200 ? undefined : 'invalid_dpop_proof' });
    }

    const key = await clientKey();
    const k = await generate({ auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] } });
    for (const [aud, status] of [
      [PUBLIC, 200],
      [`${PUBLIC}/token`, 200],
      [`${server.url}/token`, 200],
      [`${PUBLIC}/jwks`, 401],
      ['https://auth.example.test/token', 401],
    ] as const) {
      const res = await tokenRequest({ client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, k.client_id, aud) });
      expect({ aud, status: res.status }).toEqual({ aud, status });
    }

    // Sent to ISSUER's path on the server itself (`/sat/token`, not through the balancer): the URL it was sent to
    // counts, with its path; the root's `/token`, a URL it was not sent to, does not.
    const underPath = (body: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${server.url}/sat/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers },
        body: new URLSearchParams({ grant_type: 'client_credentials', ...body }).toString(),
      });
    for (const [htu, status] of [
      [`${server.url}/sat/token`, 200],
      [`${PUBLIC}/token`, 200],
      [`${server.url}/token`, 400],
    ] as const) {
      const res = await underPath({}, { ...basicOf(t), dpop: await dpopProof(dpopKey, htu) });
      expect({ htu, status: res.status }).toEqual({ htu, status });
    }
    for (const [aud, status] of [
      [`${server.url}/sat/token`, 200],
      [`${PUBLIC}/token`, 200],
      [`${server.url}/token`, 401],
    ] as const) {
      const res = await underPath({ client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, k.client_id, aud) });
      expect({ aud, status: res.status }).toEqual({ aud, status });
    }
  });
});
