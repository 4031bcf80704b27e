// What a black-box tester found at the HTTP edge (session 3): error messages, 405s, bodies, encodings, raw errors.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { metricValue } from '../support/metrics.js';
import { startServer, type TestServer } from '../support/server.js';

// A secret-scanning key, so /secret-scanning/verify is configured.
const scanning = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
const KID = randomBytes(32).toString('hex');

describe.each(testDatabases())('HTTP edge on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    const keysFile = path.join(db.dataDir, 'secret-scanning-keys.json');
    const pem = scanning.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(keysFile, JSON.stringify({ public_keys: [{ key_identifier: KID, key: pem, is_current: true }] }));
    server = await startServer(db, { SECRET_SCANNING_KEYS_FILE: keysFile, REQUEST_TIMEOUT_SECONDS: '2' });
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

  /** Writes `request` on a new connection; resolves with all the server sent once it closes the connection. */
  const raw = (request: string) =>
    new Promise<string>((resolve) => {
      const { port } = new URL(server.url);
      const socket = net.connect(Number(port), '127.0.0.1', () => socket.write(request));
      let received = '';
      socket.on('data', (d) => (received += d.toString()));
      socket.on('close', () => resolve(received));
      socket.on('error', () => undefined);
      setTimeout(() => socket.destroy(), 20_000).unref(); // the test's own deadline, far past REQUEST_TIMEOUT_SECONDS
    });
  const parse = (answer: string) => {
    const [head = '', body = ''] = answer.split('\r\n\r\n');
    return { statusLine: head.split('\r\n')[0], head: head.toLowerCase(), body: body ? (JSON.parse(body) as unknown) : undefined };
  };

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

    it('answers OPTIONS on a known path 204 with Allow and no body (RFC 9110 §9.3.7), in the admin API and outside it', async () => {
      for (const [path, allowed] of [
        ['/admin/api/tokens', ['GET', 'POST']],
        ['/admin/api/me', ['GET']],
        ['/readyz', ['GET']],
        ['/credentials/revoke', ['POST']],
      ] as const) {
        const res = await fetch(`${server.url}${path}`, { method: 'OPTIONS' });
        const text = await res.text();
        expect({ path, status: res.status, text, type: res.headers.get('content-type') }).toEqual({ path, status: 204, text: '', type: null });
        const allow = (res.headers.get('allow') ?? '').split(/,\s*/);
        for (const m of allowed) expect(allow).toContain(m);
      }
    });

    it('keeps the OAuth endpoints\' own RFC 6749 405 and answers an unknown path 404 whatever the method', async () => {
      for (const path of ['/token', '/token/introspection', '/token/revocation']) {
        const res = await fetch(`${server.url}${path}`);
        expect(res.status).toBe(405);
        expect(res.headers.get('allow')).toBe('POST');
        // Like every answer of these endpoints (docs/oauth.md), never cached, with Pragma too (RFC 6749 §5.1).
        expect(res.headers.get('cache-control')).toBe('no-store');
        expect(res.headers.get('pragma')).toBe('no-cache');
        expect(((await res.json()) as { error: string }).error).toBe('invalid_request');
      }
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

  describe('Content-Encoding', () => {
    const json = JSON.stringify(tokenBody());

    it('answers 415 unsupported_media_type on the admin API and the JSON endpoints for any coding but identity', async () => {
      const { token } = await session();
      const cases: { path: string; body: string | Buffer; encoding: string; headers?: Record<string, string> }[] = [
        { path: '/admin/api/tokens', body: json, encoding: 'zstd' },
        { path: '/admin/api/tokens', body: gzipSync(json), encoding: 'gzip' },
        { path: '/admin/api/tokens', body: json, encoding: 'identity, gzip' },
        { path: '/credentials/revoke', body: gzipSync('{"credentials":[]}'), encoding: 'gzip' },
        { path: '/credentials/revoke', body: '{"credentials":[]}', encoding: 'br' },
      ];
      const alert = gzipSync('[]');
      cases.push({
        path: '/secret-scanning/verify',
        body: alert,
        encoding: 'gzip',
        headers: { 'github-public-key-identifier': KID, 'github-public-key-signature': sign('sha256', alert, scanning.privateKey).toString('base64') },
      });
      for (const c of cases) {
        const res = await fetch(`${server.url}${c.path}`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json', 'content-encoding': c.encoding, ...c.headers },
          body: c.body,
        });
        expect({ path: c.path, encoding: c.encoding, status: res.status, body: await res.json() }).toEqual({
          path: c.path,
          encoding: c.encoding,
          status: 415,
          body: { error: 'unsupported_media_type', message: `Content-Encoding ${c.encoding} is not supported: send the request body uncompressed (identity).` },
        });
        expect(res.headers.get('accept-encoding')).toBe('identity');
      }
      const identity = await call(server, 'POST', '/tokens', { token, raw: json, headers: { 'content-type': 'application/json', 'content-encoding': 'identity' } });
      expect(identity.status).toBe(201);
    });

    it('answers 400 invalid_request on the OAuth endpoints', async () => {
      const admin = await makeAdmin(server.deps);
      const t = await makeToken(server.deps, admin);
      for (const path of ['/token', '/token/introspection', '/token/revocation']) {
        const form = path === '/token' ? 'grant_type=client_credentials' : 'token=x';
        for (const [encoding, body] of [['gzip', gzipSync(form)], ['zstd', Buffer.from(form)]] as const) {
          const res = await fetch(`${server.url}${path}`, {
            method: 'POST',
            headers: { authorization: basic(t.client_id, t.client_secret), 'content-type': 'application/x-www-form-urlencoded', 'content-encoding': encoding },
            body,
          });
          expect({ path, encoding, status: res.status, body: await res.json() }).toEqual({
            path,
            encoding,
            status: 400,
            body: { error: 'invalid_request', error_description: `Content-Encoding ${encoding} is not supported: send the form body uncompressed (identity)` },
          });
        }
      }
    });
  });

  describe("Node's own refusals", () => {
    it('answers headers that never finish with a JSON 408 and closes the connection', async () => {
      const answer = parse(await raw('GET /healthz HTTP/1.1\r\nHost: x\r\n'));
      expect(answer.statusLine).toBe('HTTP/1.1 408 Request Timeout');
      expect(answer.head).toContain('connection: close');
      expect(answer.head).toContain('content-type: application/json');
      expect(answer.body).toEqual({ error: 'request_timeout', message: expect.any(String) });
    });

    it('answers headers past the size limit with a JSON 431, and malformed HTTP with a JSON 400', async () => {
      const big = parse(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`));
      expect(big.statusLine).toBe('HTTP/1.1 431 Request Header Fields Too Large');
      expect(big.head).toContain('connection: close');
      expect(big.body).toEqual({ error: 'request_header_fields_too_large', message: expect.any(String) });
      const bad = parse(await raw('GARBAGE\r\n\r\n'));
      expect(bad.statusLine).toBe('HTTP/1.1 400 Bad Request');
      expect(bad.body).toEqual({ error: 'bad_request', message: expect.any(String) });
    });

    // RFC 6749 §5.2 at the OAuth endpoints: an OAuth client library reads `error_description`, not `message`.
    it('answers them at the OAuth endpoints in the RFC 6749 shape, invalid_request with the same status', async () => {
      const big = `X-Big: ${'a'.repeat(20_000)}`;
      for (const target of ['/token', '/token/introspection', '/token/revocation?x=1', `http://127.0.0.1/token`]) {
        const answer = parse(await raw(`POST ${target} HTTP/1.1\r\nHost: x\r\n${big}\r\nContent-Length: 0\r\n\r\n`));
        expect({ target, status: answer.statusLine }).toEqual({ target, status: 'HTTP/1.1 431 Request Header Fields Too Large' });
        expect(answer.head).toContain('connection: close');
        expect(answer.head).toContain('cache-control: no-store');
        expect(answer.body).toEqual({ error: 'invalid_request', error_description: 'The request headers are too large.' });
      }
      const malformed = parse(await raw('POST /token HTTP/1.1\r\nHost: x\r\nNo colon here\r\n\r\n'));
      expect(malformed.statusLine).toBe('HTTP/1.1 400 Bad Request');
      expect(malformed.body).toEqual({ error: 'invalid_request', error_description: 'The request is not valid HTTP/1.1.' });
      // Headers in, body too slow: the app's own request, answered through its response.
      const slow = parse(await raw('POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 40\r\n\r\ngrant_type='));
      expect(slow.statusLine).toBe('HTTP/1.1 408 Request Timeout');
      expect(slow.body).toEqual({ error: 'invalid_request', error_description: expect.stringContaining('did not arrive in time') });
      // Elsewhere, SPEC's shape as before (a path that only starts like an OAuth endpoint included).
      const admin = parse(await raw(`POST /tokenx HTTP/1.1\r\nHost: x\r\n${big}\r\n\r\n`));
      expect(admin.body).toEqual({ error: 'request_header_fields_too_large', message: 'The request headers are too large.' });
    });

    it('leaves one access-log line for each, with the request id it answers with, and counts them (SPEC "Operations")', async () => {
      const fourXx = async () => metricValue(await (await fetch(`${server.url}/metrics`)).text(), 'sat_http_responses_total', { status_class: '4xx' });
      const before = await fourXx();
      const answers = [
        parse(await raw('GET /healthz HTTP/1.1\r\nHost: x\r\n')),
        parse(await raw(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)),
        parse(await raw('GARBAGE\r\n\r\n')),
      ];
      for (const [answer, status, error] of [
        [answers[0]!, 408, 'request_timeout'],
        [answers[1]!, 431, 'request_header_fields_too_large'],
        [answers[2]!, 400, 'bad_request'],
      ] as const) {
        const id = /^x-request-id: ([0-9a-f-]{36})$/m.exec(answer.head)?.[1];
        expect({ status, id }).toEqual({ status, id: expect.any(String) });
        const lines = server.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.request_id === id);
        expect(lines).toEqual([expect.objectContaining({ level: 'info', msg: 'request', status, error, client_ip: '127.0.0.1' })]);
      }
      expect(await fourXx()).toBe(before + 3);
    });
  });

  // SPEC Part 2 "Bad input never gives 5xx": what Node itself answered before the app saw the request (an empty 400
  // for HTTP/1.1 without Host, an empty 417 for an Expect other than 100-continue) or closed without a word (CONNECT):
  // now a JSON answer in SPEC's shape and one access-log line, like every other refusal (fuzzing session 5).
  describe('requests Node refused on its own', () => {
    const linesOf = (answer: string) => {
      const id = /^x-request-id: ([0-9a-f-]{36})$/m.exec(parse(answer).head)?.[1];
      return { id, lines: server.logLines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((l) => l.request_id === id) };
    };

    it('answers HTTP/1.1 without Host with a JSON 400 and one access-log line; HTTP/1.0 needs none', async () => {
      const answer = await raw('GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n');
      const { statusLine, head, body } = parse(answer);
      expect({ statusLine, body }).toEqual({ statusLine: 'HTTP/1.1 400 Bad Request', body: { error: 'bad_request', message: expect.stringContaining('Host') } });
      expect(head).toContain('content-type: application/json');
      expect(head).toContain('connection: close');
      const { id, lines } = linesOf(answer);
      expect(id).toEqual(expect.any(String));
      expect(lines).toEqual([expect.objectContaining({ msg: 'request', method: 'GET', path: '/healthz', status: 400 })]);
      expect(parse(await raw('GET /healthz HTTP/1.0\r\n\r\n')).body).toEqual({ status: 'ok' });
    });

    it('answers those refusals at the OAuth endpoints in the RFC 6749 shape', async () => {
      const noHost = parse(await raw('POST /token HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 0\r\nConnection: close\r\n\r\n'));
      expect({ statusLine: noHost.statusLine, body: noHost.body }).toEqual({
        statusLine: 'HTTP/1.1 400 Bad Request',
        body: { error: 'invalid_request', error_description: expect.stringContaining('Host') },
      });
      expect(noHost.head).toContain('cache-control: no-store');
      const teapot = parse(
        await raw('POST /token/introspection HTTP/1.1\r\nHost: x\r\nExpect: teapot\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoken=x'),
      );
      expect({ statusLine: teapot.statusLine, body: teapot.body }).toEqual({
        statusLine: 'HTTP/1.1 417 Expectation Failed',
        body: { error: 'invalid_request', error_description: expect.stringContaining('100-continue') },
      });
    });

    it('answers an Expect other than 100-continue with a JSON 417 and one access-log line; 100-continue still works', async () => {
      const { token } = await session();
      const answer = await raw(
        `POST /admin/api/me/sessions/revoke-others HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
          'Expect: teapot\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
      );
      const { statusLine, head, body } = parse(answer);
      expect({ statusLine, body }).toEqual({ statusLine: 'HTTP/1.1 417 Expectation Failed', body: { error: 'expectation_failed', message: expect.stringContaining('100-continue') } });
      expect(head).toContain('content-type: application/json');
      expect(linesOf(answer).lines).toEqual([expect.objectContaining({ msg: 'request', method: 'POST', status: 417 })]);
      const continued = await raw(
        `POST /admin/api/me/sessions/revoke-others HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${token}\r\nContent-Type: application/json\r\n` +
          'Expect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}',
      );
      expect(continued).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 OK\r\n/);
      // A body larger than any endpoint reads is not invited: 413 at once, no "100 Continue" first (the body never sent).
      for (const [path, type] of [['/admin/api/login', 'application/json'], ['/token', 'application/x-www-form-urlencoded']]) {
        const refused = await raw(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nExpect: 100-continue\r\nContent-Length: 50000000\r\n\r\n`);
        expect([path, refused]).toEqual([path, expect.stringMatching(/^HTTP\/1\.1 413 Payload Too Large\r\n/)]);
      }
      // Nor one over its own endpoint's limit (the OAuth forms' 56 KB, the public reports' 64 KB), nor a request
      // whose head is refused anyway (a transfer coding other than chunked): the refusal at once, no 100 first.
      for (const [path, type, more] of [
        ['/token', 'application/x-www-form-urlencoded', 'Content-Length: 100000'],
        ['/credentials/revoke', 'application/json', 'Content-Length: 70000'],
        ['/admin/api/login', 'application/json', 'Transfer-Encoding: gzip, chunked'],
      ]) {
        const refused = await raw(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: ${type}\r\nExpect: 100-continue\r\n${more}\r\n\r\n`);
        expect([path, refused]).toEqual([path, expect.stringMatching(/^HTTP\/1\.1 4\d\d /)]);
      }
    });

    it('answers an absolute-form target with a bad authority 400 (it was a bare 500 with no log line), at every path', async () => {
      for (const [method, target] of [
        ['GET', 'http://[::1/token'],
        ['POST', 'http://[::1/token'],
        ['GET', 'http://[/healthz'],
        ['GET', 'http://[fe80::1%25eth0]/admin/api/me'],
      ] as const) {
        const answer = await raw(`${method} ${target} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n`);
        const { statusLine, head, body } = parse(answer);
        expect({ target, statusLine, body }).toEqual({ target, statusLine: 'HTTP/1.1 400 Bad Request', body: { error: 'bad_request', message: 'The request target is not a valid URL.' } });
        expect(head).toContain('x-content-type-options: nosniff');
        expect(linesOf(answer).lines).toEqual([expect.objectContaining({ msg: 'request', method, path: target, status: 400 })]);
      }
      // A valid absolute-form target is served as its path (RFC 9112 §3.2.2).
      expect(parse(await raw('GET http://127.0.0.1/healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).body).toEqual({ status: 'ok' });
    });

    it('refuses two Host, Authorization or Content-Type lines and a Host that is not host[:port] (RFC 9112 §3.2)', async () => {
      const cases: Array<[string, string]> = [
        ['GET /jwks HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n', 'The request has more than one Host header.'],
        ['GET /jwks HTTP/1.1\r\nHost: [\r\n', 'The Host header is not a valid host name and port.'],
        ['GET /jwks HTTP/1.1\r\nHost: x:abc\r\n', 'The Host header is not a valid host name and port.'],
        ['GET /jwks HTTP/1.1\r\nHost: [1.2.3.4]\r\n', 'The Host header is not a valid host name and port.'], // brackets hold IPv6 only
        ['GET /admin/api/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\r\nAuthorization: Bearer b\r\n', 'The request has more than one Authorization header.'],
        ['POST /admin/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\n', 'The request has more than one Content-Type header.'],
      ];
      for (const [head, message] of cases) {
        const { statusLine, body } = parse(await raw(`${head}Content-Length: 2\r\nConnection: close\r\n\r\n{}`));
        expect({ head, statusLine, body }).toEqual({ head, statusLine: 'HTTP/1.1 400 Bad Request', body: { error: 'bad_request', message } });
      }
      // At the token endpoint in the RFC 6749 shape: two Authorization lines, whichever comes first, are refused.
      const admin = await makeAdmin(server.deps);
      const t = await makeToken(server.deps, admin);
      for (const pair of [[basic(t.client_id, t.client_secret), 'Basic Ym9ndXM6eA=='], ['Basic Ym9ndXM6eA==', basic(t.client_id, t.client_secret)]]) {
        const answer = parse(
          await raw(
            `POST /token HTTP/1.1\r\nHost: x\r\nAuthorization: ${pair[0]}\r\nAuthorization: ${pair[1]}\r\n` +
              'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 29\r\nConnection: close\r\n\r\ngrant_type=client_credentials',
          ),
        );
        expect({ statusLine: answer.statusLine, body: answer.body }).toEqual({
          statusLine: 'HTTP/1.1 400 Bad Request',
          body: { error: 'invalid_request', error_description: 'The request has more than one Authorization header.' },
        });
      }
      // Never cached, as every answer of these endpoints: an error of introspection or revocation too.
      const twice = parse(
        await raw(
          `POST /token/introspection HTTP/1.1\r\nHost: x\r\nAuthorization: ${basic(t.client_id, t.client_secret)}\r\nAuthorization: Basic Ym9ndXM6eA==\r\n` +
            'Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoken=x',
        ),
      );
      expect(twice.statusLine).toBe('HTTP/1.1 400 Bad Request');
      expect(twice.head).toMatch(/\r\ncache-control: no-store\r\n(.*\r\n)*pragma: no-cache(\r\n|$)/);
      for (const path of ['/token/introspection', '/token/revocation']) {
        for (const headers of [{}, { authorization: basic(t.client_id, 'wrong') }] as Array<Record<string, string>>) {
          const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body: 'token=x' });
          expect({ path, status: res.status, cache: res.headers.get('cache-control'), pragma: res.headers.get('pragma') }).toEqual({ path, status: 401, cache: 'no-store', pragma: 'no-cache' });
        }
      }
      // Hosts as they come: a name (a trailing dot, punycode), an IPv4 or bracketed IPv6 address (with a zone id as
      // Node's own client writes it, or RFC 6874's %25), IPvFuture, an empty Host, with or without a port.
      for (const host of ['example.com', 'example.com.', 'xn--bcher-kva.example', '127.0.0.1:8080', '[::1]', '[2001:db8::1]:443', '[::1%lo]:80', '[fe80::1%25eth0]', '[v1.fe80::a+en1]', '']) {
        expect(parse(await raw(`GET /healthz HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`)).body).toEqual({ status: 'ok' });
      }
    });

    it('refuses Transfer-Encoding on HTTP/1.0 (faulty framing, RFC 9112 §6.1) and closes; a list not ending in chunked is a plain 400', async () => {
      const answer = await raw(
        'POST /token HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n' +
          '1d\r\ngrant_type=client_credentials\r\n0\r\n\r\nGET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n',
      );
      const first = parse(answer);
      expect({ statusLine: first.statusLine, body: first.body }).toEqual({
        statusLine: 'HTTP/1.1 400 Bad Request',
        body: { error: 'invalid_request', error_description: 'Transfer-Encoding is not part of HTTP/1.0: send a Content-Length.' },
      });
      expect(first.head).toContain('connection: close');
      expect(answer.match(/^HTTP\/1\.1 /gm)).toHaveLength(1); // the pipelined request after it is not read
      // `gzip` alone: Node's own 400, whose status line says so (it said "400 Not Implemented").
      const gzipOnly = parse(await raw('POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n0\r\n\r\n'));
      expect(gzipOnly.statusLine).toBe('HTTP/1.1 400 Bad Request');
    });

    it('answers a transfer coding other than chunked 400, not the 501 RFC 9112 §6.1 suggests (SPEC: no 5xx for bad input); chunked still works', async () => {
      const gz = parse(await raw('POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n0\r\n\r\n'));
      expect({ statusLine: gz.statusLine, body: gz.body }).toEqual({
        statusLine: 'HTTP/1.1 400 Bad Request',
        body: { error: 'invalid_request', error_description: 'The only transfer coding this server accepts is chunked.' },
      });
      const admin = parse(await raw('POST /admin/api/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n'));
      expect({ statusLine: admin.statusLine, body: admin.body }).toEqual({
        statusLine: 'HTTP/1.1 400 Bad Request',
        body: { error: 'bad_request', message: 'The only transfer coding this server accepts is chunked.' },
      });
      const chunked = parse(
        await raw('POST /token HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n1d\r\ngrant_type=client_credentials\r\n0\r\n\r\n'),
      );
      expect(chunked.body).toEqual(expect.objectContaining({ error: 'invalid_client' })); // read and answered as usual
    });

    it('answers CONNECT with a JSON 400 and one access-log line instead of closing the connection', async () => {
      for (const target of ['localhost:443', '/admin/api/tokens']) {
        const answer = await raw(`CONNECT ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
        const { statusLine, head, body } = parse(answer);
        expect({ target, statusLine, body }).toEqual({ target, statusLine: 'HTTP/1.1 400 Bad Request', body: { error: 'bad_request', message: expect.stringContaining('CONNECT') } });
        expect(head).toContain('connection: close');
        expect(linesOf(answer).lines).toEqual([expect.objectContaining({ msg: 'request', method: 'CONNECT', status: 400, error: 'bad_request' })]);
      }
    });
  });

  describe('log lines', () => {
    it('leaves one short access-log line for an alert signed by an unknown key, naming the key identifier', async () => {
      const keyId = `k${'x'.repeat(500)}`;
      const res = await fetch(`${server.url}/secret-scanning/verify`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'github-public-key-identifier': keyId, 'github-public-key-signature': 'AAAA' },
        body: '[]',
      });
      expect(res.status).toBe(401);
      const id = res.headers.get('x-request-id');
      const lines = server.logLines.filter((l) => l.includes(id!) || l.includes('xxxxxxxxxx'));
      expect(lines).toHaveLength(1);
      expect(lines[0]!.length).toBeLessThan(600);
      expect(JSON.parse(lines[0]!)).toEqual(
        expect.objectContaining({ msg: 'request', status: 401, route: '/secret-scanning/verify', refused: 'unknown_key', key_identifier: `${keyId.slice(0, 64)}…` }),
      );
    });
  });

  describe('messages', () => {
    it('says the partner endpoint expects a JSON array', async () => {
      const alert = '{"a":1}';
      const verify = await fetch(`${server.url}/secret-scanning/verify`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'github-public-key-identifier': KID,
          'github-public-key-signature': sign('sha256', Buffer.from(alert), scanning.privateKey).toString('base64'),
        },
        body: alert,
      });
      expect(verify.status).toBe(400);
      expect(((await verify.json()) as { details: unknown }).details).toEqual([{ path: 'body', message: 'must be a JSON array' }]);
    });

    it('names a field that breaks two rules with the same message once', async () => {
      const { token } = await session();
      const created = await call(server, 'POST', '/tokens', { token, json: tokenBody() });
      const rotate = await call(server, 'POST', `/tokens/${created.body.id}/rotate`, { token, raw: '{"grace_period_hours": 1e308}', headers: { 'content-type': 'application/json' } });
      expect(rotate.status).toBe(400);
      expect(rotate.body.details).toEqual([{ path: 'grace_period_hours', message: 'must be a whole number of hours from 0 to 720' }]);
    });

    it('says the token parameter is missing from an empty form at introspection and revocation', async () => {
      const admin = await makeAdmin(server.deps);
      const t = await makeToken(server.deps, admin);
      for (const path of ['/token/introspection', '/token/revocation']) {
        // No body and no Content-Length (curl -X POST -H 'content-type: …'), then an empty one.
        const none = parse(await raw(`POST ${path} HTTP/1.1\r\nHost: x\r\nAuthorization: ${basic(t.client_id, t.client_secret)}\r\nContent-Type: application/x-www-form-urlencoded\r\nConnection: close\r\n\r\n`));
        expect({ path, status: none.statusLine, body: none.body }).toEqual({
          path,
          status: 'HTTP/1.1 400 Bad Request',
          body: { error: 'invalid_request', error_description: "missing required parameter 'token'" },
        });
        const res = await fetch(`${server.url}${path}`, {
          method: 'POST',
          headers: { authorization: basic(t.client_id, t.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
          body: '',
        });
        expect({ path, status: res.status, body: await res.json() }).toEqual({
          path,
          status: 400,
          body: { error: 'invalid_request', error_description: "missing required parameter 'token'" },
        });
      }
    });
  });
});
