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

  describe('405', () => {
    it('answers a known path with another method 405 method_not_allowed with Allow, in the admin API and outside it', async () => {
      const { token } = await session();
      const cases: [string, string, string[]][] = [
        ['PUT', '/admin/api/tokens', ['GET', 'POST']],
        ['GET', '/admin/api/login', ['POST']],
        ['DELETE', '/admin/api/me', ['GET']],
        ['POST', '/admin/api/openapi.json', ['GET']],
        ['POST', '/readyz', ['GET']],
        ['POST', '/healthz', ['GET']],
        ['GET', '/credentials/revoke', ['POST']],
        ['DELETE', '/credentials/revoke', ['POST']],
        ['PUT', '/secret-scanning/verify', ['POST']],
        ['POST', '/admin', ['GET']],
      ];
      for (const [method, path, allowed] of cases) {
        const res = await fetch(`${server.url}${path}`, { method, headers: { authorization: `Bearer ${token}` } });
        expect({ method, path, status: res.status, body: await res.json() }).toEqual({
          method,
          path,
          status: 405,
          body: { error: 'method_not_allowed', message: expect.stringContaining(allowed[0]!) },
        });
        const allow = (res.headers.get('allow') ?? '').split(/,\s*/);
        for (const m of allowed) expect(allow).toContain(m);
      }
    });

    it('keeps the OAuth endpoints\' own RFC 6749 405 and answers an unknown path 404 whatever the method', async () => {
      const token = await fetch(`${server.url}/token`);
      expect(token.status).toBe(405);
      expect(token.headers.get('allow')).toBe('POST');
      expect(((await token.json()) as { error: string }).error).toBe('invalid_request');
      for (const path of ['/nothing', '/admin/api/nothing']) {
        const res = await fetch(`${server.url}${path}`, { method: 'PATCH' });
        expect(res.status).toBe(404);
        expect(res.headers.get('allow')).toBeNull();
      }
    });
  });

  describe('POST actions whose fields are all optional', () => {
    it('take no body at all as {} (rotate, retire, revoke), and the OpenAPI document says the body is optional', async () => {
      const { token } = await session();
      const created = await call(server, 'POST', '/tokens', { token, json: tokenBody() });
      expect(created.status).toBe(201);
      const id = created.body.id as string;
      const bare = (path: string, headers: Record<string, string> = {}) =>
        fetch(`${server.url}/admin/api${path}`, { method: 'POST', headers: { authorization: `Bearer ${token}`, ...headers } });

      const rotated = await bare(`/tokens/${id}/rotate`);
      expect(rotated.status).toBe(200);
      const body = (await rotated.json()) as { client_secret: string; secrets: { id: string; last4: string | null }[] };
      expect(body.client_secret).toMatch(/^sats_/);
      expect(body.secrets).toHaveLength(2); // the default grace period keeps the previous secret
      const previous = body.secrets.find((x) => x.last4 !== body.client_secret.slice(-4))!;
      const retired = await bare(`/tokens/${id}/secrets/${previous.id}/retire`);
      expect(retired.status).toBe(200);
      const again = await bare(`/tokens/${id}/rotate`, { 'content-type': 'application/json', 'content-length': '0' });
      expect(again.status).toBe(200);
      expect((await bare(`/tokens/${id}/revoke`)).status).toBe(200);

      const doc = (await call(server, 'GET', '/openapi.json')).body;
      expect(doc.paths['/admin/api/tokens/{id}/rotate'].post.requestBody.required).toBe(false);
      expect(doc.paths['/admin/api/tokens/{id}/rotate'].post.requestBody.content['application/json'].schema.properties).toHaveProperty('grace_period_hours');
      expect(doc.paths['/admin/api/tokens'].post.requestBody.required).toBe(true);
    });
  });
});
