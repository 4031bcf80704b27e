// SPEC Part 2 "Bounded state from unauthenticated traffic": a blocked address adds no throttle rows, throttle rows
// expire and are capped, revoked-access-token rows are capped per client and expire.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pruneSessions } from '../../src/accounts/index.js';
import { addressKey, pruneLoginThrottle } from '../../src/accounts/login-throttle.js';
import { pruneRevokedAccessTokens, revokeAccessToken } from '../../src/tokens/index.js';
import { call } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe('addressKey', () => {
  it('keys IPv6 addresses by their /64 and IPv4 (also mapped) by the address', () => {
    expect(addressKey('2001:db8:1:2:aaaa::1')).toBe('ip:2001:db8:1:2::/64');
    expect(addressKey('2001:db8:1:2:ffff:ffff:ffff:ffff')).toBe('ip:2001:db8:1:2::/64');
    expect(addressKey('2001:db8::1')).toBe('ip:2001:db8::/64');
    expect(addressKey('::1')).toBe('ip:::/64');
    expect(addressKey('2001:DB8:0:0:1::1')).toBe('ip:2001:db8::/64');
    expect(addressKey('::ffff:c000:207')).toBe('ip:192.0.2.7');
    expect(addressKey('::ffff:192.0.2.7')).toBe('ip:192.0.2.7');
    expect(addressKey('192.0.2.7')).toBe('ip:192.0.2.7');
    expect(addressKey(undefined)).toBe('ip:unknown');
  });
});

