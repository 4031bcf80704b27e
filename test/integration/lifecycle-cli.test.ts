// `sat policy show|set`, `sat token update`, `sat token show` and `sat token list --status|--search`, with no server
// running and against a running server (embedded: through its control socket). Commands run in this process
// (runSatInProcess); one server, one `sat token update` and one `sat token show` are real processes (the built dist/).
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { call, signIn } from '../support/admin-api.js';
import { runSat, runSatInProcess, startSatServe, killLeftoverServersAfterEach } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow } from '../support/fixtures.js';
import { freePort, startServer } from '../support/server.js';

killLeftoverServersAfterEach();

describe.each(testDatabases())('sat policy and token update on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('shows and sets the policy, which the next generate obeys', async () => {
    expect((await runSatInProcess(['admin', 'add', '--org', 'Globex', '--email', 'hank@globex.example', '--password', 'globex-password-1'], db.env)).code).toBe(0);

    const shown = await runSatInProcess(['policy', 'show', '--org', 'Globex'], db.env);
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain('max_lifetime_days:           366');
    expect(shown.stdout).toContain('revoke_dormant_after_days:   none');

    const set = await runSatInProcess(
      ['policy', 'set', '--org', 'Globex', '--max-lifetime-days', '30', '--allowed-services', 'jobs,candidates', '--revoke-dormant-after-days', '60', '--json'],
      db.env,
    );
    expect(set.stderr).not.toMatch(/sat: /);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toEqual({
      max_lifetime_days: 30,
      allowed_services: ['candidates', 'jobs'],
      revoke_dormant_after_days: 60,
      default_max_tokens_per_hour: null,
    });
    // Options not given keep their values.
    const limit = await runSatInProcess(['policy', 'set', '--org', 'Globex', '--default-max-tokens-per-hour', '250', '--json'], db.env);
    expect(JSON.parse(limit.stdout)).toMatchObject({ max_lifetime_days: 30, revoke_dormant_after_days: 60, default_max_tokens_per_hour: 250 });

    const bad = await runSatInProcess(['policy', 'set', '--org', 'Globex', '--revoke-dormant-after-days', '10'], db.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/revoke_dormant_after_days: must be null or a whole number of days from 30 to 365/);

    const far = await runSatInProcess(['token', 'create', '--org', 'Globex', '--name', 'far', '--expires', daysFromNow(45), '--services', 'jobs'], db.env);
    expect(far.code).toBe(1);
    expect(far.stderr).toMatch(/expires_at: .*max_lifetime_days.*organisation policy/);
    const created = await runSatInProcess(['token', 'create', '--org', 'Globex', '--name', 'near', '--expires', daysFromNow(20), '--services', 'jobs', '--json'], db.env);
    expect(created.code).toBe(0);
    expect(JSON.parse(created.stdout).max_tokens_per_hour).toBe(250);
    const limited = await runSatInProcess(
      ['token', 'create', '--org', 'Globex', '--name', 'fenced', '--expires', daysFromNow(20), '--services', 'jobs', '--allowed-ips', '192.0.2.9/24', '--max-tokens-per-hour', 'none', '--json'],
      db.env,
    );
    expect(limited.code).toBe(0);
    expect(JSON.parse(limited.stdout)).toMatchObject({ allowed_ips: ['192.0.2.0/24'], max_tokens_per_hour: null });

    // Every problem of one command at once, field by field, as the admin API answers them.
    const many = await runSatInProcess(
      ['token', 'create', '--org', 'Globex', '--name', '', '--expires', '1999-01-01', '--services', 'nope,jobs', '--max-tokens-per-hour', '0', '--allowed-ips', '999.1.1.1'],
      db.env,
    );
    expect(many.code).toBe(1);
    for (const field of ['name', 'expires_at', 'services', 'max_tokens_per_hour', 'allowed_ips.0']) expect(many.stderr).toMatch(new RegExp(`^  ${field.replace('.', '\\.')}: `, 'm'));
    const manyPolicy = await runSatInProcess(['policy', 'set', '--org', 'Globex', '--max-lifetime-days', '0', '--allowed-services', 'nope'], db.env);
    expect(manyPolicy.code).toBe(1);
    for (const field of ['max_lifetime_days', 'allowed_services']) expect(manyPolicy.stderr).toMatch(new RegExp(`^  ${field}: `, 'm'));

    const back = await runSatInProcess(['policy', 'set', '--org', 'Globex', '--allowed-services', 'all', '--revoke-dormant-after-days', 'none', '--json'], db.env);
    expect(JSON.parse(back.stdout)).toMatchObject({ allowed_services: ['candidates', 'employees', 'jobs', 'clients', 'contacts', 'master-lists'], revoke_dormant_after_days: null });
  }, 300_000); // a dozen commands, each opening the database

  it('updates a token and lists by status, also while the server runs; the audit log says "cli"', async () => {
    const port = await freePort();
    const env = { ...db.env, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}` };
    expect((await runSatInProcess(['admin', 'add', '--org', 'Hooli', '--email', 'gavin@hooli.example', '--password', 'hooli-password-1'], env)).code).toBe(0);
    const created = await runSatInProcess(['token', 'create', '--org', 'Hooli', '--name', 'box', '--expires', daysFromNow(3), '--services', 'jobs', '--json'], env);
    const id = JSON.parse(created.stdout).id as string;

    const serve = await startSatServe(env);
    try {
      const updated = await runSat(
        ['token', 'update', '--org', 'Hooli', id, '--name', 'box-2', '--services', 'jobs,contacts', '--allowed-ips', '10.1.2.3/8, 2001:DB8::1', '--max-tokens-per-hour', '60'],
        env,
      );
      expect(updated.stderr).not.toMatch(/sat: /);
      expect(updated.code).toBe(0);
      expect(updated.stdout).toContain('Updated token "box-2"');
      expect(updated.stdout).toContain('allowed IPs:         10.0.0.0/8, 2001:db8::1');
      expect(updated.stdout).toContain('max tokens per hour: 60');

      const bad = await runSatInProcess(['token', 'update', '--org', 'Hooli', id, '--allowed-ips', 'example.com'], env);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(/allowed_ips\.0: must be an IPv4 or IPv6 address or CIDR range/);
      // Every problem at once, field by field (the option values' and the catalogue's together).
      const worse = await runSatInProcess(['token', 'update', '--org', 'Hooli', id, '--allowed-ips', 'example.com', '--services', 'nope', '--max-tokens-per-hour', '0'], env);
      expect(worse.code).toBe(1);
      for (const field of ['allowed_ips\\.0', 'services', 'max_tokens_per_hour']) expect(worse.stderr).toMatch(new RegExp(`^  ${field}: `, 'm'));
      const none = await runSatInProcess(['token', 'update', '--org', 'Hooli', id], env);
      expect(none.code).toBe(2);
      // An empty allowlist value (an unset variable in a script) is wrong usage, not "any": the allowlist stays.
      for (const empty of ['', ' ', ',']) {
        const emptied = await runSatInProcess(['token', 'update', '--org', 'Hooli', id, '--allowed-ips', empty], env);
        expect(emptied.code).toBe(2);
        expect(emptied.stderr).toMatch(/^sat: --allowed-ips takes addresses or CIDR ranges separated by commas, or "any"/);
      }
      // A value given twice is refused, not the last one taken silently.
      const twice = await runSatInProcess(['token', 'update', '--org', 'Hooli', id, '--services', 'jobs', '--services', 'candidates'], env);
      expect(twice.code).toBe(2);
      expect(twice.stderr).toMatch(/^sat: --services is given more than once/);

      const expiring = await runSatInProcess(['token', 'list', '--org', 'Hooli', '--status', 'expiring'], env);
      expect(expiring.code).toBe(0);
      expect(expiring.stdout).toContain('"box-2"  [expiring]');
      const dormant = await runSatInProcess(['token', 'list', '--org', 'Hooli', '--status', 'dormant', '--json'], env);
      expect(JSON.parse(dormant.stdout).items).toEqual([]);
      const wrong = await runSatInProcess(['token', 'list', '--org', 'Hooli', '--status', 'sleeping'], env);
      expect(wrong.code).toBe(1);

      const s = await signIn({ url: env.ISSUER }, 'gavin@hooli.example', 'hooli-password-1');
      const token = await call({ url: env.ISSUER }, 'GET', `/tokens/${id}`, { token: s.token });
      expect(token.body).toMatchObject({ name: 'box-2', services: ['jobs', 'contacts'], allowed_ips: ['10.0.0.0/8', '2001:db8::1'], max_tokens_per_hour: 60 });
      const audit = await call({ url: env.ISSUER }, 'GET', '/audit', { token: s.token });
      expect(audit.body.items.filter((e: { action: string }) => e.action === 'token.updated')).toEqual([
        expect.objectContaining({ actor_email: 'cli', actor_id: null, token_id: id, details: expect.objectContaining({ changes: expect.any(Object) }) }),
      ]);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  }, 300_000);

  // `sat token show` and `sat token list --search`: Vandelay's tokens, and one of Kramerica's that Vandelay must not see.
  type Made = { id: string; client_id: string; client_secret?: string; secrets: Array<{ id: string }> };
  const made: Record<string, Made> = {};
  const make = async (env: Record<string, string>, org: string, name: string, days: number, more: string[] = []): Promise<Made> => {
    const r = await runSatInProcess(['token', 'create', '--org', org, '--name', name, '--expires', daysFromNow(days), '--services', 'jobs,contacts', ...more, '--json'], env);
    expect(r.stderr).toBe('');
    return (made[name] = JSON.parse(r.stdout) as Made);
  };
  const names = async (env: Record<string, string>, ...more: string[]) => {
    const r = await runSatInProcess(['token', 'list', '--org', 'Vandelay', ...more, '--json'], env);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return (JSON.parse(r.stdout).items as Array<{ name: string }>).map((t) => t.name).sort();
  };

  it('searches the list through a running server and with none, shows one token with no server running; refuses an unknown, a foreign and a malformed id', async () => {
    // The tokens, and the search's rules, through a server of this process: on the embedded database each command is
    // a call on its control socket instead of an engine start (~0.4 s each). What a command does with no server
    // running, opening the database itself, follows below.
    const server = await startServer(db, {}, { jobs: 'manual' });
    const env = { ...db.env, ISSUER: server.issuer }; // as the server has it: the mail of `token create` links there
    try {
      for (const [org, email] of [['Vandelay', 'art@vandelay.example'], ['Kramerica', 'cosmo@kramerica.example']] as const) {
        expect((await runSatInProcess(['admin', 'add', '--org', org, '--email', email, '--password', 'import-export-1'], db.env)).code).toBe(0);
      }
      await make(env, 'Vandelay', '100%_done', 20);
      await make(env, 'Vandelay', 'payroll_x', 3, ['--allowed-ips', '10.1.2.3/8, 2001:DB8::1', '--max-tokens-per-hour', '60']);
      const plain = await make(env, 'Vandelay', 'Payrollx', 20);
      await make(env, 'Kramerica', 'payroll_y', 20);

      // --search: the name or the client ID, any case; % and _ match only themselves; with --status.
      expect(await names(db.env)).toEqual(['100%_done', 'Payrollx', 'payroll_x']);
      expect(await names(db.env, '--search', '%')).toEqual(['100%_done']);
      expect(await names(db.env, '--search', 'OLL_')).toEqual(['payroll_x']); // a wildcard _ would match "Payrollx" too
      expect(await names(db.env, '--search', '0%_')).toEqual(['100%_done']);
      expect(await names(db.env, '--search', 'PAYROLL')).toEqual(['Payrollx', 'payroll_x']);
      expect(await names(db.env, '--search', plain.client_id.slice(4, 16).toLowerCase())).toEqual(['Payrollx']);
      expect(await names(db.env, '--search', '%', '--status', 'expiring')).toEqual([]);
      const long = await runSatInProcess(['token', 'list', '--org', 'Vandelay', '--search', 'x'.repeat(201)], db.env);
      expect(long.code).toBe(1);
      expect(long.stderr).toBe('sat: search: must be at most 200 characters\n');
    } finally {
      await server.close();
    }
    const fenced = made.payroll_x!;
    const foreign = made.payroll_y!;

    // With no server running: --search with --status, and the table.
    expect(await names(db.env, '--search', 'payroll', '--status', 'expiring')).toEqual(['payroll_x']);
    const table = await runSatInProcess(['token', 'list', '--org', 'Vandelay', '--search', '%'], db.env);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('"100%_done"');
    expect(table.stdout).not.toMatch(/payroll/i);

    // The text: every field, the live secret by its id and last four, never the secret.
    const shown = await runSatInProcess(['token', 'show', '--org', 'Vandelay', fenced.id], db.env);
    expect(shown.stderr).toBe('');
    expect(shown.code).toBe(0);
    const lines = shown.stdout.split('\n');
    expect(lines[0]).toBe(`Token "payroll_x" (${fenced.id})`);
    expect(lines).toEqual(
      expect.arrayContaining([
        `  client ID:           ${fenced.client_id}`,
        '  status:              active (expiring)',
        '  services:            jobs, contacts',
        '  scopes:              jobs contacts',
        `  expires:             ${daysFromNow(3)}T23:59:59.999Z`,
        '  created by:          no administrator (sat, or one since removed)',
        '  last used:           never',
        '  allowed IPs:         10.0.0.0/8, 2001:db8::1',
        '  max tokens per hour: 60 (0 issued in the last hour)',
        '  auth method:         client_secret',
        '  DPoP:                not required',
        expect.stringMatching(new RegExp(`^  live secret: {9}…${fenced.client_secret!.slice(-4)} \\(secret ID ${fenced.secrets[0]!.id}\\), created \\S+Z, works as long as the token, never used$`)),
      ]),
    );
    expect(lines.find((l) => l.startsWith('  created:'))).toMatch(/^ {2}created: {13}\d{4}-\d\d-\d\dT[\d:.]+Z$/);
    expect(shown.stdout).not.toContain('leaked');
    expect(shown.stdout).not.toContain(fenced.client_secret!);
    // --json: the token resource, as the list holds it.
    const json = await runSatInProcess(['token', 'show', '--org', 'Vandelay', fenced.id, '--json'], db.env);
    const listed = JSON.parse((await runSatInProcess(['token', 'list', '--org', 'Vandelay', '--json'], db.env)).stdout).items;
    expect(JSON.parse(json.stdout)).toEqual(listed.find((t: { id: string }) => t.id === fenced.id));

    // Another organisation's token and an unknown id: the admin API's not_found; a malformed id: said so. (One at a
    // time: with no server, each command holds DATA_DIR while it runs.)
    const other = await runSatInProcess(['token', 'show', '--org', 'Vandelay', foreign.id], db.env);
    const unknown = await runSatInProcess(['token', 'show', '--org', 'Vandelay', randomUUID()], db.env);
    const malformed = await runSatInProcess(['token', 'show', '--org', 'Vandelay', 'not-a-token-id'], db.env);
    const own = await runSatInProcess(['token', 'show', '--org', 'Kramerica', foreign.id], db.env);
    expect([other.code, other.stdout, other.stderr]).toEqual([1, '', 'sat: No such token.\n']);
    expect([unknown.code, unknown.stdout, unknown.stderr]).toEqual([1, '', 'sat: No such token.\n']);
    expect([malformed.code, malformed.stdout, malformed.stderr]).toEqual([1, '', 'sat: id: must be a token id (a UUID)\n']);
    expect(own.code).toBe(0);
    expect(own.stdout).toContain(`Token "payroll_y" (${foreign.id})`);
  }, 300_000);

  it('refuses options and arguments token show and token list do not take', async () => {
    const id = randomUUID();
    const cases: Array<[string[], string]> = [
      [['token', 'show', '--org', 'Vandelay'], 'token show needs --org and one TOKEN_ID'],
      [['token', 'show', id], 'token show needs --org and one TOKEN_ID'],
      [['token', 'show', '--org', 'Vandelay', id, id], 'token show needs --org and one TOKEN_ID'],
      [['token', 'show', '--org', 'Vandelay', id, '--status', 'active'], 'token show does not take --status'],
      [['token', 'show', '--org', 'Vandelay', id, '--search', 'x'], 'token show does not take --search'],
      [['token', 'list', '--org', 'Vandelay', '--search', 'x', '--limit', '5'], 'token list does not take --limit'],
      [['token', 'revoke', '--org', 'Vandelay', id, '--search', 'x'], 'token revoke does not take --search'],
      [['token', 'list', '--org', 'Vandelay', 'payroll'], 'unexpected argument: payroll'],
    ];
    for (const [args, message] of cases) {
      const r = await runSatInProcess(args, db.env);
      expect([args, r.code, r.stdout]).toEqual([args, 2, '']);
      expect(r.stderr.split('\n')[0]).toBe(`sat: ${message}`);
    }
    const help = await runSatInProcess(['--help'], db.env);
    expect(help.stdout).toContain('token show --org NAME TOKEN_ID');
    expect(help.stdout).toContain('token list --org NAME [--status S] [--search TEXT]');
  });

  it('shows and searches through a running server: as GET /admin/api/tokens/{id}, rotated secrets, keys, a leak', async () => {
    const server = await startServer(db, {}, { jobs: 'manual' });
    try {
      // Embedded: the commands go through the server's control socket. PostgreSQL: they run here, with the server's ISSUER.
      const env = { ...db.env, ISSUER: server.issuer };
      // A rotated secret: both live secrets, the previous one with its end.
      const payroll = made.payroll_x!;
      expect((await runSatInProcess(['token', 'rotate', '--org', 'Vandelay', payroll.id, '--grace-hours', '24'], env)).code).toBe(0);
      const rotated = await runSatInProcess(['token', 'show', '--org', 'Vandelay', payroll.id], env);
      expect(rotated.code).toBe(0);
      const secretLines = rotated.stdout.split('\n').filter((l) => l.startsWith('  live secret:'));
      expect(secretLines).toEqual([
        expect.stringMatching(/ \(secret ID [0-9a-f-]{36}\), created \S+Z, works as long as the token, never used$/),
        expect.stringMatching(new RegExp(`…${payroll.client_secret!.slice(-4)} \\(secret ID ${payroll.secrets[0]!.id}\\), created \\S+Z, works until \\S+Z, never used$`)),
      ]);

      // A private_key_jwt token with DPoP: its key thumbprints, no secret.
      const keyFile = path.join(db.dataDir, 'show-key.pem');
      writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }));
      const keyed = await make(env, 'Vandelay', 'keyed-client', 20, ['--jwks', keyFile, '--require-dpop']);
      // The state a leak report leaves in SECRET_SCANNING_ACTION=notify mode (the report itself: leaked-secrets.test.ts).
      await server.deps.db.knex('tokens').where({ id: made['100%_done']!.id }).update({ leaked_at: new Date('2026-01-02T03:04:05.000Z') });

      const session = await signIn(server, 'art@vandelay.example', 'import-export-1');
      for (const t of [payroll, keyed, made['100%_done']!]) {
        const [viaSat, viaApi] = await Promise.all([
          runSatInProcess(['token', 'show', '--org', 'Vandelay', t.id, '--json'], env),
          call(server, 'GET', `/tokens/${t.id}`, { token: session.token }),
        ]);
        expect(viaSat.code).toBe(0);
        expect(viaApi.status).toBe(200);
        expect(JSON.parse(viaSat.stdout)).toEqual(viaApi.body);
      }
      const keyedText = await runSat(['token', 'show', '--org', 'Vandelay', keyed.id], env); // the built `sat`, once
      expect(keyedText.stderr).toBe('');
      expect(keyedText.code).toBe(0);
      const thumbprints = JSON.parse((await runSatInProcess(['token', 'show', '--org', 'Vandelay', keyed.id, '--json'], env)).stdout).jwk_thumbprints as string[];
      expect(thumbprints).toHaveLength(1);
      expect(keyedText.stdout).toContain(`  auth method:         private_key_jwt (keys ${thumbprints[0]})\n`);
      expect(keyedText.stdout).toContain('  DPoP:                required\n');
      expect(keyedText.stdout).not.toContain('live secret');
      const leaked = await runSatInProcess(['token', 'show', '--org', 'Vandelay', made['100%_done']!.id], env);
      expect(leaked.stdout).toContain('  leaked:              secret reported leaked at 2026-01-02T03:04:05.000Z; the token was kept alive: replace it\n');

      // Refusals and --search through the server, as without it.
      const [other, unknown, malformed] = await Promise.all([
        runSatInProcess(['token', 'show', '--org', 'Vandelay', made.payroll_y!.id], env),
        runSatInProcess(['token', 'show', '--org', 'Vandelay', randomUUID()], env),
        runSatInProcess(['token', 'show', '--org', 'Vandelay', `${payroll.id}x`], env),
      ]);
      expect([other.code, other.stderr]).toEqual([1, 'sat: No such token.\n']);
      expect([unknown.code, unknown.stderr]).toEqual([1, 'sat: No such token.\n']);
      expect([malformed.code, malformed.stderr]).toEqual([1, 'sat: id: must be a token id (a UUID)\n']);
      expect(await names(env, '--search', '%')).toEqual(['100%_done']);
      expect(await names(env, '--search', 'KEYED-', '--status', 'active')).toEqual(['keyed-client']);
      expect(await names(env, '--search', 'payroll', '--status', 'expiring')).toEqual(['payroll_x']);
    } finally {
      await server.close();
    }
  }, 300_000);
});
