// A real server (src/main.ts `serve`) on a free port, for HTTP tests.
import net from 'node:net';
import { loadConfig } from '../../src/config/index.js';
import { createLogger, type Logger } from '../../src/log.js';
import { serve, type Running } from '../../src/main.js';
import { TestClock } from './clock.js';
import { TEST_PASSWORD_HASH_COST } from './cost.js';
import type { TestDb } from './db.js';

export { TEST_PASSWORD_HASH_COST };

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

export interface TestServer extends Running {
  issuer: string;
  logLines: string[];
  /** The server's clock (deps.clock): follows real time until a test moves or freezes it. */
  clock: TestClock;
  /** Runs one background job now and resolves when it is done: 'deliver-mail', 'expiry-notices', … */
  runJob(name: string): Promise<unknown>;
}

export interface StartServerOptions {
  /** The clock to inject; default a new TestClock on real time. Share one between instances of a test. */
  clock?: TestClock;
  /**
   * `manual`: no job runs by itself, the test calls runJob (deterministic, no waiting). `timers` (default, as in
   * production): jobs also run on their intervals.
   */
  jobs?: 'timers' | 'manual';
  /** Jobs' first runs soon after the start, as in production (default false: each after its interval). */
  soonAfterStart?: boolean;
  /** Where the log lines go (also when the start fails); default a new array, returned as `logLines`. */
  logLines?: string[];
}

/** Starts `sat serve` in-process on `db`, with its issuer equal to the URL it listens on. */
export async function startServer(db: TestDb, env: Record<string, string> = {}, options: StartServerOptions = {}): Promise<TestServer> {
  const port = await freePort();
  const issuer = `http://127.0.0.1:${port}`;
  const config = loadConfig({
    PORT: String(port),
    HOST: '127.0.0.1',
    ISSUER: issuer,
    ADMIN_EMAIL: 'first-admin@example.com',
    ADMIN_PASSWORD: 'first-admin-password',
    PASSWORD_HASH_COST: TEST_PASSWORD_HASH_COST,
    ...db.env,
    ...env,
  });
  const logLines: string[] = options.logLines ?? [];
  const log: Logger = createLogger('debug', {}, (line) => logLines.push(line));
  const clock = options.clock ?? new TestClock();
  // No housekeeping job early in a test (a moved clock would rotate keys): they run on their intervals, as before.
  const running = await serve(config, { log, clock: clock.read, jobs: options.jobs ?? 'timers', jobsSoonAfterStart: options.soonAfterStart ?? false });
  return { ...running, issuer, logLines, clock, runJob: (name) => running.jobs.run(name) };
}
