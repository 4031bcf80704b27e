// SPEC Part 2 "Passwords never on a command line or in logs": `sat admin add --password-stdin`, the prompt, the
// warning on --password, and the generated first password written to an owner-only file when stdout is no terminal.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { verifyPassword } from '../../src/accounts/index.js';
import { loadConfig } from '../../src/config/index.js';
import { openDb } from '../../src/db/index.js';
import { initialAdminPasswordPath } from '../../src/main.js';
import { call } from '../support/admin-api.js';
import { runSatInProcess, satArgv } from '../support/cli.js';
import { createTestDb, describePostgres, testDatabases, type TestDb } from '../support/db.js';
import { startServer, TEST_PASSWORD_HASH_COST } from '../support/server.js';

/** A real `sat` process with `stdin` as its standard input (the refusal and the warning run in this process). */
function sat(args: string[], env: Record<string, string>, stdin: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, satArgv(args), { env: { PATH: process.env.PATH, PASSWORD_HASH_COST: TEST_PASSWORD_HASH_COST, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin);
  });
}

describe.each(testDatabases())('administrator passwords on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await db?.drop();
  });

  async function passwordMatches(email: string, password: string): Promise<boolean> {
    const database = await openDb(loadConfig(db.env));
    try {
      const row = await database.knex('admins').where({ email }).first();
      return row !== undefined && (await verifyPassword(password, row.password_hash));
    } finally {
      await database.close();
    }
  }

  it('writes a generated first password to DATA_DIR/initial-admin-password (0600), not to stdout or the log', async () => {
    expect(process.stdout.isTTY).toBeFalsy(); // as in a container: stdout is the log
    const server = await startServer(db, { ADMIN_PASSWORD: '', ADMIN_EMAIL: 'first@example.com' });
    try {
      const file = initialAdminPasswordPath(db.dataDir);
      expect(existsSync(file)).toBe(true);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const [email, password] = readFileSync(file, 'utf8').split('\n');
      expect(email).toBe('first@example.com');
      expect(password).toMatch(/^[A-Za-z0-9_-]{24}$/);
      const logged = server.logLines.join('\n');
      expect(logged).not.toContain(password);
      expect(server.logLines.some((l) => l.includes(file))).toBe(true);
      const res = await call(server, 'POST', '/login', { json: { email, password } });
      expect(res.status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('reads the password from standard input with --password-stdin', async () => {
    const r = await sat(['admin', 'add', '--org', 'Stdin Ltd', '--email', 'stdin@example.com', '--password-stdin'], db.env, 'a password from stdin\n');
    expect(r.stderr).not.toMatch(/sat: /);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toContain('a password from stdin');
    expect(r.stdout).not.toMatch(/Password/);
    expect(await passwordMatches('stdin@example.com', 'a password from stdin')).toBe(true);
  });

  it('refuses an empty password on standard input', async () => {
    const r = await runSatInProcess(['admin', 'add', '--org', 'Stdin Ltd', '--email', 'empty@example.com', '--password-stdin'], db.env, '\n');
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/empty password/);
  });

  it('still takes --password, with a warning', async () => {
    const r = await runSatInProcess(['admin', 'add', '--org', 'Old Scripts', '--email', 'old@example.com', '--password', 'visible in ps'], db.env, '');
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/warning: --password shows the password/);
    expect(await passwordMatches('old@example.com', 'visible in ps')).toBe(true);
  });

  it('asks on a terminal without echoing the password', async () => {
    // `script` gives the command a terminal; the two answers are typed into it.
    const command = [process.execPath, ...satArgv(['admin', 'add', '--org', 'Prompt Ltd', '--email', 'prompt@example.com'])].map((a) => `'${a}'`).join(' ');
    const r = await new Promise<{ code: number | null; out: string }>((resolve, reject) => {
      const child = spawn('script', ['-qefc', command, '/dev/null'], { env: { PATH: process.env.PATH, PASSWORD_HASH_COST: TEST_PASSWORD_HASH_COST, ...db.env }, stdio: ['pipe', 'pipe', 'pipe'] });
      let out = '';
      let typed = 0;
      const onData = (d: Buffer) => {
        out += d.toString();
        const prompts = (out.match(/Password for the new administrator|The same password again/g) ?? []).length;
        if (prompts > typed) {
          typed = prompts;
          child.stdin.write('typed at the prompt\r');
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, out }));
    });
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Added administrator prompt@example.com/);
    expect(r.out).not.toContain('typed at the prompt');
    expect(await passwordMatches('prompt@example.com', 'typed at the prompt')).toBe(true);
  });
});

// PostgreSQL with an SMTP server needs no DATA_DIR but for a generated first password (the embedded database lives
// there: it could not open at all).
describePostgres('the generated first password on PostgreSQL', () => {
  it('refuses to start, creating no administrator, when the generated first password could not be written', async () => {
    // A DATA_DIR that cannot be made (its parent is a file), as on a read-only root filesystem; PostgreSQL with an
    // SMTP server needs no DATA_DIR otherwise. Before, the administrator was created with a password nobody saw.
    const fresh = await createTestDb('postgres');
    const parent = path.join(mkdtempSync(path.join(os.tmpdir(), 'sat-ro-')), 'file');
    writeFileSync(parent, '');
    try {
      await expect(startServer(fresh, { ADMIN_PASSWORD: '', ADMIN_EMAIL: 'nobody-saw@example.com', DATA_DIR: path.join(parent, 'data'), SMTP_URL: 'smtp://127.0.0.1:9' })).rejects.toThrow(
        /cannot write the first administrator's generated password to .*initial-admin-password \(ENOTDIR\).*Nothing was created/,
      );
      const database = await openDb(loadConfig(fresh.env));
      try {
        expect(await database.knex('admins').count({ n: '*' })).toEqual([{ n: 0 }]);
      } finally {
        await database.close();
      }
    } finally {
      rmSync(path.dirname(parent), { recursive: true, force: true });
      await fresh.drop();
    }
  });
});
