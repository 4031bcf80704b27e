// SPEC Part 2 "Bad input never gives 5xx": seeded fuzzing of every admin and OAuth route against one in-process
// server. Each request gets a 4xx (or a 2xx/3xx where the input happens to be fine), never a 5xx, and writes at
// most one short log line without a stack trace or SQL. FUZZ_SEED / FUZZ_RUNS change the seed and the case count.
import fc from 'fast-check';
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { encodeCursor } from '../../src/db/index.js';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const SEED = Number(process.env.FUZZ_SEED ?? 20261130);
const RUNS = Number(process.env.FUZZ_RUNS ?? 300); // per property; 11 properties

// A secret-scanning key, so /secret-scanning/verify is configured and signed alerts get past the signature check.
const scanning = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body?: string;
}

// ---------------------------------------------------------------- generators

/** Lone surrogates become U+FFFD (what encodeURIComponent and Basic credentials can carry). */
const wf = (s: string): string => Buffer.from(s, 'utf8').toString('utf8');

const nastyConstants = [
  '',
  ' ',
  '\u0000',
  'a\u0000b',
  'admin@example.com\u0000',
  '\ud800',
  'x\udfffy',
  '\ud83d',
  '\u202eevil',
  '\ufeff',
  'İ',
  'ＡＢＣ@example.com',
  '9'.repeat(400),
  '1e400',
  '-1',
  '0x10',
  'NaN',
  'Infinity',
  '2026-02-30',
  '2026-13-01T00:00:00Z',
  '0000-00-00T25:61:61.999999Z',
  '9999-12-31T23:59:59.999999+99:99',
  "' or 1=1 --",
  '%00',
  '%ZZ',
  '\\',
  '%',
  '_',
  '../../etc/passwd',
  'null',
  '[]',
  '{}',
  'sat_0000000000000000000000',
  'sats_' + 'A'.repeat(49),
  'a'.repeat(70_000),
  '00000000-0000-0000-0000-000000000000',
  '\u0001\u001f\u007f\u0085',
  '\r\n',
  'ﬀ',
];

const nastyString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.constantFrom(...nastyConstants) },
  { weight: 3, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 3, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.tuple(fc.constantFrom(...nastyConstants), fc.string({ maxLength: 10 })).map(([a, b]) => a + b) },
  { weight: 1, arbitrary: fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => `a${String.fromCharCode(c)}b`) },
);

/** Raw JSON text for a value, sometimes with numbers no double holds. */
const hugeNumberText = fc.constantFrom('1e400', '-1e400', '123456789012345678901234567890', '1e-400', '-0', '1.7976931348623157e309');

const jsonScalar: fc.Arbitrary<unknown> = fc.oneof(
  nastyString,
  fc.integer(),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.constant(Number.MAX_SAFE_INTEGER * 4),
);
const jsonValue: fc.Arbitrary<unknown> = fc.oneof(
  { weight: 5, arbitrary: jsonScalar },
  { weight: 1, arbitrary: fc.array(jsonScalar, { maxLength: 5 }) },
  { weight: 1, arbitrary: fc.dictionary(nastyString, jsonScalar, { maxKeys: 3 }) },
);

/** A JSON object body with the given fields (each fuzzed or missing), extra keys now and then. */
function jsonObject(fields: Record<string, fc.Arbitrary<unknown>>): fc.Arbitrary<string> {
  const record = fc.record(
    Object.fromEntries(Object.entries(fields).map(([k, a]) => [k, fc.oneof({ weight: 3, arbitrary: a }, { weight: 2, arbitrary: jsonValue })])),
    { requiredKeys: [] },
  );
  return fc.oneof(
    { weight: 8, arbitrary: record.map((o) => JSON.stringify(o)) },
    {
      weight: 2,
      arbitrary: fc
        .tuple(record, fc.constantFrom(...Object.keys(fields), 'extra'), hugeNumberText)
        .map(([o, key, num]) => JSON.stringify({ ...o, [key]: '__NUM__' }).replace('"__NUM__"', num)),
    },
    { weight: 1, arbitrary: jsonValue.map((v) => JSON.stringify(v) ?? 'null') },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
    { weight: 1, arbitrary: fc.constantFrom('{"a":' + '['.repeat(5000), '{', '', '\u0000', '{"email":"\\u0000"}', '{"name":"\\ud800"}') },
  );
}

