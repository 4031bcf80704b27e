// SPEC Part 2 "Signing keys encrypted at rest" (issue 10 item 2): a dump alone never lets anyone sign.
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import pgModule from 'pg';
import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JSONWebKeySet } from 'jose';
import { dataDirKeyFile } from '../../src/keys/index.js';
import { runSat, runSatInProcess } from '../support/cli.js';
import { runCommand } from '../../src/commands.js';
import { TestClock } from '../support/clock.js';
import { createTestDb, describeEmbedded, describePostgres, testDatabases, type TestDb } from '../support/db.js';
import { basic, introspectionActive, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const newKek = () => randomBytes(32).toString('base64');

/** Every row of signing_keys as a dump reads it: all columns, as text. */
async function dumpSigningKeys(server: TestServer): Promise<string> {
  const { rows } = (await server.deps.db.knex.raw('select * from signing_keys')) as { rows: unknown[] };
  return JSON.stringify(rows);
}

async function exchange(server: TestServer, clientId: string, secret: string): Promise<string> {
  const res = await fetch(`${server.url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
    body: 'grant_type=client_credentials',
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { access_token: string }).access_token;
}

describe.each(testDatabases())('signing keys at rest on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });
  const restart = async (env: Record<string, string> = {}) => {
    await server?.close();
    server = undefined;
    server = await startServer(db, env);
    return server;
  };

  it('stores no private key in clear: a dump of the table has no private `d`', async () => {
    const s = await restart();
    if (kind === 'embedded') {
      // No key configured: generated into DATA_DIR, owner-only, and the log says so.
      expect(statSync(dataDirKeyFile(db.dataDir)).mode & 0o777).toBe(0o600);
      expect(s.logLines.some((l) => l.includes('generated a key-encryption key') && l.includes(dataDirKeyFile(db.dataDir)))).toBe(true);
    }
    const dump = await dumpSigningKeys(s);
    const rows = JSON.parse(dump) as Array<Record<string, unknown>>;
    expect(rows.length).toBeGreaterThan(0);
    for (const row of rows) {
      expect(row.private_jwk).toBeNull();
      expect(typeof row.sealed_jwk).toBe('string');
      const d = s.oauth.keyRing.privateJwk(row as never).d!;
      expect(d.length).toBeGreaterThan(20);
      expect(dump).not.toContain(d);
    }
    expect(dump).not.toMatch(/"d"\s*:/);
  });

  it('warns at start when KEY_ENCRYPTION_KEY_FILE is readable by other users, and not once it is owner-only', async () => {
    const current = kind === 'embedded' ? readFileSync(dataDirKeyFile(db.dataDir), 'utf8') : db.env.KEY_ENCRYPTION_KEY!;
    const file = path.join(db.dataDir, '..', `${path.basename(db.dataDir)}-kek`);
    writeFileSync(file, current, { mode: 0o644 });
    chmodSync(file, 0o644);
    try {
      const warning = (lines: string[]) => lines.filter((l) => l.includes('KEY_ENCRYPTION_KEY_FILE is readable by other users'));
      const loose = await restart({ KEY_ENCRYPTION_KEY: '', KEY_ENCRYPTION_KEY_FILE: file });
      expect(warning(loose.logLines)).toEqual([expect.stringContaining('"mode":"0644"')]);
      chmodSync(file, 0o600);
      const tight = await restart({ KEY_ENCRYPTION_KEY: '', KEY_ENCRYPTION_KEY_FILE: file });
      expect(warning(tight.logLines)).toEqual([]);
    } finally {
      rmSync(file, { force: true });
      await restart();
    }
  });

  it('refuses to start with a wrong key-encryption key, and never signs', async () => {
    await server?.close();
    server = undefined;
    await expect(startServer(db, { KEY_ENCRYPTION_KEY: newKek() })).rejects.toThrow(/key-encryption key/);
    // The built `sat serve` says so and exits non-zero.
    const res = await runSat(['serve'], { ...db.env, KEY_ENCRYPTION_KEY: newKek(), PORT: '0', HOST: '127.0.0.1' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/encrypted under another key-encryption key/);
  });

  it('`sat keys rewrap` seals every key under a new key-encryption key: the server goes on with the same keys, the old key no longer opens them', async () => {
    const s = await restart();
    const admin = await makeAdmin(s.deps);
    const t = await makeToken(s.deps, admin);
    const before = await exchange(s, t.client_id, t.client_secret);
    const signer = s.oauth.keySet.signingKid;
    const oldKek = kind === 'postgres' ? db.env.KEY_ENCRYPTION_KEY! : readFileSync(dataDirKeyFile(db.dataDir), 'utf8').trim();

    const next = newKek();
    const file = path.join(db.dataDir, 'new-kek');
    writeFileSync(file, next + '\n', { mode: 0o600 });
    const res = await runSat(['keys', 'rewrap', '--new-key-file', file, '--json'], db.env);
    expect({ code: res.code, stderr: res.code === 0 ? '' : res.stderr }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(res.stdout) as { rewrapped: number; replaced_key_file?: string };
    expect(out.rewrapped).toBeGreaterThan(0);
    // Embedded: the server held the database, so the command ran inside it, and replaced the generated key file.
    if (kind === 'embedded') expect(out.replaced_key_file).toBe(dataDirKeyFile(db.dataDir));
    expect(await exchange(s, t.client_id, t.client_secret)).toBeDefined(); // still signing
    // The same command again (a script run twice, the old key still configured), and with the new key configured:
    // nothing to do, and said so.
    for (const env of [db.env, kind === 'postgres' ? { ...db.env, KEY_ENCRYPTION_KEY: next } : db.env]) {
      const again = await runSatInProcess(['keys', 'rewrap', '--new-key-file', file], env);
      expect([again.code, again.stdout, again.stderr]).toEqual([0, expect.stringMatching(/^Every signing key is already sealed under this key-encryption key \(id \S+\): nothing changed\n$/), '']);
    }
    if (kind === 'embedded') {
      // A rewrap stopped after its commit, before it replaced the generated key file (a full disk, a kill): the file
      // holds the previous key, which opens nothing now. Run again with the same new key, it replaces the file.
      writeFileSync(dataDirKeyFile(db.dataDir), oldKek + '\n', { mode: 0o600 });
      const repaired = await runSatInProcess(['keys', 'rewrap', '--new-key-file', file], db.env);
      expect([repaired.code, repaired.stderr]).toEqual([0, '']);
      expect(repaired.stdout).toMatch(/still held the previous key .* and now holds this one\n$/);
      expect(readFileSync(dataDirKeyFile(db.dataDir), 'utf8').trim()).toBe(next);
    }

    const env: Record<string, string> = kind === 'postgres' ? { KEY_ENCRYPTION_KEY: next } : {};
    const after = await restart(env);
    expect(after.oauth.keySet.signingKid).toBe(signer);
    const jwks = (await (await fetch(`${after.url}/jwks`)).json()) as JSONWebKeySet;
    const token = await exchange(after, t.client_id, t.client_secret);
    expect(decodeProtectedHeader(token).kid).toBe(signer);
    for (const jwt of [before, token]) await expect(jwtVerify(jwt, createLocalJWKSet(jwks))).resolves.toBeDefined();

    await after.close();
    server = undefined;
    await expect(startServer(db, { KEY_ENCRYPTION_KEY: oldKek })).rejects.toThrow(/another key-encryption key/);
  });

  it('a lost key-encryption key: `sat keys rotate --now --drop-unreadable` with a new one deletes the keys it cannot open and signs again (docs/operations.md)', async () => {
    await server?.close();
    server = undefined;
    const found = { ...db.env, KEY_ENCRYPTION_KEY: newKek() }; // the old key is gone: a new one is configured
    const listed = await runSatInProcess(['keys', 'list', '--json'], found); // public parts only: no key needed
    const before = JSON.parse(listed.stdout) as { signing_kid: string; published: Array<{ kid: string; opens: boolean }> };
    // It says which keys the configured key cannot open, and the way out.
    expect(before.published.find((k) => k.kid === before.signing_kid)?.opens).toBe(false);
    const text = await runSatInProcess(['keys', 'list'], found);
    expect(text.stdout).toMatch(new RegExp(`${before.signing_kid} .*CANNOT be opened with the configured key-encryption key`));
    expect(text.stdout).toMatch(/--drop-unreadable/);
    // A plain rotation cannot tell a lost key from a stale one: it refuses, as the server does.
    const plain = await runSatInProcess(['keys', 'rotate', '--now'], found);
    expect([plain.code, plain.stderr]).toEqual([1, expect.stringMatching(/another key-encryption key/)]);
    expect((await runSatInProcess(['keys', 'rotate', '--drop-unreadable'], found)).code).toBe(2); // --now only
    const res = await runSatInProcess(['keys', 'rotate', '--now', '--drop-unreadable', '--json'], found);
    expect({ code: res.code, stderr: res.code === 0 ? '' : res.stderr }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(res.stdout) as { kid: string; dropped_unreadable: string[] };
    expect(out.dropped_unreadable).toContain(before.signing_kid);

    const s = (server = await startServer(db, { KEY_ENCRYPTION_KEY: found.KEY_ENCRYPTION_KEY }));
    expect(s.oauth.keySet.signingKid).toBe(out.kid);
    const jwks = (await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet;
    expect(jwks.keys.map((k) => k.kid)).toEqual([out.kid]);
    expect(await s.deps.db.knex('signing_keys').pluck('kid')).toEqual([out.kid]); // every unreadable key is gone
    const relisted = JSON.parse((await runSatInProcess(['keys', 'list', '--json'], found)).stdout) as { published: Array<{ opens: boolean }> };
    expect(relisted.published.map((k) => k.opens)).toEqual([true]);
    const admin = await makeAdmin(s.deps);
    const t = await makeToken(s.deps, admin);
    const token = await exchange(s, t.client_id, t.client_secret);
    expect(decodeProtectedHeader(token).kid).toBe(out.kid);
    await expect(jwtVerify(token, createLocalJWKSet(jwks))).resolves.toBeDefined();
  });
});

/** `sealed` (base64url `iv.ciphertext.tag`) with one character of the ciphertext changed, as a damaged row has it. */
function damaged(sealed: string): string {
  const [iv, ct, tag] = sealed.split('.') as [string, string, string];
  const at = Math.floor(ct.length / 2); // a middle character: all six of its bits count
  return [iv, ct.slice(0, at) + (ct[at] === 'A' ? 'B' : 'A') + ct.slice(at + 1), tag].join('.');
}

// Failure injection: one character of a signing key's sealed_jwk changed in the database. Its kek_id still names the
// configured key, so "opens" must come from decrypting, and the documented recovery must delete it.
describe.each(testDatabases())('a damaged signing-key row on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('`sat keys list` says it does not open, and `sat keys rotate --now --drop-unreadable` deletes it (and only it): the next start signs again', async () => {
    const s = (server = await startServer(db));
    const first = s.oauth.keySet.signingKid;
    const rotated = await runSatInProcess(['keys', 'rotate', '--now', '--json'], db.env); // `first` keeps being published
    expect({ code: rotated.code, stderr: rotated.code === 0 ? '' : rotated.stderr }).toEqual({ code: 0, stderr: '' });
    const signer = (JSON.parse(rotated.stdout) as { kid: string }).kid;
    await s.oauth.reloadKeys(); // on PostgreSQL the command ran beside the server: what its reload job does
    const admin = await makeAdmin(s.deps);
    const t = await makeToken(s.deps, admin);
    expect(decodeProtectedHeader(await exchange(s, t.client_id, t.client_secret)).kid).toBe(signer); // opened, in memory

    const { sealed_jwk: sealed } = (await s.deps.db.knex('signing_keys').where({ kid: signer }).first('sealed_jwk')) as { sealed_jwk: string };
    await s.deps.db.knex('signing_keys').where({ kid: signer }).update({ sealed_jwk: damaged(sealed) });
    await s.oauth.reloadKeys();
    expect(await exchange(s, t.client_id, t.client_secret)).toBeDefined(); // the running server keeps its copy

    // Embedded: through the running server, whose ring opened the key before the damage: it must open it again.
    const listed = await runSatInProcess(['keys', 'list', '--json'], db.env);
    expect(listed.code).toBe(0);
    const opens = Object.fromEntries((JSON.parse(listed.stdout) as { published: Array<{ kid: string; opens: boolean }> }).published.map((k) => [k.kid, k.opens]));
    expect(opens).toEqual({ [signer]: false, [first]: true });
    expect((await runSatInProcess(['keys', 'list'], db.env)).stdout).toMatch(new RegExp(`${signer} .*CANNOT be opened`));

    await s.close();
    server = undefined;
    await expect(startServer(db)).rejects.toThrow(new RegExp(`signing key ${signer}: the key-encryption key does not open it`));

    const res = await runSatInProcess(['keys', 'rotate', '--now', '--drop-unreadable', '--json'], db.env);
    expect({ code: res.code, stderr: res.code === 0 ? '' : res.stderr }).toEqual({ code: 0, stderr: '' });
    const out = JSON.parse(res.stdout) as { kid: string; dropped_unreadable: string[] };
    expect(out.dropped_unreadable).toEqual([signer]);
    const after = (server = await startServer(db));
    expect(after.oauth.keySet.signingKid).toBe(out.kid);
    expect((await after.deps.db.knex('signing_keys').pluck('kid')).sort()).toEqual([first, out.kid].sort());
    expect(decodeProtectedHeader(await exchange(after, t.client_id, t.client_secret)).kid).toBe(out.kid);
    const relisted = JSON.parse((await runSatInProcess(['keys', 'list', '--json'], db.env)).stdout) as { published: Array<{ opens: boolean }> };
    expect(relisted.published.map((k) => k.opens)).toEqual([true, true]);
  });
});

describePostgres('an instance that cannot open a key added after `sat keys rewrap` (PostgreSQL, two instances)', () => {
  let db: TestDb;
  const servers: TestServer[] = [];
  let kekFile: string;
  beforeAll(async () => {
    db = await createTestDb('postgres');
    kekFile = path.join(db.dataDir, '..', `${path.basename(db.dataDir)}-kek-file`);
    writeFileSync(kekFile, db.env.KEY_ENCRYPTION_KEY! + '\n', { mode: 0o600 });
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(kekFile, { force: true });
    await db?.drop();
  });

  it('publishes what the database publishes (a removed key leaves its JWKS too), signs only with keys it opened and only while their tokens outlive no publication (else /token and /readyz 503), and follows a replaced KEY_ENCRYPTION_KEY_FILE', async () => {
    const clock = new TestClock(); // one clock for both instances and the commands run in them
    const a = await startServer(db, { KEY_ENCRYPTION_KEY: '', KEY_ENCRYPTION_KEY_FILE: kekFile }, { clock, jobs: 'manual' });
    servers.push(a);
    const admin = await makeAdmin(a.deps);
    const t = await makeToken(a.deps, admin);
    const oldKid = a.oauth.keySet.signingKid;
    const oldToken = await exchange(a, t.client_id, t.client_secret);

    // The operator rewraps under a new key and gives it to a second instance only; that one rotates in an emergency.
    const next = newKek();
    const nextFile = path.join(db.dataDir, 'new-kek');
    writeFileSync(nextFile, next + '\n', { mode: 0o600 });
    expect((await runSatInProcess(['keys', 'rewrap', '--new-key-file', nextFile], db.env)).code).toBe(0);
    const b = await startServer(db, { KEY_ENCRYPTION_KEY: next, ISSUER: a.issuer }, { clock, jobs: 'manual' }); // behind one name, as instances are
    servers.push(b);
    const rotated = await runCommand(b.deps, 'keys-rotate', { now: true });
    const newKid = (rotated as { result: { kid: string } }).result.kid;
    await b.oauth.reloadKeys();
    await a.oauth.reloadKeys();

    const kids = async (s: TestServer) => ((await (await fetch(`${s.url}/jwks`)).json()) as JSONWebKeySet).keys.map((k) => k.kid).sort();
    const ready = async (s: TestServer) => {
      const res = await fetch(`${s.url}/readyz`);
      return { status: res.status, body: (await res.json()) as unknown };
    };
    const unopened = async (s: TestServer) => /^sat_signing_keys_unopened (\d+)$/m.exec(await (await fetch(`${s.url}/metrics`)).text())?.[1];
    const introspect = (s: TestServer, token: string) => introspectionActive(s.url, t, token);

    // A publishes the new key it cannot open, as B does, and keeps signing with the key it holds (still published).
    expect(await kids(a)).toEqual(await kids(b));
    expect(await kids(a)).toEqual([oldKid, newKid].sort());
    expect(a.oauth.keyHealth).toMatchObject({ unopened: [newKid] });
    expect(decodeProtectedHeader(await exchange(a, t.client_id, t.client_secret)).kid).toBe(oldKid);
    const newToken = await exchange(b, t.client_id, t.client_secret);
    expect(decodeProtectedHeader(newToken).kid).toBe(newKid);
    await expect(jwtVerify(newToken, createLocalJWKSet({ keys: ((await (await fetch(`${a.url}/jwks`)).json()) as JSONWebKeySet).keys }))).resolves.toBeDefined();
    expect(await introspect(a, newToken)).toBe(true);
    expect(await ready(a)).toEqual({ status: 200, body: { status: 'ready', database: 'ok' } });
    expect(await unopened(a)).toBe('1');
    expect(await unopened(b)).toBe('0');
    const errors = () => a.logLines.filter((l) => l.includes('do not open with this instance'));
    expect(errors()).toEqual([expect.stringContaining(newKid)]);

    // A's key stays published for its tokens' lifetime plus an hour after the new key took over; a token A signs must
    // not outlive that, so an hour after the switch (15 min tokens) A refuses to sign and is no longer ready.
    const switchedAt = (await a.deps.db.knex('signing_keys').where({ kid: newKid }).first()).not_before.getTime();
    expect(a.oauth.keyHealth.signerUsableUntil).toEqual(new Date(switchedAt + 3600_000));
    const refusal = async (s: TestServer) => {
      const res = await fetch(`${s.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(t.client_id, t.client_secret) },
        body: 'grant_type=client_credentials',
      });
      return { status: res.status, retryAfter: res.headers.get('retry-after'), error: ((await res.json()) as { error: string }).error };
    };
    const unusable = { status: 503, body: { status: 'unavailable', database: 'ok', signing_key: 'unpublished' } };
    clock.advance(3600_000 - (clock.now().getTime() - switchedAt) - 1_000);
    expect(decodeProtectedHeader(await exchange(a, t.client_id, t.client_secret)).kid).toBe(oldKid); // a second left
    clock.advance(1_000);
    expect(await refusal(a)).toEqual({ status: 503, retryAfter: '5', error: 'temporarily_unavailable' });
    expect(await ready(a)).toEqual(unusable);
    expect(decodeProtectedHeader(await exchange(b, t.client_id, t.client_secret)).kid).toBe(newKid); // B signs on
    clock.set(switchedAt).resume(); // back to the switch, for the removal below

    // The old key is removed (it leaked, say): it leaves A's JWKS and introspection too, though A still signs with it.
    clock.advance(11_000);
    expect((await runCommand(b.deps, 'keys-remove', { kid: oldKid })).ok).toBe(true);
    await b.oauth.reloadKeys();
    await a.oauth.reloadKeys();
    expect(await kids(a)).toEqual([newKid]);
    expect(await kids(b)).toEqual([newKid]);
    expect(await introspect(a, oldToken)).toBe(false);
    expect(a.oauth.keyHealth).toEqual({ unopened: [newKid], signerUsableUntil: new Date(-900_000) }); // gone: the epoch, less a lifetime
    expect(await ready(a)).toEqual(unusable);
    expect(await refusal(a)).toEqual({ status: 503, retryAfter: '5', error: 'temporarily_unavailable' });
    expect(errors().filter((l) => l.includes('the token endpoint and /readyz answer 503'))).toHaveLength(1); // said at once

    // The operator puts the new key into A's KEY_ENCRYPTION_KEY_FILE: A follows without a restart.
    writeFileSync(kekFile, next + '\n', { mode: 0o600 });
    expect(await a.oauth.reloadKeys()).toBe(true);
    expect(a.oauth.keyHealth).toEqual({ unopened: [] });
    expect(decodeProtectedHeader(await exchange(a, t.client_id, t.client_secret)).kid).toBe(newKid);
    expect(await ready(a)).toEqual({ status: 200, body: { status: 'ready', database: 'ok' } });
    expect(await unopened(a)).toBe('0');
    // ... and may add keys again (sealed under the new key, which B opens).
    expect((await runCommand(a.deps, 'keys-rotate', { now: false })).ok).toBe(true);
    expect(await b.oauth.reloadKeys()).toBe(true);
    expect(b.oauth.keyHealth.unopened).toEqual([]);
  });
});

