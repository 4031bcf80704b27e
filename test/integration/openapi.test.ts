// SPEC "Operations": GET /admin/api/openapi.json is an OpenAPI 3.1 description of the admin API that a standard
// validator accepts and that lists every admin route.
import { Validator } from '@seriousme/openapi-schema-validator';
import type { z } from 'zod';
import { describedRoute, undescribedRoutes, type HttpMethod } from '../../src/admin/openapi.js';
import * as responses from '../../src/admin/responses.js';
import { ADMIN_API_PREFIX, adminRouter } from '../../src/admin/router.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';

/**
 * The fields of `value` that `schema` does not name (as `$.a.b`): the schemas are loose objects, so an answer with a
 * field they leave out still parses, and only this tells that the description is incomplete.
 */
function undeclared(schema: z.ZodType, value: unknown, at = '$'): string[] {
  const def = (schema as unknown as { _zod: { def: Record<string, any> } })._zod.def;
  if (def.type === 'nullable' || def.type === 'optional') return value === null || value === undefined ? [] : undeclared(def.innerType, value, at);
  if (def.type === 'array') return Array.isArray(value) ? value.flatMap((v, i) => undeclared(def.element, v, `${at}[${i}]`)) : [];
  if (def.type === 'object' && value !== null && typeof value === 'object') {
    const shape = def.shape as Record<string, z.ZodType>;
    return Object.entries(value).flatMap(([key, v]) => (key in shape ? undeclared(shape[key]!, v, `${at}.${key}`) : [`${at}.${key}`]));
  }
  return [];
}

