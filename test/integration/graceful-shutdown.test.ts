// SPEC "Operations": SIGTERM under load (keep-alive, and a new connection per request): no request that arrived
// before the signal fails, /readyz turns 503, pending last_used_at times are written, and the process exits 0 within
// SHUTDOWN_GRACE_SECONDS.
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../../src/config/index.js';
import { openDb, type MailOutboxRow } from '../../src/db/index.js';
import { basic } from '../support/fixtures.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { runSat, spawnSatProcess, startNpmStart, startSatServe, killLeftoverServersAfterEach } from '../support/cli.js';
import { describeEmbedded, createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { freePort } from '../support/server.js';

killLeftoverServersAfterEach();

const ADMIN = { ADMIN_EMAIL: 'drain-admin@example.com', ADMIN_PASSWORD: 'drain-admin-password' };
const CONCURRENCY = 8;
const GRACE_SECONDS = 10;

interface Sample {
  kind: 'token' | 'admin' | 'readyz';
  sentAt: number;
  doneAt: number;
  status?: number;
  error?: string;
}

/** Pids of the `sat serve` processes started with this PORT (read from /proc; only this test uses the port). */
function serversOnPort(port: number): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8');
      const environ = readFileSync(`/proc/${entry}/environ`, 'utf8').split('\0');
      if (cmdline.includes('cli/index.js') && environ.includes(`PORT=${port}`)) found.push(Number(entry));
    } catch {
      /* gone, or not ours to read */
    }
  }
  return found;
}

