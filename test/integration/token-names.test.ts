// SPEC Part 2 "Names are text that displays as written", through the admin API as the console uses it.
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe.each(testDatabases())('token names on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let token: string;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    const admin = await makeAdmin(server.deps);
    token = (await signIn(server, admin.email, admin.password)).token;
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it.each([
    ['a right-to-left override (the reported "\\u202eevil")', '\u202eevil'],
    ['a left-to-right isolate', 'abc\u2066def'],
    ['a right-to-left mark', 'abc\u200f'],
    ['a zero-width space', 'pay\u200broll'],
    ['a joiner between letters', 'pay\u200droll'],
    ['a control character', 'pay\u0007roll'],
    ['a Hangul filler alone', '\u3164'],
    ['a braille blank alone', '\u2800'],
    ['a combining grapheme joiner', 'pay\u034froll'],
    ['a leading byte-order mark (format character U+FEFF, which JavaScript trim() would drop)', '\ufeffpayroll'],
    ['a trailing byte-order mark', 'payroll\ufeff'],
  ])('refuses %s with 400 validation_failed naming the character', async (_label, name) => {
    const res = await call(server, 'POST', '/tokens', { token, json: tokenBody({ name }) });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('validation_failed');
    expect(res.body.details).toEqual([{ path: 'name', message: expect.stringMatching(/bidirectional, private-use or unassigned characters \(U\+[0-9A-F]{4}\)/) }]);
  });

  it('accepts a zero-width joiner inside an emoji sequence (woman + ZWJ + laptop)', async () => {
    const name = `dev \u{1f469}\u200d\u{1f4bb} ${Date.now()}`;
    const res = await call(server, 'POST', '/tokens', { token, json: tokenBody({ name }) });
    expect(res.status).toBe(201);
    expect(res.body.name).toBe(name);
  });

  it('refuses the same names on rename (PATCH), and a name with no visible character', async () => {
    const created = await call(server, 'POST', '/tokens', { token, json: tokenBody() });
    expect(created.status).toBe(201);
    for (const name of ['\u3164', '\u2800', 'x\u034f', '\uffa0\u3164']) {
      const res = await call(server, 'PATCH', `/tokens/${created.body.id}`, { token, json: { name } });
      expect(res.status).toBe(400);
      expect(res.body.details).toEqual([{ path: 'name', message: expect.stringMatching(/invisible.*\(U\+[0-9A-F]{4}\)/) }]);
    }
    const marks = await call(server, 'POST', '/tokens', { token, json: tokenBody({ name: '\u0301\u0308' }) });
    expect(marks.status).toBe(400);
    expect(marks.body.details).toEqual([{ path: 'name', message: 'must have at least one visible character' }]);
    const heart = await call(server, 'PATCH', `/tokens/${created.body.id}`, { token, json: { name: `love \u2764\ufe0f ${Date.now()}` } });
    expect(heart.status).toBe(200);
  });
});
