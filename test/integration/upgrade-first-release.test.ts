// An installation of the first release (migrations 0001-0003: signing keys in clear, secrets as SHA-256, admin
// passwords as scrypt$N$r$p$salt$hash) upgraded by this version's start: nothing is lost (docs/operations.md
// "Upgrades"). The old rows are written in the formats of that release, computed here with node:crypto, so a change
// to how secrets, passwords or keys are read that would strand existing installations fails this test. Both
// databases.
import { createHash, randomBytes, randomUUID, scrypt } from 'node:crypto';
import { createLocalJWKSet, decodeProtectedHeader, exportJWK, generateKeyPair, jwtVerify, type JSONWebKeySet } from 'jose';
import { migrations } from '../../migrations/index.js';
import { ensureFirstAdmin } from '../../src/accounts/index.js';
import { ConfigError, loadConfig } from '../../src/config/index.js';
import { openDb } from '../../src/db/index.js';
import { createLogger } from '../../src/log.js';
import { generateClientId, generateClientSecret } from '../../src/tokens/credentials.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

/** The first release's password hash: scrypt N=2^15, r=8, p=1, 32 bytes, NFC, `scrypt$N$r$p$salt$hash`. */
function firstReleasePasswordHash(password: string): Promise<string> {
  const salt = randomBytes(16);
  return new Promise((resolve, reject) =>
    scrypt(password.normalize('NFC'), salt, 32, { N: 2 ** 15, r: 8, p: 1, maxmem: 64 * 1024 * 1024 }, (err, key) =>
      err ? reject(err) : resolve(['scrypt', 2 ** 15, 8, 1, salt.toString('base64url'), key.toString('base64url')].join('$')),
    ),
  );
}

/** A fresh database (initdb on embedded) and every migration: up to ~15 s on 2 cores shared with other test files. */
const MIGRATING_HOOK_MS = 60_000;

