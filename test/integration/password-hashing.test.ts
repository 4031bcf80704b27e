// SPEC Part 2 "Admin sign-in cannot starve token issuance": password hashing runs on its own threads with a
// bounded queue; a sign-in past the queue is answered 429 with Retry-After, never queued without bound.
// (The token endpoint's latency under a sign-in storm is measured by `npm run bench`, not here.)
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPassword, verifyPassword } from '../../src/accounts/index.js';
import { passwordCheckHasRoom } from '../../src/accounts/passwords.js';
import { call } from '../support/admin-api.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

/**
 * Tests that wait for several production-cost hashes (~0.5 s each quiet) on the one hashing thread, which runs at nice
 * 19: on 2 cores busy with other test files each can take seconds.
 */
const HASHING_TEST_MS = 60_000;

describeEmbedded('password hashing with bounded concurrency', () => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb('embedded');
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-conf-'));
    const configFile = path.join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({
        loginThrottle: { windowSeconds: 900, delayAfterFailures: 1000, delayMs: 0, blockAfterFailures: 1000, perAddressFactor: 1 },
        passwordHashing: { threads: 1, maxQueue: 2 },
      }),
    );
    // The production cost (the suite's default is the floor, 12): the queue must fill up with real hashes.
    server = await startServer(db, { TRUST_PROXY: 'true', CONFIG_FILE: configFile, PASSWORD_HASH_COST: '15' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('hashes and verifies on the worker threads', async () => {
    const stored = await hashPassword('pässword');
    expect(stored).toMatch(/^scrypt\$32768\$8\$1\$/);
    expect(await verifyPassword('pässword', stored)).toBe(true);
    expect(await verifyPassword('pa\u0308ssword', stored)).toBe(true); // NFC before hashing
    expect(await verifyPassword('password', stored)).toBe(false);
    expect(await verifyPassword('x', 'scrypt$99999999999$8$1$AAAA$AAAA').catch(() => 'refused')).toBe('refused');
  });

  it('answers 429 with Retry-After past the queue, and signs in once the storm is over', async () => {
    const admin = await makeAdmin(server.deps);
    const storm = await Promise.all(
      Array.from({ length: 16 }, (_, i) =>
        call(server, 'POST', '/login', { json: { email: `storm-${i}@example.com`, password: 'wrong' }, headers: { 'x-forwarded-for': `203.0.113.${i + 1}` } }),
      ),
    );
    const statuses = storm.map((r) => r.status).sort();
    expect(statuses.every((s) => s === 401 || s === 429)).toBe(true);
    const refused = storm.filter((r) => r.status === 429);
    expect(refused.length).toBeGreaterThan(0);
    expect(statuses.filter((s) => s === 401).length).toBeGreaterThanOrEqual(3); // one hashing + two waiting
    for (const r of refused) {
      expect(r.headers.get('retry-after')).toBe('1');
      expect(r.body.error).toBe('rate_limited');
    }
    const ok = await call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password }, headers: { 'x-forwarded-for': '203.0.113.200' } });
    expect(ok.status).toBe(200);
  }, HASHING_TEST_MS);

  it('issues tokens while sign-ins are hashing', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const storm = Promise.all(
      Array.from({ length: 3 }, (_, i) =>
        call(server, 'POST', '/login', { json: { email: `busy-${i}@example.com`, password: 'wrong' }, headers: { 'x-forwarded-for': `203.0.113.${100 + i}` } }),
      ),
    );
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: basic(t.client_id, t.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(res.status).toBe(200);
    await storm;
  });

  // The other requests that hash a password (SPEC Part 2 "Administrators") meet the same full queue: 429 with
  // Retry-After like a sign-in, not 500. The queue is held full from the test process (the server's pool is this
  // process's): each finished hash is replaced at once, before the server's request can find room.
  it('answers 429 to a password change, an invitation and a reset confirmation while the queue is full', async () => {
    const admin = await makeAdmin(server.deps);
    const login = await call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password }, headers: { 'x-forwarded-for': '203.0.113.210' } });
    expect(login.status).toBe(200);
    let holding = true;
    const fillers: Array<Promise<unknown>> = [];
    const fill = () => {
      while (holding && passwordCheckHasRoom()) fillers.push(hashPassword('filler-password').finally(fill));
    };
    fill();
    try {
      const answers = [
        await call(server, 'POST', '/me/password', {
          token: login.body.token,
          json: { current_password: admin.password, new_password: 'a-new-password-1' },
          headers: { 'x-forwarded-for': '203.0.113.211' },
        }),
        await call(server, 'POST', '/invitations/accept', { json: { token: 'sai_x', password: 'a-new-password-1' }, headers: { 'x-forwarded-for': '203.0.113.212' } }),
        await call(server, 'POST', '/password-reset/confirm', { json: { token: 'sar_x', new_password: 'a-new-password-1' }, headers: { 'x-forwarded-for': '203.0.113.213' } }),
      ];
      for (const r of answers) {
        expect([r.status, r.body.error, r.headers.get('retry-after')]).toEqual([429, 'rate_limited', '1']);
      }
    } finally {
      holding = false;
      await Promise.allSettled(fillers);
    }
    expect(server.logLines.filter((l) => l.includes('request failed'))).toEqual([]);
    const changed = await call(server, 'POST', '/me/password', {
      token: login.body.token,
      json: { current_password: admin.password, new_password: 'a-new-password-1' },
      headers: { 'x-forwarded-for': '203.0.113.214' },
    });
    expect(changed.status).toBe(204);
  });
});
