// SPEC Part 2 "OAuth conformance", resource servers of the platform: `sat resource-server add|list|revoke`, and
// credentials that may introspect every organisation's tokens and do nothing else.
import { runSat, runSatInProcess } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describe.each(testDatabases())('resource servers on %s', (kind) => {
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

  const post = (path: string, body: string, authorization?: string) =>
    fetch(`${server.url}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...(authorization ? { authorization } : {}) },
      body,
    });

  async function accessTokenOfNewOrganisation(): Promise<{ jwt: string; org: string }> {
    const admin = await makeAdmin(server.deps);
    const t = await makeToken(server.deps, admin, { services: ['jobs'] });
    const res = await post('/token', 'grant_type=client_credentials', basic(t.client_id, t.client_secret));
    expect(res.status).toBe(200);
    return { jwt: ((await res.json()) as { access_token: string }).access_token, org: admin.organisation_id };
  }

  it('adds, lists and revokes credentials that introspect every organisation and nothing else', async () => {
    // The first command runs as a real process, the others in this process (runSatInProcess): cheaper, same code.
    const added = await runSat(['resource-server', 'add', '--name', 'Candidate API'], db.env);
    expect(added.stderr).not.toMatch(/sat: /);
    expect(added.code).toBe(0);
    const clientId = /client ID: +(\S+)/.exec(added.stdout)?.[1] ?? '';
    const secret = /client secret: +(\S+)/.exec(added.stdout)?.[1] ?? '';
    const id = /\(([0-9a-f-]{36})\)/.exec(added.stdout)?.[1] ?? '';
    expect(clientId).toMatch(/^sat_[0-9A-Za-z]{22}$/);
    expect(secret).toMatch(/^sats_[0-9A-Za-z]{49}$/);
    const rows = await server.deps.db.knex('resource_servers').select('*');
    expect(JSON.stringify(rows)).not.toContain(secret);

    const list = await runSatInProcess(['resource-server', 'list'], db.env);
    expect(list.code).toBe(0);
    expect(list.stdout).toContain(clientId);
    expect(list.stdout).toContain('"Candidate API"');
    expect(list.stdout).not.toContain(secret);

    const dup = await runSatInProcess(['resource-server', 'add', '--name', 'candidate api'], db.env);
    expect(dup.code).toBe(1);
    const usage = await runSatInProcess(['resource-server', 'add'], db.env);
    expect(usage.code).toBe(2);
    // Names display as written (SPEC Part 2): no control, escape or bidi characters reach a terminal.
    for (const name of ['a\nb\u001b[31mred', 'rs\u202e2', '\u200b', `e${'\u0301'.repeat(50)}`, 'x'.repeat(101)]) {
      const bad = await runSatInProcess(['resource-server', 'add', '--name', name], db.env);
      expect({ name, code: bad.code }).toEqual({ name, code: 1 });
      expect(bad.stdout).toBe('');
    }
    expect((await server.deps.db.knex('resource_servers').count({ n: '*' }))[0]!.n).toBe(1);
    // A look-alike of an existing name is that name (full-width letter), as for token names.
    const alike = await runSatInProcess(['resource-server', 'add', '--name', 'Ｃandidate API'], db.env);
    expect({ code: alike.code, stderr: alike.stderr }).toEqual({ code: 1, stderr: expect.stringContaining('A resource server named "Candidate API" exists') });

    // Introspection of two organisations' tokens, over Basic and in the form.
    const auth = basic(clientId, secret);
    const [a, b] = [await accessTokenOfNewOrganisation(), await accessTokenOfNewOrganisation()];
    for (const { jwt, org } of [a, b]) {
      const viaBasic = await post('/token/introspection', `token=${jwt}`, auth);
      expect(viaBasic.status).toBe(200);
      expect(await viaBasic.json()).toMatchObject({ active: true, org_id: org, scope: 'jobs' });
      const viaForm = await post('/token/introspection', `token=${jwt}&client_id=${clientId}&client_secret=${secret}`);
      expect(await viaForm.json()).toMatchObject({ active: true, org_id: org });
    }
    expect(await (await post('/token/introspection', 'token=not-a-jwt', auth)).json()).toEqual({ active: false });

    // Nothing else: no grant at /token, no revocation.
    for (const body of ['grant_type=client_credentials', 'grant_type=client_credentials&scope=jobs']) {
      const token = await post('/token', body, auth);
      expect(token.status).toBe(400);
      expect(await token.json()).toMatchObject({ error: 'unauthorized_client' });
    }
    const revocation = await post('/token/revocation', `token=${a.jwt}`, auth);
    expect(revocation.status).toBe(400);
    expect(await revocation.json()).toMatchObject({ error: 'unauthorized_client' });
    expect(await (await post('/token/introspection', `token=${a.jwt}`, auth)).json()).toMatchObject({ active: true });

    // A wrong secret is invalid_client, as for any client.
    const wrong = await post('/token/introspection', `token=${a.jwt}`, basic(clientId, secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A')));
    expect(wrong.status).toBe(401);

    const revoked = await runSatInProcess(['resource-server', 'revoke', id], db.env);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked resource server "Candidate API"`);
    const after = await post('/token/introspection', `token=${a.jwt}`, auth);
    expect(after.status).toBe(401);
    expect(await after.json()).toMatchObject({ error: 'invalid_client' });
    expect((await runSatInProcess(['resource-server', 'revoke', id], db.env)).code).toBe(1);
    expect((await runSatInProcess(['resource-server', 'list'], db.env)).stdout).not.toContain(clientId);
  });

  it('lets an organisation token introspect only its own organisation, as before', async () => {
    const admin = await makeAdmin(server.deps);
    const caller = await makeToken(server.deps, admin);
    const other = await accessTokenOfNewOrganisation();
    const res = await post('/token/introspection', `token=${other.jwt}`, basic(caller.client_id, caller.client_secret));
    expect(await res.json()).toEqual({ active: false });
  });
});