const pg = testDatabases().includes('postgres') ? describe : describe.skip;

pg('PostgreSQL without a key-encryption key', () => {
  let db: TestDb;
  let server: TestServer | undefined;
  beforeAll(async () => {
    db = await createTestDb('postgres');
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('refuses to start unless ALLOW_PLAINTEXT_KEYS=true; plaintext keys are encrypted at the first start with a key', async () => {
    const { KEY_ENCRYPTION_KEY: _kek, ...noKey } = db.env;
    const res = await runSat(['serve'], { ...noKey, PORT: '0', HOST: '127.0.0.1' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/KEY_ENCRYPTION_KEY/);

    server = await startServer({ ...db, env: noKey }, { ALLOW_PLAINTEXT_KEYS: 'true' });
    expect(server.logLines.some((l) => l.includes('stored in clear'))).toBe(true);
    const plain = (await server.deps.db.knex('signing_keys').select('*')) as Array<{ kid: string; private_jwk: unknown; sealed_jwk: unknown }>;
    expect(plain.every((r) => r.private_jwk !== null && r.sealed_jwk === null)).toBe(true);
    await server.close();

    server = await startServer(db); // with KEY_ENCRYPTION_KEY now
    expect(server.logLines.some((l) => l.includes('signing keys encrypted at rest'))).toBe(true);
    const sealed = (await server.deps.db.knex('signing_keys').select('*')) as Array<{ kid: string; private_jwk: unknown; sealed_jwk: unknown }>;
    expect(sealed.map((r) => r.kid).sort()).toEqual(plain.map((r) => r.kid).sort());
    expect(sealed.every((r) => r.private_jwk === null && typeof r.sealed_jwk === 'string')).toBe(true);

    // Sealed keys and no key-encryption key: ALLOW_PLAINTEXT_KEYS does not open them; the start is refused, and its
    // log does not claim the keys are stored in clear.
    await server.close();
    server = undefined;
    const refusedLog: string[] = [];
    await expect(startServer({ ...db, env: noKey }, { ALLOW_PLAINTEXT_KEYS: 'true' }, { logLines: refusedLog })).rejects.toThrow(/encrypted but no key-encryption key/);
    expect(refusedLog.filter((l) => l.includes('stored in clear'))).toEqual([]);
  });
});

pg('PostgreSQL plaintext keys and `sat migrate`', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('postgres');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('`sat migrate` with a key-encryption key configured encrypts plaintext keys (a dump then has no private key)', async () => {
    const { KEY_ENCRYPTION_KEY: _kek, ...noKey } = db.env;
    const server = await startServer({ ...db, env: noKey }, { ALLOW_PLAINTEXT_KEYS: 'true' });
    await server.close();
    const res = await runSat(['migrate'], db.env);
    expect(res.code).toBe(0);
    const client = new pgModule.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ private_jwk: unknown; sealed_jwk: unknown }>('select * from signing_keys');
      expect(rows.length).toBeGreaterThan(0);
      expect(rows.every((r) => r.private_jwk === null && typeof r.sealed_jwk === 'string')).toBe(true);
    } finally {
      await client.end();
    }
  });
});

