import { randomBytes, scryptSync } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addressKey, emailKey, pruneSessions, registerAttempt, verifyPassword } from '../../src/accounts/index.js';
import { loadConfig } from '../../src/config/index.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

let nextAddress = 1;
/** A fresh client address per use, so the per-address throttle of one test does not leak into another. */
const freshIp = () => {
  const n = nextAddress++;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};

// The server's throttle waits 1 ms per step (the wait is a plain timer); what it decides is tested on its own below.
const DELAY_MS = 1;
const HOUR = 3_600_000;

describe.each(testDatabases())('admin sessions on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-conf-'));
    const configFile = path.join(dir, 'config.json');
    writeFileSync(
      configFile,
      // passwordHashing.nice 0: this file times sign-ins against the throttle's delays, on a machine shared with
      // other work; at the default nice 19 the hashing thread yields to everything else (docs/security.md).
      JSON.stringify({
        loginThrottle: { windowSeconds: 900, delayAfterFailures: 5, delayMs: DELAY_MS, blockAfterFailures: 10, perAddressFactor: 1 },
        passwordHashing: { threads: 1, maxQueue: 32, nice: 0 },
      }),
    );
    // TRUST_PROXY: tests choose the client address with X-Forwarded-For.
    server = await startServer(db, { TRUST_PROXY: 'true', CONFIG_FILE: configFile });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const login = (email: string, password: string, ip = freshIp(), extra: Record<string, unknown> = {}) =>
    call(server, 'POST', '/login', { json: { email, password, ...extra }, headers: { 'x-forwarded-for': ip } });

  it('signs in with the password, sets an HttpOnly SameSite=Strict cookie, and answers /me by Bearer and by cookie', async () => {
    const admin = await makeAdmin(server.deps);
    const res = await login(admin.email, admin.password);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(res.body.token).toMatch(/^sas_[A-Za-z0-9_-]{43}$/);
    expect(res.body.csrf_token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(res.body.admin).toEqual({
      id: admin.id,
      email: admin.email,
      organisation: { id: admin.organisation_id, name: admin.organisation_name },
    });

    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toContain(`sat_session=${res.body.token}`);
    expect(cookie).toMatch(/;\s*HttpOnly/i);
    expect(cookie).toMatch(/;\s*SameSite=Strict/i);
    expect(cookie).toMatch(/;\s*Path=\//i);
    expect(cookie).not.toMatch(/;\s*Secure/i); // plain http here

    const viaBearer = await call(server, 'GET', '/me', { token: res.body.token });
    expect(viaBearer.status).toBe(200);
    expect(viaBearer.body).toMatchObject({
      admin: { id: admin.id, email: admin.email },
      organisation: { id: admin.organisation_id, name: admin.organisation_name },
      csrf_token: res.body.csrf_token,
    });
    const viaCookie = await call(server, 'GET', '/me', { headers: { cookie: `sat_session=${res.body.token}` } });
    expect(viaCookie.status).toBe(200);
    expect(viaCookie.body.admin.email).toBe(admin.email);
    expect(viaCookie.body.csrf_token).toBe(res.body.csrf_token);

    // The database keeps a hash of the session token, never the token.
    const rows = await server.deps.db.knex('admin_sessions').where({ admin_id: admin.id });
    expect(rows).toHaveLength(1);
    expect(JSON.stringify(rows)).not.toContain(res.body.token.slice(4));
  });

  it('marks the cookie Secure when the request came over HTTPS', async () => {
    const admin = await makeAdmin(server.deps);
    const res = await call(server, 'POST', '/login', {
      json: { email: admin.email, password: admin.password },
      headers: { 'x-forwarded-for': freshIp(), 'x-forwarded-proto': 'https' },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('set-cookie')).toMatch(/;\s*Secure/i);
    // A list is read right-most first, the value our load balancer added, as X-Forwarded-For is: a client that
    // writes `http` itself does not take Secure off, nor does one that writes `https` put it on.
    for (const [proto, secure] of [['http, https', true], ['https, http', false]] as const) {
      const again = await call(server, 'POST', '/login', {
        json: { email: admin.email, password: admin.password },
        headers: { 'x-forwarded-for': freshIp(), 'x-forwarded-proto': proto },
      });
      expect(again.status).toBe(200);
      expect({ proto, secure: /;\s*Secure/i.test(again.headers.get('set-cookie') ?? '') }).toEqual({ proto, secure });
    }
  });

  it('over HTTPS names the cookie __Host-sat_session (no other site on the host can plant or shadow it), and reads only that', async () => {
    const admin = await makeAdmin(server.deps);
    const https = { 'x-forwarded-proto': 'https' };
    const res = await call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password }, headers: { ...https, 'x-forwarded-for': freshIp() } });
    expect(res.status).toBe(200);
    const cookie = res.headers.get('set-cookie') ?? '';
    expect(cookie).toMatch(new RegExp(`^__Host-sat_session=${res.body.token}; path=/; expires=[^;]+; samesite=strict; secure; httponly$`, 'i'));
    // HTTPS responses tell the browser never to come back over plain HTTP (HSTS_MAX_AGE_SECONDS, one year by
    // default); plain HTTP responses do not (browsers ignore it there).
    expect(res.headers.get('strict-transport-security')).toBe('max-age=31536000');
    expect((await call(server, 'GET', '/me', { headers: { 'x-forwarded-proto': 'https' } })).headers.get('strict-transport-security')).toBe('max-age=31536000');
    expect((await fetch(`${server.url}/healthz`, { headers: { 'x-forwarded-proto': 'https' } })).headers.get('strict-transport-security')).toBe('max-age=31536000');
    expect((await fetch(`${server.url}/healthz`)).headers.get('strict-transport-security')).toBeNull();
    expect((await call(server, 'GET', '/me', { headers: { ...https, cookie: `__Host-sat_session=${res.body.token}` } })).status).toBe(200);
    // The unprefixed name is not read over HTTPS (another site on the host could have set it).
    expect((await call(server, 'GET', '/me', { headers: { ...https, cookie: `sat_session=${res.body.token}` } })).status).toBe(401);
    // Sign-out clears it, and the unprefixed cookie of an older version.
    const out = await call(server, 'POST', '/logout', { headers: { ...https, cookie: `__Host-sat_session=${res.body.token}`, 'x-csrf-token': res.body.csrf_token } });
    expect(out.status).toBe(204);
    const cleared = out.headers.getSetCookie();
    expect(cleared).toContainEqual(expect.stringMatching(/^__Host-sat_session=; path=\/; expires=Thu, 01 Jan 1970 00:00:00 GMT/i));
    expect(cleared).toContainEqual(expect.stringMatching(/^sat_session=; path=\/; expires=Thu, 01 Jan 1970 00:00:00 GMT/i));
  });

  it('of several session cookies uses the one live session; two live ones are refused and cleared; sign-in clears planted ones', async () => {
    const admin = await makeAdmin(server.deps);
    const res = await login(admin.email, admin.password);
    // Junk at a narrower Path (another site's, or an older version's), sent first: the live session is used.
    const junk = `sat_session=sas_${'j'.repeat(43)}`;
    const withJunk = await call(server, 'GET', '/me', { headers: { cookie: `${junk}; sat_session=${res.body.token}` } });
    expect([withJunk.status, withJunk.body.admin?.email]).toEqual([200, admin.email]);
    // Another administrator's live session planted beside ours (to act as them): neither is used, both are cleared.
    const other = await makeAdmin(server.deps);
    const planted = (await login(other.email, other.password)).body.token as string;
    const twice = await call(server, 'GET', '/me', { headers: { cookie: `sat_session=${planted}; sat_session=${res.body.token}` } });
    expect([twice.status, twice.body.error]).toEqual([401, 'unauthorized']);
    expect(twice.body.message).toContain('Two sessions arrived');
    const cleared = twice.headers.getSetCookie();
    for (const path of ['/', '/admin', '/admin/api']) {
      expect(cleared).toContainEqual(expect.stringMatching(new RegExp(`^sat_session=; path=${path.replaceAll('/', '\\/')}; expires=Thu, 01 Jan 1970`, 'i')));
    }
    // Signing in with a planted cookie at hand sets ours and clears those at the narrower Paths.
    const again = await call(server, 'POST', '/login', {
      json: { email: admin.email, password: admin.password },
      headers: { 'x-forwarded-for': freshIp(), cookie: junk },
    });
    expect(again.status).toBe(200);
    const set = again.headers.getSetCookie();
    expect(set[0]).toMatch(new RegExp(`^sat_session=${again.body.token}; path=/;`));
    expect(set).toContainEqual(expect.stringMatching(/^sat_session=; path=\/admin\/api; expires=Thu, 01 Jan 1970/i));
    expect((await call(server, 'GET', '/me', { headers: { cookie: `sat_session=${again.body.token}` } })).status).toBe(200);
  });

  it('lives 12 hours from sign-in, by the server clock', async () => {
    const admin = await makeAdmin(server.deps);
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    server.clock.set(at);
    try {
      const res = await login(admin.email, admin.password);
      expect(res.status).toBe(200);
      expect(res.body.expires_at).toBe(new Date(at.getTime() + 12 * HOUR).toISOString());
      expect(res.headers.get('set-cookie')).toContain(`expires=${new Date(at.getTime() + 12 * HOUR).toUTCString()}`);
    } finally {
      server.clock.resume();
    }
  });

  it('gives a wrong password and an unknown email the same 401', async () => {
    const admin = await makeAdmin(server.deps);
    const wrong = await login(admin.email, 'not-the-password');
    const unknown = await login(`nobody-${Date.now()}@example.com`, 'not-the-password');
    expect(wrong.status).toBe(401);
    expect(unknown.status).toBe(401);
    expect(wrong.body).toEqual({ error: 'invalid_credentials', message: expect.any(String) });
    expect(unknown.body).toEqual(wrong.body);
    expect(wrong.headers.get('set-cookie')).toBeNull();
    // A 401 carries a challenge (RFC 9110 §15.5.2), the admin API's, as its other 401s.
    for (const res of [wrong, unknown]) expect(res.headers.get('www-authenticate')).toBe('Bearer');
    // Both paths check a password (an unknown email against a dummy hash of the same cost): see
    // test/unit/accounts/passwords.test.ts, instead of a wall-clock comparison here.
  });

  it('makes a hash of another cost again at the current one when its password signs in, two sign-ins at once too', async () => {
    // As after PASSWORD_HASH_COST changed: a hash made at cost 13, where the server hashes at the suite's 12.
    const admin = await makeAdmin(server.deps);
    const salt = randomBytes(16);
    const key = scryptSync(admin.password.normalize('NFC'), salt, 32, { N: 2 ** 13, r: 8, p: 1, maxmem: 64 * 1024 * 1024 });
    const old = ['scrypt', 2 ** 13, 8, 1, salt.toString('base64url'), key.toString('base64url')].join('$');
    const stored = async () => ((await server.deps.db.knex('admins').where({ id: admin.id }).first('password_hash')) as { password_hash: string }).password_hash;
    await server.deps.db.knex('admins').where({ id: admin.id }).update({ password_hash: old });

    expect((await login(admin.email, 'not-the-password')).status).toBe(401);
    expect(await stored()).toBe(old); // a wrong password changes nothing
    // Two at once: one makes it again, the other, which read the old hash, is not refused for it.
    const both = await Promise.all([login(admin.email, admin.password), login(admin.email, admin.password)]);
    expect(both.map((r) => r.status)).toEqual([200, 200]);
    const now = await stored();
    expect(now).toMatch(/^scrypt\$4096\$8\$1\$/);
    expect(await verifyPassword(admin.password, now)).toBe(true);
    expect((await login(admin.email, admin.password)).status).toBe(200);
    expect(await stored()).toBe(now); // made once
  });

  it('validates the login body field by field', async () => {
    const missing = await call(server, 'POST', '/login', { json: { email: 'a@example.com' } });
    expect(missing.status).toBe(400);
    expect(missing.body).toEqual({
      error: 'validation_failed',
      message: expect.any(String),
      details: [{ path: 'password', message: 'is required' }],
    });
    const extra = await call(server, 'POST', '/login', { json: { email: 'a@example.com', password: 'x', remember: true } });
    expect(extra.status).toBe(400);
    expect(extra.body.details).toEqual([{ path: 'remember', message: expect.any(String) }]);
    const wrongType = await call(server, 'POST', '/login', { json: { email: 42, password: ['x'] } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.details.map((d: { path: string }) => d.path).sort()).toEqual(['email', 'password']);
    const noBody = await call(server, 'POST', '/login');
    expect(noBody.status).toBe(400);
    expect(noBody.body.details).toEqual([{ path: 'body', message: 'must be a JSON object' }]);
  });

  it('refuses calls without a valid session', async () => {
    const attempts: Array<Record<string, string>> = [
      {},
      { authorization: 'Bearer nonsense' },
      { authorization: `Bearer sas_${'A'.repeat(43)}` },
      { authorization: 'Basic dXNlcjpwYXNz' },
      { authorization: `Bearer\tsas_${'C'.repeat(43)}` },
      { authorization: 'Bearer' },
      { cookie: `sat_session=sas_${'B'.repeat(43)}` },
    ];
    for (const headers of attempts) {
      const res = await call(server, 'GET', '/tokens', { headers });
      expect(res.status).toBe(401);
      expect(res.body).toEqual({ error: 'unauthorized', message: expect.any(String) });
      // RFC 9110 §15.5.2: a 401 carries a challenge; a bearer token that was refused is named (RFC 6750 §3.1).
      const bearer = /^Bearer\s+\S/.test(headers.authorization ?? '');
      expect({ headers, challenge: res.headers.get('www-authenticate') }).toEqual({ headers, challenge: bearer ? 'Bearer error="invalid_token"' : 'Bearer' });
    }
  });

  it('ends a session at logout and when it expires', async () => {
    const admin = await makeAdmin(server.deps);
    const a = await signIn(server, admin.email, admin.password, freshIp());
    const out = await call(server, 'POST', '/logout', { token: a.token });
    expect(out.status).toBe(204);
    expect(out.headers.get('set-cookie')).toMatch(/sat_session=;.*expires=Thu, 01 Jan 1970 00:00:00 GMT/i);
    expect((await call(server, 'GET', '/me', { token: a.token })).status).toBe(401);
    expect(await server.deps.db.knex('admin_sessions').where({ admin_id: admin.id })).toHaveLength(0);

    const b = await signIn(server, admin.email, admin.password, freshIp());
    expect((await call(server, 'GET', '/me', { token: b.token })).status).toBe(200);
    server.clock.advance(12 * HOUR + 1000); // past the session's 12 hours
    try {
      expect((await call(server, 'GET', '/me', { token: b.token })).status).toBe(401);
      const viaCookie = await call(server, 'GET', '/me', { headers: { cookie: b.cookie } });
      expect(viaCookie.status).toBe(401);
      expect(viaCookie.headers.get('set-cookie')).toMatch(/sat_session=;.*expires=Thu, 01 Jan 1970 00:00:00 GMT/i); // the stale cookie is cleared
    } finally {
      server.clock.advance(-(12 * HOUR + 1000));
    }
  });

  describe('CSRF defence for cookie sessions', () => {
    it('refuses an unsafe cookie request without the X-CSRF-Token header, and changes nothing', async () => {
      const admin = await makeAdmin(server.deps);
      const s = await signIn(server, admin.email, admin.password, freshIp());
      const body = tokenBody({ name: 'csrf-probe' });

      const bare = await call(server, 'POST', '/tokens', { json: body, headers: { cookie: s.cookie } });
      expect(bare.status).toBe(403);
      expect(bare.body).toEqual({ error: 'csrf_failed', message: expect.stringMatching(/must carry the X-CSRF-Token header/) });
      const forged = await call(server, 'POST', '/tokens', { json: body, headers: { cookie: s.cookie, 'x-csrf-token': 'A'.repeat(43) } });
      expect(forged.status).toBe(403);
      // A header that is there but wrong is told apart from a missing one (a client debugging its CSRF handling).
      expect(forged.body).toEqual({ error: 'csrf_failed', message: expect.stringMatching(/does not belong to this session/) });
      const logout = await call(server, 'POST', '/logout', { headers: { cookie: s.cookie } });
      expect(logout.status).toBe(403);
      expect(await server.deps.db.knex('tokens').where({ organisation_id: admin.organisation_id })).toHaveLength(0);
      expect((await call(server, 'GET', '/me', { token: s.token })).status).toBe(200); // logout did not happen

      // Reads need no CSRF token; writes with the right one succeed; Bearer needs none.
      expect((await call(server, 'GET', '/tokens', { headers: { cookie: s.cookie } })).status).toBe(200);
      const ok = await call(server, 'POST', '/tokens', { json: body, headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
      expect(ok.status).toBe(201);
      const bearer = await call(server, 'POST', '/tokens', { json: tokenBody(), token: s.token });
      expect(bearer.status).toBe(201);
      // Another session's CSRF token does not fit this session.
      const other = await signIn(server, admin.email, admin.password, freshIp());
      const crossed = await call(server, 'POST', `/tokens/${ok.body.id}/revoke`, { headers: { cookie: s.cookie, 'x-csrf-token': other.csrf } });
      expect(crossed.status).toBe(403);
      const revoked = await call(server, 'POST', `/tokens/${ok.body.id}/revoke`, { headers: { cookie: s.cookie, 'x-csrf-token': s.csrf } });
      expect(revoked.status).toBe(200);
    });

    it('checks an X-CSRF-Token sent on a read too: a page whose cookie now belongs to another session learns it', async () => {
      // Tab A signed in as one administrator; the browser then signed in as another (of another organisation) in tab
      // B, so the cookie is B's. A's reads carry A's CSRF token (the console sends it on every request): refused,
      // rather than answered with B's organisation's data under A's name.
      const a = await makeAdmin(server.deps);
      const b = await makeAdmin(server.deps);
      const sa = await signIn(server, a.email, a.password, freshIp());
      const sb = await signIn(server, b.email, b.password, freshIp());
      for (const path of ['/me', '/tokens', '/audit']) {
        const stale = await call(server, 'GET', path, { headers: { cookie: sb.cookie, 'x-csrf-token': sa.csrf } });
        expect({ path, status: stale.status, error: stale.body?.error }).toEqual({ path, status: 403, error: 'csrf_failed' });
        expect((await call(server, 'GET', path, { headers: { cookie: sb.cookie, 'x-csrf-token': sb.csrf } })).status).toBe(200);
        expect((await call(server, 'GET', path, { headers: { cookie: sb.cookie } })).status).toBe(200); // none: not checked
      }
    });
  });

  describe('sign-in throttle', () => {
    it('slows down, then refuses with 429 and Retry-After, repeated failures for one email (from any address)', async () => {
      const admin = await makeAdmin(server.deps);
      // Failures 6..10 wait before the password check (how long: 'decides …' below), and are still checked.
      for (let i = 1; i <= 10; i += 1) expect((await login(admin.email, `wrong-${i}`)).status).toBe(401);

      const blocked = await login(admin.email, admin.password); // even the right password, from a new address
      expect(blocked.status).toBe(429);
      expect(blocked.body).toEqual({ error: 'rate_limited', message: expect.any(String) });
      const retry = Number(blocked.headers.get('retry-after'));
      expect(retry).toBeGreaterThan(800);
      expect(retry).toBeLessThanOrEqual(900);
      expect(blocked.headers.get('set-cookie')).toBeNull();

      // The failures are in the audit log of the administrator's organisation: one event for the throttle's window,
      // counting them (anyone who knows the address can fail to sign in: the log must not grow by one row each).
      const events = await server.deps.db
        .knex('audit_events')
        .where({ organisation_id: admin.organisation_id, action: 'admin.sign_in_failed' });
      expect(events.length).toBe(1);
      const details = typeof events[0].details === 'string' ? JSON.parse(events[0].details) : events[0].details;
      expect(details).toEqual({ attempts: 10, first_at: expect.any(String) });
      // The next window starts a new event; events past their 90 days go with the housekeeping job.
      server.clock.advance(901_000);
      try {
        expect((await login(admin.email, 'wrong-again')).status).toBe(401);
        const after = await server.deps.db.knex('audit_events').where({ organisation_id: admin.organisation_id, action: 'admin.sign_in_failed' });
        expect(after.length).toBe(2);
        server.clock.advance(90 * 86_400_000);
        await server.runJob('prune-expired');
        expect(await server.deps.db.knex('audit_events').where({ organisation_id: admin.organisation_id, action: 'admin.sign_in_failed' })).toEqual([]);
      } finally {
        server.clock.advance(-(901_000 + 90 * 86_400_000));
      }

      // When the window has passed, the administrator can sign in again.
      server.clock.advance(901_000);
      try {
        expect((await login(admin.email, admin.password)).status).toBe(200);
      } finally {
        server.clock.advance(-901_000);
      }
    });

    it('decides: no wait for 5 failures, then 300 ms × 1..5, then 429 until the window ends, then afresh', async () => {
      const knex = server.deps.db.knex;
      const settings = { windowSeconds: 900, delayAfterFailures: 5, delayMs: 300, blockAfterFailures: 10, maxRows: 100_000, perAddressFactor: 1 };
      const key = emailKey(`decision-${Date.now()}@example.com`);
      const start = new Date(Math.floor(Date.now() / 1000) * 1000);
      const at = (seconds: number) => new Date(start.getTime() + seconds * 1000);
      const verdicts = [];
      for (let i = 0; i < 12; i += 1) verdicts.push(await registerAttempt(knex, [key], at(i), settings));
      expect(verdicts).toEqual([
        ...Array.from({ length: 5 }, () => ({ delayMs: 0 })),
        { delayMs: 300 },
        { delayMs: 600 },
        { delayMs: 900 },
        { delayMs: 1200 },
        { delayMs: 1500 },
        { delayMs: 0, retryAfterSeconds: 890 }, // the window began at the first failure: 900 s − 10 s
        { delayMs: 0, retryAfterSeconds: 889 },
      ]);
      // The worst of several keys wins (email and address are counted together).
      const other = emailKey(`decision-other-${Date.now()}@example.com`);
      expect(await registerAttempt(knex, [other, key], at(100), settings)).toEqual({ delayMs: 0, retryAfterSeconds: 800 });
      // Once the window is over, the count starts again at 1.
      expect(await registerAttempt(knex, [key], at(900), settings)).toEqual({ delayMs: 0 });
    });

    it('gives a client address perAddressFactor times the allowance of one account (default 10)', async () => {
      const knex = server.deps.db.knex;
      const settings = { windowSeconds: 900, delayAfterFailures: 5, delayMs: 300, blockAfterFailures: 10, maxRows: 100_000, perAddressFactor: 10 };
      const address = addressKey(`198.51.100.${Date.now() % 250}`);
      const account = emailKey(`factor-${Date.now()}@example.com`);
      const start = new Date(Math.floor(Date.now() / 1000) * 1000);
      const at = (ms: number) => new Date(start.getTime() + ms);
      const byAddress = [];
      for (let i = 0; i < 102; i += 1) byAddress.push(await registerAttempt(knex, [address], at(i), settings));
      expect(byAddress.slice(0, 50)).toEqual(Array.from({ length: 50 }, () => ({ delayMs: 0 })));
      expect(byAddress.slice(50, 52)).toEqual([{ delayMs: 300 }, { delayMs: 600 }]);
      expect(byAddress[99]).toEqual({ delayMs: 10_000 }); // the wait is capped at 10 s
      expect(byAddress[100]).toEqual({ delayMs: 0, retryAfterSeconds: 900 });
      const byAccount = [];
      for (let i = 0; i < 11; i += 1) byAccount.push(await registerAttempt(knex, [account], at(i), settings));
      expect(byAccount[4]).toEqual({ delayMs: 0 });
      expect(byAccount[5]).toEqual({ delayMs: 300 });
      expect(byAccount[10]).toEqual({ delayMs: 0, retryAfterSeconds: 900 });
      expect(loadConfig({}).loginThrottle.perAddressFactor).toBe(10); // the default
    });

    it('refuses an address after repeated failures, whatever the email, while other addresses still sign in', async () => {
      const admin = await makeAdmin(server.deps);
      const ip = freshIp();
      for (let i = 1; i <= 10; i += 1) {
        expect((await login(`stranger-${i}-${Date.now()}@example.com`, 'guess', ip)).status).toBe(401);
      }
      const blocked = await login(admin.email, admin.password, ip);
      expect(blocked.status).toBe(429);
      expect(Number(blocked.headers.get('retry-after'))).toBeGreaterThan(0);
      expect((await login(admin.email, admin.password, freshIp())).status).toBe(200);
    });

    it('counts the address the load balancer saw, not one the client wrote into X-Forwarded-For', async () => {
      const ip = freshIp();
      for (let i = 1; i <= 10; i += 1) {
        const res = await call(server, 'POST', '/login', {
          json: { email: `spoof-${i}-${Date.now()}@example.com`, password: 'guess' },
          headers: { 'x-forwarded-for': `203.0.113.${i}, ${ip}` }, // the balancer appends the real peer last
        });
        expect(res.status).toBe(401);
      }
      const admin = await makeAdmin(server.deps);
      const blocked = await call(server, 'POST', '/login', {
        json: { email: admin.email, password: admin.password },
        headers: { 'x-forwarded-for': `198.51.100.77, ${ip}` },
      });
      expect(blocked.status).toBe(429);
    });

    it('counts one address whatever port or spelling the load balancer writes with it (ip:port, [v6]:port)', async () => {
      // Some balancers (Azure Application Gateway) write `address:port` into X-Forwarded-For: a new source port per
      // connection must not make a new throttle bucket, nor reach the audit log or sessions as another address.
      const ip = freshIp();
      for (let i = 1; i <= 10; i += 1) {
        expect((await login(`ported-${i}-${Date.now()}@example.com`, 'guess', `${ip}:${40000 + i}`)).status).toBe(401);
      }
      const admin = await makeAdmin(server.deps);
      expect((await login(admin.email, admin.password, `${ip}:50000`)).status).toBe(429);
      expect((await login(admin.email, admin.password, ip)).status).toBe(429);
      const v6 = `2001:db8:${(nextAddress++).toString(16)}::7`;
      for (let i = 1; i <= 10; i += 1) {
        expect((await login(`ported6-${i}-${Date.now()}@example.com`, 'guess', `[${v6}]:${40000 + i}`)).status).toBe(401);
      }
      expect((await login(admin.email, admin.password, v6)).status).toBe(429);
      const signedIn = await login(admin.email, admin.password, `${freshIp()}:1234`);
      expect(signedIn.status).toBe(200);
      const sessions = await call(server, 'GET', '/me/sessions', { token: signedIn.body.token });
      expect((sessions.body.items as Array<{ ip: string; current: boolean }>).find((x) => x.current)?.ip).toMatch(/^10\.[\d.]+$/);

      // An entry that is no address (a proxy that appends, a client that wrote markup there): the peer's address is
      // stored and counted instead of the text.
      const odd = await login(admin.email, admin.password, '<img src=x onerror=alert(1)>');
      expect(odd.status).toBe(200);
      const listed = await call(server, 'GET', '/me/sessions', { token: odd.body.token });
      expect((listed.body.items as Array<{ ip: string; current: boolean }>).find((x) => x.current)?.ip).toBe('127.0.0.1');
    });

    it('forgets an email’s failures after a successful sign-in', async () => {
      const admin = await makeAdmin(server.deps);
      for (let round = 0; round < 2; round += 1) {
        for (let i = 0; i < 8; i += 1) expect((await login(admin.email, `wrong-${round}-${i}`)).status).toBe(401);
        expect((await login(admin.email, admin.password)).status).toBe(200); // 16 failures in all, never blocked
      }
    });

    it('holds under parallel guessing: no more than the limit get a password check', async () => {
      const admin = await makeAdmin(server.deps);
      const results = await Promise.all(Array.from({ length: 16 }, (_, i) => login(admin.email, `burst-${i}`)));
      const statuses = results.map((r) => r.status);
      expect(statuses.filter((s) => s === 401)).toHaveLength(10);
      expect(statuses.filter((s) => s === 429)).toHaveLength(6);
    });
  });

  it('prunes expired sessions and finished throttle windows (housekeeping job)', async () => {
    const admin = await makeAdmin(server.deps);
    const knex = server.deps.db.knex;
    await signIn(server, admin.email, admin.password, freshIp());
    await knex('admin_sessions').where({ admin_id: admin.id }).update({ expires_at: new Date(server.clock.now().getTime() - 1000) });
    const live = await signIn(server, admin.email, admin.password, freshIp());
    const now = server.clock.now().getTime();
    await knex('login_throttle').insert([
      { key: 'ip:192.0.2.1', failures: 3, window_started_at: new Date(now - 901_000) },
      { key: 'ip:192.0.2.2', failures: 3, window_started_at: new Date(now) },
    ]);
    expect(await pruneSessions(server.deps)).toBeGreaterThanOrEqual(2);
    expect(await knex('admin_sessions').where({ admin_id: admin.id })).toHaveLength(1);
    expect((await call(server, 'GET', '/me', { token: live.token })).status).toBe(200);
    expect((await knex('login_throttle').whereIn('key', ['ip:192.0.2.1', 'ip:192.0.2.2'])).map((r: { key: string }) => r.key)).toEqual([
      'ip:192.0.2.2',
    ]);
  });

  it('records sign-in and sign-out in the audit log with the client address', async () => {
    const admin = await makeAdmin(server.deps);
    const ip = freshIp();
    const s = await signIn(server, admin.email, admin.password, ip);
    await call(server, 'POST', '/logout', { token: s.token, headers: { 'x-forwarded-for': ip } });
    const viewer = await signIn(server, admin.email, admin.password, freshIp());
    const audit = await call(server, 'GET', '/audit', { token: viewer.token });
    expect(audit.status).toBe(200);
    const actions = audit.body.items.map((e: { action: string; ip: string }) => `${e.action}@${e.ip}`);
    expect(actions).toEqual(expect.arrayContaining([`admin.signed_in@${ip}`, `admin.signed_out@${ip}`]));
    for (const e of audit.body.items) expect(e).toMatchObject({ actor_id: admin.id, actor_email: admin.email, token_id: null });
  });
});
