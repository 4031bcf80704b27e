import { spawn } from 'node:child_process';
import { closeSync, openSync, statSync } from 'node:fs';
import path from 'node:path';
import { runSat, runSatInProcess, satArgv, startSatServe, type ServeProcess, killLeftoverServersAfterEach } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow } from '../support/fixtures.js';
import { freePort } from '../support/server.js';

killLeftoverServersAfterEach();

/** Tests here start several `sat` processes, each loading the code and opening the database (seconds on a busy machine). */
const SPAWNING_TEST_MS = 60_000;

async function login(url: string, email: string, password: string): Promise<number> {
  const res = await fetch(`${url}/admin/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  return res.status;
}

describe.each(testDatabases())('sat command-line tool on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await db?.drop();
  });

  // With no server running, each command opens the database itself: a few commands per test.
  it('migrates with no server running', async () => {
    const migrate = await runSat(['migrate'], db.env);
    expect(migrate.stderr).not.toMatch(/sat: /);
    expect(migrate.code).toBe(0);
    expect(migrate.stdout).toMatch(/Applied: 0001_initial|Up to date/);
    const again = await runSat(['migrate'], db.env);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/Up to date/);
  }, SPAWNING_TEST_MS);

  it('adds administrators with no server running', async () => {
    const added = await runSat(['admin', 'add', '--org', 'Acme Ltd', '--email', 'ops@acme.example'], db.env);
    expect(added.code).toBe(0);
    expect(added.stdout).toContain('Created organisation "Acme Ltd"');
    const password = /Password \(shown once, keep it safe\): (\S+)/.exec(added.stdout)?.[1];
    expect(password).toMatch(/^[A-Za-z0-9_-]{20,}$/);

    const second = await runSat(['admin', 'add', '--org', 'acme ltd', '--email', 'dev@acme.example', '--password', 'a-long-password'], db.env);
    expect(second.code).toBe(0);
    expect(second.stdout).toContain('Using organisation "Acme Ltd"');
    expect(second.stdout).not.toContain('a-long-password');

    // --json names it in snake_case, as every other field of every command's JSON.
    const third = await runSatInProcess(['admin', 'add', '--org', 'Acme Ltd', '--email', 'qa@acme.example', '--json'], db.env);
    expect(third.code).toBe(0);
    const json = JSON.parse(third.stdout) as Record<string, unknown>;
    expect(json.generated_password).toMatch(/^[A-Za-z0-9_-]{20,}$/);
    expect(Object.keys(json).sort()).toEqual(['admin', 'generated_password', 'organisation']);
  }, SPAWNING_TEST_MS);

  it('refuses a duplicate, a bad email and a missing organisation', async () => {
    const dup = await runSat(['admin', 'add', '--org', 'Acme Ltd', '--email', 'OPS@acme.example'], db.env);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toContain('already exists');

    const bad = await runSat(['admin', 'add', '--org', 'Acme Ltd', '--email', 'not-an-email'], db.env);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/email/);

    const usage = await runSat(['admin', 'add', '--email', 'x@example.com'], db.env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('--org');
  }, SPAWNING_TEST_MS);

  // PostgreSQL only: the embedded database has no server to be out of reach.
  (kind === 'postgres' ? it : it.skip)('sat migrate names an unreachable or missing database instead of "see the server log"', async () => {
    const closed = new URL(db.url!);
    closed.port = String(await freePort());
    const refused = await runSat(['migrate'], { ...db.env, DATABASE_URL: closed.toString() });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/sat: cannot use the database \(DATABASE_URL\): .*ECONNREFUSED/);
    expect(refused.stderr).not.toMatch(/server log|\bat .*\.js:\d+/);

    const missing = new URL(db.url!);
    missing.pathname = '/sat_no_such_database';
    const absent = await runSat(['migrate'], { ...db.env, DATABASE_URL: missing.toString() });
    expect(absent.code).toBe(1);
    expect(absent.stderr).toMatch(/sat: cannot use the database \(DATABASE_URL\): database "sat_no_such_database" does not exist/);
    expect(absent.stderr).not.toMatch(/server log|\bat .*\.js:\d+/);

    // A host name that does not resolve: the same, for migrate and for a read, with no log line or stack.
    const nowhere = new URL(db.url!);
    nowhere.hostname = 'sat-no-such-host.invalid';
    for (const args of [['migrate'], ['admin', 'list', '--org', 'Acme Ltd']]) {
      const r = await runSatInProcess(args, { ...db.env, DATABASE_URL: nowhere.toString() });
      expect({ args, code: r.code }).toEqual({ args, code: 1 });
      expect(r.stderr).toMatch(/^sat: cannot use the database \(DATABASE_URL\): .*ENOTFOUND sat-no-such-host\.invalid\n$/);
    }
  }, SPAWNING_TEST_MS);

  it('refuses an option the command does not take instead of ignoring it, and does nothing', async () => {
    const created = await runSat(
      ['token', 'create', '--org', 'Acme Ltd', '--name', 'Ignored_Option', '--expires', daysFromNow(30), '--services', 'jobs', '--grace-hours', '48'],
      db.env,
    );
    expect(created.code).toBe(2);
    expect(created.stderr).toContain('token create does not take --grace-hours');
    const listed = await runSat(['token', 'list', '--org', 'Acme Ltd', '--json'], db.env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { items: Array<{ name: string }> }).items.map((t) => t.name)).not.toContain('Ignored_Option');

    const migrate = await runSat(['migrate', '--org', 'Acme Ltd'], db.env);
    expect(migrate.code).toBe(2);
    expect(migrate.stderr).toContain('migrate does not take --org');
    const serve = await runSat(['serve', '--now'], db.env);
    expect(serve.code).toBe(2);
    expect(serve.stderr).toContain('serve does not take --now');
  }, SPAWNING_TEST_MS);

  it('adds an administrator while the server runs, who can then sign in', async () => {
    const port = await freePort();
    const env = { ...db.env, PORT: String(port), HOST: '127.0.0.1', ADMIN_EMAIL: 'first@acme.example', ADMIN_PASSWORD: 'first-password' };
    let server: ServeProcess | undefined;
    try {
      server = await startSatServe(env);
      const added = await runSat(['admin', 'add', '--org', 'Globex', '--email', 'hank@globex.example', '--password', 'hank-password-1'], env);
      expect(added.stderr).not.toMatch(/sat: /);
      expect(added.code).toBe(0);
      expect(added.stdout).toContain('Created organisation "Globex"');
      if (kind === 'embedded') {
        // The command went through the running server's socket: owner-only permissions.
        expect(statSync(path.join(db.dataDir, 'sat.sock')).mode & 0o777).toBe(0o600);
      }
      expect(await login(`http://127.0.0.1:${port}`, 'hank@globex.example', 'hank-password-1')).toBe(200);
      expect(await login(`http://127.0.0.1:${port}`, 'hank@globex.example', 'wrong-password')).toBe(401);
      const dup = await runSat(['admin', 'add', '--org', 'Globex', '--email', 'hank@globex.example'], env);
      expect(dup.code).toBe(1);
      expect(dup.stderr).toContain('already exists');
    } finally {
      expect(await server?.stop()).toBe(0);
    }
  }, SPAWNING_TEST_MS);

  it('writes only JSON lines on standard output, also when a token request carries an Origin header', async () => {
    const port = await freePort();
    const env = { ...db.env, PORT: String(port), HOST: '127.0.0.1' };
    const server = await startSatServe(env);
    let stdout = '';
    server.child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    try {
      expect((await runSat(['admin', 'add', '--org', 'Initech', '--email', 'peter@initech.example'], env)).code).toBe(0);
      const created = await runSat(['token', 'create', '--org', 'Initech', '--name', 'Browser', '--expires', daysFromNow(30), '--services', 'jobs'], env);
      expect(created.code).toBe(0);
      const id = /client ID:\s+(\S+)/.exec(created.stdout)![1]!;
      const secret = /client secret:\s+(\S+)/.exec(created.stdout)![1]!;
      // A browser (or a runtime that sends Origin) goes through oidc-provider's CORS check, which is not for our clients.
      const res = await fetch(`http://127.0.0.1:${port}/token`, {
        method: 'POST',
        headers: {
          authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString('base64')}`,
          'content-type': 'application/x-www-form-urlencoded',
          origin: 'https://app.example',
          'x-request-id': 'origin-request',
        },
        body: 'grant_type=client_credentials',
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ error: 'invalid_request' });
      const deadline = Date.now() + 5_000;
      while (!stdout.includes('origin-request') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const lines = stdout.split('\n').filter((l) => l.trim() !== '');
      expect(lines.filter((l) => l.includes('origin-request'))).toHaveLength(1);
      for (const line of lines) expect(() => JSON.parse(line)).not.toThrow();
    } finally {
      expect(await server.stop()).toBe(0);
    }
  }, SPAWNING_TEST_MS);

  if (kind === 'embedded') {
    it('refuses a second server on the same data directory, saying why', async () => {
      const port = await freePort();
      const env = { ...db.env, PORT: String(port), HOST: '127.0.0.1' };
      const server = await startSatServe(env);
      try {
        const second = await runSat(['serve'], { ...env, PORT: String(await freePort()) });
        expect(second.code).toBe(1);
        expect(second.stderr).toContain(`is in use by process ${server.child.pid}`);
      } finally {
        expect(await server.stop()).toBe(0);
      }
      // After a clean stop the lock is gone and the database opens again.
      const after = await runSat(['migrate'], db.env);
      expect(after.code).toBe(0);
    }, SPAWNING_TEST_MS);
  }
});

describe('sat output that cannot be written', () => {
  /** Runs `sat args` with its stdout on `stdout` (a file descriptor or 'pipe'); the pipe, if any, closed at once. */
  const run = (args: string[], stdout: number | 'pipe') =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, satArgv(args), { env: { PATH: process.env.PATH, HOME: process.env.HOME }, stdio: ['ignore', stdout, 'pipe'] });
      child.stdout?.destroy(); // nobody reads it: the next write meets a closed pipe (EPIPE)
      let stderr = '';
      child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stderr }));
    });

  it('a full disk: exit 1 and one line, no stack trace', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      expect(await run(['--help'], full)).toEqual({ code: 1, stderr: 'sat: cannot write to stdout (ENOSPC)\n' });
    } finally {
      closeSync(full);
    }
  });

  it('a closed pipe (`sat … | head -1`): exit 1, nothing said', async () => {
    // --help writes 5 KB at once: more than one write after the reader went away.
    expect(await run(['--help'], 'pipe')).toEqual({ code: 1, stderr: '' });
  });
});
