// SPEC Part 2 "One identity per administrator": look-alike spellings of an email are one account and one
// sign-in throttle bucket, for sign-in, throttle and uniqueness, on both databases.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { addAdmin, normaliseEmail } from '../../src/accounts/index.js';
import { AppError } from '../../src/errors.js';
import * as m0060 from '../../migrations/0060_normalise_emails.js';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe('normaliseEmail', () => {
  it.each([
    ['admİn@example.com', 'admin@example.com'], // U+0130 for i: the original report
    ['ＡＤＭＩＮ@ｅｘａｍｐｌｅ.com', 'admin@example.com'], // full-width letters
    ['ADMIN@Example.COM', 'admin@example.com'],
    ['adm\u200bin@example.com', 'admin@example.com'], // zero-width space
    ['\u202eadmin@example.com', 'admin@example.com'], // bidi override
    ['admın@example.com', 'admin@example.com'], // dotless i
    ['STRASSE@example.com', 'strasse@example.com'],
    ['straße@example.com', 'strasse@example.com'],
    ['STRAẞE@example.com', 'strasse@example.com'], // capital sharp s U+1E9E: full case folding gives ss
    ['  admin@example.com ', 'admin@example.com'],
  ])('%j → %j', (input, expected) => {
    expect(normaliseEmail(input)).toBe(expected);
  });
});

let nextIp = 1;
const freshIp = () => `10.60.${(nextIp >> 8) & 255}.${nextIp++ & 255}`;

describe.each(testDatabases())('one identity per administrator on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-conf-'));
    const configFile = path.join(dir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ loginThrottle: { windowSeconds: 900, delayAfterFailures: 100, delayMs: 0, blockAfterFailures: 3, perAddressFactor: 1 } }));
    server = await startServer(db, { TRUST_PROXY: 'true', CONFIG_FILE: configFile });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const login = (email: string, password: string) =>
    call(server, 'POST', '/login', { json: { email, password }, headers: { 'x-forwarded-for': freshIp() } });

  async function admin() {
    const local = uniq('admin').replace(/[^a-z0-9-]/g, '');
    const email = `${local}@example.com`;
    const password = 'correct horse battery';
    const r = await addAdmin(server.deps.db.knex, { org: uniq('org'), email, password });
    return { id: r.admin.id, email, local, password };
  }

  it('signs in the same account through a look-alike spelling (İ, full-width, upper case)', async () => {
    const a = await admin();
    const variants = [
      a.email.replace('i', 'İ'),
      a.email.toUpperCase(),
      a.email.replace(/[a-z]/g, (c) => String.fromCharCode(c.charCodeAt(0) - 0x61 + 0xff41)),
    ];
    for (const v of variants) {
      const res = await login(v, a.password);
      expect(res.status).toBe(200);
      expect(res.body.admin.id).toBe(a.id);
      expect(res.body.admin.email).toBe(a.email);
    }
  });

  it('counts every spelling in one throttle bucket: a blocked address stays blocked through a variant', async () => {
    const a = await admin();
    for (let i = 0; i < 3; i++) expect((await login(a.email, 'wrong password')).status).toBe(401);
    // Blocked now: the right password through İ-for-i, full-width or upper case is refused as well.
    for (const v of [a.email.replace('i', 'İ'), a.email.toUpperCase(), a.email.replace('a', 'ａ'), a.email]) {
      const res = await login(v, a.password);
      expect(res.status).toBe(429);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
    }
    const rows = await server.deps.db.knex('login_throttle').where('key', 'like', 'email:%').andWhere('key', 'like', `%${a.local}%`).select('key');
    expect(rows).toEqual([{ key: `email:${a.email}` }]);
  });

  it('refuses a second administrator whose address is a look-alike of an existing one', async () => {
    const a = await admin();
    for (const v of [a.email.replace('i', 'İ'), a.email.toUpperCase(), `\u200b${a.email}`]) {
      await expect(addAdmin(server.deps.db.knex, { org: uniq('org'), email: v, password: 'another password' })).rejects.toMatchObject({
        code: 'conflict',
      });
    }
    const stored = await server.deps.db.knex('admins').where({ id: a.id }).first();
    expect(stored.email).toBe(a.email);
  });

  it('answers an invitation of a look-alike of an existing address (İ, ß/ẞ, full-width) 409 admin_exists, not "not an email address"', async () => {
    const a = await admin();
    const local = `strasse${a.local.replace(/-/g, '')}`;
    await addAdmin(server.deps.db.knex, { org: uniq('org'), email: `${local}@example.com`, password: 'correct horse battery' });
    const session = await signIn(server, a.email, a.password);
    const invite = (email: string) =>
      call(server, 'POST', '/admins', { token: session.token, json: { email }, headers: { 'x-forwarded-for': freshIp() } });
    for (const v of [a.email.replace('i', 'İ'), a.email.replace('a', 'ａ'), `${local.replace('ss', 'ß')}@example.com`, `${local.replace('ss', 'ẞ').toUpperCase()}@example.com`]) {
      const res = await invite(v);
      expect({ v, status: res.status, error: res.body.error }).toEqual({ v, status: 409, error: 'admin_exists' });
    }
    // And the ẞ spelling signs in the account it stands for.
    const viaCapitalSharpS = await login(`${local.replace('ss', 'ẞ').toUpperCase()}@example.com`, 'correct horse battery');
    expect(viaCapitalSharpS.status).toBe(200);
  });

  it('stores a new administrator in the normalised spelling', async () => {
    const local = uniq('mixed').replace(/[^a-z0-9-]/g, '');
    const r = await addAdmin(server.deps.db.knex, { org: uniq('org'), email: `${local.toUpperCase()}@Example.COM`, password: 'a good password' });
    expect(r.admin.email).toBe(`${local}@example.com`);
    expect((await login(`${local}@example.com`, 'a good password')).status).toBe(200);
  });

  it('migration 0060 normalises existing rows and refuses to merge two accounts', async () => {
    const knex = server.deps.db.knex;
    const org = (await addAdmin(knex, { org: uniq('org'), email: `${uniq('x')}@example.com`, password: 'a good password' })).organisation.id;
    const local = uniq('old').replace(/[^a-z0-9-]/g, '');
    const id = '00000000-0000-4000-8000-' + Math.random().toString(16).slice(2, 14).padEnd(12, '0');
    // A row written by the old code, which kept the spelling as given.
    await knex('admins').insert({ id, organisation_id: org, email: `${local.toUpperCase()}@Example.com`, password_hash: 'x' });
    await m0060.up(knex);
    expect((await knex('admins').where({ id }).first()).email).toBe(`${local}@example.com`);

    // Two rows the old unique index (lower(email)) allowed but that are one identity now.
    const clash = uniq('clash').replace(/[^a-z0-9-]/g, '');
    await knex('admins').insert({ id: id.replace(/^0/, '1'), organisation_id: org, email: `${clash}@example.com`, password_hash: 'x' });
    await knex('admins').insert({ id: id.replace(/^0/, '2'), organisation_id: org, email: `${clash.replace('a', 'ａ')}@example.com`, password_hash: 'x' });
    await expect(m0060.up(knex)).rejects.toThrow(/one identity once normalised/);
    await knex('admins').where({ id: id.replace(/^0/, '2') }).delete();
    await m0060.up(knex);
  });

  it('is an AppError conflict with the field named', async () => {
    const a = await admin();
    const err = await addAdmin(server.deps.db.knex, { org: uniq('org'), email: a.email.toUpperCase(), password: 'x-password' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).details).toEqual([{ path: 'email', message: 'already registered' }]);
  });
});
