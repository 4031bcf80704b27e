import net from 'node:net';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { rotateSigningKey } from '../../src/keys/index.js';
import { deleteToken } from '../../src/tokens/index.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { freePort, startServer, type TestServer } from '../support/server.js';

const exchange = async (url: string, clientId: string, secret: string) =>
  fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
    body: 'grant_type=client_credentials',
  });

const kinds = testDatabases().filter((k) => k === 'postgres');
const suite = kinds.length ? describe.each(kinds) : describe.skip.each(['postgres' as const]);

suite('several instances on one %s database', (kind) => {
  let db: TestDb;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    // Both start at the same moment on an empty database: migrations, first admin and keys must not race.
    [a, b] = await Promise.all([startServer(db), startServer(db)]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.drop();
  });

  it('end up with one key set: a token from one verifies with the other JWKS', async () => {
    const keys = await a.deps.db.knex('signing_keys').select('kid');
    expect(keys).toHaveLength(1);
    const admins = await a.deps.db.knex('admins').select('id');
    expect(admins).toHaveLength(1);
    const admin = await makeAdmin(a.deps);
    const t = await makeToken(a.deps, admin);
    const res = await exchange(a.url, t.client_id, t.client_secret);
    const { access_token } = (await res.json()) as { access_token: string };
    // Both issuers differ by port in tests, so verify the signature and audience-independent claims against B's keys.
    const { payload } = await jwtVerify(access_token, createRemoteJWKSet(new URL(`${b.url}/jwks`)));
    expect(payload.client_id).toBe(t.client_id);
  });

  it('stops token exchange on every instance when one deletes the token', async () => {
    const admin = await makeAdmin(b.deps);
    const t = await makeToken(b.deps, admin);
    expect((await exchange(a.url, t.client_id, t.client_secret)).status).toBe(200);
    expect((await exchange(b.url, t.client_id, t.client_secret)).status).toBe(200);
    expect(await deleteToken(b.deps.db.knex, admin.organisation_id, t.id)).toBeDefined();
    expect((await exchange(a.url, t.client_id, t.client_secret)).status).toBe(401);
    expect((await exchange(b.url, t.client_id, t.client_secret)).status).toBe(401);
  });

  it('rotates keys without failing tokens already issued', async () => {
    const admin = await makeAdmin(a.deps);
    const t = await makeToken(a.deps, admin);
    const before = ((await (await exchange(a.url, t.client_id, t.client_secret)).json()) as { access_token: string }).access_token;
    const oldKid = decodeProtectedHeader(before).kid;

    const { kid: newKid } = await rotateSigningKey(a.deps.db.knex, a.oauth.keyRing, 'ES256', new Date(), 0); // like --now
    expect(await a.oauth.reloadKeys()).toBe(true);
    expect(await b.oauth.reloadKeys()).toBe(true);

    for (const server of [a, b]) {
      const jwks = (await (await fetch(`${server.url}/jwks`)).json()) as { keys: Array<{ kid: string }> };
      expect(jwks.keys.map((k) => k.kid).sort()).toEqual([oldKid, newKid].sort());
      const after = ((await (await exchange(server.url, t.client_id, t.client_secret)).json()) as { access_token: string }).access_token;
      expect(decodeProtectedHeader(after).kid).toBe(newKid);
      const set = createRemoteJWKSet(new URL(`${server.url}/jwks`));
      await expect(jwtVerify(before, set)).resolves.toBeDefined(); // issued before the rotation
      await expect(jwtVerify(after, set)).resolves.toBeDefined();
    }
  });
});

const pgKinds = testDatabases().filter((k) => k === 'postgres');
const readySuite = pgKinds.length ? describe : describe.skip;

readySuite('readiness while PostgreSQL goes away and comes back', () => {
  let db: TestDb;
  let server: TestServer;
  let proxy: net.Server;
  let port: number;
  const sockets = new Set<net.Socket>();

  const startProxy = (target: URL) =>
    new Promise<void>((resolve) => {
      proxy = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname);
        sockets.add(client).add(upstream);
        client.pipe(upstream).pipe(client);
        const drop = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
      });
      proxy.listen(port, '127.0.0.1', () => resolve());
    });

  beforeAll(async () => {
    db = await createTestDb('postgres');
    const target = new URL(db.url!);
    port = await freePort();
    await startProxy(target);
    const viaProxy = new URL(db.url!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(port);
    server = await startServer(db, { DATABASE_URL: viaProxy.toString() });
  });
  afterAll(async () => {
    await server?.close();
    proxy?.close();
    await db?.drop();
  });

  it('answers 503 while the database is unreachable and 200 again once it is back, without a restart', async () => {
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
    await new Promise<void>((resolve) => {
      proxy.close(() => resolve());
      for (const s of sockets) s.destroy();
    });
    const down = await fetch(`${server.url}/readyz`);
    expect(down.status).toBe(503);
    expect(await down.json()).toMatchObject({ status: 'unavailable' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200); // alive all the same

    await startProxy(new URL(db.url!));
    let status = 0;
    for (let i = 0; i < 20 && status !== 200; i += 1) {
      status = (await fetch(`${server.url}/readyz`)).status;
      if (status !== 200) await new Promise((r) => setTimeout(r, 250));
    }
    expect(status).toBe(200);
  });
});
