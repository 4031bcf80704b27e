// SPEC Part 2 "Nothing readable by other OS users": DATA_DIR created beforehand with mode 0755, the process
// started with umask 000, and still every folder is 0700 and every file 0600 after the server and `sat` ran,
// and an older install with readable files is fixed on start.
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../src/config/index.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { readableEntries } from '../support/files.js';
import { runSatInProcess } from '../support/cli.js';

/** These tests start server processes and fill or fix a file system: generous on a busy machine. */
const PROCESS_TEST_MS = 120_000;

function loosen(dir: string): void {
  const visit = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    chmodSync(p, st.isDirectory() ? 0o777 : 0o666);
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(path.join(p, name));
  };
  visit(dir);
}

async function waitFor(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const countEml = (dataDir: string) => {
  const dir = path.join(dataDir, 'mail');
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.eml')).length : 0;
};

describe.each(testDatabases())('owner-only DATA_DIR on %s', (kind) => {
  let db: TestDb;
  let server: TestServer | undefined;
  let dataDir: string;
  let umask: number;

  beforeAll(async () => {
    db = await createTestDb(kind);
    dataDir = path.join(mkdtempSync(path.join(os.tmpdir(), 'sat-modes-')), 'data');
    mkdirSync(dataDir);
    umask = process.umask(0);
    chmodSync(dataDir, 0o755); // as `mkdir -p /data` in a Dockerfile leaves it
  });
  afterAll(async () => {
    await server?.close();
    process.umask(umask);
    await db?.drop();
    rmSync(path.dirname(dataDir), { recursive: true, force: true });
  });

  const start = async () => {
    process.umask(0);
    server = await startServer(db, { DATA_DIR: dataDir, MAIL_POLL_INTERVAL_MS: '50' });
    return server;
  };

  it('keeps every folder 0700 and every file 0600 (database, lock, socket, .eml) under umask 000', async () => {
    const s = await start();
    const admin = await makeAdmin(s.deps);
    const { token } = await signIn(s, admin.email, admin.password);
    expect((await call(s, 'POST', '/tokens', { token, json: tokenBody() })).status).toBe(201);
    await waitFor(() => countEml(dataDir) > 0, 'the .eml file of the "token generated" mail');
    if (kind === 'embedded') {
      expect(existsSync(path.join(dataDir, 'sat.lock'))).toBe(true);
      expect(existsSync(path.join(dataDir, 'sat.sock'))).toBe(true);
      expect(existsSync(path.join(dataDir, 'pgdata'))).toBe(true);
    }
    expect(readableEntries(dataDir)).toEqual([]);
    await s.close();
    server = undefined;
  }, PROCESS_TEST_MS);

  it('fixes an older install with readable files on start', async () => {
    loosen(dataDir);
    expect(readableEntries(dataDir).length).toBeGreaterThan(1);
    const s = await start();
    expect(readableEntries(dataDir)).toEqual([]);
    expect(s.logLines.some((l) => l.includes('made DATA_DIR owner-only'))).toBe(true);
    await s.close();
    server = undefined;
  }, PROCESS_TEST_MS);

  if (kind === 'embedded') {
    it('keeps what `sat admin add` creates owner-only too, started with umask 000', async () => {
      const dir = path.join(path.dirname(dataDir), 'cli-data');
      mkdirSync(dir);
      chmodSync(dir, 0o755);
      const bin = path.join(packageRoot(), 'dist', 'src', 'cli', 'index.js');
      const code = await new Promise<number | null>((resolve, reject) => {
        const child = spawn(
          '/bin/sh',
          ['-c', 'umask 000 && exec "$0" "$@"', process.execPath, bin, 'admin', 'add', '--org', 'Modes', '--email', 'modes@example.com', '--password-stdin'],
          { env: { PATH: process.env.PATH, DATA_DIR: dir, LOG_LEVEL: 'warn' }, stdio: ['pipe', 'ignore', 'inherit'] },
        );
        child.stdin.end('a long enough password\n');
        child.on('error', reject);
        child.on('close', resolve);
      });
      expect(code).toBe(0);
      expect(existsSync(path.join(dir, 'pgdata'))).toBe(true);
      expect(readableEntries(dir)).toEqual([]);
    }, PROCESS_TEST_MS);
  }
});

// The same rule against another user (reviewer): in a DATA_DIR others could write to before the first start (a
// `chmod 777` folder), the server wrote through what was planted there: a `sat.lock` link truncated the file it
// named, an `initial-admin-password` link got the first password written into its target, a `key-encryption-key`
// of another user was used as is (its key known to them). Now each of the server's own entries must be its own and
// no link, or the start (and `sat`) stops, naming it, before anything is written.
describe('a DATA_DIR another user could write to before the first start', () => {
  const isRoot = process.getuid?.() === 0;
  let base: string;
  beforeEach(() => {
    base = mkdtempSync(path.join(os.tmpdir(), 'sat-planted-'));
  });
  afterEach(() => rmSync(base, { recursive: true, force: true }));

  const open = (dataDir: string): TestDb => ({ kind: 'embedded', env: { DATA_DIR: dataDir }, dataDir, drop: async () => undefined });
  const world = () => {
    const dataDir = path.join(base, 'data');
    mkdirSync(dataDir);
    chmodSync(dataDir, 0o777);
    return dataDir;
  };

  it.each(['sat.lock', 'initial-admin-password', 'key-encryption-key'])('refuses to start with %s planted as a link, and writes nothing through it', async (entry) => {
    const dataDir = world();
    const victim = path.join(base, 'victim');
    writeFileSync(victim, 'IMPORTANT\n', { mode: 0o644 });
    symlinkSync(victim, path.join(dataDir, entry));
    const start = startServer(open(dataDir));
    await expect(start).rejects.toThrow(new RegExp(`${entry.replace('.', '\\.')} is a symbolic link`));
    expect(readFileSync(victim, 'utf8')).toBe('IMPORTANT\n');
    expect(existsSync(path.join(dataDir, 'pgdata'))).toBe(false); // stopped before the database
  });

  it('refuses a mail folder planted as a link to another folder', async () => {
    const dataDir = world();
    const elsewhere = path.join(base, 'elsewhere');
    mkdirSync(elsewhere, { mode: 0o777 });
    symlinkSync(elsewhere, path.join(dataDir, 'mail'));
    await expect(startServer(open(dataDir))).rejects.toThrow(/mail is a symbolic link/);
    expect(readdirSync(elsewhere)).toEqual([]);
  });

  (isRoot ? it : it.skip)('refuses entries of another user: a key-encryption key whose key they know, a control socket `sat` would talk to', async () => {
    const dataDir = world();
    const planted = path.join(dataDir, 'key-encryption-key');
    writeFileSync(planted, Buffer.alloc(32, 7).toString('base64') + '\n', { mode: 0o600 });
    chownSync(planted, 65534, 65534);
    await expect(startServer(open(dataDir))).rejects.toThrow(/key-encryption-key belongs to user 65534, neither this process's user \(0\)/);
    rmSync(planted);
    const socket = path.join(dataDir, 'sat.sock');
    writeFileSync(socket, '');
    chownSync(socket, 65534, 65534);
    const res = await runSatInProcess(['admin', 'add', '--org', 'Planted', '--email', 'planted@example.com', '--password-stdin'], { DATA_DIR: dataDir }, 'a-long-password-1\n');
    expect([res.code, res.stderr]).toEqual([1, expect.stringMatching(/sat\.sock belongs to user 65534/)]);
  });

  (isRoot ? it : it.skip)('trusts the owner of a DATA_DIR only they may write to: `sudo sat …` beside their server is not refused', async () => {
    const dataDir = path.join(base, 'theirs');
    mkdirSync(dataDir, { mode: 0o700 });
    for (const name of ['sat.lock', 'key-encryption-key']) writeFileSync(path.join(dataDir, name), name === 'sat.lock' ? '' : Buffer.alloc(32, 1).toString('base64') + '\n', { mode: 0o600 });
    for (const name of ['', 'sat.lock', 'key-encryption-key']) chownSync(path.join(dataDir, name), 65534, 65534);
    const res = await runSatInProcess(['token', 'list', '--org', 'Theirs'], { DATA_DIR: dataDir });
    expect(res.stderr).not.toMatch(/belongs to user/);
    expect(res.stderr).toMatch(/no embedded database/); // what it says of a DATA_DIR without one, as before
  });
});