/** A date-time string with each field anywhere in 0..99 (impossible dates like 02-30 included). */
const wildTime = fc
  .tuple(
    fc.oneof(fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1999, max: 2030 })),
    fc.oneof(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 1, max: 13 })),
    fc.oneof(fc.integer({ min: 0, max: 99 }), fc.integer({ min: 28, max: 32 })),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
    fc.integer({ min: 0, max: 99 }),
  )
  .map(([y, mo, d, h, mi, s]) => {
    const p = (n: number, w = 2) => String(n).padStart(w, '0');
    return `${p(y, 4)}-${p(mo)}-${p(d)}T${p(h)}:${p(mi)}:${p(s)}.000000Z`;
  });

const uuidish = fc.oneof(fc.uuid(), nastyString);
const cursor: fc.Arbitrary<string> = fc.oneof(
  { weight: 3, arbitrary: fc.tuple(fc.oneof(wildTime, fc.constantFrom('2026-02-30T00:00:00.000000Z')), uuidish).map(([at, id]) => encodeCursor({ at, id })) },
  { weight: 1, arbitrary: nastyString },
  { weight: 1, arbitrary: jsonValue.map((v) => Buffer.from(JSON.stringify(v) ?? '').toString('base64url')) },
);

/** Percent-encodes text for a URL, sometimes leaving raw broken escapes in. */
const urlPart = (a: fc.Arbitrary<string>): fc.Arbitrary<string> =>
  fc.oneof(
    { weight: 4, arbitrary: a.map((s) => encodeURIComponent(wf(s))) },
    { weight: 1, arbitrary: fc.constantFrom('%', '%E0%A4%A', '%ED%A0%80', '%00', '%FF%FE', '%C0%80', '%25%30%30') },
  );

/** Header values fetch can send: Latin-1 without CR, LF or NUL. */
const headerValue = fc.oneof(
  nastyString.map((s) => s.replace(/[^\u0020-\u007e\u00a0-\u00ff\t]/g, '')),
  fc.constantFrom('Basic', 'Basic ', 'Basic %%%', 'Basic AAAA', 'Bearer', 'Bearer sas_' + 'A'.repeat(43), 'Basic ' + Buffer.from('\u0000:\u0000').toString('base64')),
);

const contentTypes = fc.constantFrom(
  'application/json',
  'application/json; charset=utf-8',
  'application/json; charset=latin1',
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/x-www-form-urlencoded; charset=utf-8',
  'application/json; charset="',
  'multipart/form-data; boundary=x',
);

/** A form body with the given parameters fuzzed, duplicates and strays now and then. */
function formBody(names: string[]): fc.Arbitrary<string> {
  const pair = fc.tuple(fc.oneof(fc.constantFrom(...names), nastyString), fc.oneof(nastyString, fc.constantFrom('client_credentials', 'access_token', 'candidates')));
  return fc.oneof(
    { weight: 5, arbitrary: fc.array(pair, { maxLength: 5 }).map((pairs) => pairs.map(([k, v]) => `${encodeURIComponent(wf(k))}=${encodeURIComponent(wf(v))}`).join('&')) },
    { weight: 1, arbitrary: fc.array(urlPart(nastyString), { maxLength: 4 }).map((p) => p.join('&')) },
    { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 60 }) },
  );
}

// ---------------------------------------------------------------- the suite