describe.each(testDatabases())('upgrade from the first release on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  const org = randomUUID();
  const admin = { id: randomUUID(), email: 'old-admin@example.com', password: 'first-release-password' };
  const token = { id: randomUUID(), clientId: generateClientId(), secret: generateClientSecret() };
  const kid = randomUUID();
  const usedAt = new Date(Date.now() - 3 * 86_400_000);
  const eventId = randomUUID();

  beforeAll(async () => {
    db = await createTestDb(kind, { empty: true });
    const database = await openDb(loadConfig({ ...db.env }), createLogger('error', {}, () => undefined));
    try {
      const knex = database.knex;
      // The first release's schema, recorded as applied the way knex records it.
      await knex.schema.createTable('knex_migrations', (t) => {
        t.increments('id');
        t.string('name');
        t.integer('batch');
        t.timestamp('migration_time', { useTz: true });
      });
      for (const m of migrations.filter((x) => x.name <= '0003')) {
        await m.up(knex);
        await knex('knex_migrations').insert({ name: m.name, batch: 1, migration_time: new Date() });
      }
      await knex('organisations').insert({ id: org, name: 'Old Org' });
      const passwordHash = await firstReleasePasswordHash(admin.password);
      await knex('admins').insert({ id: admin.id, organisation_id: org, email: admin.email, password_hash: passwordHash });
      await knex('tokens').insert({
        id: token.id,
        organisation_id: org,
        name: 'Old integration',
        client_id: token.clientId,
        secret_hash: createHash('sha256').update(token.secret, 'utf8').digest('base64url'),
        services: ['employees', 'jobs'],
        expires_at: new Date(Date.now() + 60 * 86_400_000),
        created_by: admin.id,
        last_used_at: usedAt,
      });
      const { privateKey } = await generateKeyPair('ES256', { extractable: true });
      const jwk = { ...(await exportJWK(privateKey)), kid, alg: 'ES256', use: 'sig' };
      // The first key signed "since forever" (not_before at the epoch), stored in clear.
      await knex('signing_keys').insert({ kid, alg: 'ES256', private_jwk: JSON.stringify(jwk), not_before: new Date(0) });
      await knex('audit_events').insert({
        id: eventId,
        organisation_id: org,
        actor_id: admin.id,
        actor_email: admin.email,
        action: 'token.generated',
        token_id: token.id,
        token_name: 'Old integration',
        client_id: token.clientId,
      });
    } finally {
      await database.close();
    }
    // The old deployment's environment, kept: its first administrator's password had the first release's 8-character
    // minimum. It is used only when there is no administrator, so it stops nothing now.
    const oldEnvironment = { ADMIN_EMAIL: admin.email, ADMIN_PASSWORD: 'oldpw1234' };
    server = await startServer(db, { KEY_ENCRYPTION_KEY: randomBytes(32).toString('base64'), ...oldEnvironment }, { jobs: 'manual' });
  }, MIGRATING_HOOK_MS);
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('the old secret gets an access token signed by the old key, which /jwks still publishes', async () => {
    const res = await fetch(`${server!.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(token.clientId, token.secret) },
      body: 'grant_type=client_credentials',
    });
    expect(res.status).toBe(200);
    const { access_token: accessToken, scope } = (await res.json()) as { access_token: string; scope: string };
    expect(scope).toBe('employees jobs');
    expect(decodeProtectedHeader(accessToken).kid).toBe(kid);
    const jwks = (await (await fetch(`${server!.url}/jwks`)).json()) as JSONWebKeySet;
    const { payload } = await jwtVerify(accessToken, createLocalJWKSet(jwks), { issuer: server!.issuer });
    expect(payload.client_id).toBe(token.clientId);
  });

  it('the old key is now stored encrypted', async () => {
    const rows = (await server!.deps.db.knex('signing_keys').select('kid', 'private_jwk', 'sealed_jwk')) as Array<Record<string, unknown>>;
    expect(rows).toEqual([{ kid, private_jwk: null, sealed_jwk: expect.any(String) }]);
  });

  it('the administrator signs in with the old password and finds the token and the audit log', async () => {
    const login = await fetch(`${server!.url}/admin/api/login`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ email: admin.email, password: admin.password }),
    });
    expect(login.status).toBe(200);
    const { token: session } = (await login.json()) as { token: string };
    const auth = { authorization: `Bearer ${session}` };
    const detail = await fetch(`${server!.url}/admin/api/tokens/${token.id}`, { headers: auth });
    expect(detail.status).toBe(200);
    expect(await detail.json()).toMatchObject({
      client_id: token.clientId,
      name: 'Old integration',
      services: ['employees', 'jobs'],
      status: 'active',
      created_by: { id: admin.id, email: admin.email },
    });
    const audit = (await (await fetch(`${server!.url}/admin/api/audit?limit=100`, { headers: auth })).json()) as {
      items: Array<{ id: string; action: string }>;
    };
    expect(audit.items).toContainEqual(expect.objectContaining({ id: eventId, action: 'token.generated' }));
  });

  it('a first start with no administrator refuses an ADMIN_PASSWORD shorter than the new-password rule, naming it', async () => {
    const fresh = await createTestDb(kind);
    try {
      const config = loadConfig({ ...fresh.env, ADMIN_EMAIL: 'new@example.com', ADMIN_PASSWORD: 'oldpw1234' });
      const database = await openDb(config, createLogger('error', {}, () => undefined));
      try {
        const deps = { config, db: database };
        await expect(ensureFirstAdmin(deps)).rejects.toThrow(ConfigError);
        await expect(ensureFirstAdmin(deps)).rejects.toThrow(/ADMIN_PASSWORD: must be at least 12 characters \(it becomes the first administrator's password\)/);
        expect(Number((await database.knex('admins').count({ n: '*' }).first())!.n)).toBe(0);
      } finally {
        await database.close();
      }
    } finally {
      await fresh.drop();
    }
  });
});