describe.each(testDatabases())('bounded state on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-conf-'));
    const configFile = path.join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        loginThrottle: { windowSeconds: 900, delayAfterFailures: 100, delayMs: 0, blockAfterFailures: 3, maxRows: 100, perAddressFactor: 1 },
        maxRevokedAccessTokensPerClient: 3,
      }),
    );
    server = await startServer(db, { TRUST_PROXY: 'true', CONFIG_FILE: configFile });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const knex = () => server.deps.db.knex;
  const countRows = async () => Number(((await knex()('login_throttle').count({ n: '*' }).first()) as { n: number | string }).n);
  const login = (email: string, ip: string) =>
    call(server, 'POST', '/login', { json: { email, password: 'wrong password' }, headers: { 'x-forwarded-for': ip } });

  it('adds no throttle row for a blocked address, however many emails it tries', async () => {
    const ip = '198.51.100.7';
    for (let i = 0; i < 3; i++) expect((await login(`victim-${i}@example.com`, ip)).status).toBe(401);
    const before = await countRows();
    for (let i = 0; i < 60; i++) expect((await login(`spray-${i}@example.com`, ip)).status).toBe(429);
    expect(await countRows()).toBe(before);
    expect(await knex()('login_throttle').where('key', 'like', 'email:spray-%').select('key')).toEqual([]);
  });

  it('counts an IPv6 /64 as one address', async () => {
    for (let i = 1; i <= 3; i++) expect((await login(`v6-${i}@example.com`, `2001:db8:77:1::${i}`)).status).toBe(401);
    expect((await login('v6-4@example.com', '2001:db8:77:1:ffff::9')).status).toBe(429);
  });

  it('expires finished windows and caps the table, keeping the newest windows', async () => {
    const now = new Date();
    const settings = server.deps.config.loginThrottle;
    const rows = Array.from({ length: 250 }, (_, i) => ({
      key: `email:cap-${i}@example.com`,
      failures: 1,
      window_started_at: new Date(now.getTime() - (250 - i) * 1000),
    }));
    await knex()('login_throttle').insert(rows);
    await pruneLoginThrottle(knex(), now, settings);
    expect(await countRows()).toBe(100);
    expect(await knex()('login_throttle').where({ key: 'email:cap-249@example.com' }).first()).toBeDefined();
    expect(await knex()('login_throttle').where({ key: 'email:cap-0@example.com' }).first()).toBeUndefined();
    // A window over: everything goes.
    await pruneSessions({ ...server.deps, clock: () => new Date(now.getTime() + (settings.windowSeconds + 1) * 1000) });
    expect(await countRows()).toBe(0);
  });

  it('a flood of cheap rows cannot push a locked-out account out of the table (its lockout holds)', async () => {
    const admin = await makeAdmin(server.deps);
    const settings = server.deps.config.loginThrottle;
    for (let i = 1; i <= 3; i++) expect((await login(admin.email, `203.0.113.${i}`)).status).toBe(401);
    expect((await login(admin.email, '203.0.113.50')).status).toBe(429);
    // A refusal for the account's lockout checks no password: the new address gets its attempt back.
    expect(await knex()('login_throttle').where({ key: 'ip:203.0.113.50' }).first()).toMatchObject({ failures: 0 });
    // More than maxRows (100) rows from other addresses, each made by one unauthenticated request.
    for (let i = 0; i < 120; i++) {
      const res = await call(server, 'POST', '/password-reset', { json: { email: 'nobody@example.com' }, headers: { 'x-forwarded-for': `2001:db8:${i.toString(16)}::1` } });
      expect(res.status).toBe(202);
    }
    for (let i = 0; i < 20; i++) expect((await login(admin.email, `2001:db8:f${i.toString(16)}::1`)).status).toBe(429);
    expect(await countRows()).toBeGreaterThan(settings.maxRows);
    await pruneLoginThrottle(knex(), new Date(), settings);
    expect(await countRows()).toBe(settings.maxRows);
    // Still locked out, even with the right password, from an address never seen.
    expect(await knex()('login_throttle').where({ key: `email:${admin.email}` }).first()).toMatchObject({ failures: expect.any(Number) });
    const right = await call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password }, headers: { 'x-forwarded-for': '192.0.2.200' } });
    expect(right.status).toBe(429);
  });

  it('caps the revoked access tokens a client can have on record (503 + Retry-After), until they expire', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const auth = { authorization: basic(t.client_id, t.client_secret), 'content-type': 'application/x-www-form-urlencoded' };
    const mint = async () => {
      const res = await fetch(`${server.url}/token`, { method: 'POST', headers: auth, body: 'grant_type=client_credentials' });
      return ((await res.json()) as { access_token: string }).access_token;
    };
    const revoke = (token: string) => fetch(`${server.url}/token/revocation`, { method: 'POST', headers: auth, body: `token=${token}` });
    for (let i = 0; i < 3; i++) expect((await revoke(await mint())).status).toBe(200);
    const fourth = await mint();
    const refused = await revoke(fourth);
    expect(refused.status).toBe(503);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(await refused.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(await knex()('revoked_access_tokens').where({ client_id: t.client_id }).count({ n: '*' }).first()).toEqual({ n: 3 });
    // Past their exp the records are pruned and revocation records again.
    await pruneRevokedAccessTokens(knex(), new Date(Date.now() + 3_600_000));
    expect((await revoke(fourth)).status).toBe(200);
  });

  it('holds the cap under concurrent revocations of one client (the count and the record are one step)', async () => {
    // Twenty revocations of one client at once, as many instances' requests would run them: three are recorded.
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const now = new Date();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        revokeAccessToken(knex(), { jti: `race-${t.client_id}-${i}`, client_id: t.client_id, organisation_id: admin.organisation_id, expires_at: new Date(now.getTime() + 600_000) }, now, 3),
      ),
    );
    expect(outcomes.filter((o) => o.recorded)).toHaveLength(3);
    expect(await knex()('revoked_access_tokens').where({ client_id: t.client_id }).count({ n: '*' }).first()).toEqual({ n: 3 });
  });

  it('runs one client’s revocations one at a time on an instance: one pooled connection, never the pool', async () => {
    // Counted around the real database: how many of this client's revocation transactions are open at once. Each
    // waits for the client's lock; were they all open, one client revoking many tokens at once would hold every
    // pooled connection and other clients' requests would queue behind it.
    const real = knex();
    let open = 0;
    let most = 0;
    const counting = new Proxy(real, {
      get(target, prop, receiver) {
        if (prop !== 'transaction') return Reflect.get(target, prop, receiver);
        return (work: (trx: unknown) => Promise<unknown>) =>
          target.transaction(async (trx) => {
            most = Math.max(most, ++open);
            try {
              return await work(trx);
            } finally {
              open--;
            }
          });
      },
    });
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const now = new Date();
    const outcomes = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        revokeAccessToken(counting, { jti: `queued-${t.client_id}-${i}`, client_id: t.client_id, organisation_id: admin.organisation_id, expires_at: new Date(now.getTime() + 600_000) }, now, 100),
      ),
    );
    expect(outcomes.every((o) => o.recorded)).toBe(true);
    expect(most).toBe(1);
    // A jti already on record is recorded again (200 at the endpoint), even with the cap reached.
    expect(await revokeAccessToken(real, { jti: `queued-${t.client_id}-0`, client_id: t.client_id, organisation_id: admin.organisation_id, expires_at: new Date(now.getTime() + 600_000) }, now, 20)).toEqual({ recorded: true });
  });
});