describe.each(testDatabases())('fuzzing every admin and OAuth route on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let session: string;
  let clientAuth: string;
  let accessToken: string;
  let fixtureTokenId: string;
  let fixtureSecretId: string;

  beforeAll(async () => {
    db = await createTestDb(kind);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-fuzz-'));
    const configFile = path.join(dir, 'config.json');
    // No waiting between failures: the fuzz run stays fast; blocking still happens.
    writeFileSync(configFile, JSON.stringify({ loginThrottle: { windowSeconds: 900, delayAfterFailures: 1000, delayMs: 0, blockAfterFailures: 3, perAddressFactor: 1 } }));
    const keysFile = path.join(dir, 'secret-scanning-keys.json');
    const pem = scanning.publicKey.export({ type: 'spki', format: 'pem' }).toString();
    writeFileSync(keysFile, JSON.stringify({ public_keys: [{ key_identifier: 'fuzz-key', key: pem, is_current: true }] }));
    server = await startServer(db, { TRUST_PROXY: 'true', CONFIG_FILE: configFile, LOG_LEVEL: 'info', SECRET_SCANNING_KEYS_FILE: keysFile });
    const admin = await makeAdmin(server.deps);
    session = (await signIn(server, admin.email, admin.password, '192.0.2.250')).token;
    const t = await makeToken(server.deps, admin);
    clientAuth = basic(t.client_id, t.client_secret);
    const patched = await makeToken(server.deps, admin);
    fixtureTokenId = patched.id;
    fixtureSecretId = ((await call(server, 'GET', `/tokens/${patched.id}`, { token: session })).body as { secrets: { id: string }[] }).secrets[0]!.id;
    const res = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: clientAuth },
      body: 'grant_type=client_credentials',
    });
    accessToken = ((await res.json()) as { access_token: string }).access_token;
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  const adminAuth = () =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant({ authorization: `Bearer ${session}` }) },
      { weight: 1, arbitrary: headerValue.map((v) => ({ authorization: v })) },
      { weight: 1, arbitrary: headerValue.map((v) => ({ cookie: `sat_session=${v}` })) },
    );
  const clientAuthHeader = () =>
    fc.oneof(
      { weight: 4, arbitrary: fc.constant({ authorization: clientAuth }) },
      { weight: 1, arbitrary: fc.constant({}) },
      { weight: 2, arbitrary: headerValue.map((v) => ({ authorization: v })) },
      {
        weight: 1,
        arbitrary: fc.tuple(nastyString, nastyString).map(([id, secret]) => ({ authorization: basic(wf(id), wf(secret)) })),
      },
    );
  const sometimes = <T>(a: fc.Arbitrary<T>, otherwise: T) => fc.oneof({ weight: 5, arbitrary: fc.constant(otherwise) }, { weight: 1, arbitrary: a });
  const forwardedFor = fc.oneof(fc.constantFrom('192.0.2.1', '192.0.2.2', '2001:db8::1'), headerValue);

  async function send(req: FuzzRequest): Promise<void> {
    const before = server.logLines.length;
    const res = await fetch(`${server.url}${req.path}`, {
      method: req.method,
      headers: req.headers,
      ...(req.body !== undefined ? { body: req.body } : {}),
    });
    const text = await res.text();
    // Background jobs (mail delivery of the fixtures' tokens) log on their own; everything else counts.
    const lines = server.logLines.slice(before).filter((l) => !/"msg":"(mail |job )/.test(l));
    const what = `${req.method} ${req.path.slice(0, 300)} ${JSON.stringify(req.headers).slice(0, 300)} ${JSON.stringify(req.body?.slice(0, 300))}`;
    if (res.status >= 500) throw new Error(`${res.status} for ${what}: ${text.slice(0, 300)}\n${lines.join('\n').slice(0, 2000)}`);
    if (lines.length > 1) throw new Error(`${lines.length} log lines for ${what}:\n${lines.join('\n').slice(0, 2000)}`);
    for (const line of lines) {
      if (line.length > 600 || /"stack"|\bat .*\.js:\d+|\b(select|insert|update|delete) .* (from|into|set)\b/i.test(line)) {
        throw new Error(`log line too telling for ${what}: ${line.slice(0, 2000)}`);
      }
    }
  }

  const run = (arb: fc.Arbitrary<FuzzRequest>) =>
    fc.assert(
      fc.asyncProperty(arb, async (req) => send(req)),
      { seed: SEED, numRuns: RUNS, endOnFailure: true },
    );

  it('POST /admin/api/login', () =>
    run(
      fc
        .record({
          body: jsonObject({ email: nastyString, password: nastyString }),
          type: sometimes(contentTypes, 'application/json'),
          ip: forwardedFor,
        })
        .map(({ body, type, ip }) => ({ method: 'POST', path: '/admin/api/login', headers: { 'content-type': type, 'x-forwarded-for': ip }, body })),
    ));

  it('POST /admin/api/tokens', () =>
    run(
      fc
        .record({
          body: jsonObject({ name: nastyString, expires_at: fc.oneof(nastyString, wildTime), services: fc.array(nastyString, { maxLength: 3 }) }),
          type: sometimes(contentTypes, 'application/json'),
          auth: adminAuth(),
        })
        .map(({ body, type, auth }) => ({ method: 'POST', path: '/admin/api/tokens', headers: { 'content-type': type, ...auth }, body })),
    ));

  it('GET /admin/api/tokens and /admin/api/audit with any query', () =>
    run(
      fc
        .record({
          which: fc.constantFrom('/admin/api/tokens', '/admin/api/audit'),
          params: fc.array(
            fc.tuple(
              fc.oneof(fc.constantFrom('q', 'status', 'limit', 'cursor'), nastyString.map((s) => encodeURIComponent(wf(s)))),
              fc.oneof(urlPart(nastyString), urlPart(cursor), fc.constantFrom('active', 'expired', '1', '100', '101', '0', '99999999999999999999', '1e3', '-1')),
            ),
            { maxLength: 4 },
          ),
          auth: adminAuth(),
        })
        .map(({ which, params, auth }) => ({ method: 'GET', path: `${which}?${params.map(([k, v]) => `${k}=${v}`).join('&')}`, headers: auth })),
    ));

  it('GET /admin/api/tokens/:id, POST revoke, logout, me and services with any id and body', () =>
    run(
      fc
        .record({
          id: urlPart(uuidish),
          action: fc.constantFrom('get', 'revoke', 'logout-bad', 'me', 'services', 'unknown'),
          body: fc.oneof(fc.constant(undefined), jsonObject({})),
          auth: adminAuth(),
        })
        .map(({ id, action, body, auth }): FuzzRequest => {
          const headers = { 'content-type': 'application/json', ...auth };
          switch (action) {
            case 'get':
              return { method: 'GET', path: `/admin/api/tokens/${id}`, headers };
            case 'revoke':
              return { method: 'POST', path: `/admin/api/tokens/${id}/revoke`, headers, ...(body !== undefined ? { body } : {}) };
            case 'logout-bad': // a logout with a body that is never an empty object keeps the session for the next cases
              return { method: 'POST', path: '/admin/api/logout', headers: { ...headers, authorization: `Bearer ${session}` }, body: body && body !== '{}' ? body : '{"x":1}' };
            case 'me':
              return { method: 'GET', path: '/admin/api/me', headers };
            case 'services':
              return { method: 'GET', path: '/admin/api/services', headers };
            default:
              return { method: 'PATCH', path: `/admin/api/${id}`, headers, ...(body !== undefined ? { body } : {}) };
          }
        }),
    ));

  // SPEC Part 2 "Administrators": the invitation, reset and own-account routes. Nothing here can end the fixture's
  // session: no generated id or current password is real, and revoke-others leaves the caller's own session.
  it('the administrators routes: /admins, /invitations/accept, /password-reset, /me/password, /me/sessions', () =>
    run(
      fc
        .record({
          action: fc.constantFrom('invite', 'remove', 'accept', 'reset', 'confirm', 'password', 'sessions', 'revoke', 'revoke-others'),
          id: urlPart(uuidish),
          email: jsonObject({ email: nastyString }),
          accept: jsonObject({ token: nastyString, password: nastyString }),
          confirm: jsonObject({ token: nastyString, new_password: nastyString }),
          password: jsonObject({ current_password: nastyString, new_password: nastyString }),
          type: sometimes(contentTypes, 'application/json'),
          auth: adminAuth(),
          ip: forwardedFor,
        })
        .map(({ action, id, email, accept, confirm, password, type, auth, ip }): FuzzRequest => {
          const headers = { 'content-type': type, 'x-forwarded-for': ip, ...auth };
          switch (action) {
            case 'invite':
              return { method: 'POST', path: '/admin/api/admins', headers, body: email };
            case 'remove':
              return { method: 'DELETE', path: `/admin/api/admins/${id}`, headers };
            case 'accept':
              return { method: 'POST', path: '/admin/api/invitations/accept', headers, body: accept };
            case 'reset':
              return { method: 'POST', path: '/admin/api/password-reset', headers, body: email };
            case 'confirm':
              return { method: 'POST', path: '/admin/api/password-reset/confirm', headers, body: confirm };
            case 'password':
              return { method: 'POST', path: '/admin/api/me/password', headers, body: password };
            case 'sessions':
              return { method: 'GET', path: '/admin/api/me/sessions', headers };
            case 'revoke':
              return { method: 'POST', path: `/admin/api/me/sessions/${id}/revoke`, headers };
            default:
              return { method: 'POST', path: '/admin/api/me/sessions/revoke-others', headers, body: password };
          }
        }),
    ));

  it('POST /token', () =>
    run(
      fc
        .record({
          body: formBody(['grant_type', 'scope', 'resource', 'client_id', 'client_secret', 'audience']),
          type: sometimes(contentTypes, 'application/x-www-form-urlencoded'),
          auth: clientAuthHeader(),
        })
        .map(({ body, type, auth }) => ({ method: 'POST', path: '/token', headers: { 'content-type': type, ...auth }, body })),
    ));

  it('POST /token/introspection and /token/revocation', () =>
    run(
      fc
        .record({
          which: fc.constantFrom('/token/introspection', '/token/revocation'),
          body: fc.oneof(
            formBody(['token', 'token_type_hint', 'client_id', 'client_secret']),
            nastyString.map((t) => `token=${encodeURIComponent(wf(t))}`),
            fc.constant(`token=${'x'}`).map(() => `token=${accessToken.slice(0, -3)}abc`),
          ),
          type: sometimes(contentTypes, 'application/x-www-form-urlencoded'),
          auth: clientAuthHeader(),
        })
        .map(({ which, body, type, auth }) => ({ method: 'POST', path: which, headers: { 'content-type': type, ...auth }, body })),
    ));

  it('discovery, JWKS and unknown paths with any method', () =>
    run(
      fc
        .record({
          p: fc.oneof(
            fc.constantFrom('/jwks', '/.well-known/openid-configuration', '/.well-known/oauth-authorization-server', '/token', '/admin', '/healthz', '/readyz'),
            urlPart(nastyString).map((s) => `/${s}`),
            urlPart(nastyString).map((s) => `/admin/api/${s}`),
          ),
          method: fc.constantFrom('GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'PATCH'),
          query: urlPart(nastyString),
        })
        .map(({ p, method, query }) => ({ method, path: `${p}?${query}`, headers: {} })),
    ));

  // Gaps the session-5 fuzzing of a running server found: the token's PATCH, rotate and retire, the policy, and the
  // two public JSON endpoints. The token ids are real (fixtures of this organisation) or fuzzed.
  it('PATCH /admin/api/tokens/:id, rotate, retire and PUT /admin/api/policy', () =>
    run(
      fc
        .record({
          action: fc.constantFrom('patch', 'rotate', 'retire', 'policy'),
          real: fc.boolean(),
          id: urlPart(uuidish),
          patch: jsonObject({
            name: nastyString,
            services: fc.array(nastyString, { maxLength: 3 }),
            allowed_ips: fc.array(fc.oneof(nastyString, fc.constantFrom('192.0.2.0/24', '2001:db8::/129', '1.2.3.4/33', '::ffff:1.2.3.4')), { maxLength: 3 }),
            max_tokens_per_hour: jsonValue,
            require_dpop: jsonValue,
            jwks: jsonValue,
          }),
          rotate: jsonObject({ grace_period_hours: jsonValue }),
          policy: jsonObject({
            max_lifetime_days: jsonValue,
            allowed_services: fc.array(nastyString, { maxLength: 3 }),
            revoke_dormant_after_days: jsonValue,
            default_max_tokens_per_hour: jsonValue,
          }),
          type: sometimes(contentTypes, 'application/json'),
          auth: adminAuth(),
        })
        .map(({ action, real, id, patch, rotate, policy, type, auth }): FuzzRequest => {
          const headers = { 'content-type': type, ...auth };
          const tokenId = real ? fixtureTokenId : id;
          switch (action) {
            case 'patch':
              return { method: 'PATCH', path: `/admin/api/tokens/${tokenId}`, headers, body: patch };
            case 'rotate':
              return { method: 'POST', path: `/admin/api/tokens/${tokenId}/rotate`, headers, body: rotate };
            case 'retire':
              return { method: 'POST', path: `/admin/api/tokens/${tokenId}/secrets/${real ? id : fixtureSecretId}/retire`, headers };
            default:
              return { method: 'PUT', path: '/admin/api/policy', headers, body: policy };
          }
        }),
    ));

  it('POST /secret-scanning/verify (signed or not) and /credentials/revoke', () =>
    run(
      fc
        .record({
          which: fc.constantFrom('verify', 'revoke'),
          alerts: fc.oneof(
            jsonValue.map((v) => JSON.stringify(v) ?? 'null'),
            fc.array(fc.record({ token: nastyString, type: nastyString, url: fc.option(nastyString), source: fc.option(nastyString) }, { requiredKeys: [] }), { maxLength: 3 }).map((a) => JSON.stringify(a)),
            fc.string({ unit: 'binary', maxLength: 60 }),
          ),
          signing: fc.constantFrom('good', 'none', 'bad', 'unknown key'),
          keyId: headerValue,
          revoke: jsonObject({ credentials: fc.array(nastyString, { maxLength: 3 }) }),
          type: sometimes(contentTypes, 'application/json'),
          ip: fc.oneof(fc.ipV4(), fc.ipV6(), headerValue),
        })
        .map(({ which, alerts, signing, keyId, revoke, type, ip }): FuzzRequest => {
          if (which === 'revoke') return { method: 'POST', path: '/credentials/revoke', headers: { 'content-type': type, 'x-forwarded-for': ip }, body: revoke };
          const signature = sign('sha256', Buffer.from(alerts), scanning.privateKey).toString('base64');
          const signed: Record<string, string> =
            signing === 'good'
              ? { 'github-public-key-identifier': 'fuzz-key', 'github-public-key-signature': signature }
              : signing === 'bad'
                ? { 'github-public-key-identifier': 'fuzz-key', 'github-public-key-signature': keyId || 'AAAA' }
                : signing === 'unknown key'
                  ? { 'github-public-key-identifier': keyId || 'x', 'github-public-key-signature': signature }
                  : {};
          return { method: 'POST', path: '/secret-scanning/verify', headers: { 'content-type': type, 'x-forwarded-for': ip, ...signed }, body: alerts };
        }),
    ));

  it('answers the original reports with 400, not 500', async () => {
    // A page cursor holding an impossible date, and a NUL byte in the sign-in email.
    const bad = encodeCursor({ at: '2026-02-30T00:00:00.000000Z', id: '00000000-0000-4000-8000-000000000000' });
    for (const p of ['/tokens', '/audit']) {
      const res = await call(server, 'GET', `${p}?cursor=${bad}`, { token: session });
      expect(res.status).toBe(400);
      expect(res.body.error).toBe('validation_failed');
    }
    const before = server.logLines.length;
    const res = await call(server, 'POST', '/login', { json: { email: 'a\u0000@example.com', password: 'x' }, headers: { 'x-forwarded-for': '192.0.2.99' } });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('validation_failed');
    expect(server.logLines.length - before).toBeLessThanOrEqual(1);
    const q = await call(server, 'GET', '/tokens?q=%00', { token: session });
    expect(q.status).toBe(400);
  });
});
