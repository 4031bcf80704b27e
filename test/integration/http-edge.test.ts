// What a black-box tester found at the HTTP edge (session 3): error messages, 405s, bodies, encodings, raw errors.
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe.each(testDatabases())('HTTP edge on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  async function session() {
    const admin = await makeAdmin(server.deps);
    const s = await signIn(server, admin.email, admin.password);
    return { admin, token: s.token };
  }

  describe('404', () => {
    const secret = `sats_${'B4Tw'.repeat(12)}x`;

    it('never echoes the path, which may carry a secret', async () => {
      for (const path of [`/admin/api/nothing/${secret}`, `/nothing/${secret}`, `/admin/api/tokens/${secret}/x?client_secret=${secret}`]) {
        const res = await fetch(`${server.url}${path}`);
        const text = await res.text();
        expect(res.status).toBe(404);
        expect(JSON.parse(text)).toEqual({ error: 'not_found', message: expect.any(String) });
        expect(text).not.toContain('B4Tw');
      }
    });
  });
});
