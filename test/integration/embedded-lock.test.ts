// SPEC "Operations": the embedded database restarts after an unclean exit (kill -9, PID 1 of a container) without
// manual cleanup, and still refuses a second live server on the same DATA_DIR.
import { spawn, spawnSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { runCommand } from '../../src/commands.js';
import { loadConfig } from '../../src/config/index.js';
import { startControlServer } from '../../src/control/index.js';
import { EMBEDDED_SHARED_BUFFERS } from '../../src/db/embedded.js';
import { openDb } from '../../src/db/index.js';
import { acquireDataDirLock } from '../../src/db/lock.js';
import { createLogger } from '../../src/log.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { runSat, satArgv, startSatServe, type ServeProcess, killLeftoverServersAfterEach } from '../support/cli.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { freePort } from '../support/server.js';

killLeftoverServersAfterEach();

/** Four `sat` processes that each open the embedded engine in turn: ~10 s quiet, over 30 s on 2 busy cores. */
const SPAWNING_TEST_MS = 60_000;
const ADMIN = { ADMIN_EMAIL: 'lock-admin@example.com', ADMIN_PASSWORD: 'lock-admin-password' };

function exited(p: ServeProcess): Promise<NodeJS.Signals | number | null> {
  return new Promise((resolve) => {
    if (p.child.exitCode !== null || p.child.signalCode !== null) return resolve(p.child.signalCode ?? p.child.exitCode);
    p.child.once('exit', (code, signal) => resolve(signal ?? code));
  });
}

/** Host pids of the children of `pid` (read from /proc). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const ppid = /^PPid:\s+(\d+)/m.exec(readFileSync(`/proc/${entry}/status`, 'utf8'))?.[1];
      if (Number(ppid) === pid) out.push(Number(entry));
    } catch {
      /* gone */
    }
  }
  return out;
}

/** Whether `unshare --pid --fork` works here (root, or a kernel allowing unprivileged user namespaces). */
function canUnshare(): { ok: boolean; reason: string } {
  const r = spawnSync('unshare', ['--pid', '--fork', '--kill-child', process.execPath, '-e', 'process.stdout.write(String(process.pid))'], {
    encoding: 'utf8',
  });
  if (r.error) return { ok: false, reason: `unshare is not available (${r.error.message})` };
  if (r.status !== 0) return { ok: false, reason: `unshare --pid --fork failed: ${r.stderr.trim()}` };
  if (r.stdout !== '1') return { ok: false, reason: `node did not run as PID 1 under unshare (pid ${r.stdout})` };
  return { ok: true, reason: '' };
}

