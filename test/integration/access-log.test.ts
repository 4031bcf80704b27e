// SPEC "Operations": one JSON access-log line per request (request_id, method, path, status, ms, client address),
// secrets redacted; X-Request-Id echoed or generated.
import net from 'node:net';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

type Line = Record<string, unknown>;
const accessLines = (server: TestServer): Line[] =>
  server.logLines.map((l) => JSON.parse(l) as Line).filter((l) => l.msg === 'request');

/** The access line of the request with this id, waiting for it (it is written when the response is done). */
async function lineFor(server: TestServer, requestId: string): Promise<Line> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const found = accessLines(server).filter((l) => l.request_id === requestId);
    if (found.length > 0) {
      expect(found).toHaveLength(1);
      return found[0]!;
    }
    if (Date.now() > deadline) throw new Error(`no access line for ${requestId}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe.each(testDatabases())('access log on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { TRUST_PROXY: 'true' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('writes one line per request with the request id it echoes, the route, status, duration and client address', async () => {
    const res = await fetch(`${server.url}/admin/api/tokens/11111111-1111-4111-8111-111111111111?q=secret-looking`, {
      headers: { 'x-request-id': 'trace-abc.123', 'x-forwarded-for': '198.51.100.7' },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get('x-request-id')).toBe('trace-abc.123');
    const line = await lineFor(server, 'trace-abc.123');
    expect(line).toMatchObject({
      level: 'info',
      method: 'GET',
      path: '/admin/api/tokens/11111111-1111-4111-8111-111111111111',
      route: '/admin/api/tokens/:id',
      status: 401,
      client_ip: '198.51.100.7',
    });
    expect(typeof line.ms).toBe('number');
    expect(typeof line.time).toBe('string');
    expect(JSON.stringify(line)).not.toContain('secret-looking'); // no query string

    // No usable X-Request-Id: one is generated, echoed and logged.
    const bad = await fetch(`${server.url}/healthz`, { headers: { 'x-request-id': 'has spaces and ünïcode' } });
    const generated = bad.headers.get('x-request-id') ?? '';
    expect(generated).toMatch(/^[0-9a-f-]{36}$/);
    expect(await lineFor(server, generated)).toMatchObject({ method: 'GET', path: '/healthz', status: 200 });

    // OAuth endpoints and unknown paths are logged too; an unknown path has no route.
    const token = await fetch(`${server.url}/token`, { method: 'POST', headers: { 'x-request-id': 'trace-token' } });
    expect(token.status).toBe(401); // no client authentication
    expect(await lineFor(server, 'trace-token')).toMatchObject({ method: 'POST', path: '/token', route: '/token', status: 401 });
    const jwks = await fetch(`${server.url}/jwks`, { headers: { 'x-request-id': 'trace-jwks' } });
    expect(jwks.status).toBe(200);
    expect(await lineFor(server, 'trace-jwks')).toMatchObject({ method: 'GET', path: '/jwks', route: '/jwks', status: 200 });
    const none = await fetch(`${server.url}/nothing-here`, { method: 'POST' });
    const noneLine = await lineFor(server, none.headers.get('x-request-id')!);
    expect(noneLine).toMatchObject({ method: 'POST', path: '/nothing-here', status: 404 });
    expect(noneLine).not.toHaveProperty('route');

    // Refused before the router ran (a body that is no JSON, a malformed query): the known route is still named.
    const badJson = await fetch(`${server.url}/admin/api/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'trace-bad-json' },
      body: '{nope',
    });
    expect(badJson.status).toBe(400);
    expect(await lineFor(server, 'trace-bad-json')).toMatchObject({ method: 'POST', route: '/admin/api/tokens', status: 400 });
    const badQuery = await fetch(`${server.url}/admin/api/tokens?cursor=%FF%FE`, { headers: { 'x-request-id': 'trace-bad-query' } });
    expect(badQuery.status).toBe(400);
    expect(await lineFor(server, 'trace-bad-query')).toMatchObject({ method: 'GET', route: '/admin/api/tokens', status: 400 });
  });

  it('with TRUST_PROXY_HOPS=2 (a CDN, then a load balancer) takes the client address and scheme two entries from the right', async () => {
    const own = await createTestDb(kind); // an embedded database has one server at a time
    const behindTwo = await startServer(own, { TRUST_PROXY: 'true', TRUST_PROXY_HOPS: '2' });
    try {
      // The client wrote 10.9.9.9 and http; the CDN saw 198.51.100.9 over https; the load balancer saw the CDN.
      const res = await fetch(`${behindTwo.url}/admin/api/login`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'x-request-id': 'trace-two-hops',
          'x-forwarded-for': '10.9.9.9, 198.51.100.9, 203.0.113.200',
          'x-forwarded-proto': 'http, https, http',
        },
        body: JSON.stringify({ email: 'first-admin@example.com', password: 'first-admin-password' }),
      });
      expect(res.status).toBe(200);
      expect(res.headers.get('set-cookie')).toMatch(/;\s*Secure/i);
      expect(await lineFor(behindTwo, 'trace-two-hops')).toMatchObject({ client_ip: '198.51.100.9', status: 200 });
    } finally {
      await behindTwo.close();
      await own.drop();
    }
  });

  it('writes no secret, password or session token after a sign-in and token requests', async () => {
    const password = 'first-admin-password';
    const session = await signIn(server, 'first-admin@example.com', password);
    const made = await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody() });
    expect(made.status).toBe(201);
    const secret: string = made.body.client_secret;

    const viaBasic = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { authorization: basic(made.body.client_id, secret), 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(viaBasic.status).toBe(200);
    const accessToken = ((await viaBasic.json()) as { access_token: string }).access_token;
    const viaPost = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: made.body.client_id, client_secret: secret }).toString(),
    });
    expect(viaPost.status).toBe(200);
    const wrong = await fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: 'client_credentials', client_id: made.body.client_id, client_secret: secret + 'x' }).toString(),
    });
    expect(wrong.status).toBe(401);
    // A secret in the path itself, and a cookie.
    const inPath = await fetch(`${server.url}/admin/api/tokens/${secret}`, { headers: { cookie: session.cookie } });
    expect(inPath.status).toBeGreaterThanOrEqual(400);
    // The same secret percent-encoded in the path (a client or proxy may escape any character): still redacted.
    const encoded = `%${secret.charCodeAt(0).toString(16)}${secret.slice(1, 4)}%5F${secret.slice(5)}`;
    const inEncodedPath = await fetch(`${server.url}/admin/api/tokens/${encoded}`, { headers: { cookie: session.cookie } });
    expect(inEncodedPath.status).toBeGreaterThanOrEqual(400);
    await lineFor(server, inEncodedPath.headers.get('x-request-id')!);
    await call(server, 'POST', '/logout', { token: session.token });

    await lineFor(server, inPath.headers.get('x-request-id')!);
    const all = server.logLines.join('\n');
    expect(accessLines(server).filter((l) => l.path === '/token').length).toBeGreaterThanOrEqual(3);
    for (const leak of [secret, secret.slice(5, 30), password, session.token, session.cookie, accessToken]) {
      expect(all).not.toContain(leak);
    }
  });

  it("redacts an invitation's or password reset's link token in a path and a request id, and a secret glued to a word", async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    const made = await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'Glued' }) });
    const secret: string = made.body.client_secret;
    const invitation = 'sai_KsIVhvdfx3uMRp5lFPWj-aFaspy9-IBSXuAsneqoc3Q';
    const reset = 'sar_X9zSbeqlTUI4OGYfvgSeyzh0-J9n8qyoDvqRbb8ghsI';
    const before = accessLines(server).length;
    const ids: string[] = [];
    for (const [path, requestId] of [
      [`/admin/${invitation}`, undefined],
      [`/admin/api/invitations/${invitation}`, undefined],
      [`/admin/reset/${reset}`, undefined],
      ['/healthz', invitation],
      ['/healthz', `a_${secret}`.slice(0, 64)],
      [`/x/a_${secret}`, undefined],
      [`/x/x${secret}`, undefined],
    ] as const) {
      const res = await fetch(`${server.url}${path}`, { method: 'POST', headers: requestId ? { 'x-request-id': requestId } : {} });
      ids.push(res.headers.get('x-request-id')!);
    }
    for (const id of ids.filter((id) => !id.includes('_'))) await lineFor(server, id);
    // The lines of the two requests whose id is redacted (so lineFor cannot find them): polled, with a deadline.
    const deadline = Date.now() + 5_000;
    while (accessLines(server).length < before + ids.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    const all = server.logLines.join('\n');
    for (const leak of [invitation.slice(4), reset.slice(4), secret.slice(5, 40)]) expect(all).not.toContain(leak);
    expect(accessLines(server).filter((l) => String(l.path).includes('[REDACTED]')).length).toBeGreaterThanOrEqual(5);
  });
});