describe.each(testDatabases())('GET /admin/api/openapi.json on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let doc: any;
  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    const res = await fetch(`${server.url}/admin/api/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    doc = await res.json();
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('is an OpenAPI 3.1 document that a standard validator accepts', async () => {
    expect(doc.openapi).toBe('3.1.0');
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
  });

  it('describes every route the admin router serves, and no route it does not', () => {
    const router = adminRouter(server.deps);
    expect(undescribedRoutes(router, ADMIN_API_PREFIX)).toEqual([]);
    const served = new Set<string>();
    for (const layer of router.stack) {
      for (const m of layer.methods) if (m !== 'HEAD') served.add(`${m} ${String(layer.path).replace(/:(\w+)/g, '{$1}')}`);
    }
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([path, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`),
    );
    expect(new Set(documented)).toEqual(served);
    expect(served.size).toBeGreaterThanOrEqual(10);
  });

  it('gives every answer with a body a schema', () => {
    const bare: string[] = [];
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { responses: Record<string, any> }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        for (const [status, answer] of Object.entries(op.responses)) {
          if (!/^2\d\d$/.test(status) || status === '204') continue;
          if (!answer.content?.['application/json']?.schema) bare.push(`${method.toUpperCase()} ${path} ${status}`);
        }
      }
    }
    expect(bare).toEqual([]);
    const self = doc.paths['/admin/api/openapi.json'].get.responses['200'].content['application/json'].schema;
    expect(self).toMatchObject({ type: 'object', required: expect.arrayContaining(['openapi', 'info', 'paths']) });
  });

  it('asks for the CSRF header beside the session cookie on unsafe methods only, as the server does', async () => {
    for (const [path, ops] of Object.entries(doc.paths as Record<string, Record<string, { security: unknown[] }>>)) {
      for (const [method, op] of Object.entries(ops)) {
        if (op.security.length === 0) continue; // sign-in, invitations, password reset, this document
        const cookie = method === 'get' ? [{ sessionCookie: [] }] : [{ sessionCookie: [], csrfToken: [] }];
        expect({ at: `${method} ${path}`, security: op.security }).toEqual({ at: `${method} ${path}`, security: [{ bearerSession: [] }, ...cookie] });
      }
    }
    // What the document says, the server does: a GET with the cookie alone is signed in.
    const signedIn = await fetch(`${server.url}/admin/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: 'first-admin@example.com', password: 'first-admin-password' }),
    });
    const cookie = signedIn.headers.getSetCookie()[0]!.split(';')[0]!;
    expect((await fetch(`${server.url}/admin/api/me`, { headers: { cookie } })).status).toBe(200);
  });

  it('states the page-size rule whole, so a request the document allows is one the server takes', async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    for (const path of ['/admin/api/tokens', '/admin/api/audit']) {
      const limit = (doc.paths[path].get.parameters as Array<{ name: string; schema: { pattern: string } }>).find((p) => p.name === 'limit')!;
      const pattern = new RegExp(limit.schema.pattern);
      for (const value of ['0', '1', '9', '10', '99', '100', '101', '010', '999', '1000', '-1', '1.5', '']) {
        if (value === '') continue; // empty means not given (SPEC)
        const res = await call(server, 'GET', `${path.slice(ADMIN_API_PREFIX.length)}?limit=${value}`, { token: session.token });
        expect({ path, value, status: res.status }).toEqual({ path, value, status: pattern.test(value) ? 200 : 400 });
      }
    }
    const tokenId = (doc.paths['/admin/api/audit'].get.parameters as Array<{ name: string; schema: { pattern?: string } }>).find((p) => p.name === 'token_id')!;
    expect(new RegExp(tokenId.schema.pattern!).test('7D444840-9DC0-11D1-B245-5FFDCE74FAD2')).toBe(true); // any case, as the server takes it
    expect(new RegExp(tokenId.schema.pattern!).test('not-a-uuid')).toBe(false);
  });

  it('answers only the paths as documented: no other case, no trailing slash', async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    for (const path of ['/tokens', '/me', '/audit', '/services']) {
      expect((await call(server, 'GET', path, { token: session.token })).status).toBe(200);
      for (const variant of [path.toUpperCase(), `${path}/`, path.replace(/^\/(.)/, (_m, c: string) => `/${c.toUpperCase()}`)]) {
        const res = await call(server, 'GET', variant, { token: session.token });
        expect({ variant, status: res.status, error: res.body?.error }).toEqual({ variant, status: 404, error: 'not_found' });
      }
    }
    expect((await fetch(`${server.url}/admin/api/openapi.json/`)).status).toBe(404);
    for (const path of ['/HEALTHZ', '/healthz/', '/Metrics', '/readyz/']) expect({ path, status: (await fetch(`${server.url}${path}`)).status }).toEqual({ path, status: 404 });
    for (const path of ['/admin', '/admin/', '/healthz']) expect({ path, status: (await fetch(`${server.url}${path}`)).status }).toEqual({ path, status: 200 });
  });

  it('catches a route added without a description', () => {
    const router = adminRouter(server.deps);
    router.get('/not-described-yet', (ctx) => {
      ctx.body = {};
    });
    expect(undescribedRoutes(router, ADMIN_API_PREFIX)).toEqual(['GET /not-described-yet']);
  });

  it('takes its request schemas from the zod schemas the routes validate with', () => {
    const generate = doc.paths['/admin/api/tokens'].post;
    const body = generate.requestBody.content['application/json'].schema;
    expect(body.required).toEqual(expect.arrayContaining(['name', 'expires_at', 'services']));
    expect(body.additionalProperties).toBe(false); // .strict(): unknown fields are refused
    expect(body.properties.services).toMatchObject({ type: 'array', minItems: 1 });
    const list = doc.paths['/admin/api/tokens'].get;
    expect(list.parameters.map((p: { name: string; in: string }) => `${p.in}:${p.name}`).sort()).toEqual(
      ['query:cursor', 'query:limit', 'query:q', 'query:status'],
    );
    const one = doc.paths['/admin/api/tokens/{id}'].get;
    expect(one.parameters).toEqual([{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }]);
    expect(doc.paths['/admin/api/login'].post.security).toEqual([]);
    expect(one.security.length).toBeGreaterThan(0);
    // A new password's length rule (12 to 256 characters, code points as JSON Schema counts them) is in the document.
    const bodyOf = (path: string) => doc.paths[path].post.requestBody.content['application/json'].schema.properties;
    for (const [path, field] of [
      ['/admin/api/me/password', 'new_password'],
      ['/admin/api/password-reset/confirm', 'new_password'],
      ['/admin/api/invitations/accept', 'password'],
    ] as const) {
      expect({ path, schema: bodyOf(path)[field] }).toEqual({ path, schema: expect.objectContaining({ type: 'string', minLength: 12, maxLength: 256 }) });
    }
  });

  it('describes the responses the API really gives', async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    expect(() => responses.signedIn.parse(session.body)).not.toThrow();
    const made = await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody() });
    expect(made.status).toBe(201);
    const checks: Array<[keyof typeof responses, unknown]> = [
      ['generatedToken', made.body],
      ['tokenPage', (await call(server, 'GET', '/tokens', { token: session.token })).body],
      ['tokenResource', (await call(server, 'GET', `/tokens/${made.body.id}`, { token: session.token })).body],
      ['serviceList', (await call(server, 'GET', '/services', { token: session.token })).body],
      ['me', (await call(server, 'GET', '/me', { token: session.token })).body],
      ['revokedToken', (await call(server, 'POST', `/tokens/${made.body.id}/revoke`, { token: session.token })).body],
      ['auditPage', (await call(server, 'GET', '/audit', { token: session.token })).body],
      ['policyResource', (await call(server, 'GET', '/policy', { token: session.token })).body],
    ];
    // A token with every Part 2 field set, rotated (two secrets), and the events that carry details.
    const full = await call(server, 'POST', '/tokens', {
      token: session.token,
      json: tokenBody({ allowed_ips: ['203.0.113.0/24'], max_tokens_per_hour: 100 }),
    });
    expect(full.status).toBe(201);
    const rotated = await call(server, 'POST', `/tokens/${full.body.id}/rotate`, { token: session.token, json: { grace_period_hours: 2 } });
    expect(rotated.status).toBe(200);
    expect((await call(server, 'PATCH', `/tokens/${full.body.id}`, { token: session.token, json: { name: 'OpenAPI_Renamed' } })).status).toBe(200);
    checks.push(
      ['generatedToken', full.body],
      ['rotatedToken', rotated.body],
      ['tokenResource', (await call(server, 'GET', `/tokens/${full.body.id}`, { token: session.token })).body],
      ['tokenPage', (await call(server, 'GET', '/tokens', { token: session.token })).body],
      ['auditPage', (await call(server, 'GET', '/audit', { token: session.token })).body],
    );
    for (const [name, body] of checks) {
      const parsed = responses[name].safeParse(body);
      expect({ name, issues: parsed.error?.issues ?? [] }).toEqual({ name, issues: [] });
      // And every field of the answer is described (SPEC Part 2's token fields were missing from the description).
      expect({ name, undeclared: undeclared(responses[name] as z.ZodType, body) }).toEqual({ name, undeclared: [] });
    }
    // The document says the same as the schemas: the token resource lists the Part 2 fields.
    const described = doc.paths['/admin/api/tokens/{id}'].get.responses['200'].content['application/json'].schema.properties;
    expect(Object.keys(described)).toEqual(
      expect.arrayContaining(['expiring', 'dormant', 'allowed_ips', 'max_tokens_per_hour', 'tokens_last_hour', 'secrets', 'auth_method', 'require_dpop']),
    );
  });

  it('lists, for each route, the error statuses and codes it really answers (beside the 4XX catch-all)', async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    const as = { token: session.token };
    const made = await call(server, 'POST', '/tokens', { ...as, json: tokenBody() });
    expect(made.status).toBe(201);
    // The 201's Location header is described, and is what the server sends.
    const created = doc.paths['/admin/api/tokens'].post.responses['201'];
    expect(Object.keys(created.headers ?? {})).toEqual(['Location']);
    expect(made.headers.get('location')).toBe(`/admin/api/tokens/${made.body.id}`);
    const unknownId = '00000000-0000-4000-8000-000000000000';
    const cookie = (await call(server, 'POST', '/login', { json: { email: 'first-admin@example.com', password: 'first-admin-password' } })).headers
      .getSetCookie()[0]!
      .split(';')[0]!;
    const answers: Array<[string, string, Awaited<ReturnType<typeof call>>]> = [
      ['post', '/login', await call(server, 'POST', '/login', { json: { email: 'first-admin@example.com', password: 'not-the-password' } })],
      ['post', '/tokens', await call(server, 'POST', '/tokens', { ...as, json: tokenBody({ name: made.body.name }) })],
      ['post', '/tokens', await call(server, 'POST', '/tokens', { ...as, json: { name: 1 } })],
      ['post', '/tokens', await call(server, 'POST', '/tokens', { ...as, raw: '{', headers: { 'content-type': 'application/json' } })],
      ['post', '/tokens', await call(server, 'POST', '/tokens', { ...as, raw: 'x', headers: { 'content-type': 'text/plain' } })],
      ['post', '/tokens', await call(server, 'POST', '/tokens', { json: tokenBody(), headers: { cookie } })],
      ['get', '/tokens', await call(server, 'GET', '/tokens?limit=0', as)],
      ['get', '/tokens', await call(server, 'GET', '/tokens')],
      ['get', '/tokens/{id}', await call(server, 'GET', `/tokens/${unknownId}`, as)],
      ['patch', '/tokens/{id}', await call(server, 'PATCH', `/tokens/${unknownId}`, { ...as, json: { name: 'x' } })],
      ['post', '/tokens/{id}/rotate', await call(server, 'POST', `/tokens/${made.body.id}/rotate`, as)],
      ['post', '/tokens/{id}/rotate', await call(server, 'POST', `/tokens/${made.body.id}/rotate`, as)],
      ['post', '/tokens/{id}/secrets/{secret_id}/retire', await call(server, 'POST', `/tokens/${made.body.id}/secrets/${unknownId}/retire`, as)],
      ['post', '/admins', await call(server, 'POST', '/admins', { ...as, json: { email: 'first-admin@example.com' } })],
      ['get', '/services', await call(server, 'GET', '/services?x=1', as)],
      ['get', '/me', await call(server, 'GET', '/me', { headers: { cookie, 'x-csrf-token': 'not-this-sessions' } })],
    ];
    expect(answers[10]![2].status).toBe(200); // the first rotation; the second is 409 rotation_in_progress
    for (const [method, path, res] of answers.filter((_, i) => i !== 10)) {
      const described = doc.paths[`/admin/api${path}`][method].responses[String(res.status)];
      const error = (res.body as { error?: string } | undefined)?.error;
      expect({ route: `${method} ${path}`, status: res.status, error, listed: described?.description?.includes(`\`${error}\``) }).toEqual({
        route: `${method} ${path}`,
        status: res.status,
        error,
        listed: true,
      });
    }
  });

  // Each real answer is held against the schema and status its own route declares (not one the test picks), so a
  // route that describes the wrong body is caught.
  it('describes the administrators routes as they answer', async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    const other = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    const invited = await call(server, 'POST', '/admins', { token: session.token, json: { email: 'openapi-invitee@example.com' } });
    const calls: Array<[HttpMethod, string, string, Awaited<ReturnType<typeof call>>]> = [
      ['GET', '/admins', '/admins', await call(server, 'GET', '/admins', { token: session.token })],
      ['POST', '/admins', '/admins', invited],
      ['GET', '/invitations', '/invitations', await call(server, 'GET', '/invitations', { token: session.token })],
      ['DELETE', '/invitations/:id', `/invitations/${invited.body.id}`, await call(server, 'DELETE', `/invitations/${invited.body.id}`, { token: session.token })],
      ['GET', '/me/sessions', '/me/sessions', await call(server, 'GET', '/me/sessions', { token: session.token })],
      ['POST', '/me/sessions/revoke-others', '/me/sessions/revoke-others', await call(server, 'POST', '/me/sessions/revoke-others', { token: session.token })],
      ['POST', '/password-reset', '/password-reset', await call(server, 'POST', '/password-reset', { json: { email: 'first-admin@example.com' } })],
    ];
    expect((await call(server, 'GET', '/me', { token: other.token })).status).toBe(401);
    for (const [method, route, path, res] of calls) {
      const doc = describedRoute(method, route);
      expect({ route: `${method} ${path}`, status: res.status }).toEqual({ route: `${method} ${path}`, status: doc?.status ?? 200 });
      if (res.status === 204) {
        expect({ route: `${method} ${path}`, body: res.text }).toEqual({ route: `${method} ${path}`, body: '' });
        continue;
      }
      const parsed = doc?.response?.safeParse(res.body);
      expect({ route: `${method} ${path}`, issues: parsed?.error?.issues ?? [], described: parsed !== undefined }).toEqual({
        route: `${method} ${path}`,
        issues: [],
        described: true,
      });
    }
  });
});
