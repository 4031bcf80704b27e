import { createLocalJWKSet, createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { runCommand } from '../../src/commands.js';
import type { GeneratedToken } from '../../src/tokens/index.js';
import { runSatInProcess } from '../support/cli.js';
import { TestClock } from '../support/clock.js';
import { describeEmbedded, createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describeEmbedded('SIGNING_ALG=RS256', () => {
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

// SPEC Part 2 "Signing-key rotation never fails a verifier" when SIGNING_ALG changes (README: SIGNING_ALG is the
// algorithm of new signing keys). The signer is the newest key of any algorithm whose time has come; a key of the
// new algorithm is published at the restart and signs only KEY_PUBLISH_AHEAD_SECONDS later. The server's clock is
// the injected TestClock (keys, introspection); jobs run when the test says so. oidc-provider and jose read real
// time, so the access tokens live long enough (TTL) to stay valid across the moved clock.
describe.each(testDatabases())('changing SIGNING_ALG on %s', (kind) => {
  const ISSUER = 'https://sat.example.test'; // the same issuer across restarts (each listens on another port)
  const AHEAD = 600;
  const TTL = 3600;
  /** A verifier that cached the JWKS and does not refetch for ten minutes (max-age 300 and more). */
  const cachingVerifier = (url: string) => createRemoteJWKSet(new URL(`${url}/jwks`), { cacheMaxAge: 600_000, cooldownDuration: 600_000 });

  let db: TestDb;
  let server: TestServer | undefined;
  const clock = new TestClock();
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const start = async (alg: 'ES256' | 'RS256'): Promise<TestServer> => {
    await server?.close();
    server = undefined;
    server = await startServer(db, { ISSUER, SIGNING_ALG: alg, ACCESS_TOKEN_TTL_SECONDS: String(TTL) }, { clock, jobs: 'manual' });
    return server;
  };
  const jwks = async (s: TestServer) => ((await (await fetch(`${s.url}/jwks`)).json()) as { keys: Array<{ kid: string; alg: string }> }).keys;
  const discoveryAlgs = async (s: TestServer) =>
    ((await (await fetch(`${s.url}/.well-known/openid-configuration`)).json()) as { id_token_signing_alg_values_supported: string[] })
      .id_token_signing_alg_values_supported;
  async function accessToken(s: TestServer, t: GeneratedToken): Promise<string> {
    const res = await fetch(`${s.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
      body: 'grant_type=client_credentials',
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }
  const verify = (jwt: string, keys: ReturnType<typeof createRemoteJWKSet>, algorithms: string[]) =>
    jwtVerify(jwt, keys, { issuer: ISSUER, audience: `${ISSUER}/api`, typ: 'at+jwt', algorithms });
  async function introspect(s: TestServer, caller: GeneratedToken, token: string): Promise<Record<string, unknown>> {
    const res = await fetch(`${s.url}/token/introspection`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(caller.client_id, caller.client_secret) },
      body: new URLSearchParams({ token }).toString(),
    });
    expect(res.status).toBe(200);
    return (await res.json()) as Record<string, unknown>;
  }

  let t: GeneratedToken;
  let esKid: string;
  let rsKid: string;

  it('a restart with SIGNING_ALG=RS256 publishes an RS256 key at once and keeps signing ES256 until KEY_PUBLISH_AHEAD_SECONDS have passed', async () => {
    let s = await start('ES256');
    t = await makeToken(s.deps, await makeAdmin(s.deps));
    const esToken = await accessToken(s, t);
    esKid = decodeProtectedHeader(esToken).kid!;
    expect(decodeProtectedHeader(esToken).alg).toBe('ES256');
    // A resource server that fetched the JWKS (and the discovery's algorithms) before the restart.
    const before = createLocalJWKSet({ keys: await jwks(s) });
    const algsBefore = await discoveryAlgs(s);

    s = await start('RS256');
    const published = await jwks(s);
    const rs = published.filter((k) => k.alg === 'RS256');
    expect(rs).toHaveLength(1); // published at once
    rsKid = rs[0]!.kid;
    expect(published.map((k) => k.kid)).toEqual([esKid, rsKid]); // the signer first
    expect(s.logLines.join('\n')).toMatch(/SIGNING_ALG changed/);

    // The first token after the restart: still ES256 with the key every verifier holds.
    const first = await accessToken(s, t);
    expect(decodeProtectedHeader(first)).toMatchObject({ alg: 'ES256', kid: esKid });
    await jwtVerify(first, before, { issuer: ISSUER, audience: `${ISSUER}/api`, typ: 'at+jwt', algorithms: algsBefore });
    // Discovery names both algorithms, the configured one first (express-oauth2-jwt-bearer accepts this list).
    const algs = await discoveryAlgs(s);
    expect(algs).toEqual(['RS256', 'ES256']);
    const cached = cachingVerifier(s.url); // fetches the JWKS now, with both keys, and keeps it
    await verify(first, cached, algs);
    // `sat keys list`, whatever SIGNING_ALG its shell has, names the same signer.
    for (const SIGNING_ALG of ['ES256', 'RS256']) {
      const listed = await runCommand({ ...s.deps, config: { ...s.deps.config, signingAlg: SIGNING_ALG as 'ES256' | 'RS256' } }, 'keys-list', {});
      expect(listed).toMatchObject({ ok: true, result: { signing_kid: esKid } });
    }

    clock.advance((AHEAD - 5) * 1000);
    await s.runJob('reload-keys');
    expect(decodeProtectedHeader(await accessToken(s, t))).toMatchObject({ alg: 'ES256', kid: esKid });
    clock.advance(10_000);
    await s.runJob('reload-keys');
    const rsToken = await accessToken(s, t);
    expect(decodeProtectedHeader(rsToken)).toMatchObject({ alg: 'RS256', kid: rsKid });
    // The verifier that cached the JWKS after the restart accepts it without a refetch; a fresh one does too.
    await verify(rsToken, cached, algs);
    const fresh = createRemoteJWKSet(new URL(`${s.url}/jwks`));
    await verify(rsToken, fresh, algs);
    expect(await introspect(s, t, rsToken)).toMatchObject({ active: true });
    // Tokens of the ES256 key still verify and introspect: it stays published for the retention.
    expect((await jwks(s)).map((k) => k.kid)).toEqual([rsKid, esKid]);
    await verify(esToken, fresh, algs);
    await verify(first, cached, algs);
    expect(await introspect(s, t, esToken)).toMatchObject({ active: true });
    expect(await introspect(s, t, first)).toMatchObject({ active: true });
  });

  it('switching back to ES256 does not sign with the superseded ES256 key: a new ES256 key is published ahead', async () => {
    const s = await start('ES256');
    const published = await jwks(s);
    const es = published.filter((k) => k.alg === 'ES256' && k.kid !== esKid);
    expect(es).toHaveLength(1);
    const es2Kid = es[0]!.kid;
    expect(published.map((k) => k.kid)).toEqual([rsKid, es2Kid, esKid]); // the signer, the pending key, the retiring one
    expect(decodeProtectedHeader(await accessToken(s, t))).toMatchObject({ alg: 'RS256', kid: rsKid });
    expect(await discoveryAlgs(s)).toEqual(['ES256', 'RS256']);
    const cached = cachingVerifier(s.url);

    clock.advance((AHEAD + 5) * 1000);
    await s.runJob('reload-keys');
    const token = await accessToken(s, t);
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'ES256', kid: es2Kid });
    await verify(token, cached, ['ES256', 'RS256']);
    // A restart with the same algorithm adds nothing.
    const again = await start('ES256');
    expect((await jwks(again)).map((k) => k.kid).sort()).toEqual(published.map((k) => k.kid).sort());
    expect(decodeProtectedHeader(await accessToken(again, t))).toMatchObject({ alg: 'ES256', kid: es2Kid });
  });

  (kind === 'postgres' ? it : it.skip)('instances that start together with a new SIGNING_ALG agree on one new key', async () => {
    await server?.close();
    server = undefined;
    const env = { ISSUER, SIGNING_ALG: 'RS256', ACCESS_TOKEN_TTL_SECONDS: String(TTL) };
    const [a, b] = await Promise.all([startServer(db, env, { clock, jobs: 'manual' }), startServer(db, env, { clock, jobs: 'manual' })]);
    try {
      const pending = await a.deps.db.knex('signing_keys').where('alg', 'RS256').where('not_before', '>', clock.now());
      expect(pending).toHaveLength(1);
      expect(b.oauth.keySet.fingerprint).toBe(a.oauth.keySet.fingerprint);
      expect(a.oauth.keySet).toMatchObject({ signingAlg: 'ES256' });
      expect(a.oauth.keySet.publicKeys.map((k) => k.kid)).toContain(pending[0].kid);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

// `sat keys list` and `sat keys rotate` from a shell whose SIGNING_ALG is not the server's (run in this process with
// the shell's environment, the server stopped so the command does not run inside it on the embedded database).
describe.each(testDatabases())('sat keys with another SIGNING_ALG than the server on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('names the same signer and adds a key that signs only after the ahead window', async () => {
    server = await startServer(db, {}, { jobs: 'manual' }); // ES256
    const signer = server.oauth.keySet.signingKid;
    await server.close();
    server = undefined;
    const shell = { ...db.env, SIGNING_ALG: 'RS256' };

    const listed = await runSatInProcess(['keys', 'list', '--json'], shell);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { signing_kid: string }).signing_kid).toBe(signer);

    const rotated = await runSatInProcess(['keys', 'rotate', '--json'], shell);
    expect(rotated.code).toBe(0);
    const { kid, alg } = JSON.parse(rotated.stdout) as { kid: string; alg: string };
    expect(alg).toBe('RS256'); // the new key's algorithm is the shell's SIGNING_ALG
    const after = JSON.parse((await runSatInProcess(['keys', 'list', '--json'], shell)).stdout) as {
      signing_kid: string;
      published: Array<{ kid: string; status: string }>;
    };
    expect(after.signing_kid).toBe(signer);
    expect(after.published).toEqual(expect.arrayContaining([expect.objectContaining({ kid, status: 'pending' })]));

    server = await startServer(db, {}, { jobs: 'manual' });
    expect(server.oauth.keySet.signingKid).toBe(signer);
    expect(server.oauth.keySet.publicKeys.map((k) => k.kid)).toContain(kid);

    // The emergency rotation (the server's ES256) drops the pending RS256 key too: it would take over from it.
    const emergency = await runCommand(server.deps, 'keys-rotate', { now: true });
    expect(emergency).toMatchObject({ ok: true, result: { alg: 'ES256', dropped_pending: [kid] } });
    await server.oauth.reloadKeys();
    expect(server.oauth.keySet.signingKid).toBe((emergency as { result: { kid: string } }).result.kid);
    expect(server.oauth.keySet.publicKeys.map((k) => k.kid)).not.toContain(kid);
  });

  it('a start with a changed SIGNING_ALG deletes a pending key of the old algorithm, which would take the change back', async () => {
    await server?.close();
    const clock = new TestClock();
    server = await startServer(db, {}, { clock, jobs: 'manual' }); // ES256
    // A routine rotation just before the change: an ES256 key that signs KEY_PUBLISH_AHEAD_SECONDS from now.
    const routine = await runCommand(server.deps, 'keys-rotate', { now: false });
    const oldPending = (routine as { result: { kid: string } }).result.kid;
    await server.close();
    server = await startServer(db, { SIGNING_ALG: 'RS256' }, { clock, jobs: 'manual' });
    const published = server.oauth.keySet.publicKeys;
    expect(published.map((k) => k.kid)).not.toContain(oldPending);
    const rsKid = published.find((k) => k.alg === 'RS256')!.kid!;
    expect(server.logLines.join('\n')).toMatch(new RegExp(`SIGNING_ALG changed to RS256.*deleted the pending key\\(s\\) of the previous algorithm.*${oldPending}`));
    // Past both keys' time, the RS256 key signs, and stays the signer.
    clock.advance((server.deps.config.keyPublishAheadSeconds + 60) * 1000);
    await server.oauth.reloadKeys();
    expect(server.oauth.keySet).toMatchObject({ signingKid: rsKid, signingAlg: 'RS256' });
  });
});