describe.each(testDatabases())('graceful shutdown on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('loses no request that arrived before SIGTERM and exits 0 within the grace', async () => {
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: url, SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS) };
    const server = await startSatServe(env);
    const exit = new Promise<{ code: number | null; at: number }>((resolve) =>
      server.child.once('exit', (code) => resolve({ code, at: performance.now() })),
    );

    const session = await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
    const made = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'under-load' }) });
    expect(made.status).toBe(201);
    const authorization = basic(made.body.client_id, made.body.client_secret);

    const samples: Sample[] = [];
    let signalAt = Infinity;
    const deadline = performance.now() + 60_000; // bounded load, whatever happens
    const one = async (n: number): Promise<Sample> => {
      const kind: Sample['kind'] = n % 5 === 4 ? 'readyz' : n % 5 === 3 ? 'admin' : 'token';
      const sentAt = performance.now();
      try {
        const res =
          kind === 'token'
            ? await fetch(`${url}/token`, {
                method: 'POST',
                headers: { authorization, 'content-type': 'application/x-www-form-urlencoded' },
                body: 'grant_type=client_credentials',
              })
            : kind === 'admin'
              ? await fetch(`${url}/admin/api/tokens?limit=5`, { headers: { authorization: `Bearer ${session.token}` } })
              : await fetch(`${url}/readyz`);
        await res.arrayBuffer();
        return { kind, sentAt, doneAt: performance.now(), status: res.status };
      } catch (err) {
        const cause = (err as { cause?: { code?: string; message?: string } }).cause;
        return { kind, sentAt, doneAt: performance.now(), error: cause?.code ?? cause?.message ?? String(err) };
      }
    };
    const loop = async (id: number) => {
      for (let n = id; performance.now() < deadline; n += CONCURRENCY) {
        const s = await one(n);
        samples.push(s);
        if (s.sentAt > signalAt && s.error) return; // the server is gone for new connections: as expected
      }
    };
    const loops = Array.from({ length: CONCURRENCY }, (_, i) => loop(i));

    while (samples.length < 300 && performance.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    signalAt = performance.now();
    server.child.kill('SIGTERM');
    const exited = await exit;
    await Promise.all(loops);

    const before = samples.filter((s) => s.sentAt < signalAt);
    const inFlight = before.filter((s) => s.doneAt > signalAt);
    // Every request sent before the signal is answered; a token request with 200. A /readyz probe sent before the
    // signal but answered after it may rightly say 503: readiness is the state when it is answered (the server may
    // have had the signal before it read the probe), and the block below checks the switch.
    const rightlyNotReady = (s: Sample) => s.kind === 'readyz' && s.status === 503 && s.doneAt > signalAt;
    const failedBefore = before.filter((s) => s.error || (s.status !== 200 && !rightlyNotReady(s)));
    expect(before.length).toBeGreaterThanOrEqual(300);
    expect(inFlight.length).toBeGreaterThan(0); // the signal did land in the middle of the load
    expect(failedBefore).toEqual([]);

    // /readyz answers 503 from the moment the server has the signal. When that is, only the server knows: it logs
    // "shutting down" (ISO time, ms) right before it begins to drain. A probe sent after that line (on this host's
    // clock) and answered must be 503; one sent between kill() and that line may still, rightly, see 200. (The switch
    // itself, without this race, is test/unit/ops/readiness.test.ts.)
    const shutdownLine = server
      .output()
      .split('\n')
      .find((line) => line.includes('"msg":"shutting down"'));
    expect(shutdownLine).toBeDefined();
    const drainFrom = Date.parse((JSON.parse(shutdownLine!) as { time: string }).time) + 1; // + the log's 1 ms grain
    const readyAfter = samples.filter(
      (s) => s.kind === 'readyz' && s.status !== undefined && performance.timeOrigin + s.sentAt > drainFrom,
    );
    expect(readyAfter.filter((s) => s.status !== 503)).toEqual([]);

    expect(exited.code).toBe(0);
    expect(exited.at - signalAt).toBeLessThan(GRACE_SECONDS * 1000);
    expect(server.output()).toMatch(/"signal":"SIGTERM".*"msg":"shutting down"/);
    expect(server.output()).toMatch(/"msg":"stopped"/);
    process.stdout.write(
      `graceful shutdown (${kind}): ${before.length} requests before SIGTERM, ${inFlight.length} in flight at the signal, ` +
        `exit ${exited.code} after ${Math.round(exited.at - signalAt)} ms\n`,
    );

    // The pending last_used_at bookkeeping reached the database.
    const listed = await runSat(['token', 'list', '--org', 'Default', '--json'], env);
    expect(listed.code).toBe(0);
    const token = (JSON.parse(listed.stdout) as { items: Array<{ id: string; last_used_at: string | null }> }).items.find(
      (t) => t.id === made.body.id,
    );
    expect(token?.last_used_at).not.toBeNull();
  });

  it('answers a request on a new connection that was connected and sent before SIGTERM, under load', async () => {
    // A load balancer (or a client) that opens a connection per request: a connection the kernel completed before
    // the signal waits in the listen backlog until the server accepts it. The server used to close its listener
    // in the signal handler, before accepting what was waiting, and the kernel reset those connections.
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = { ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: url, SHUTDOWN_GRACE_SECONDS: String(GRACE_SECONDS) };
    const server = await startSatServe(env);
    const exit = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
    const session = await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
    const made = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'new-connections' }) });
    expect(made.status).toBe(201);
    const authorization = basic(made.body.client_id, made.body.client_secret);
    const body = 'grant_type=client_credentials';

    interface Sent {
      /** When the client saw the connection established and the whole request written (performance.now()). */
      connectedAt?: number;
      writtenAt?: number;
      status?: number;
      error?: string;
    }
    const one = () =>
      new Promise<Sent>((resolve) => {
        const sent: Sent = {};
        const req = http.request(`${url}/token`, {
          method: 'POST',
          agent: false, // a new connection for each request
          headers: { authorization, 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) },
        });
        req.on('socket', (socket) => socket.once('connect', () => (sent.connectedAt = performance.now())));
        req.on('finish', () => (sent.writtenAt = performance.now()));
        req.on('response', (res) => {
          res.resume();
          res.on('end', () => resolve({ ...sent, status: res.statusCode }));
        });
        req.on('error', (err: NodeJS.ErrnoException) => resolve({ ...sent, error: err.code ?? err.message }));
        req.end(body);
      });
    const samples: Sent[] = [];
    let stop = false;
    const loop = async () => {
      while (!stop) {
        const s = await one();
        samples.push(s);
        if (s.error) return; // the server is gone for new connections: as expected after the signal
      }
    };
    const loops = Array.from({ length: 48 }, loop);
    while (samples.length < 300) await new Promise((r) => setTimeout(r, 20));
    const signalAt = performance.now();
    server.child.kill('SIGTERM');
    const code = await exit;
    stop = true;
    await Promise.all(loops);

    // Connected and written before the signal, as this process saw it: the request was in the server's kernel.
    const arrived = samples.filter((s) => s.writtenAt !== undefined && s.writtenAt < signalAt && s.connectedAt! < signalAt);
    expect(arrived.length).toBeGreaterThan(300);
    expect(arrived.filter((s) => s.status !== 200)).toEqual([]);
    expect(code).toBe(0);
  });

  it('exits 0 within the grace while the SMTP server hangs, after writing the last /token call; the mail stays pending', async () => {
    // A relay that takes the message and never acknowledges the end of DATA: the client may wait 10 minutes
    // (RFC 5321 §4.5.3.2.6). The shutdown used to wait for it, past the grace, and exit 1 without the bookkeeping.
    let dataArrived!: () => void;
    const hanging = new Promise<void>((resolve) => (dataArrived = resolve));
    const smtp = new SMTPServer({
      disabledCommands: ['STARTTLS', 'AUTH'],
      authOptional: true,
      logger: false,
      onData(stream) {
        stream.resume();
        stream.on('end', () => dataArrived()); // and never calls back: no answer to the end of DATA
      },
    });
    const smtpPort = await freePort();
    await new Promise<void>((resolve) => smtp.listen(smtpPort, '127.0.0.1', () => resolve()));
    const grace = 3;
    const port = await freePort();
    const url = `http://127.0.0.1:${port}`;
    const env = {
      ...db.env,
      ...ADMIN,
      PORT: String(port),
      HOST: '127.0.0.1',
      ISSUER: url,
      SHUTDOWN_GRACE_SECONDS: String(grace),
      SMTP_URL: `smtp://127.0.0.1:${smtpPort}`,
      MAIL_POLL_INTERVAL_MS: '100',
    };
    const server = await startSatServe(env);
    try {
      const exit = new Promise<{ code: number | null; at: number }>((resolve) =>
        server.child.once('exit', (code) => resolve({ code, at: performance.now() })),
      );
      const session = await signIn({ url }, ADMIN.ADMIN_EMAIL, ADMIN.ADMIN_PASSWORD);
      const made = await call({ url }, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'smtp-hangs' }) });
      expect(made.status).toBe(201); // queues its "token generated" mail to the administrator
      await hanging; // the worker sent it and waits for the relay's answer
      const res = await fetch(`${url}/token`, {
        method: 'POST',
        headers: { authorization: basic(made.body.client_id, made.body.client_secret), 'content-type': 'application/x-www-form-urlencoded' },
        body: 'grant_type=client_credentials',
      });
      expect(res.status).toBe(200);
      const signalAt = performance.now();
      server.child.kill('SIGTERM');
      const exited = await exit;
      expect(exited.code).toBe(0);
      expect(exited.at - signalAt).toBeLessThan(grace * 1000);
      expect(server.output()).toMatch(/"msg":"mail send cut short by the shutdown; handed back for the next run"/);
      expect(server.output()).toMatch(/"msg":"stopped"/);

      // The /token call's bookkeeping reached the database.
      const listed = await runSat(['token', 'list', '--org', 'Default', '--json'], env);
      expect(listed.code).toBe(0);
      const token = (JSON.parse(listed.stdout) as { items: Array<{ id: string; last_used_at: string | null; tokens_last_hour: number }> }).items.find(
        (t) => t.id === made.body.id,
      );
      expect(token?.last_used_at).not.toBeNull();
      expect(token?.tokens_last_hour).toBe(1);
      // The mail was handed back, not failed: the next start sends it at once.
      const database = await openDb(loadConfig(db.env));
      try {
        const mail = (await database.knex<MailOutboxRow>('mail_outbox').where({ kind: 'token_generated' }).whereLike('text_body', '%smtp-hangs%').first())!;
        expect(mail).toMatchObject({ status: 'pending', attempts: 0, locked_by: null, locked_until: null });
      } finally {
        await database.close();
      }
    } finally {
      if (server.child.exitCode === null) server.child.kill('SIGKILL');
      await new Promise<void>((resolve) => smtp.close(() => resolve()));
    }
  }, 60_000);

  it('stops gracefully when started with `npm start` and npm gets the SIGTERM (a supervisor signals its child)', async () => {
    const port = await freePort();
    const env = { ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}` };
    const npm = await startNpmStart(env);
    try {
      expect(serversOnPort(port).length).toBeGreaterThan(0);
      const code = await npm.stop(); // SIGTERM to npm only, as systemd (KillMode=mixed), pm2 or a shell script send it
      expect(serversOnPort(port)).toEqual([]); // not left running on its own, holding the port and the database
      expect(npm.output()).toMatch(/"signal":"SIGTERM".*"msg":"shutting down"/);
      expect(npm.output()).toMatch(/"msg":"stopped"/);
      expect(code).toBe(0);
    } finally {
      for (const pid of serversOnPort(port)) process.kill(pid, 'SIGKILL');
    }
  });
});

describeEmbedded('graceful shutdown with a client idle on the control socket (embedded)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('embedded');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('is not held up by it: exit 0 within the grace', async () => {
    const port = await freePort();
    const env = { ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}`, SHUTDOWN_GRACE_SECONDS: '2' };
    const server = await startSatServe(env);
    // A local client (a hung `sat`, a probe) that connected and sent nothing.
    const idle = net.connect(path.join(db.dataDir, 'sat.sock'));
    const idleClosed = new Promise<void>((resolve) => idle.once('close', () => resolve()));
    idle.on('error', () => undefined);
    await new Promise<void>((resolve, reject) => {
      idle.once('connect', () => resolve());
      idle.once('error', reject);
    });
    const signalAt = performance.now();
    const code = await server.stop();
    const took = performance.now() - signalAt;
    idle.destroy();
    await idleClosed;
    expect(server.output()).not.toMatch(/shutdown did not finish/);
    expect(code).toBe(0);
    expect(took).toBeLessThan(2_000);
  }, 90_000);

  it('a SIGTERM during a first start finishes the step under way, then stops without ever listening: exit 0', async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'sat-first-start-'));
    try {
      const child = spawnSatProcess(['serve'], { ...ADMIN, DATA_DIR: dataDir, PORT: String(port), HOST: '127.0.0.1' });
      let out = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      // "starting" comes before the new database is created and migrated (seconds): signal then.
      await new Promise<void>((resolve) => {
        const onData = (d: Buffer) => {
          out += d.toString();
          if (out.includes('"msg":"starting"')) resolve();
        };
        child.stdout!.on('data', onData);
        child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      });
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toMatch(/"msg":"shutting down"/);
      expect(out).toMatch(/"msg":"stopped"/);
      expect(out).not.toMatch(/"msg":"listening"/);
      await expect(fetch(`http://127.0.0.1:${port}/healthz`)).rejects.toThrow(); // nothing listens there
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 90_000);

  it('a SIGTERM while `sat serve` is still loading its modules stops it the same way: logged, exit 0 (not 143)', async () => {
    const port = await freePort();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-early-signal-'));
    try {
      // The signal comes while the program's own modules load: a module hook sends it as `src/cli/run.js` is loaded
      // (the bin imports it after its first handlers are in place; it was a static import, loaded before any).
      const hooks = path.join(dir, 'hooks.mjs');
      writeFileSync(
        hooks,
        "export async function load(url, context, next) { if (url.endsWith('/cli/run.js')) process.kill(process.pid, 'SIGTERM'); return next(url, context); }\n",
      );
      const preload = path.join(dir, 'preload.mjs');
      writeFileSync(preload, `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(hooks).href)});\n`);
      const child = spawnSatProcess(['serve'], {
        ...ADMIN,
        DATA_DIR: path.join(dir, 'data'),
        PORT: String(port),
        HOST: '127.0.0.1',
        NODE_OPTIONS: `--import ${pathToFileURL(preload).href}`,
      });
      let out = '';
      const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
      child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
      expect(await exited).toBe(0);
      expect(out).toMatch(/"signal":"SIGTERM".*"msg":"shutting down"/);
      expect(out).toMatch(/"msg":"stopped"/);
      expect(out).not.toMatch(/"msg":"listening"/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('stops cleanly on SIGHUP too (the terminal of a foreground server closed): logged, exit 0', async () => {
    const port = await freePort();
    const server = await startSatServe({ ...db.env, ...ADMIN, PORT: String(port), HOST: '127.0.0.1', ISSUER: `http://127.0.0.1:${port}` });
    const exited = new Promise<number | null>((resolve) => server.child.once('exit', (code) => resolve(code)));
    server.child.kill('SIGHUP');
    expect(await exited).toBe(0); // not 129, the default for SIGHUP
    expect(server.output()).toMatch(/"signal":"SIGHUP".*"msg":"shutting down"/);
    expect(server.output()).toMatch(/"signal":"SIGHUP".*"msg":"stopped"/);
  }, 90_000);
});
