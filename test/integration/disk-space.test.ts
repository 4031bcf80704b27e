// Issue 10 item 13: the embedded database on an almost full disk. A small tmpfs (root only; skipped with a printed
// reason otherwise) holds DATA_DIR; a filler file takes the space: writes get 507, /readyz 503, tokens still
// issue, and all works again once space is freed. A start without space exits non-zero instead of lingering.
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packageRoot } from '../../src/config/index.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { testDatabases, type TestDb } from '../support/db.js';
import { runSatInProcess } from '../support/cli.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

/** These tests start server processes and fill or fix a file system: generous on a busy machine. */
const PROCESS_TEST_MS = 120_000;

function tryMountTmpfs(dir: string, sizeMb: number): string | undefined {
  if (process.getuid?.() !== 0) return 'not running as root';
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeMb}m,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return undefined;
  } catch (err) {
    return `cannot mount a tmpfs: ${(err as Error).message.split('\n')[0]}`;
  }
}

// Nothing is made or mounted when this run leaves the embedded database out (CI's PostgreSQL leg): the suite's
// afterAll, which unmounts, would not run, and the global teardown could not remove a mounted folder.
const embeddedInRun = testDatabases().includes('embedded');
const base = mkdtempSync(path.join(os.tmpdir(), 'sat-disk-'));
const mountPoint = path.join(base, 'mnt');
mkdirSync(mountPoint);
const skipReason = embeddedInRun ? tryMountTmpfs(mountPoint, 120) : 'the embedded database is not in this run';
if (skipReason) console.log(`disk-space.test.ts: skipped, ${skipReason}`);
const suite = skipReason ? describe.skip : describe;

suite('embedded database on an almost full disk', () => {
  const dataDir = path.join(mountPoint, 'data');
  const filler = path.join(mountPoint, 'filler');
  let server: TestServer;
  let session: string;
  let clientAuth: string;

  beforeAll(async () => {
    const db: TestDb = { kind: 'embedded', env: { DATA_DIR: dataDir }, dataDir, drop: async () => undefined };
    server = await startServer(db, { MIN_FREE_DISK_MB: '16' });
    const admin = await makeAdmin(server.deps);
    session = (await signIn(server, admin.email, admin.password)).token;
    const t = await makeToken(server.deps, admin);
    clientAuth = basic(t.client_id, t.client_secret);
  }, PROCESS_TEST_MS); // a fresh data directory: initdb and every migration
  afterAll(async () => {
    rmSync(filler, { force: true });
    try {
      await server?.close();
    } finally {
      // Unmounted whatever the close did (a close that threw left the tmpfs mounted under /dev/shm); lazily when a
      // file in it is still open, so the mount goes as soon as it is free.
      for (const args of [[mountPoint], ['-l', mountPoint]]) {
        try {
          execFileSync('umount', args, { stdio: 'pipe' });
          break;
        } catch {
          /* busy (try lazily), or not mounted */
        }
      }
      rmSync(base, { recursive: true, force: true });
    }
  });

  /** Fills the tmpfs until about `leaveMb` MB are free. */
  function fill(leaveMb: number) {
    const out = execFileSync('df', ['-B1', '--output=avail', mountPoint], { encoding: 'utf8' });
    const avail = Number(out.trim().split('\n').pop());
    writeFileSync(filler, Buffer.alloc(Math.max(0, avail - leaveMb * 1024 * 1024)));
  }
  async function poll<T>(probe: () => Promise<T>, ok: (v: T) => boolean, what: string): Promise<T> {
    const deadline = Date.now() + 10_000;
    for (;;) {
      const v = await probe();
      if (ok(v)) return v;
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  it('refuses writes with 507 and reports not ready when the disk is almost full, and recovers when space is freed', async () => {
    fill(8);
    const refused = await poll(
      () => call(server, 'POST', '/tokens', { token: session, json: tokenBody() }),
      (r) => r.status === 507,
      '507',
    );
    expect(refused.body.error).toBe('insufficient_storage');
    const ready = await fetch(`${server.url}/readyz`);
    expect(ready.status).toBe(503);
    expect(await ready.json()).toMatchObject({ disk: 'low' });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
    // Reading goes on: an integration still gets its access token.
    const token = await fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: clientAuth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });
    expect(token.status).toBe(200);
    expect(server.logLines.some((l) => l.includes('disk almost full'))).toBe(true);

    rmSync(filler);
    await poll(() => call(server, 'POST', '/tokens', { token: session, json: tokenBody() }), (r) => r.status === 201, '201 after freeing space');
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  }, PROCESS_TEST_MS);

  // docs/operations.md: "an existing FILE is replaced, atomically, only by a whole backup". A target disk with less
  // room than the backup: the write ran short (one write call, its count unread), the cut-short file replaced the
  // previous backup and `sat backup` said it had succeeded.
  it('a backup to a disk without room for it fails, naming the reason, and leaves the previous backup as it was', async () => {
    const backups = path.join(base, 'backups');
    mkdirSync(backups, { recursive: true });
    const problem = tryMountTmpfs(backups, 2); // a fresh database's backup is ~5 MB
    if (problem) throw new Error(problem);
    try {
      const target = path.join(backups, 'sat.tar.gz');
      writeFileSync(target, 'the previous backup');
      const res = await runSatInProcess(['backup', target], { DATA_DIR: dataDir });
      expect({ code: res.code, stderr: res.stderr }).toEqual({ code: 1, stderr: expect.stringMatching(/cannot write .*sat\.tar\.gz: no space left on the device/) });
      expect(readFileSync(target, 'utf8')).toBe('the previous backup');
      expect(readdirSync(backups)).toEqual(['sat.tar.gz']); // no temporary file left behind
    } finally {
      execFileSync('umount', [backups]);
    }
  }, PROCESS_TEST_MS);

  it('exits non-zero when started without enough space, instead of staying alive without listening', async () => {
    await server.close();
    fill(8);
    const code = await new Promise<number | null>((resolve) => {
      const child = spawn(process.execPath, [path.join(packageRoot(), 'dist', 'src', 'cli', 'index.js'), 'serve'], {
        env: { PATH: process.env.PATH, DATA_DIR: dataDir, PORT: '0', MIN_FREE_DISK_MB: '16', LOG_LEVEL: 'error' },
        stdio: 'ignore',
      });
      const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
      child.on('close', (c) => {
        clearTimeout(timer);
        resolve(c);
      });
    });
    expect(code).toBe(1);
    rmSync(filler);
  }, PROCESS_TEST_MS);
});