pg('PostgreSQL without a key-encryption key, on a fresh database', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('postgres', { empty: true });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('refuses before touching the database: no table, no administrator, no initial-admin-password file', async () => {
    const { KEY_ENCRYPTION_KEY: _kek, ...noKey } = db.env;
    const res = await runSat(['serve'], { ...noKey, PORT: '0', HOST: '127.0.0.1' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^sat: PostgreSQL mode needs a key-encryption key .*KEY_ENCRYPTION_KEY/m);
    expect(res.stdout + res.stderr).not.toMatch(/migrations applied|first administrator created/);
    const client = new pgModule.Client({ connectionString: db.url });
    await client.connect();
    try {
      const { rows } = await client.query("select table_name from information_schema.tables where table_schema = 'public'");
      expect(rows).toEqual([]);
    } finally {
      await client.end();
    }
    expect(existsSync(path.join(db.dataDir, 'initial-admin-password'))).toBe(false);
  });

  it('checks SECRET_SCANNING_KEYS_FILE before the database too', async () => {
    const res = await runSat(['serve'], { ...db.env, SECRET_SCANNING_KEYS_FILE: path.join(db.dataDir, 'missing-keys.json'), PORT: '0', HOST: '127.0.0.1' });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(/^sat: SECRET_SCANNING_KEYS_FILE .*missing-keys\.json: ENOENT/m);
    const client = new pgModule.Client({ connectionString: db.url });
    await client.connect();
    try {
      expect((await client.query("select table_name from information_schema.tables where table_schema = 'public'")).rows).toEqual([]);
    } finally {
      await client.end();
    }
    expect(existsSync(path.join(db.dataDir, 'initial-admin-password'))).toBe(false);
  });
});

