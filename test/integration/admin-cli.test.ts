// `sat token create|list|revoke`. Commands run in this process (runSatInProcess); `sat serve` and one `sat token
// create` with and one without a server are real processes, as users run them (the built dist/: `npm run build` first).
import { call, signIn } from '../support/admin-api.js';
import { runSat, runSatInProcess, startSatServe, type ServeProcess, killLeftoverServersAfterEach } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, daysFromNow } from '../support/fixtures.js';
import { freePort } from '../support/server.js';

killLeftoverServersAfterEach();

/** Tests here start several `sat` processes, each loading the code and opening the database (seconds on a busy machine). */
const SPAWNING_TEST_MS = 60_000;

const exchange = (url: string, clientId: string, secret: string) =>
  fetch(`${url}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
    body: 'grant_type=client_credentials',
  });

describe.each(testDatabases())('sat token commands on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await db?.drop();
  });

  // With no server running, each command opens the embedded database itself (about a second each): the steps are
  // split into tests of a few commands; they share the token made in the first.
  const expires = daysFromNow(20);
  let id: string | undefined;

  it('creates and lists tokens with no server running', async () => {
    expect((await runSatInProcess(['admin', 'add', '--org', 'Initech', '--email', 'bill@initech.example', '--password', 'tps-reports-1'], db.env)).code).toBe(0);

    const created = await runSat(
      ['token', 'create', '--org', 'initech', '--name', 'Payroll_Integration', '--expires', expires, '--services', 'employees, jobs'],
      db.env,
    );
    expect(created.stderr).not.toMatch(/sat: /);
    expect(created.code).toBe(0);
    const secret = /client secret: (sats_\S+)/.exec(created.stdout)?.[1];
    const clientId = /client ID:\s+(sat_\S+)/.exec(created.stdout)?.[1];
    id = /\(([0-9a-f-]{36})\)/.exec(created.stdout)?.[1];
    expect(secret).toMatch(/^sats_[0-9A-Za-z]{49}$/);
    expect(clientId).toMatch(/^sat_[0-9A-Za-z]{22}$/);
    expect(created.stdout).toContain('shown only this once');

    const listed = await runSatInProcess(['token', 'list', '--org', 'Initech', '--json'], db.env);
    expect(listed.code).toBe(0);
    const list = JSON.parse(listed.stdout) as { items: Array<Record<string, unknown>>; active_count: number; max_active: number };
    expect(list).toMatchObject({ active_count: 1, max_active: 25 });
    expect(list.items).toEqual([
      expect.objectContaining({
        id,
        name: 'Payroll_Integration',
        client_id: clientId,
        services: ['employees', 'jobs'],
        status: 'active',
        expires_at: `${expires}T23:59:59.999Z`,
        created_by: null,
      }),
    ]);
    expect(listed.stdout).not.toContain(secret!);
    const table = await runSatInProcess(['token', 'list', '--org', 'Initech'], db.env);
    expect(table.stdout).toContain('"Payroll_Integration"');
    expect(table.stdout).toContain('1 of at most 25 tokens active');
    expect(table.stdout).not.toContain(secret!);
  }, SPAWNING_TEST_MS);

  it('applies the admin API’s rules with no server running (more of them while it runs, below)', async () => {
    // Name taken and limit; a past expiry, unknown services and organisations: in the next test, through the server.
    const dup = await runSatInProcess(['token', 'create', '--org', 'Initech', '--name', 'payroll_integration', '--expires', expires, '--services', 'jobs'], db.env);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already exists');
    const limited = await runSatInProcess(
      ['token', 'create', '--org', 'Initech', '--name', 'one-too-many', '--expires', expires, '--services', 'jobs'],
      { ...db.env, MAX_ACTIVE_TOKENS: '1' },
    );
    expect(limited.code).toBe(1);
    expect(limited.stderr).toMatch(/already has 1 active tokens/);

    const usage = await runSatInProcess(['token', 'create', '--org', 'Initech', '--name', 'x'], db.env);
    expect(usage.code).toBe(2);
    expect((await runSatInProcess(['token', 'revoke', '--org', 'Initech'], db.env)).code).toBe(2);
  }, SPAWNING_TEST_MS);

  it('revokes tokens with no server running', async () => {
    expect(id).toBeDefined();
    const revoked = await runSatInProcess(['token', 'revoke', '--org', 'Initech', id!], db.env);
    expect(revoked.code).toBe(0);
    expect(revoked.stdout).toContain(`Revoked token "Payroll_Integration" (${id}`);
    const again = await runSatInProcess(['token', 'revoke', '--org', 'Initech', id!], db.env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('No such token');
    // A malformed TOKEN_ID is said to be one, by every token command alike (as token show says it).
    for (const command of [['revoke'], ['rotate'], ['retire', 'x'], ['update', '--name', 'x']] as const) {
      const [verb, ...rest] = command;
      const malformed = await runSatInProcess(['token', verb, '--org', 'Initech', 'not-a-token-id', ...rest], db.env);
      // (rotate warns first that ISSUER is not set: its mail would link to the default)
      expect([verb, malformed.code, malformed.stderr.split('\n').at(-2)]).toEqual([verb, 1, 'sat: id: must be a token id (a UUID)']);
    }
    expect(JSON.parse((await runSatInProcess(['token', 'list', '--org', 'Initech', '--json'], db.env)).stdout).items).toEqual([]);
  }, SPAWNING_TEST_MS);

  it('works while the server runs: the token exchanges at once, shows in the API, and revocation stops it', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { ...db.env, PORT: String(port), HOST: '127.0.0.1', ISSUER: url };
    let server: ServeProcess | undefined;
    try {
      server = await startSatServe(env);
      expect((await runSatInProcess(['admin', 'add', '--org', 'Hooli', '--email', 'gavin@hooli.example', '--password', 'nucleus-pass'], env)).code).toBe(0);
      // The rules hold through the server too: a past expiry, an unknown service, an unknown organisation.
      const [past, svc, noOrg] = await Promise.all([
        runSatInProcess(['token', 'create', '--org', 'Hooli', '--name', 'x', '--expires', '2020-01-01', '--services', 'jobs'], env),
        runSatInProcess(['token', 'create', '--org', 'Hooli', '--name', 'x', '--expires', daysFromNow(3), '--services', 'payroll'], env),
        runSatInProcess(['token', 'list', '--org', 'Nobody Inc'], env),
      ]);
      expect(past.code).toBe(1);
      expect(past.stderr).toContain('expires_at: must be in the future');
      expect(svc.code).toBe(1);
      expect(svc.stderr).toContain('services: unknown service: payroll');
      expect(noOrg.code).toBe(1);
      expect(noOrg.stderr).toContain('no organisation named');
      const created = await runSat(['token', 'create', '--org', 'Hooli', '--name', 'cli-made', '--expires', daysFromNow(3), '--services', 'candidates', '--json'], env);
      expect(created.code).toBe(0);
      const t = JSON.parse(created.stdout) as { id: string; client_id: string; client_secret: string };
      expect((await exchange(url, t.client_id, t.client_secret)).status).toBe(200);

      const s = await signIn({ url }, 'gavin@hooli.example', 'nucleus-pass');
      const got = await call({ url }, 'GET', `/tokens/${t.id}`, { token: s.token });
      expect(got.body).toMatchObject({ name: 'cli-made', created_by: null });

      expect((await runSatInProcess(['token', 'revoke', '--org', 'Hooli', t.id], env)).code).toBe(0);
      expect((await exchange(url, t.client_id, t.client_secret)).status).toBe(401);
      const audit = await call({ url }, 'GET', '/audit', { token: s.token });
      const cli = audit.body.items.filter((e: { actor_email: string }) => e.actor_email === 'cli');
      expect(cli.map((e: { action: string; actor_id: string | null; ip: string | null }) => [e.action, e.actor_id, e.ip])).toEqual([
        ['token.revoked', null, null],
        ['token.generated', null, null],
        ['admin.added', null, null], // `sat admin add` of this test's administrator
      ]);
      expect(server.output()).not.toContain(t.client_secret.slice(5, 30));
    } finally {
      expect(await server?.stop()).toBe(0);
    }
  }, SPAWNING_TEST_MS);
});