describeEmbedded('embedded database lock', () => {
  let db: TestDb;
  let env: Record<string, string>;
  let url: string;
  beforeAll(async () => {
    db = await createTestDb('embedded');
    const port = await freePort();
    env = { ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}` };
    url = `http://127.0.0.1:${port}`;
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('starts again after kill -9, with its data, and still refuses a second server', async () => {
    const first = await startSatServe(env);
    const session = await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
    const made = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'survives-kill' }) });
    expect(made.status).toBe(201);
    first.child.kill('SIGKILL');
    expect(await exited(first)).toBe('SIGKILL');

    const second = await startSatServe(env);
    try {
      const again = await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
      const got = await call({ url }, 'GET', `/tokens/${made.body.id}`, { token: again.token });
      expect(got.status).toBe(200);
      expect(got.body.name).toBe('survives-kill');

      const third = await runSat(['serve'], { ...env, PORT: String(await freePort()) });
      expect(third.code).toBe(1);
      expect(third.stderr).toContain(`is in use by process ${second.child.pid}`);
    } finally {
      expect(await second.stop()).toBe(0);
    }
  });

  it('is not fooled by a live unrelated process whose pid is in the lock file', async () => {
    // The pid of this test process (alive, and not a server) as if a dead server's pid had been reused.
    writeFileSync(path.join(db.dataDir, 'sat.lock'), `${process.pid}\n`);
    const server = await startSatServe(env);
    expect(await server.stop()).toBe(0);
    // Pid 1 (alive in every namespace) likewise.
    writeFileSync(path.join(db.dataDir, 'sat.lock'), '1\n');
    const migrate = await runSat(['migrate'], env);
    expect(migrate.stderr).not.toMatch(/sat: /);
    expect(migrate.code).toBe(0);
  });

  it('starts again after kill -9 when it ran as PID 1 of a fresh PID namespace (a container without init)', async () => {
    const probe = canUnshare();
    if (!probe.ok) {
      // eslint-disable-next-line no-console -- the reason this environment cannot run the case
      console.log(`skipped the PID-namespace case: ${probe.reason}`);
      return;
    }
    const wrapper = ['unshare', '--pid', '--fork', '--kill-child'];
    const first = await startSatServe(env, 60_000, wrapper);
    expect(readFileSync(path.join(db.dataDir, 'sat.lock'), 'utf8').trim()).toBe('1'); // node is PID 1 in there
    const [node] = childrenOf(first.child.pid!);
    expect(node).toBeDefined();
    process.kill(node!, 'SIGKILL'); // what `docker kill` does to a container's PID 1
    await exited(first);

    const second = await startSatServe(env, 60_000, wrapper); // PID 1 again, and the file says 1: not a reason to refuse
    try {
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      const refused = await runSat(['serve'], { ...env, PORT: String(await freePort()) });
      expect(refused.code).toBe(1);
      expect(refused.stderr).toContain('is in use by process 1');
    } finally {
      // SIGTERM to node itself (PID 1 inside): a graceful stop; unshare exits with its status.
      const [inner] = childrenOf(second.child.pid!);
      if (inner) process.kill(inner, 'SIGTERM');
      expect(await exited(second)).toBe(0);
    }
  }, SPAWNING_TEST_MS);

  it('opens the engine with a 16 MB buffer pool, not PostgreSQL\'s 128 MB (docs/performance.md "Embedded database")', async () => {
    const opened = await openDb(loadConfig({ ...env }), createLogger('silent'));
    try {
      const { rows } = await opened.knex.raw<{ rows: Array<{ shared_buffers: string }> }>('show shared_buffers');
      expect(rows[0]?.shared_buffers).toBe(EMBEDDED_SHARED_BUFFERS);
      expect(EMBEDDED_SHARED_BUFFERS).toBe('16MB');
    } finally {
      await opened.close();
    }
  });

  it('a sat command while the server is starting (DATA_DIR held, socket not listening yet) waits for it', async () => {
    // This test process plays the starting server: it holds the database (and so DATA_DIR's lock), no socket yet.
    const config = loadConfig({ ...env });
    const log = createLogger('silent');
    const dbHeld = await openDb(config, log);
    let control: { close(): Promise<void> } | undefined;
    try {
      const sat = spawn(process.execPath, satArgv(['resource-server', 'list', '--json']), {
        env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      sat.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      const exit = new Promise<number | null>((resolve) => sat.once('close', (code) => resolve(code)));
      // It says it waits (or, without waiting, has already given up).
      await new Promise<void>((resolve) => {
        sat.stderr.on('data', (d: Buffer) => {
          stderr += d.toString();
          if (stderr.includes('waiting')) resolve();
        });
        void exit.then(() => resolve());
      });
      expect(stderr).toContain('note: DATA_DIR is in use (a server starting, or another sat command); waiting for it');
      // The "server" now listens: the command goes through it.
      control = await startControlServer(config.dataDir, (req) => runCommand({ config, db: dbHeld, log, clock: () => new Date() }, req.command, req.args));
      expect(await exit).toBe(0);
      expect(JSON.parse(stdout)).toEqual({ items: expect.any(Array) });
      expect(stderr).not.toMatch(/sat: /);
    } finally {
      await control?.close();
      await dbHeld.close();
    }
  });
  it('sat serve started while a sat command holds DATA_DIR waits for it, then starts (a restart overlapping a cron job)', async () => {
    // This test process plays the command: it holds DATA_DIR's lock and listens on no socket.
    const held = acquireDataDirLock(db.dataDir);
    let released = false;
    const serve = spawn(process.execPath, satArgv(['serve']), { env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const exit = new Promise<number | null>((resolve) => serve.once('close', (code) => resolve(code)));
    const seen = (text: string) =>
      new Promise<void>((resolve) => {
        const check = () => output.includes(text) && resolve();
        serve.stdout.on('data', (d: Buffer) => ((output += d.toString()), check()));
        serve.stderr.on('data', (d: Buffer) => ((output += d.toString()), check()));
        void exit.then(() => resolve());
        check();
      });
    try {
      await seen('waiting for it');
      expect(output).toContain('DATA_DIR is in use by a sat command (or a server starting): waiting for it');
      expect(serve.exitCode).toBeNull();
      held.release();
      released = true;
      await seen('"msg":"listening"');
      expect(output).toContain('"msg":"listening"');
      expect((await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD)).token).toEqual(expect.any(String));
    } finally {
      if (!released) held.release();
      serve.kill('SIGTERM');
      expect(await exit).toBe(0);
    }
  });

  it('sat commands started at the same time with no server run one after another, all of them', async () => {
    // Four commands at once, DATA_DIR free: each finds no server and opens the database itself; one gets it, and
    // each of the others, refused the lock, waits for it instead of failing (as scripts running `sat … &` expect).
    const names = ['rs-a', 'rs-b', 'rs-c', 'rs-d'];
    const results = await Promise.all(names.map((name) => runSat(['resource-server', 'add', '--name', name, '--json'], env)));
    expect(results.map((r) => ({ code: r.code, error: r.stderr.match(/sat: .*/)?.[0] }))).toEqual(names.map(() => ({ code: 0, error: undefined })));
    const list = await runSat(['resource-server', 'list', '--json'], env);
    const listed = (JSON.parse(list.stdout) as { items: Array<{ name: string }> }).items.map((i) => i.name);
    expect(listed).toEqual(expect.arrayContaining(names));
  }, SPAWNING_TEST_MS);

  it('a damaged embedded database: the start fails naming the data directory and a restore, with no 503 line', async () => {
    const damaged = await createTestDb('embedded');
    try {
      writeFileSync(path.join(damaged.dataDir, 'pgdata', 'global', 'pg_control'), 'garbage\n');
      const port = await freePort();
      const refused = await runSat(['serve'], { ...damaged.env, ...ADMIN, PORT: String(port), ISSUER: `http://127.0.0.1:${port}` });
      expect(refused.code).toBe(1);
      const said = `cannot open the embedded database in ${path.join(damaged.dataDir, 'pgdata')}: the engine stopped while reading its files. If its files are damaged, restore the latest backup (sat restore FILE; docs/operations.md)`;
      expect(refused.stderr).toContain(`sat: ${said}`);
      expect(refused.stdout + refused.stderr).not.toContain('answering 503');
      // The same words from a command that opens the database itself.
      const list = await runSat(['token', 'list', '--org', 'any'], damaged.env);
      expect(list.code).toBe(1);
      expect(list.stderr).toContain(said);
    } finally {
      await damaged.drop();
    }
  });
});
