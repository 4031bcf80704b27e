// `sat policy show|set`, `sat token update` and `sat token list --status`, with no server running and against a
// running `sat serve` (embedded: through its control socket). Commands run in this process (runSatInProcess); the
// server and one `sat token update` are real processes (the built dist/).
import { call, signIn } from '../support/admin-api.js';
import { runSat, runSatInProcess, startSatServe } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow } from '../support/fixtures.js';
import { freePort } from '../support/server.js';

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
      const none = await runSatInProcess(['token', 'update', '--org', 'Hooli', id], env);
      expect(none.code).toBe(2);

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
});