// A first start refused after it generated DATA_DIR/key-encryption-key (another server held DATA_DIR, a database of a
// newer version) leaves the file, and never said to back it up: the next start that gets through says it, while the
// key seals no signing key yet; after that, not again.
describeEmbedded('a key-encryption key a refused start generated', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('embedded');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('is announced by the next start that gets through, then not again', async () => {
    writeFileSync(dataDirKeyFile(db.dataDir), `${randomBytes(32).toString('base64')}\n`, { mode: 0o600 }); // as that start left it
    const announced = (lines: string[]) => lines.filter((l) => l.includes('generated a key-encryption key') && l.includes(dataDirKeyFile(db.dataDir)));
    const first = await startServer(db);
    try {
      expect(announced(first.logLines)).toHaveLength(1);
    } finally {
      await first.close();
    }
    const second = await startServer(db);
    try {
      expect(announced(second.logLines)).toEqual([]);
    } finally {
      await second.close();
    }
  });
});

// An embedded install made with KEY_ENCRYPTION_KEY, started once without it: the start used to generate
// DATA_DIR/key-encryption-key (and log "back it up"), then refuse because that key opens nothing; it now stops
// before keeping any such file or logging it, and says what to set.
describeEmbedded('an embedded start without the key-encryption key the install was made with', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('embedded');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('a start refused for SECRET_SCANNING_KEYS_FILE creates no key-encryption key (nor anything else) in DATA_DIR', async () => {
    const fresh = await createTestDb('embedded', { empty: true });
    try {
      await expect(startServer(fresh, { SECRET_SCANNING_KEYS_FILE: path.join(fresh.dataDir, 'missing-keys.json') })).rejects.toThrow(/ENOENT/);
      expect(readdirSync(fresh.dataDir)).toEqual([]);
    } finally {
      await fresh.drop();
    }
  });

  it('stops, names KEY_ENCRYPTION_KEY, and leaves no generated key file behind', async () => {
    const kek = newKek();
    const first = await startServer(db, { KEY_ENCRYPTION_KEY: kek });
    const signer = first.oauth.keySet.signingKid;
    await first.close();
    rmSync(dataDirKeyFile(db.dataDir), { force: true }); // (the template's own, if any: this install never used it)
    const refused: string[] = [];
    await expect(startServer(db, {}, { logLines: refused })).rejects.toThrow(/encrypted under a key-encryption key this process does not have.*KEY_ENCRYPTION_KEY/);
    expect(existsSync(dataDirKeyFile(db.dataDir))).toBe(false);
    // Nor a log line telling the operator to back up the key it removed.
    expect(refused.some((l) => l.includes('"msg":"starting"'))).toBe(true);
    expect(refused.filter((l) => l.includes('key-encryption key') && !l.includes('"msg":"starting"'))).toEqual([]);
    const again = await startServer(db, { KEY_ENCRYPTION_KEY: kek });
    expect(again.oauth.keySet.signingKid).toBe(signer);
    await again.close();
  });

  it('a `sat` command refuses the same way without generating a key; the lost-key recovery may make one', async () => {
    const file = dataDirKeyFile(db.dataDir);
    expect(existsSync(file)).toBe(false);
    for (const args of [['keys', 'rotate'], ['keys', 'rotate', '--now']]) {
      const res = await runSatInProcess(args, db.env);
      expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 1, stderr: expect.stringMatching(/this process does not have.*KEY_ENCRYPTION_KEY/) });
      expect(existsSync(file)).toBe(false);
    }
    const recovered = await runSatInProcess(['keys', 'rotate', '--now', '--drop-unreadable'], db.env);
    expect({ code: recovered.code, stderr: recovered.code === 0 ? '' : recovered.stderr }).toEqual({ code: 0, stderr: '' });
    expect(existsSync(file)).toBe(true);
  });
});
