// SPEC "Admin API" (name unique in the organisation, case-insensitive, among tokens not revoked; `q`) and Part 2
// "Names are text that displays as written": names that display alike (NFC/NFD, full-width letters) or differ only
// in case under full case folding (ß/SS, final sigma) are one name, for uniqueness and for search (tokens.name_key,
// migration 0120). Both databases.
import { randomUUID } from 'node:crypto';
import { migrations } from '../../migrations/index.js';
import { loadConfig } from '../../src/config/index.js';
import { openDb } from '../../src/db/index.js';
import { createLogger } from '../../src/log.js';
import { generateClientId } from '../../src/tokens/credentials.js';
import { generateToken, generateTokenBody, listTokens, patchToken } from '../../src/tokens/index.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const NFC = 'Caf\u00e9 export';
const NFD = 'Cafe\u0301 export';

/** A fresh database (initdb on embedded), every migration before 0120, 1,207 rows, then the rest: up to ~20 s on 2 busy cores. */
const MIGRATING_HOOK_MS = 60_000;

describe.each(testDatabases())('token names by key on %s', (kind) => {
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

  /** A new organisation with a signed-in administrator. */
  async function session() {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const api = (method: string, path: string, json?: unknown) => call(server, method, path, { token, ...(json === undefined ? {} : { json }) });
    const generate = async (name: string) => {
      const res = await api('POST', '/tokens', tokenBody({ name }));
      expect(res.status).toBe(201);
      return res.body as { id: string; name: string };
    };
    const names = async (q: string) =>
      ((await api('GET', `/tokens?q=${encodeURIComponent(q)}`)).body.items as Array<{ name: string }>).map((t) => t.name).sort();
    return { admin, api, generate, names };
  }

  it.each([
    ['the same name in NFC and NFD', NFC, NFD],
    ['the same name in NFD and NFC', NFD, NFC],
    ['ß and SS', 'Straße', 'STRASSE'],
    ['SS and capital sharp s ẞ', 'STRASSE', 'STRA\u1e9eE'],
    ['full-width and ASCII letters', '\uff28\uff32', 'HR'],
    ['final sigma and capital sigma', 'σας', 'ΣΑΣ'],
  ])('refuses %s as one name: 409 name_taken', async (_label, first, second) => {
    const { api, generate } = await session();
    await generate(first);
    const dup = await api('POST', '/tokens', tokenBody({ name: second }));
    expect(dup.status).toBe(409);
    expect(dup.body).toEqual({ error: 'name_taken', message: expect.any(String), details: [{ path: 'name', message: expect.any(String) }] });
    expect(dup.body.message).toContain(`"${first}"`); // names the token that holds the name, as it is spelt
    expect(dup.body.details[0].message).toMatch(/^already used/); // the field says so first, whatever the spelling
    expect((await api('GET', '/tokens')).body.items.map((t: { name: string }) => t.name)).toEqual([first]);
  });

  it('lets exactly one of several spellings of one name through when they arrive together', async () => {
    const { api } = await session();
    const spellings = [NFC, NFD, NFC.toUpperCase(), NFD.toLowerCase(), 'CAFE\u0301 EXPORT', 'caf\u00e9 export'];
    const results = await Promise.all(spellings.map((name) => api('POST', '/tokens', tokenBody({ name }))));
    expect(results.map((r) => r.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    expect(results.filter((r) => r.status === 409).every((r) => r.body.error === 'name_taken')).toBe(true);
  });

  it('refuses a rename (PATCH) into another token’s key with 409, leaving the token as it was', async () => {
    const { api, generate } = await session();
    await generate('Straße');
    const other = await generate('Other');
    const before = (await api('GET', `/tokens/${other.id}`)).body;
    for (const name of ['STRASSE', 'strasse', 'STRA\u1e9eE']) {
      const res = await api('PATCH', `/tokens/${other.id}`, { name, services: ['jobs'] });
      expect([res.status, res.body.error]).toEqual([409, 'name_taken']);
    }
    expect((await api('GET', `/tokens/${other.id}`)).body).toEqual(before);
    const events = (await api('GET', `/audit?token_id=${other.id}`)).body.items.map((e: { action: string }) => e.action);
    expect(events).toEqual(['token.generated']);
  });

  it('lets a token be renamed to another spelling of its own name', async () => {
    const { api, generate, names } = await session();
    const t = await generate(NFD);
    const nfc = await api('PATCH', `/tokens/${t.id}`, { name: NFC });
    expect([nfc.status, nfc.body.name]).toEqual([200, NFC]);
    const upper = await api('PATCH', `/tokens/${t.id}`, { name: 'CAF\u00c9 EXPORT' });
    expect([upper.status, upper.body.name]).toEqual([200, 'CAF\u00c9 EXPORT']);
    // Its new spelling is still found by any other, and still taken for other tokens.
    expect(await names(NFD.toLowerCase())).toEqual(['CAF\u00c9 EXPORT']);
    expect((await api('POST', '/tokens', tokenBody({ name: NFD }))).status).toBe(409);
  });

  it('frees a revoked token’s name in every spelling', async () => {
    const { api, generate } = await session();
    const t = await generate(NFD);
    expect((await api('POST', '/tokens', tokenBody({ name: 'CAF\u00c9 EXPORT' }))).status).toBe(409);
    expect((await api('POST', `/tokens/${t.id}/revoke`)).status).toBe(200);
    const again = await api('POST', '/tokens', tokenBody({ name: 'CAF\u00c9 EXPORT' }));
    expect([again.status, again.body.name]).toEqual([201, 'CAF\u00c9 EXPORT']);
  });

  it('finds names by key in q: NFC finds NFD, STRASSE finds Straße, any case; % and _ stay literal', async () => {
    const { generate, names } = await session();
    await generate(NFD);
    await generate('Straße');
    await generate('\uff28\uff32 feed');
    await generate('ΣΑΣ_1');
    await generate('plain');
    expect(await names('caf\u00e9')).toEqual([NFD]);
    expect(await names('CAFE\u0301')).toEqual([NFD]);
    expect(await names('STRASSE')).toEqual(['Straße']);
    // (Not `ss`: a random client ID may hold it, and q matches client IDs too. `ẞ` folds to ss like ß.)
    expect(await names('\u1e9e')).toEqual(['Straße']);
    expect(await names('hr f')).toEqual(['\uff28\uff32 feed']);
    expect(await names('ς_')).toEqual(['ΣΑΣ_1']);
    expect(await names('σ%')).toEqual([]);
    expect(await names('cafe')).toEqual([]); // é is not e
  });

  it('stores the key beside the name and never shows it in an answer', async () => {
    const { api } = await session();
    const made = await api('POST', '/tokens', tokenBody({ name: 'Straße' }));
    expect(await server.deps.db.knex('tokens').where({ id: made.body.id }).first()).toMatchObject({ name: 'Straße', name_key: 'strasse' });
    const answers = [
      made,
      await api('GET', `/tokens/${made.body.id}`),
      await api('GET', '/tokens?q=strasse'),
      await api('PATCH', `/tokens/${made.body.id}`, { name: 'STRASSE' }),
      await api('POST', `/tokens/${made.body.id}/revoke`),
    ];
    for (const res of answers) {
      expect(res.status).toBeLessThan(300);
      expect(res.text).not.toContain('name_key');
      expect(res.text).not.toContain('strasse');
    }
  });
});

describe.each(testDatabases())('migration 0120 on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  const org = randomUUID();
  const crowd = randomUUID();
  const admin = { id: randomUUID(), email: `key-${randomUUID().slice(0, 8)}@example.com` };
  const nfc = { id: randomUUID(), name: NFC };
  const nfd = { id: randomUUID(), name: NFD };
  const sharp = { id: randomUUID(), name: 'Straße' };
  const ss = { id: randomUUID(), name: 'STRASSE' };
  const CROWD = 1_203; // more rows than one backfill batch holds
  /** A token row as the version before 0120 wrote it (no name_key). */
  const row = (id: string, organisationId: string, name: string) => ({
    id,
    organisation_id: organisationId,
    name,
    client_id: generateClientId(),
    secret_hash: randomUUID(),
    services: ['jobs'],
    expires_at: new Date(Date.now() + 60 * 86_400_000),
    created_by: null,
  });

  beforeAll(async () => {
    db = await createTestDb(kind, { empty: true });
    const database = await openDb(loadConfig({ ...db.env }), createLogger('error', {}, () => undefined));
    try {
      const knex = database.knex;
      // The schema before 0120, recorded as applied the way knex records it.
      await knex.schema.createTable('knex_migrations', (t) => {
        t.increments('id');
        t.string('name');
        t.integer('batch');
        t.timestamp('migration_time', { useTz: true });
      });
      for (const m of migrations.filter((x) => x.name < '0120')) {
        await m.up(knex);
        await knex('knex_migrations').insert({ name: m.name, batch: 1, migration_time: new Date() });
      }
      await knex('organisations').insert([
        { id: org, name: `Old Org ${org}` },
        { id: crowd, name: `Crowded Org ${crowd}` },
      ]);
      await knex('admins').insert({ id: admin.id, organisation_id: org, email: admin.email, email_key: admin.email, password_hash: 'x' });
      // Two pairs the old unique index (lower(name)) let through: one key each.
      await knex('tokens').insert([nfc, nfd, sharp, ss].map((t) => row(t.id, org, t.name)));
      await knex('tokens').insert(Array.from({ length: CROWD }, (_, i) => row(randomUUID(), crowd, `Bulk \uff34oken ${i}`)));
    } finally {
      await database.close();
    }
    server = await startServer(db, {}, { jobs: 'manual' });
  }, MIGRATING_HOOK_MS);
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  it('keys every existing row, keeps both names of a shared key as they were, and refuses a new clash', async () => {
    const knex = server!.deps.db.knex;
    const rows = await knex('tokens').where({ organisation_id: org }).select('id', 'name', 'name_key');
    const byId = (a: { id: string }, b: { id: string }) => (a.id < b.id ? -1 : 1);
    expect(rows.sort(byId)).toEqual(
      [
        { id: nfc.id, name: NFC, name_key: 'caf\u00e9 export' },
        { id: nfd.id, name: NFD, name_key: 'caf\u00e9 export' },
        { id: sharp.id, name: 'Straße', name_key: 'strasse' },
        { id: ss.id, name: 'STRASSE', name_key: 'strasse' },
      ].sort(byId),
    );
    const crowded = (await knex('tokens').where({ organisation_id: crowd }).select('name', 'name_key')) as Array<{ name: string; name_key: string }>;
    expect(crowded).toHaveLength(CROWD);
    expect(crowded.every((r) => r.name_key === r.name.normalize('NFKC').toLowerCase())).toBe(true);

    // Through the service as an administrator of the old organisation: a third spelling is refused, a search finds both.
    const actor = { id: admin.id, email: admin.email, organisation_id: org };
    const body = generateTokenBody.parse(tokenBody({ name: 'CAF\u00c9 EXPORT' }));
    await expect(generateToken(server!.deps, actor, body)).rejects.toMatchObject({ code: 'name_taken' });
    expect((await listTokens(server!.deps, actor, { q: 'caf\u00e9' })).items.map((t) => t.id).sort()).toEqual([nfc.id, nfd.id].sort());
    expect((await listTokens(server!.deps, actor, { q: 'strasse' })).items).toHaveLength(2);
  });

  it('keeps working beside the previous version during a rolling upgrade: unkeyed rows and renames that leave the key', async () => {
    const knex = server!.deps.db.knex;
    const actor = { id: admin.id, email: admin.email, organisation_id: org };
    // The previous version inserts without a key, and renames by name alone (it knows no name_key).
    const old = randomUUID();
    await knex('tokens').insert(row(old, org, 'Payroll \uff34ool'));
    expect(await knex('tokens').where({ id: old }).first()).toMatchObject({ name_key: null });
    await knex('tokens').where({ id: ss.id }).update({ name: 'Billing' });
    // The trigger cleared the key the rename made stale: the token is compared by its new name, never its old one.
    expect(await knex('tokens').where({ id: ss.id }).first()).toMatchObject({ name: 'Billing', name_key: null });
    const generate = (name: string) => generateToken(server!.deps, actor, generateTokenBody.parse(tokenBody({ name })));
    await expect(generate('PAYROLL TOOL')).rejects.toMatchObject({ code: 'name_taken' });
    await expect(generate('billing')).rejects.toMatchObject({ code: 'name_taken' });
    expect((await listTokens(server!.deps, actor, { q: 'payroll' })).items.map((t) => t.id)).toEqual([old]);
    expect((await listTokens(server!.deps, actor, { q: 'BILL' })).items.map((t) => t.id)).toEqual([ss.id]);
    // This version keys what it writes, and a rename by it keys the name again.
    const made = await generate('Fresh \uff2eame');
    expect(await knex('tokens').where({ id: made.id }).first()).toMatchObject({ name_key: 'fresh name' });
    await patchToken(server!.deps, actor, ss.id, { name: 'Billing 2' });
    expect(await knex('tokens').where({ id: ss.id }).first()).toMatchObject({ name: 'Billing 2', name_key: 'billing 2' });
  });

  it('goes down and up again', async () => {
    const knex = server!.deps.db.knex;
    const m0120 = migrations.find((m) => m.name === '0120_token_name_key')!;
    await m0120.down(knex);
    expect(await knex.schema.hasColumn('tokens', 'name_key')).toBe(false);
    await m0120.up(knex);
    const unkeyed = (await knex('tokens').whereNull('name_key').count({ n: '*' })) as Array<{ n: string | number }>;
    expect(Number(unkeyed[0]!.n)).toBe(0);
    expect(await knex('tokens').where({ id: sharp.id }).first()).toMatchObject({ name: 'Straße', name_key: 'strasse' });
  });
});
