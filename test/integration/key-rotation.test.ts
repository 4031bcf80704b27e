// SPEC Part 2 "Signing-key rotation never fails a verifier" (issue 11 item 6) and issue 10 item 9 (prune race).
// Time: jest's fake Date (timers stay real), moved forward by the test; the server, jose and oidc-provider all read
// it, so a verifier's JWKS cache ages exactly as it would over ten real minutes. Jobs are triggered directly.
import { jest } from '@jest/globals';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { runCommand } from '../../src/commands.js';
import { SecretKey } from '../../src/config/index.js';
import { migrateLatest, openDb, type Database } from '../../src/db/index.js';
import { KeyRing, ensureSigningKey, loadKeySet, pruneSigningKeys, rotateSigningKey } from '../../src/keys/index.js';
import { runSat, runSatInProcess } from '../support/cli.js';
import { createTestDb, describePostgres, testDatabases, type TestDb } from '../support/db.js';
import { basic, introspectionActive, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const TTL = 300;
const AHEAD = 600;

/** Everything but Date stays real: the database drivers, sockets and the server's jobs keep running. */
const onlyDate: Parameters<typeof jest.useFakeTimers>[0] = {
  doNotFake: [
    'hrtime',
    'nextTick',
    'performance',
    'queueMicrotask',
    'requestAnimationFrame',
    'cancelAnimationFrame',
    'requestIdleCallback',
    'cancelIdleCallback',
    'setImmediate',
    'clearImmediate',
    'setInterval',
    'clearInterval',
    'setTimeout',
    'clearTimeout',
  ],
  advanceTimers: true,
};

const later = (seconds: number) => jest.setSystemTime(Date.now() + seconds * 1000);

async function pollUntil<T>(what: string, deadlineMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const started = performance.now();
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (performance.now() - started > deadlineMs) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe.each(testDatabases())('signing-key rotation on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let second: TestServer | undefined;

  beforeAll(async () => {
    jest.useFakeTimers(onlyDate);
    db = await createTestDb(kind);
    server = await startServer(db, { ACCESS_TOKEN_TTL_SECONDS: String(TTL) });
  });
  afterAll(async () => {
    await second?.close();
    await server?.close();
    await db?.drop();
    jest.useRealTimers();
  });

  const jwksKids = async (url = server.url) =>
    ((await (await fetch(`${url}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

  async function accessToken(clientId: string, secret: string): Promise<string> {
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
      body: 'grant_type=client_credentials',
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { access_token: string }).access_token;
  }

  it('publishes a key within 5 s of `sat keys rotate` and signs with it only after the ahead window: a verifier that cached the JWKS before never sees an unknown kid', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    // A resource server as the README shows it: jose's remote JWKS with its defaults (10 min cache, 30 s cooldown).
    const verifier = createRemoteJWKSet(new URL(`${server.url}/jwks`));
    const unknownKid: string[] = [];
    const verify = async (jwt: string) => {
      try {
        await jwtVerify(jwt, verifier, { issuer: server.issuer, audience: `${server.issuer}/api`, typ: 'at+jwt' });
      } catch (err) {
        unknownKid.push(`${(err as { code?: string }).code}: ${decodeProtectedHeader(jwt).kid}`);
      }
    };
    const before = await accessToken(t.client_id, t.client_secret);
    const oldKid = decodeProtectedHeader(before).kid;
    await verify(before); // the verifier has now cached the JWKS of before the rotation

    const rotated = await runSat(['keys', 'rotate', '--json'], db.env);
    expect({ code: rotated.code, stderr: rotated.stderr }).toEqual({ code: 0, stderr: expect.any(String) });
    const { kid: newKid, signs_from } = JSON.parse(rotated.stdout) as { kid: string; signs_from: string };
    const signsFrom = Date.parse(signs_from);
    expect(signsFrom - Date.now()).toBeGreaterThan((AHEAD - 30) * 1000);
    // Every instance's JWKS carries it within 5 s (embedded: at once, through the control socket; PostgreSQL: the
    // reload job). Polled with that deadline.
    await pollUntil('new key in /jwks', 5_000, async () => ((await jwksKids()).includes(newKid) ? true : undefined));
    // `sat keys list` shows both: the old one signing, the new one pending with the time it signs from.
    const listed = await runSatInProcess(['keys', 'list'], db.env);
    expect(listed.code).toBe(0);
    expect(listed.stdout).toMatch(new RegExp(`^${oldKid}  \\S+  signing   (NOT )?encrypted`, 'm'));
    expect(listed.stdout).toContain(`${newKid}  ${server.deps.config.signingAlg}  pending   signs from ${signs_from}  `);
    expect(listed.stdout).toContain(`Signing with ${oldKid}\n`);
    expect(listed.stdout).toMatch(/^Next automatic rotation: \d{4}-\d\d-\d\dT[\d:.]+Z \(a new key published then; by KEY_ROTATION_DAYS=90 as set where this ran\)$/m);
    const listedJson = JSON.parse((await runSatInProcess(['keys', 'list', '--json'], db.env)).stdout) as { signing_kid: string; published: Array<{ kid: string; status: string }> };
    expect(listedJson.signing_kid).toBe(oldKid);
    expect(listedJson.published).toEqual(expect.arrayContaining([expect.objectContaining({ kid: newKid, status: 'pending', signs_from })]));

    // Through the ahead window, in 30 s steps: tokens keep the old kid, and then carry the new one.
    let sawNew = false;
    let lastOld = before;
    for (let elapsed = 0; elapsed <= AHEAD + 60; elapsed += 30) {
      await server.oauth.reloadKeys(); // what the 2 s job does
      const jwt = await accessToken(t.client_id, t.client_secret);
      const kid = decodeProtectedHeader(jwt).kid;
      expect(kid).toBe(Date.now() < signsFrom ? oldKid : newKid);
      sawNew ||= kid === newKid;
      if (kid === oldKid) lastOld = jwt;
      await verify(jwt);
      later(30);
    }
    expect(sawNew).toBe(true);
    expect(unknownKid).toEqual([]);
    await verify(lastOld); // a token of the old key, issued just before the switch, still verifies after it
    expect(unknownKid).toEqual([]);

    // The old key stays published for the longest access token lifetime plus an hour after it was superseded.
    expect(await jwksKids()).toEqual(expect.arrayContaining([oldKid, newKid]));
    later(TTL + 3600 - (Date.now() - signsFrom) / 1000 - 5);
    await server.oauth.reloadKeys();
    expect(await server.oauth.pruneKeys()).toBe(0);
    expect(await jwksKids()).toContain(oldKid);
    later(10);
    await server.oauth.reloadKeys();
    expect(await server.oauth.pruneKeys()).toBe(1);
    expect(await jwksKids()).toEqual([newKid]);
  });

  it('`sat keys rotate --now` signs at once (the emergency exception)', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    // The command as the control socket runs it, in the server (a separate `sat` process would read the real clock,
    // which this test has moved the server away from).
    // A key is pending (an ordinary rotation, or the automatic one, a moment before the emergency).
    const pending = await runCommand(server.deps, 'keys-rotate', { now: false });
    const pendingKid = (pending as { result: { kid: string } }).result.kid;
    await server.oauth.reloadKeys();
    expect(await jwksKids()).toContain(pendingKid);

    const res = await runCommand(server.deps, 'keys-rotate', { now: true });
    expect(res.ok).toBe(true);
    const { kid, dropped_pending } = (res as { result: { kid: string; dropped_pending: string[] } }).result;
    expect(dropped_pending).toEqual([pendingKid]);
    await server.oauth.reloadKeys();
    expect(decodeProtectedHeader(await accessToken(t.client_id, t.client_secret)).kid).toBe(kid);
    // The key made before the emergency never takes over from the emergency key: it is gone, and never signed.
    expect(await jwksKids()).not.toContain(pendingKid);
    later(AHEAD + 60);
    await server.oauth.reloadKeys();
    expect(decodeProtectedHeader(await accessToken(t.client_id, t.client_secret)).kid).toBe(kid);
  });

  it('`sat keys remove` takes a leaked key out of the JWKS and introspection at once; never the key that signs', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin);
    const leaked = await accessToken(t.client_id, t.client_secret);
    const leakedKid = decodeProtectedHeader(leaked).kid as string;
    const introspect = (token: string) => introspectionActive(server.url, t, token);
    expect(await introspect(leaked)).toBe(true);

    // The key that signs is refused, with the way out; so is a kid that is none of ours. (In the server's process,
    // as the control socket runs it: this test moved the clock of this process.)
    const refused = await runCommand(server.deps, 'keys-remove', { kid: leakedKid });
    expect(refused).toEqual({ ok: false, error: { code: 'conflict', message: `${leakedKid} is the key that signs now: run sat keys rotate --now first, then remove it` } });
    expect(await runCommand(server.deps, 'keys-remove', { kid: 'no-such-kid' })).toMatchObject({ ok: false, error: { code: 'not_found' } });

    expect((await runCommand(server.deps, 'keys-rotate', { now: true })).ok).toBe(true);
    await server.oauth.reloadKeys();
    expect(await jwksKids()).toContain(leakedKid); // superseded keys stay published, for their tokens
    expect(await introspect(leaked)).toBe(true);
    // Right after the switch an instance whose clock lags may still sign with it: wait 10 s (it says how long).
    const soon = await runCommand(server.deps, 'keys-remove', { kid: leakedKid });
    expect(soon).toMatchObject({ ok: false, error: { code: 'conflict', message: expect.stringMatching(/stopped signing a moment ago: .*try again in (10|9) s$/) } });
    later(11);
    if (kind === 'embedded') {
      // As an operator runs it: `sat keys remove` through the running server's socket, which reloads at once.
      const out = await runSatInProcess(['keys', 'remove', leakedKid], db.env);
      expect([out.code, out.stdout]).toEqual([0, expect.stringContaining(`Deleted signing key ${leakedKid} (ES256, no longer signing)`)]);
    } else {
      const removed = await runCommand(server.deps, 'keys-remove', { kid: leakedKid });
      expect(removed).toEqual({ ok: true, result: { kid: leakedKid, alg: 'ES256', was: 'retiring' } });
      await server.oauth.reloadKeys(); // what every instance's 2 s reload does
    }
    expect(await jwksKids()).not.toContain(leakedKid);
    const reloads = server.logLines.map((l) => JSON.parse(l) as { msg?: string; removed?: string[] }).filter((l) => l.msg === 'signing keys reloaded');
    expect(reloads.filter((l) => l.removed?.includes(leakedKid))).toHaveLength(1); // named in the reload's line
    expect(await introspect(leaked)).toBe(false);
    expect(await introspect(await accessToken(t.client_id, t.client_secret))).toBe(true); // the new key's tokens

    // A pending key (not signing for another 10 minutes) may go too.
    const pending = (await runCommand(server.deps, 'keys-rotate', { now: false })) as { result: { kid: string } };
    expect(await runCommand(server.deps, 'keys-remove', { kid: pending.result.kid })).toEqual({ ok: true, result: { kid: pending.result.kid, alg: 'ES256', was: 'pending' } });
    await server.oauth.reloadKeys();
    expect(await jwksKids()).not.toContain(pending.result.kid);
  });

  it(`rotates by itself every KEY_ROTATION_DAYS with the same ahead publication, exactly once across instances`, async () => {
    if (kind === 'postgres') second = await startServer(db, { ACCESS_TOKEN_TTL_SECONDS: String(TTL) });
    const instances = second ? [server, second] : [server, server];
    const count = async () => Number((await server.deps.db.knex('signing_keys').count({ n: '*' }))[0]!.n);
    const signer = server.oauth.keySet.signingKid;

    later(60);
    expect(await Promise.all(instances.map((s) => s.oauth.rotateKeysIfDue()))).toEqual([undefined, undefined]);
    const keysBefore = await count();

    later(90 * 86_400 - AHEAD); // the newest key has signed for 90 days minus the ahead window
    const results = await Promise.all(instances.map((s) => s.oauth.rotateKeysIfDue()));
    const made = results.filter((k): k is string => k !== undefined);
    expect(made).toHaveLength(1);
    expect(await count()).toBe(keysBefore + 1);
    expect(await Promise.all(instances.map((s) => s.oauth.rotateKeysIfDue()))).toEqual([undefined, undefined]);
    for (const s of instances) {
      await s.oauth.reloadKeys();
      expect(await jwksKids(s.url)).toContain(made[0]); // published on every instance
      expect(s.oauth.keySet.signingKid).toBe(signer); // not signing yet
    }
    later(AHEAD);
    for (const s of instances) {
      await s.oauth.reloadKeys();
      expect(s.oauth.keySet.signingKid).toBe(made[0]);
    }
  });
});

describe.each(testDatabases())('retention across instances with different token lifetimes on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  beforeAll(async () => {
    jest.useFakeTimers(onlyDate);
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
    jest.useRealTimers();
  });

  it('keeps a superseded key published for the longest lifetime of a token it signed plus an hour, also on an instance with a shorter ACCESS_TOKEN_TTL_SECONDS', async () => {
    // An instance with 2 h tokens signs with the first key (as during a rolling change of the setting; on the
    // embedded database the instances take turns on the data directory).
    server = await startServer(db, { ACCESS_TOKEN_TTL_SECONDS: '7200' }, { jobs: 'manual' });
    const aheadWarning = (lines: string[]) => lines.filter((l) => l.includes('KEY_PUBLISH_AHEAD_SECONDS is below 120'));
    expect(aheadWarning(server.logLines)).toEqual([]); // the default, 600
    const first = server.oauth.keySet.signingKid;
    const row = async (kid: string) => server!.deps.db.knex('signing_keys').where({ kid }).first();
    expect((await row(first)).max_token_ttl_seconds).toBe(7200);
    await server.close();
    // One with 5 min tokens takes over and rotates: it never lowers what the key recorded.
    // (With a short ahead window, which the start warns about: this rotation is --now anyway.)
    server = await startServer(db, { ACCESS_TOKEN_TTL_SECONDS: String(TTL), KEY_PUBLISH_AHEAD_SECONDS: '60' }, { jobs: 'manual' });
    expect(aheadWarning(server.logLines).map((l) => JSON.parse(l))).toEqual([expect.objectContaining({ level: 'warn', key_publish_ahead_seconds: 60 })]);
    expect((await row(first)).max_token_ttl_seconds).toBe(7200);
    const rotated = await runCommand(server.deps, 'keys-rotate', { now: true });
    const { kid: next } = (rotated as { result: { kid: string } }).result;
    await server.oauth.reloadKeys();
    expect(server.oauth.keySet.signingKid).toBe(next);
    expect((await row(next)).max_token_ttl_seconds).toBe(TTL);
    const jwksKids = async () => ((await (await fetch(`${server!.url}/jwks`)).json()) as { keys: Array<{ kid: string }> }).keys.map((k) => k.kid);

    // Past this instance's own lifetime plus an hour, a 2 h token signed by the first key is still valid: the key
    // stays published and is not pruned (it was, before the lifetime was recorded on the key).
    later(TTL + 3600 + 60);
    await server.oauth.reloadKeys();
    expect(await jwksKids()).toEqual([next, first]);
    expect(await server.oauth.pruneKeys()).toBe(0);
    const keysList = (await runCommand(server.deps, 'keys-list', {})) as {
      result: { next_rotation_at: string | null; published: Array<{ kid: string; status: string; published_until: string | null }> };
    };
    // Each superseded key says when it leaves the JWKS: its successor's start plus its longest lifetime and an hour.
    const leaves = new Date((await row(next)).not_before.getTime() + (7200 + 3600) * 1000).toISOString();
    expect(keysList.result.published.map((k) => [k.kid, k.status, k.published_until])).toEqual([
      [next, 'signing', null],
      [first, 'retiring', leaves],
    ]);
    // The next automatic rotation: KEY_ROTATION_DAYS (90) after the newest key started, less the ahead window (60 s).
    expect(keysList.result.next_rotation_at).toBe(new Date((await row(next)).not_before.getTime() + 90 * 86_400_000 - 60_000).toISOString());
    // Past the longest lifetime plus an hour, it goes.
    later(7200 - TTL);
    await server.oauth.reloadKeys();
    expect(await jwksKids()).toEqual([next]);
    expect(await server.oauth.pruneKeys()).toBe(1);
  });
});

describe.each(testDatabases())('pruning signing keys on %s (issue 10 item 9)', (kind) => {
  let db: TestDb;
  let database: Database;
  let ring: KeyRing;
  beforeAll(async () => {
    db = await createTestDb(kind);
    database = await openDb({ databaseUrl: db.url, databasePoolMax: 2, dataDir: db.dataDir });
    await migrateLatest(database.knex);
    const kek = new SecretKey(randomBytes(32), 'test');
    ring = new KeyRing(() => ({ key: kek }));
  });
  afterAll(async () => {
    await database?.close();
    await db?.drop();
  });

  it('never prunes a key inserted between the reload read and the prune; prunes only superseded keys whose tokens expired', async () => {
    const retention = 3_900_000;
    const t0 = new Date('2030-01-01T00:00:00Z');
    const at = (s: number) => new Date(t0.getTime() + s * 1000);
    await ensureSigningKey(database.knex, ring, 'ES256', t0, 600); // A: signing since forever
    const b = await rotateSigningKey(database.knex, ring, 'ES256', at(0), 600); // B signs at t0 + 600 s
    const kids = async () => (await database.knex('signing_keys').select('kid')).map((r: { kid: string }) => r.kid).sort();

    // A is superseded at t0 + 600 s: kept until its tokens expired (retention later), then pruned.
    expect(await pruneSigningKeys(database.knex, at(600 + 3_899), retention)).toBe(0);
    const now = at(600 + 3_900);
    const read = await loadKeySet(database.knex, ring, now, retention); // the reload's read
    expect(read?.keys.map((k) => k.kid)).toEqual([b.kid]);
    const c = await rotateSigningKey(database.knex, ring, 'ES256', now, 600); // another instance rotates meanwhile
    expect(await pruneSigningKeys(database.knex, now, retention)).toBe(1); // A only
    expect(await kids()).toEqual([b.kid, c.kid].sort());
    // Even much later, the newest key is never pruned, and a pending or just-superseded key stays.
    expect(await pruneSigningKeys(database.knex, at(600 + 3_900 + 600 + 3_899), retention)).toBe(0);
    expect(await pruneSigningKeys(database.knex, at(600 + 3_900 + 600 + 3_900), retention)).toBe(1); // B
    expect(await kids()).toEqual([c.kid]);
  });
});

describePostgres('`sat keys rotate` on a machine whose clock is off (PostgreSQL)', () => {
  let db: TestDb;
  let server: TestServer | undefined;
  let dir: string;
  beforeAll(async () => {
    db = await createTestDb('postgres');
    server = await startServer(db, {}, { jobs: 'manual' }); // migrated, with a signing key
    dir = mkdtempSync(path.join(os.tmpdir(), 'sat-skew-'));
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("times the new key by the database's clock, not this machine's, and says how far off this one is", async () => {
    // A preload that moves this process's Date by SKEW_MS, as on a laptop or CI runner whose clock drifted.
    const skew = path.join(dir, 'skew.mjs');
    writeFileSync(
      skew,
      'const Real = Date; const skew = Number(process.env.SKEW_MS);\n' +
        'globalThis.Date = class extends Real { constructor(...a) { if (a.length === 0) super(Real.now() + skew); else super(...a); } static now() { return Real.now() + skew; } };\n',
    );
    for (const [skewMs, words] of [
      [300_000, '300 s ahead of'],
      [-300_000, '300 s behind'],
    ] as const) {
      const before = Date.now();
      const rotated = await runSat(['keys', 'rotate', '--json'], { ...db.env, NODE_OPTIONS: `--import ${pathToFileURL(skew).href}`, SKEW_MS: String(skewMs) });
      expect([rotated.code, rotated.stderr]).toEqual([0, expect.stringContaining(`note: this machine's clock is ${words} the database's; sat uses the database's`)]);
      const { kid } = JSON.parse(rotated.stdout) as { kid: string };
      const row = (await server!.deps.db.knex('signing_keys').where({ kid }).first()) as { not_before: Date };
      // Signs KEY_PUBLISH_AHEAD_SECONDS (600) after the real now: five minutes either way of it is the machine's drift.
      expect(Math.abs(row.not_before.getTime() - (before + AHEAD * 1000))).toBeLessThan(30_000);
      // The next rotation must not find two pending keys in its way: the emergency one clears them.
      expect((await runCommand(server!.deps, 'keys-rotate', { now: true })).ok).toBe(true);
    }
  });
});
