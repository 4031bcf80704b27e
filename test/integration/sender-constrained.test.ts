// SPEC Part 2 "Sender-constrained and secretless tokens": private_key_jwt (RFC 7523) and DPoP (RFC 9449), with real
// clients (openid-client, oauth4webapi) through discovery, on each database.
import { createHash, generateKeyPairSync, randomUUID, sign } from 'node:crypto';
import { request } from 'node:http';
import { decodeJwt, exportJWK, generateKeyPair, SignJWT, type JWK } from 'jose';
import * as oauth from 'oauth4webapi';
import * as oidc from 'openid-client';
import { call, signIn, tokenBody, type SignedIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, uniq } from '../support/fixtures.js';
import { metricValue, scrape } from '../support/metrics.js';
import { assertion, clientKey, dpopProof, resourceProof, verifyDpopRequest, type ClientKey } from '../support/sender.js';
import { startServer, type TestServer } from '../support/server.js';

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

const form = (params: Record<string, string>) => new URLSearchParams(params).toString();

describe.each(testDatabases())('sender-constrained and secretless tokens on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let session: SignedIn;
  let tokenUrl: string;

  const allowHttp = { execute: [oidc.allowInsecureRequests] };

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    tokenUrl = `${server.issuer}/token`;
    const admin = await makeAdmin(server.deps);
    session = await signIn(server, admin.email, admin.password);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const generate = (overrides: Record<string, unknown>) => call(server, 'POST', '/tokens', { token: session.token, json: tokenBody(overrides) });
  const keyToken = async (key: ClientKey, overrides: Record<string, unknown> = {}) => {
    const res = await generate({ auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] }, services: ['candidates', 'jobs'], ...overrides });
    expect(res.status).toBe(201);
    return res.body as { id: string; client_id: string; jwk_thumbprints: string[]; client_secret?: string };
  };
  const secretToken = async (overrides: Record<string, unknown> = {}) => {
    const res = await generate({ services: ['candidates'], ...overrides });
    expect(res.status).toBe(201);
    return res.body as { id: string; client_id: string; client_secret: string; require_dpop: boolean };
  };
  const post = (body: string, headers: Record<string, string> = {}) =>
    fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });

  it('discovery lists private_key_jwt, its algorithms and the DPoP algorithms', async () => {
    for (const p of ['/.well-known/openid-configuration', '/.well-known/oauth-authorization-server']) {
      const doc = (await (await fetch(server.url + p)).json()) as Record<string, string[]>;
      expect(doc.token_endpoint_auth_methods_supported).toEqual(expect.arrayContaining(['client_secret_basic', 'client_secret_post', 'private_key_jwt']));
      expect(doc.token_endpoint_auth_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256', 'RS256', 'PS256']));
      expect(doc.token_endpoint_auth_signing_alg_values_supported!.some((a) => a.startsWith('HS'))).toBe(false);
      expect(doc.dpop_signing_alg_values_supported).toEqual(expect.arrayContaining(['ES256']));
    }
  });

  describe('generate and PATCH', () => {
    it('generates a private_key_jwt token: no secret, auth_method and the keys’ RFC 7638 thumbprints', async () => {
      const [ec, rsa] = [await clientKey('ES256'), await clientKey('RS256')];
      const res = await generate({ auth_method: 'private_key_jwt', jwks: { keys: [ec.publicJwk, rsa.publicJwk] } });
      expect(res.status).toBe(201);
      expect(res.body.client_secret).toBeUndefined();
      expect(res.text).not.toContain('client_secret');
      expect(res.body.auth_method).toBe('private_key_jwt');
      expect(res.body.jwk_thumbprints).toEqual([ec.thumbprint, rsa.thumbprint]);
      expect(res.body.require_dpop).toBe(false);
      const got = await call(server, 'GET', `/tokens/${res.body.id}`, { token: session.token });
      expect(got.body.jwk_thumbprints).toEqual([ec.thumbprint, rsa.thumbprint]);
      expect(got.text).not.toMatch(/"(x|y|n|d)":/);
    });

    it('takes a pasted PEM or JWK as public_key (the console), converted and validated by the server', async () => {
      const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
      const pem = pair.publicKey.export({ format: 'pem', type: 'spki' }) as string;
      const { calculateJwkThumbprint } = await import('jose');
      const thumbprint = await calculateJwkThumbprint(pair.publicKey.export({ format: 'jwk' }) as JWK);
      const res = await generate({ auth_method: 'private_key_jwt', public_key: pem });
      expect(res.status).toBe(201);
      expect(res.body.jwk_thumbprints).toEqual([thumbprint]);
      // A PEM has no kid: the key is known by its thumbprint, so an assertion naming it so is accepted, as is one
      // naming no key; another kid is not.
      const signed = (kid?: string) =>
        new SignJWT({ jti: randomUUID() })
          .setProtectedHeader(kid ? { alg: 'ES256', kid } : { alg: 'ES256' })
          .setIssuer(res.body.client_id)
          .setSubject(res.body.client_id)
          .setAudience(server.issuer)
          .setIssuedAt()
          .setExpirationTime('1m')
          .sign(pair.privateKey);
      const exchange = async (kid?: string) =>
        (await post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await signed(kid) }))).status;
      expect([await exchange(thumbprint), await exchange(), await exchange('some-other-kid')]).toEqual([200, 200, 401]);
      const other = await clientKey();
      const patched = await call(server, 'PATCH', `/tokens/${res.body.id}`, { token: session.token, json: { public_key: JSON.stringify(other.publicJwk) } });
      expect(patched.body.jwk_thumbprints).toEqual([other.thumbprint]);
      const privatePem = pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
      const refused = await generate({ auth_method: 'private_key_jwt', public_key: privatePem });
      expect(refused.status).toBe(400);
      expect(refused.text).not.toContain(privatePem.slice(30, 60));
    });

    it('a client_secret token shows auth_method client_secret and no thumbprints', async () => {
      const t = await secretToken();
      expect(t).toMatchObject({ auth_method: 'client_secret', jwk_thumbprints: null, require_dpop: false });
      expect(t.client_secret).toMatch(/^sats_/);
    });

    it('refuses private members, weak RSA, other curves, too many or no keys, and keys for a secret token', async () => {
      const ec = await clientKey();
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const privateJwk = await exportJWK(privateKey);
      const weak = generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' });
      const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' });
      const four = await Promise.all([1, 2, 3, 4].map(async () => (await clientKey()).publicJwk));
      const cases: Array<[Record<string, unknown>, RegExp]> = [
        [{ jwks: { keys: [privateJwk] } }, /private member/],
        [{ jwks: { keys: [weak] } }, /1024 bits/],
        [{ jwks: { keys: [p384] } }, /P-256/],
        [{ jwks: { keys: four } }, /1 to 3 keys/],
        [{ jwks: { keys: [] } }, /1 to 3 keys/],
        [{ jwks: { keys: [ec.publicJwk, ec.publicJwk] } }, /same key twice/],
        [{ jwks: { keys: [{ kty: 'oct', k: 'AAAA' }] } }, /private member|kty/],
        [{ jwks: 'not a set' }, /JWK Set/],
        [{}, /needs the public keys/],
      ];
      for (const [body, message] of cases) {
        const res = await generate({ auth_method: 'private_key_jwt', ...body });
        expect({ body, status: res.status, error: res.body.error }).toEqual({ body, status: 400, error: 'validation_failed' });
        expect(JSON.stringify(res.body.details)).toMatch(message);
      }
      const secretWithKeys = await generate({ jwks: { keys: [ec.publicJwk] } });
      expect(secretWithKeys.status).toBe(400);
    });

    it('PATCH replaces the keys (two during a key rotation, both accepted; then the old one refused) and sets require_dpop', async () => {
      const [oldKey, newKey] = [await clientKey(), await clientKey()];
      const t = await keyToken(oldKey);
      const exchange = async (key: ClientKey) =>
        post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, t.client_id, server.issuer) }));
      expect((await exchange(oldKey)).status).toBe(200);
      expect((await exchange(newKey)).status).toBe(401);

      // A key rotation: both keys registered, both work; then the new one alone.
      const overlap = await call(server, 'PATCH', `/tokens/${t.id}`, { token: session.token, json: { jwks: { keys: [oldKey.publicJwk, newKey.publicJwk] } } });
      expect(overlap.body.jwk_thumbprints).toEqual([oldKey.thumbprint, newKey.thumbprint]);
      expect((await exchange(oldKey)).status).toBe(200);
      expect((await exchange(newKey)).status).toBe(200);

      const patched = await call(server, 'PATCH', `/tokens/${t.id}`, { token: session.token, json: { jwks: { keys: [newKey.publicJwk] } } });
      expect(patched.status).toBe(200);
      expect(patched.body.jwk_thumbprints).toEqual([newKey.thumbprint]);
      expect((await exchange(oldKey)).status).toBe(401);
      expect((await exchange(newKey)).status).toBe(200);

      const dpop = await call(server, 'PATCH', `/tokens/${t.id}`, { token: session.token, json: { require_dpop: true } });
      expect(dpop.body.require_dpop).toBe(true);
      const refused = await exchange(newKey);
      expect(refused.status).toBe(400);
      expect(((await refused.json()) as { error: string }).error).toBe('invalid_dpop_proof');

      const secret = await secretToken();
      const wrong = await call(server, 'PATCH', `/tokens/${secret.id}`, { token: session.token, json: { jwks: { keys: [newKey.publicJwk] } } });
      expect(wrong.status).toBe(400);
      const bad = await call(server, 'PATCH', `/tokens/${t.id}`, { token: session.token, json: { jwks: { keys: [{ ...newKey.publicJwk, d: 'x' }] } } });
      expect(bad.status).toBe(400);
      const other = await makeAdmin(server.deps);
      const otherSession = await signIn(server, other.email, other.password);
      expect((await call(server, 'PATCH', `/tokens/${t.id}`, { token: otherSession.token, json: { require_dpop: false } })).status).toBe(404);
    });
  });

  describe('private_key_jwt (RFC 7523)', () => {
    it("openid-client's PrivateKeyJwt gets a token through discovery", async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const config = await oidc.discovery(new URL(server.issuer), t.client_id, {}, oidc.PrivateKeyJwt(key.privateKey), allowHttp);
      const tokens = await oidc.clientCredentialsGrant(config, { scope: 'jobs' });
      expect(tokens.token_type.toLowerCase()).toBe('bearer');
      const claims = decodeJwt(tokens.access_token);
      expect(claims).toMatchObject({ client_id: t.client_id, sub: t.client_id, scope: 'jobs' });
      expect(claims.cnf).toBeUndefined();
    });

    it('accepts an RSA key (RS256, PS256) and the token endpoint as audience', async () => {
      const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
      const publicJwk = publicKey.export({ format: 'jwk' }) as JWK;
      const res0 = await generate({ auth_method: 'private_key_jwt', jwks: { keys: [publicJwk] } });
      expect(res0.status).toBe(201);
      const t = res0.body as { client_id: string };
      const key = { privateKey };
      for (const [alg, aud] of [['RS256', server.issuer], ['PS256', tokenUrl]] as const) {
        const a = await assertion(key, t.client_id, aud, {}, alg);
        const res = await post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: a }));
        expect({ alg, status: res.status }).toEqual({ alg, status: 200 });
      }
    });

    it('refuses a replayed assertion, a far exp, a wrong audience, another key, and a secret for the client', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const send = (a: string) => post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: a }));
      const once = await assertion(key, t.client_id, server.issuer);
      expect((await send(once)).status).toBe(200);
      const replayed = await send(once);
      expect(replayed.status).toBe(401);
      expect(((await replayed.json()) as { error: string }).error).toBe('invalid_client');
      expect(replayed.headers.get('www-authenticate')).toBeNull(); // only when Basic was used (SPEC)

      // Signed by the client's key, so the answer may say what is wrong (an hour-long assertion, as Authlib makes).
      const hourLong = (clientId: string, signer = key) => assertion(signer, clientId, server.issuer, { exp: Math.floor(Date.now() / 1000) + 3600 });
      /** What introspection and revocation answer an hour-long assertion for `clientId`. */
      const atCallerEndpoints = async (clientId: string) => {
        const answers = [];
        for (const endpoint of ['introspection', 'revocation']) {
          const res = await fetch(`${server.issuer}/token/${endpoint}`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form({ token: 'x', client_assertion_type: JWT_BEARER, client_assertion: await hourLong(clientId) }),
          });
          answers.push({ endpoint, status: res.status, body: await res.json() });
        }
        return answers;
      };
      const tooLong = { error: 'invalid_client', error_description: 'the client_assertion exp must be at most 300 seconds ahead' };
      const failed = { error: 'invalid_client', error_description: 'client authentication failed' };
      const farAnswer = await send(await hourLong(t.client_id));
      expect([farAnswer.status, await farAnswer.json()]).toEqual([401, tooLong]);
      expect(await atCallerEndpoints(t.client_id)).toEqual(['introspection', 'revocation'].map((endpoint) => ({ endpoint, status: 401, body: tooLong })));
      // Not signed by its key: nothing but that authentication failed.
      const unsigned = await send(await hourLong(t.client_id, await clientKey()));
      expect([unsigned.status, await unsigned.json()]).toEqual([401, failed]);
      // Signed by its key but from outside its allowed_ips: nothing more either, at any endpoint (else the answer
      // would tell a thief that the key they hold is good; SPEC: outside allowed_ips is invalid_client whatever the
      // credential). Found by the diff review.
      const fenced = await keyToken(key, { allowed_ips: ['192.0.2.1'] });
      const farFenced = await send(await hourLong(fenced.client_id));
      expect([farFenced.status, await farFenced.json()]).toEqual([401, failed]);
      expect(await atCallerEndpoints(fenced.client_id)).toEqual(['introspection', 'revocation'].map((endpoint) => ({ endpoint, status: 401, body: failed })));
      expect((await call(server, 'POST', `/tokens/${fenced.id}/revoke`, { token: session.token })).status).toBe(200); // the organisation's 25
      expect((await send(await assertion(key, t.client_id, 'https://elsewhere.example'))).status).toBe(401);
      expect((await send(await assertion(await clientKey(), t.client_id, server.issuer))).status).toBe(401);
      expect((await post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, 'sats_whatever') })).status).toBe(401);
    });

    it('refuses an assertion addressed to us and to another party (an aud array), at every endpoint; an array of our own identifiers is accepted', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const send = (a: string) => post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: a }));
      const at = (endpoint: string, a: string) =>
        fetch(`${server.issuer}/token/${endpoint}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form({ token: 'x', client_assertion_type: JWT_BEARER, client_assertion: a }),
        });
      // The other party (another authorization server the client also uses) could replay it here.
      const shared = (aud: string) => [aud, 'https://other-as.example'];
      expect((await send(await assertion(key, t.client_id, shared(server.issuer) as unknown as string))).status).toBe(401);
      expect((await send(await assertion(key, t.client_id, shared(`${server.issuer}/token`) as unknown as string))).status).toBe(401);
      for (const endpoint of ['introspection', 'revocation']) {
        const res = await at(endpoint, await assertion(key, t.client_id, shared(server.issuer) as unknown as string));
        expect({ endpoint, status: res.status }).toEqual({ endpoint, status: 401 });
      }
      expect((await send(await assertion(key, t.client_id, [server.issuer] as unknown as string))).status).toBe(200);
      expect((await at('introspection', await assertion(key, t.client_id, [server.issuer] as unknown as string))).status).toBe(200);
      // Every value ours: openid-client 5 sends [issuer, token_endpoint].
      const ours = [server.issuer, `${server.issuer}/token`] as unknown as string;
      expect((await send(await assertion(key, t.client_id, ours))).status).toBe(200);
      expect((await at('introspection', await assertion(key, t.client_id, ours))).status).toBe(200);
      // The organisation's other tests need its token slots (25 at most).
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: session.token })).status).toBe(200);
    });

    it("tolerates a client clock up to 15 s ahead (nbf, iat), but never an expired assertion, at every endpoint", async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const now = Math.floor(Date.now() / 1000);
      const send = (a: string) => post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: a }));
      const introspect = (a: string, token = 'x') =>
        fetch(`${server.issuer}/token/introspection`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form({ token, client_assertion_type: JWT_BEARER, client_assertion: a }),
        });
      // A clock 10 s ahead, as openid-client and oauth4webapi date their assertions (nbf = iat = their now).
      const ahead = { nbf: now + 10, iat: now + 10, exp: now + 70 };
      expect((await send(await assertion(key, t.client_id, server.issuer, ahead))).status).toBe(200);
      expect((await introspect(await assertion(key, t.client_id, server.issuer, ahead))).status).toBe(200);
      // Further ahead than the leeway, or expired even by a little: refused.
      const tooFar = { nbf: now + 60, iat: now + 60, exp: now + 120 };
      const expired = { iat: now - 70, exp: now - 5 };
      for (const claims of [tooFar, expired]) {
        expect({ claims, status: (await send(await assertion(key, t.client_id, server.issuer, claims))).status }).toEqual({ claims, status: 401 });
        expect({ claims, status: (await introspect(await assertion(key, t.client_id, server.issuer, claims))).status }).toEqual({ claims, status: 401 });
      }
    });

    it('introspection and revocation take private_key_jwt too, with a one-time jti shared with the token endpoint', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const exchange = await post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, t.client_id, server.issuer) }));
      const { access_token } = (await exchange.json()) as { access_token: string };
      const at = (endpoint: string, a: string) =>
        fetch(`${server.issuer}/token/${endpoint}`, {
          method: 'POST',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          body: form({ token: access_token, client_assertion_type: JWT_BEARER, client_assertion: a }),
        });
      const once = await assertion(key, t.client_id, `${server.issuer}/token/introspection`);
      const introspected = await at('introspection', once);
      expect(await introspected.json()).toMatchObject({ active: true, client_id: t.client_id });
      expect((await at('introspection', once)).status).toBe(401); // replayed
      expect((await at('introspection', await assertion(await clientKey(), t.client_id, server.issuer))).status).toBe(401); // another key
      const far = await assertion(key, t.client_id, server.issuer, { exp: Math.floor(Date.now() / 1000) + 600 });
      expect((await at('introspection', far)).status).toBe(401);
      expect((await at('revocation', await assertion(key, t.client_id, server.issuer))).status).toBe(200);
      const after = await at('introspection', await assertion(key, t.client_id, server.issuer));
      expect(await after.json()).toEqual({ active: false });
    });

    it('refuses an assertion typed as another kind of JWT (a DPoP proof, an access token: RFC 8725 §3.11) at every endpoint', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const send = async (endpoint: string, typ?: string) =>
        (
          await fetch(`${server.issuer}${endpoint}`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form({ ...(endpoint === '/token' ? { grant_type: 'client_credentials' } : { token: 'x' }), client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, t.client_id, server.issuer, {}, 'ES256', typ) }),
          })
        ).status;
      for (const endpoint of ['/token', '/token/introspection', '/token/revocation']) {
        for (const typ of ['dpop+jwt', 'at+jwt']) expect({ endpoint, typ, status: await send(endpoint, typ) }).toEqual({ endpoint, typ, status: 401 });
        expect({ endpoint, status: await send(endpoint, 'JWT') }).toEqual({ endpoint, status: 200 });
      }
      // The organisation's other tests need its token slots (25 at most).
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: session.token })).status).toBe(200);
    });

    it('takes the endpoint URLs as the server sees the request as aud at every endpoint, as /token does', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      // The same server reached under another name than ISSUER's (a client addressing an instance directly).
      const seen = server.issuer.replace('127.0.0.1', 'localhost');
      const send = async (endpoint: string, aud: string) =>
        (
          await fetch(`${seen}${endpoint}`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form({ ...(endpoint === '/token' ? { grant_type: 'client_credentials' } : { token: 'x' }), client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, t.client_id, aud) }),
          })
        ).status;
      for (const endpoint of ['/token', '/token/introspection', '/token/revocation']) {
        for (const aud of [`${seen}/token`, `${seen}${endpoint}`, `${server.issuer}/token`, `${server.issuer}${endpoint}`, server.issuer]) {
          expect({ endpoint, aud, status: await send(endpoint, aud) }).toEqual({ endpoint, aud, status: 200 });
        }
        // Another endpoint's URL, or a host this request did not name, is not an audience.
        const other = endpoint === '/token/introspection' ? '/token/revocation' : '/token/introspection';
        for (const aud of [`${seen}${other}`, `http://elsewhere.example${endpoint}`]) {
          expect({ endpoint, aud, status: await send(endpoint, aud) }).toEqual({ endpoint, aud, status: 401 });
        }
      }
      // The organisation's other tests need its token slots (25 at most).
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: session.token })).status).toBe(200);
    });

    // Host (and X-Forwarded-Host behind TRUST_PROXY) is the client's to write: naming another server there must not
    // make an assertion or proof addressed to that server good here (RFC 7523 §3, RFC 9449 §4.3).
    it('refuses an assertion or a DPoP proof addressed to another host even when the request names that host as Host', async () => {
      const port = Number(new URL(server.issuer).port);
      const raw = (path: string, body: string, headers: Record<string, string>) =>
        new Promise<number>((resolve, reject) => {
          const req = request(
            { host: '127.0.0.1', port, path, method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body), ...headers } },
            (res) => {
              res.resume();
              resolve(res.statusCode!);
            },
          );
          req.on('error', reject);
          req.end(body);
        });
      const key = await clientKey();
      const t = await keyToken(key);
      const params = (endpoint: string): Record<string, string> => (endpoint === '/token' ? { grant_type: 'client_credentials' } : { token: 'x' });
      for (const endpoint of ['/token', '/token/introspection', '/token/revocation']) {
        for (const aud of [`http://evil.example${endpoint}`, 'http://evil.example/token']) {
          const body = form({ ...params(endpoint), client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, t.client_id, aud) });
          expect({ endpoint, aud, status: await raw(endpoint, body, { host: 'evil.example' }) }).toEqual({ endpoint, aud, status: 401 });
        }
        // The same Host with an assertion addressed to us is fine: only the audience was refused.
        const ours = form({ ...params(endpoint), client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, t.client_id, `${server.issuer}${endpoint}`) });
        expect({ endpoint, status: await raw(endpoint, ours, { host: 'evil.example' }) }).toEqual({ endpoint, status: 200 });
      }
      const s = await secretToken();
      const dpopKey = await clientKey();
      const auth = { authorization: basic(s.client_id, s.client_secret) };
      const grant = form({ grant_type: 'client_credentials' });
      expect(await raw('/token', grant, { ...auth, host: 'evil.example', dpop: await dpopProof(dpopKey, 'http://evil.example/token') })).toBe(400);
      expect(await raw('/token', grant, { ...auth, host: 'evil.example', dpop: await dpopProof(dpopKey, tokenUrl) })).toBe(200);
      // An IP address this connection did not reach is no name of ours either; the loopback and ISSUER's names are.
      expect(await raw('/token', grant, { ...auth, host: '192.0.2.1', dpop: await dpopProof(dpopKey, 'http://192.0.2.1/token') })).toBe(400);
      expect(await raw('/token', grant, { ...auth, host: `localhost:${port}`, dpop: await dpopProof(dpopKey, `http://localhost:${port}/token`) })).toBe(200);
      for (const id of [t.id, s.id]) expect((await call(server, 'POST', `/tokens/${id}/revoke`, { token: session.token })).status).toBe(200);
    });

    it('refuses an assertion whose jti is not a non-empty string at every endpoint (RFC 7519 §4.1.7)', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const send = async (endpoint: string, a: string) =>
        (
          await fetch(`${server.issuer}${endpoint}`, {
            method: 'POST',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            body: form({ ...(endpoint === '/token' ? { grant_type: 'client_credentials' } : { token: 'x' }), client_assertion_type: JWT_BEARER, client_assertion: a }),
          })
        ).status;
      for (const jti of [7, '', { a: 1 }, ['x'], true]) {
        for (const endpoint of ['/token', '/token/introspection', '/token/revocation']) {
          expect({ jti, endpoint, status: await send(endpoint, await assertion(key, t.client_id, server.issuer, { jti })) }).toEqual({ jti, endpoint, status: 401 });
        }
      }
      expect(await send('/token/introspection', await assertion(key, t.client_id, server.issuer))).toBe(200);
      // The organisation's other tests need its token slots (25 at most).
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: session.token })).status).toBe(200);
    });

    it('secret rotation does not apply: rotating a private_key_jwt token is 409 and changes nothing', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const before = await call(server, 'GET', `/tokens/${t.id}`, { token: session.token });
      const rotated = await call(server, 'POST', `/tokens/${t.id}/rotate`, { token: session.token, json: {} });
      expect(rotated.status).toBe(409);
      expect(rotated.body.error).toBe('conflict');
      expect(rotated.body.message).toMatch(/Replace its public keys with PATCH instead/);
      expect(rotated.text).not.toContain('client_secret');
      expect((await call(server, 'GET', `/tokens/${t.id}`, { token: session.token })).body).toEqual(before.body);
      const events = await call(server, 'GET', `/audit?token_id=${t.id}`, { token: session.token });
      expect(events.body.items.map((e: { action: string }) => e.action)).toEqual(['token.generated']);
      const a = await assertion(key, t.client_id, server.issuer);
      expect((await post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: a }))).status).toBe(200);
    });

    it('a client_secret token cannot authenticate with an assertion', async () => {
      const t = await secretToken();
      const a = await assertion(await clientKey(), t.client_id, server.issuer);
      const res = await post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: a }));
      expect(res.status).toBe(401);
    });
  });

  describe('DPoP (RFC 9449)', () => {
    it("openid-client's DPoP gets a DPoP token whose cnf.jkt is the proof key's thumbprint; introspection reports it", async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      const config = await oidc.discovery(new URL(server.issuer), t.client_id, t.client_secret, oidc.ClientSecretBasic(t.client_secret), allowHttp);
      const DPoP = oidc.getDPoPHandle(config, { privateKey: dpopKey.privateKey, publicKey: dpopKey.publicKey });
      const tokens = await oidc.clientCredentialsGrant(config, {}, { DPoP });
      expect(tokens.token_type.toLowerCase()).toBe('dpop');
      const claims = decodeJwt(tokens.access_token) as { cnf?: { jkt?: string } };
      expect(claims.cnf?.jkt).toBe(dpopKey.thumbprint);

      const introspected = await fetch(`${server.issuer}/token/introspection`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
        body: form({ token: tokens.access_token }),
      });
      expect(await introspected.json()).toMatchObject({ active: true, token_type: 'DPoP', cnf: { jkt: dpopKey.thumbprint } });
    });

    it('oauth4webapi: private_key_jwt and DPoP together, through discovery', async () => {
      const key = await clientKey();
      const t = await keyToken(key);
      const dpopKey = await clientKey();
      const issuer = new URL(server.issuer);
      const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { [oauth.allowInsecureRequests]: true }));
      const client: oauth.Client = { client_id: t.client_id };
      const DPoP = oauth.DPoP(client, { privateKey: dpopKey.privateKey, publicKey: dpopKey.publicKey });
      const response = await oauth.clientCredentialsGrantRequest(as, client, oauth.PrivateKeyJwt(key.privateKey), { scope: 'candidates' }, {
        DPoP,
        [oauth.allowInsecureRequests]: true,
      });
      const result = await oauth.processClientCredentialsResponse(as, client, response);
      expect(result.token_type).toBe('dpop');
      expect((decodeJwt(result.access_token) as { cnf?: { jkt?: string } }).cnf?.jkt).toBe(dpopKey.thumbprint);
    });

    it('the fast path answers no request with a DPoP proof or a client assertion, nor one of a require_dpop token', async () => {
      const [t, dpopOnly] = [await secretToken(), await secretToken({ require_dpop: true })];
      const key = await clientKey();
      const keyed = await keyToken(key);
      const dpopKey = await clientKey();
      const answered = async () => {
        const text = await scrape(server.url);
        return {
          fast: metricValue(text, 'sat_token_requests_total', { outcome: 'ok', path: 'fast' }),
          provider: metricValue(text, 'sat_token_requests_total', { outcome: 'ok', path: 'provider' }),
        };
      };
      const before = await answered();
      const requests: Array<[string, Record<string, string>]> = [
        ['grant_type=client_credentials', { authorization: basic(t.client_id, t.client_secret), dpop: await dpopProof(dpopKey, tokenUrl) }],
        ['grant_type=client_credentials', { authorization: basic(t.client_id, t.client_secret), dpop: '' }],
        [form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, keyed.client_id, server.issuer) }), {}],
        ['grant_type=client_credentials', { authorization: basic(dpopOnly.client_id, dpopOnly.client_secret), dpop: await dpopProof(dpopKey, tokenUrl) }],
      ];
      for (const [body, headers] of requests) expect((await post(body, headers)).status).toBe(200);
      const after = await answered();
      expect(after.fast).toBe(before.fast);
      expect(after.provider - before.provider).toBe(requests.length);
      // The plain request still takes the fast path.
      expect((await post('grant_type=client_credentials', { authorization: basic(t.client_id, t.client_secret) })).status).toBe(200);
      expect((await answered()).fast).toBe(before.fast + 1);
    });

    it('refuses a replayed proof and an invalid proof', async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      const proof = await dpopProof(dpopKey, tokenUrl);
      const send = (p: string) => post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, t.client_secret), dpop: p });
      const first = await send(proof);
      expect(first.status).toBe(200);
      expect(((await first.json()) as { token_type: string }).token_type).toBe('DPoP');
      const again = await send(proof);
      expect(again.status).toBe(400);
      expect(await again.json()).toEqual({ error: 'invalid_dpop_proof', error_description: 'DPoP proof JWT replay detected' }); // RFC 9449 §5
      const wrongUrl = await send(await dpopProof(dpopKey, 'https://elsewhere.example/token'));
      expect(wrongUrl.status).toBe(400);
      expect(((await wrongUrl.json()) as { error: string }).error).toBe('invalid_dpop_proof');
    });

    it('compares htu after RFC 3986 §6.2.2 normalisation: percent-encoded unreserved characters, case, default port', async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      const send = async (htu: string) =>
        (await post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, t.client_secret), dpop: await dpopProof(dpopKey, htu) })).status;
      const { origin } = new URL(tokenUrl);
      for (const htu of [`${origin}/%74oken`, `${origin}/%74%6F%6B%65%6E`, `${origin.toUpperCase()}/token`, `${origin}/./token`, `${origin}/token?x=1#f`]) {
        expect({ htu, status: await send(htu) }).toEqual({ htu, status: 200 });
      }
      for (const htu of [`${origin}/Token`, `${origin}/token%2F`, `${origin}/token/`, `${origin}/%2574oken`]) {
        expect({ htu, status: await send(htu) }).toEqual({ htu, status: 400 });
      }
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: session.token })).status).toBe(200);
    });

    // oidc-provider says "invalid DPoP key binding" for every proof jose refuses; the answer names the RFC 9449 §4.3
    // check that failed instead (provider.ts 'grant.error', errors.ts dpopProofProblem), same error and status.
    it('says which RFC 9449 §4.3 check a refused proof fails', async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      const authorization = basic(t.client_id, t.client_secret);
      const proof = (header: Record<string, unknown>, claims: Record<string, unknown> = {}, key: Parameters<SignJWT['sign']>[0] = dpopKey.privateKey) =>
        new SignJWT({ jti: randomUUID(), htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000), ...claims })
          .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.publicJwk, ...header } as { alg: string })
          .sign(key);
      const refusal = async (dpop: string | string[]) => {
        // Two values: two DPoP header fields on the wire (node:http writes one line per value).
        const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
          const req = request(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', authorization, dpop } }, (r) => {
            let body = '';
            r.on('data', (d: Buffer) => (body += d.toString()));
            r.on('end', () => resolve({ status: r.statusCode ?? 0, body }));
          });
          req.on('error', reject);
          req.end('grant_type=client_credentials');
        });
        expect(res.status).toBe(400);
        const body = JSON.parse(res.body) as { error: string; error_description: string };
        expect(body.error).toBe('invalid_dpop_proof');
        return body.error_description;
      };
      const es512 = await generateKeyPair('ES512', { extractable: true });
      const hmac = new TextEncoder().encode('0123456789abcdef0123456789abcdef');
      const privateJwk = await exportJWK(es512.privateKey);

      expect(await refusal([await proof({}), await proof({})])).toBe('more than one DPoP header field: send exactly one DPoP proof');
      expect(await refusal('garbage')).toBe('the DPoP header is not a JWT (compact JWS)');
      expect(await refusal(await proof({ typ: 'JWT' }))).toBe('DPoP proof typ header parameter must be dpop+jwt');
      const algs = 'DPoP proof alg must be one of ES256, ES384, Ed25519, EdDSA, PS256, RS256';
      expect(await refusal(await proof({ alg: 'ES512', jwk: await exportJWK(es512.publicKey) }, {}, es512.privateKey))).toBe(algs);
      expect(await refusal(await proof({ alg: 'HS256' }, {}, hmac))).toBe(algs);
      expect(await refusal(await proof({ jwk: { ...dpopKey.publicJwk, d: privateJwk.d } }))).toBe('DPoP proof jwk header parameter must be a public key (JWK)');
      expect(await refusal(await proof({}, { iat: String(Math.floor(Date.now() / 1000)) }))).toBe('DPoP proof must have a iat number property');
      const now = Math.floor(Date.now() / 1000);
      expect(await refusal(await proof({}, { exp: now - 10 }))).toBe('DPoP proof has expired (its exp claim is in the past)');
      expect(await refusal(await proof({}, { nbf: now + 600 }))).toBe('DPoP proof is not valid yet (its nbf claim is in the future)');
      // ES384 named, a P-256 key embedded (and signing): the key is not one ES384 can verify with.
      const p384 = await generateKeyPair('ES384', { extractable: true });
      expect(await refusal(await proof({ alg: 'ES384' }, {}, p384.privateKey))).toBe(
        'DPoP proof jwk is not a key its alg ES384 can verify with (P-256 for ES256, P-384 for ES384, Ed25519 for EdDSA)',
      );
      // An extension marked critical (RFC 7515 §4.1.11), which nothing here processes.
      const critical = await new SignJWT({ jti: randomUUID(), htm: 'POST', htu: tokenUrl, iat: Math.floor(Date.now() / 1000) })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.publicJwk, crit: ['x-ext'], 'x-ext': 1 } as { alg: string })
        .sign(dpopKey.privateKey, { crit: { 'x-ext': true } });
      expect(await refusal(critical)).toBe('DPoP proof crit header parameter names an extension this server does not process');
      // An RSA key under 2048 bits (signed by hand: jose will not sign with one either), refused for its size.
      const small = generateKeyPairSync('rsa', { modulusLength: 1024 });
      const part = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
      const signingInput = `${part({ alg: 'RS256', typ: 'dpop+jwt', jwk: small.publicKey.export({ format: 'jwk' }) })}.${part({ jti: randomUUID(), htm: 'POST', htu: tokenUrl, iat: now })}`;
      const smallProof = `${signingInput}.${sign('sha256', Buffer.from(signingInput), small.privateKey).toString('base64url')}`;
      expect(await refusal(smallProof)).toBe('DPoP proof jwk is an RSA key under 2048 bits (RS256 and PS256 need 2048 or more)');
      // A signature that does not verify with the embedded key is what the provider's own words are about.
      expect(await refusal(await proof({}, {}, (await clientKey()).privateKey))).toBe('invalid DPoP key binding');
      // The organisation's other tests need its token slots (25 at most).
      expect((await call(server, 'POST', `/tokens/${t.id}/revoke`, { token: session.token })).status).toBe(200);
    });

    it('require_dpop: no proof is 400 invalid_dpop_proof, whichever path; a proof gets a bound token', async () => {
      const t = await secretToken({ require_dpop: true });
      expect(t.require_dpop).toBe(true);
      const before = await scrape(server.url);
      const res = await post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, t.client_secret) });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_dpop_proof' });
      const after = await scrape(server.url);
      expect(metricValue(after, 'sat_token_requests_total', { outcome: 'ok', path: 'fast' })).toBe(
        metricValue(before, 'sat_token_requests_total', { outcome: 'ok', path: 'fast' }),
      );
      const dpopKey = await clientKey();
      const bound = await post(form({ grant_type: 'client_credentials' }), {
        authorization: basic(t.client_id, t.client_secret),
        dpop: await dpopProof(dpopKey, tokenUrl),
      });
      expect(bound.status).toBe(200);
      const body = (await bound.json()) as { token_type: string; access_token: string };
      expect(body.token_type).toBe('DPoP');
      expect((decodeJwt(body.access_token) as { cnf?: { jkt?: string } }).cnf?.jkt).toBe(dpopKey.thumbprint);
    });

    it('a resource server verifies a DPoP-bound token and its proof (docs/sender-constrained.md, jose)', async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      const res = await post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, t.client_secret), dpop: await dpopProof(dpopKey, tokenUrl) });
      const { access_token } = (await res.json()) as { access_token: string };
      const api = 'https://api.example.test/candidates?page=2';
      const seen = new Map<string, number>();
      const audience = server.deps.config.apiAudience;
      const request = { method: 'GET', url: api, authorization: `DPoP ${access_token}`, dpop: await resourceProof(dpopKey, 'GET', api, access_token) };
      const claims = await verifyDpopRequest(server.issuer, audience, request, seen);
      expect(claims.client_id).toBe(t.client_id);
      await expect(verifyDpopRequest(server.issuer, audience, request, seen)).rejects.toThrow(/replayed/);
      const thief = await clientKey();
      await expect(
        verifyDpopRequest(server.issuer, audience, { ...request, dpop: await resourceProof(thief, 'GET', api, access_token) }, seen),
      ).rejects.toThrow(/cnf.jkt/);
      await expect(
        verifyDpopRequest(server.issuer, audience, { ...request, dpop: await resourceProof(dpopKey, 'POST', api, access_token) }, seen),
      ).rejects.toThrow(/htm/);
      await expect(verifyDpopRequest(server.issuer, audience, { ...request, authorization: `Bearer ${access_token}` }, seen)).rejects.toThrow();
    });

    it("a resource server verifies a DPoP-bound token and its proof with oauth4webapi (README's example)", async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      const res = await post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, t.client_secret), dpop: await dpopProof(dpopKey, tokenUrl) });
      const { access_token } = (await res.json()) as { access_token: string };
      // README "Sender-constrained tokens at a resource server", with the test server's issuer and audience.
      const issuer = new URL(server.issuer);
      const as = await oauth.processDiscoveryResponse(issuer, await oauth.discoveryRequest(issuer, { [oauth.allowInsecureRequests]: true }));
      const audience = server.deps.config.apiAudience;
      const seen = new Map<string, number>();
      const verify = async (request: Request) => {
        const claims = await oauth.validateJwtAccessToken(as, request, audience, { requireDPoP: true, [oauth.allowInsecureRequests]: true });
        const { jti, iat } = decodeJwt(request.headers.get('dpop')!);
        if (typeof jti !== 'string' || seen.has(jti)) throw new Error('DPoP proof replayed');
        seen.set(jti, (iat ?? 0) * 1000 + 300_000);
        return claims;
      };
      const api = 'https://api.example.test/jobs/7';
      const request = async (key: ClientKey, method = 'GET', scheme = 'DPoP') =>
        new Request(api, { method, headers: { authorization: `${scheme} ${access_token}`, dpop: await resourceProof(key, method, api, access_token) } });
      const ok = await request(dpopKey);
      expect(await verify(ok)).toMatchObject({ client_id: t.client_id, scope: 'candidates', cnf: { jkt: dpopKey.thumbprint } });
      await expect(verify(ok)).rejects.toThrow(/replayed/);
      await expect(verify(await request(await clientKey()))).rejects.toThrow(); // a stolen token with another key
      await expect(verify(await request(dpopKey, 'POST').then((r) => new Request(r.url, { method: 'GET', headers: r.headers })))).rejects.toThrow(); // htm
      await expect(verify(await request(dpopKey, 'GET', 'Bearer'))).rejects.toThrow(); // requireDPoP
      await expect(verify(new Request(api, { headers: { authorization: `DPoP ${access_token}` } }))).rejects.toThrow(); // no proof
    });

    it('accepts a proof once whichever client presents it, in this organisation or another (SPEC: proof jtis not accepted twice)', async () => {
      const [t, other] = [await secretToken(), await secretToken()];
      const stranger = await makeAdmin(server.deps);
      const strangerSession = await signIn(server, stranger.email, stranger.password);
      const elsewhere = await call(server, 'POST', '/tokens', { token: strangerSession.token, json: tokenBody({ services: ['jobs'] }) });
      expect(elsewhere.status).toBe(201);
      const foreign = elsewhere.body as { client_id: string; client_secret: string };
      const dpopKey = await clientKey();
      const proof = await dpopProof(dpopKey, tokenUrl);
      const send = (c: { client_id: string; client_secret: string }) =>
        post(form({ grant_type: 'client_credentials' }), { authorization: basic(c.client_id, c.client_secret), dpop: proof });
      expect((await send(t)).status).toBe(200);
      for (const c of [other, foreign]) {
        const again = await send(c);
        expect({ status: again.status, body: await again.json() }).toEqual({
          status: 400,
          body: { error: 'invalid_dpop_proof', error_description: 'DPoP proof JWT replay detected' },
        });
      }
      // A client assertion's jti is its own: the same value as a spent proof's jti still authenticates.
      const key = await clientKey();
      const keyed = await keyToken(key);
      const jti = decodeJwt(proof).jti as string;
      const res = await post(form({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion(key, keyed.client_id, server.issuer, { jti }) }));
      expect(res.status).toBe(200);
    });

    it('keeps a proof jti for as long as the proof could be accepted, also a proof dated ahead', async () => {
      const t = await secretToken();
      const dpopKey = await clientKey();
      // oidc-provider accepts a proof whose iat is up to its window (300 s) from now, either way.
      const iat = Math.floor(Date.now() / 1000) + 290;
      const jti = randomUUID();
      const proof = await new SignJWT({ jti, htm: 'POST', htu: tokenUrl })
        .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopKey.publicJwk })
        .setIssuedAt(iat)
        .sign(dpopKey.privateKey);
      const send = () => post(form({ grant_type: 'client_credentials' }), { authorization: basic(t.client_id, t.client_secret), dpop: proof });
      expect((await send()).status).toBe(200);
      expect((await send()).status).toBe(400);
      // Accepted until iat + 300 s; its entry must not end (and be claimable again, or pruned) before that.
      const key = createHash('sha256').update(`DPoP proof ${jti}`).digest('base64url');
      const row = (await server.deps.db.knex('oauth_replay').where({ id: key }).first()) as { expires_at: Date };
      expect(row.expires_at.getTime()).toBeGreaterThanOrEqual((iat + 300) * 1000);
    });

    it('the replay store is a table whose expired entries the prune job deletes', async () => {
      const knex = server.deps.db.knex;
      const id = uniq('expired');
      await knex('oauth_replay').insert({ id, expires_at: new Date(Date.now() - 1000) });
      const { pruneOneTimeUses } = await import('../../src/tokens/index.js');
      expect(await pruneOneTimeUses(knex, new Date())).toBeGreaterThanOrEqual(1);
      expect(await knex('oauth_replay').where({ id }).first()).toBeUndefined();
      expect(Number((await knex('oauth_replay').count({ n: '*' }).first())?.n)).toBeGreaterThan(0); // the live jtis above
    });
  });
});