describe.each(testDatabases())('access log of a request whose body is too slow, on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { REQUEST_TIMEOUT_SECONDS: '1' });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  // Headers in, body never finished: the app already has the request when Node's request timeout fires. The 408
  // answers that request, so its one access-log line (with its request id) says 408, and no second line is written.
  it.each(['/token', '/admin/api/tokens'])('writes one line, status 408, for a POST %s that never finishes its body', async (pathname) => {
    const requestId = `slow-body${pathname.replace(/\//g, '.')}`;
    const logged = server.logLines.length;
    const { port } = new URL(server.url);
    const type = pathname === '/token' ? 'application/x-www-form-urlencoded' : 'application/json';
    const answer = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), '127.0.0.1');
      let received = '';
      socket.on('connect', () =>
        socket.write(`POST ${pathname} HTTP/1.1\r\nHost: x\r\nX-Request-Id: ${requestId}\r\nContent-Type: ${type}\r\nContent-Length: 50\r\n\r\ngrant`),
      );
      socket.on('data', (d) => (received += d.toString()));
      socket.on('close', () => resolve(received));
      socket.on('error', () => resolve(received));
      setTimeout(() => socket.destroy(), 20_000).unref();
    });
    expect(answer).toMatch(/^HTTP\/1\.1 408 /);
    expect(answer).toMatch(new RegExp(`x-request-id: ${requestId.replace(/\./g, '\\.')}`, 'i'));
    // RFC 6749 §5.2's shape at the OAuth endpoints, SPEC's elsewhere.
    expect(answer).toContain(pathname === '/token' ? '"error":"invalid_request","error_description"' : '"error":"request_timeout"');
    const line = await lineFor(server, requestId);
    expect(line).toMatchObject({ method: 'POST', path: pathname, status: 408 });
    expect(line.aborted).toBeUndefined();
    // Give a second line (the old behaviour wrote one from the clientError listener) time to appear, then count.
    await fetch(`${server.url}/healthz`);
    const added = server.logLines.slice(logged).map((l) => JSON.parse(l) as Line);
    expect(added.filter((l) => l.status === 408)).toHaveLength(1);
    expect(added.filter((l) => l.level !== 'info')).toEqual([]);
  });
});
