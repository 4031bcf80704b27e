// `sat serve`: config (and what it names: keys, files) → database → migrations → first admin → keys → HTTP server → control socket → jobs.
import { chmodSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { configurePasswordHashing, ensureFirstAdmin, pruneSessions } from './accounts/index.js';
import { runCommand } from './commands.js';
import type { Config } from './config/index.js';
import { startControlServer } from './control/index.js';
import { makeDirectories, makeOwnerOnly, migrateLatest, openDb, restrictUmask, type Database } from './db/index.js';
import type { Deps } from './deps.js';
import { startJobs, type Job, type Jobs } from './jobs.js';
import { createLogger, type Logger } from './log.js';
import { deliverDueMail, pruneSentMail } from './mail/delivery.js';
import { createMailTransport } from './mail/transport.js';
import { drainHttpServer, trackConnections } from './http/drain.js';
import { answerClientErrors, answerConnect } from './http/client-error.js';
import { missingKeyFor, openKeyRing, type KeyRing } from './keys/index.js';
import { ScanningKeys } from './scanning/keys.js';
import { createServer, type Prepared } from './server.js';
import { enqueueExpiryNotices, expirePreviousSecrets, pruneIssuanceBuckets, pruneOneTimeUses, pruneRevokedAccessTokens, revokeDormantTokens } from './tokens/index.js';
import { oauthEndpointMatcher, type OAuth } from './oauth/index.js';

export interface Running {
  url: string;
  deps: Deps;
  /** The OAuth edge (key reloads, usage flush), for operations and tests. */
  oauth: OAuth;
  /** The background jobs: `jobs.run('deliver-mail')` runs one now (tests, with `jobs: 'manual'`). */
  jobs: Pick<Jobs, 'run' | 'names'>;
  close(): Promise<void>;
}

/** How long a starting server waits for a `sat` command that holds DATA_DIR (commands wait as long for a server). */
const DATA_DIR_WAIT_MS = 120_000;

/** DATA_DIR/initial-admin-password, 0600 (SPEC Part 2 "Passwords never on a command line or in logs"). */
export function initialAdminPasswordPath(dataDir: string): string {
  return path.join(dataDir, 'initial-admin-password');
}

function writeInitialAdminPassword(dataDir: string, email: string, password: string): string {
  makeDirectories(dataDir);
  const file = initialAdminPasswordPath(dataDir);
  writeFileSync(file, `${email}\n${password}\n`, { mode: 0o600, flag: 'w' });
  chmodSync(file, 0o600); // in case it was there before, with other modes
  return file;
}

/** Every job writes: on an embedded database with an almost full disk they wait for space (issue 10 item 13). */
function whileDiskAllows(db: Database, jobs: Job[]): Job[] {
  return jobs.map((job) => ({ ...job, run: () => (db.diskSpace?.().low ? Promise.resolve(0) : job.run()) }));
}

/**
 * The configuration checks that need no database, run before the database is touched, so a start that is refused
 * anyway migrates nothing, creates no first administrator and writes no initial-admin-password: the key-encryption
 * key (SPEC Part 2 "PostgreSQL mode refuses to start without one": KeyEncryptionError; on the embedded database
 * DATA_DIR's key, generated on the first start) and SECRET_SCANNING_KEYS_FILE (ScanningKeysError). The results are
 * handed to createServer, so each is read once.
 */
export function checkStartConfig(config: Readonly<Config>, log: Logger): Prepared {
  const keyRing = openKeyRing(config, config.databaseUrl ? 'postgres' : 'embedded', log);
  const file = config.secretScanningKeysFile;
  return { keyRing, ...(file ? { scanningKeys: new ScanningKeys(file, log) } : {}) };
}

/**
 * An embedded install whose key-encryption key came from KEY_ENCRYPTION_KEY(_FILE), started once without it: the
 * start generated DATA_DIR/key-encryption-key, which opens none of the stored keys. Rather than leave a useless key
 * behind (and a log line telling the operator to back it up), the file goes and the start stops, naming the fix.
 */
async function refuseForeignSealedKeys(knex: Knex, ring: KeyRing): Promise<void> {
  const file = ring.kek.dataDirFile;
  if (!ring.kek.generated || !file) return;
  const sealed = await knex('signing_keys').whereNotNull('sealed_jwk').first('kid');
  if (!sealed) return;
  rmSync(file, { force: true }); // the one just generated
  throw missingKeyFor(file);
}

/** What a caller (a test, an embedding) may inject into `serve`; production passes nothing. */
export interface ServeOptions {
  log?: Logger;
  /** The clock every service reads (deps.clock). Default: the wall clock. */
  clock?: () => Date;
  /** `timers` (default): each job runs on its interval. `manual`: no timers; call `running.jobs.run(name)`. */
  jobs?: 'timers' | 'manual';
  /**
   * Aborted when a stop was asked for while the server was starting (SIGTERM during a first start's migrations):
   * the step under way finishes, then the start ends with StartCancelledError instead of listening.
   */
  signal?: AbortSignal;
}

/** serve() stopped before listening because its `signal` was aborted; nothing is left open. */
export class StartCancelledError extends Error {
  override readonly name = 'StartCancelledError';
  constructor() {
    super('stopped while starting');
  }
}

/**
 * Starts the server: `serve(config)`, `serve(config, logger)` (kept for older callers) or
 * `serve(config, { log, clock, jobs })`, or `serve(config, logger, { clock, jobs })`.
 */
export async function serve(config: Readonly<Config>, options: ServeOptions | Logger = {}, more: ServeOptions = {}): Promise<Running> {
  const opts: ServeOptions = { ...(isLogger(options) ? { log: options } : options), ...more };
  const log = opts.log ?? createLogger(config.logLevel);
  const clock = opts.clock ?? (() => new Date());
  // SPEC Part 2: DATA_DIR owner-only whatever the umask, and whether or not it existed (fixes older installs).
  restrictUmask();
  configurePasswordHashing(config.passwordHashing);
  const files = makeOwnerOnly(config.dataDir, !config.databaseUrl || !config.smtpUrl);
  if (files.changed > 0) log.warn('made DATA_DIR owner-only', { data_dir: config.dataDir, changed: files.changed });
  if (files.skipped > 0) log.warn('entries in DATA_DIR belong to another user and stay as they are', { skipped: files.skipped });
  const prepared = checkStartConfig(config, log);
  // A `sat` command holding the embedded database (a cron job's backup) is waited for, as commands wait for the
  // server: up to two minutes (docs/operations.md).
  const db = await openDb(config, log, { lockWaitMs: DATA_DIR_WAIT_MS });
  try {
    const deps: Deps = { config, db, log, clock };
    const applied = await migrateLatest(db.knex);
    if (applied.length) log.info('migrations applied', { applied });
    await refuseForeignSealedKeys(db.knex, prepared.keyRing!);
    if (opts.signal?.aborted) throw new StartCancelledError();

    const first = await ensureFirstAdmin(deps);
    if (first) {
      log.info('first administrator created', { organisation: first.organisation.name, email: first.admin.email });
      if (first.generated_password) {
        if (process.stdout.isTTY) {
          // Printed once, on the terminal, outside the structured log: never logged.
          process.stdout.write(
            `\n  First administrator: ${first.admin.email}\n  Password (shown once): ${first.generated_password}\n\n`,
          );
        } else {
          // stdout is a log collector (a container log): the password goes to an owner-only file instead.
          const file = writeInitialAdminPassword(config.dataDir, first.admin.email, first.generated_password);
          log.warn('the first administrator\'s generated password is in a file readable only by this user: sign in, then delete it', { file });
        }
      }
    }

    if (opts.signal?.aborted) throw new StartCancelledError();
    const { app, oauth, beginDrain } = await createServer(deps, prepared);
    if (opts.signal?.aborted) throw new StartCancelledError();
    // A request (headers and body) must arrive within REQUEST_TIMEOUT_SECONDS, else Node answers 408 and closes:
    // a body trickled byte by byte cannot hold a connection and a handler for minutes. Checked every second.
    // Node's own Host check answers an empty 400 and logs nothing: the app answers it instead (http/common.ts).
    const handle = app.callback();
    const server = http.createServer({ requestTimeout: config.requestTimeoutMs, connectionsCheckingInterval: 1_000, requireHostHeader: false }, handle);
    const connections = trackConnections(server); // the shutdown waits for those it closes (their access-log lines)
    server.headersTimeout = Math.min(server.headersTimeout, config.requestTimeoutMs);
    server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
    // 408 / 431 / 400 from Node itself, in SPEC's JSON error shape (RFC 6749's at the OAuth endpoints)
    server.on('clientError', answerClientErrors(log, { isOAuthEndpoint: oauthEndpointMatcher(config.issuer) }));
    server.on('checkExpectation', handle); // Expect other than 100-continue: the app's 417, not Node's empty one
    server.on('connect', answerConnect(log)); // CONNECT: a JSON 400 instead of a connection closed without a word
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(config.port, config.host, () => resolve());
    });
    const { port } = server.address() as AddressInfo;
    const control =
      db.kind === 'embedded'
        ? await startControlServer(config.dataDir, async (req) => {
            const res = await runCommand(deps, req.command, req.args);
            // A new or rewrapped key is in this server's JWKS at once (SPEC: within 5 s of `sat keys rotate`).
            if (res.ok && req.command.startsWith('keys-')) await oauth.reloadKeys();
            return res;
          })
        : undefined;

    const mailTransport = createMailTransport(config, log);
    const stopMail = new AbortController(); // shutdown: the mail worker hands back what it has not sent yet
    const jobs = startJobs(
      whileDiskAllows(db, [
        { name: 'flush-last-used', intervalMs: 5_000, run: () => oauth.flushUsage() },
        // Keys added by another instance or `sat` (PostgreSQL), and pending keys whose time to sign has come: well
        // within the 5 s the SPEC allows for publication.
        { name: 'reload-keys', intervalMs: 2_000, run: () => oauth.reloadKeys() },
        { name: 'rotate-keys', intervalMs: 600_000, run: () => oauth.rotateKeysIfDue() },
        { name: 'prune-keys', intervalMs: 3_600_000, run: () => oauth.pruneKeys() },
        {
          // Expired admin sessions, finished sign-in throttle windows, revoked access tokens past their exp.
          name: 'prune-expired',
          intervalMs: 60_000, // bounded state (SPEC Part 2): throttle rows past their window go within a minute
          run: async () =>
            (await pruneSessions(deps)) +
            (await pruneRevokedAccessTokens(deps.db.knex, deps.clock())) +
            (await pruneOneTimeUses(deps.db.knex, new Date())) +
            (await pruneIssuanceBuckets(deps.db.knex, deps.clock())),
        },
        {
          name: 'deliver-mail',
          intervalMs: config.mailPollIntervalMs,
          run: () => deliverDueMail(deps, mailTransport, { signal: stopMail.signal }),
        },
        { name: 'expiry-notices', intervalMs: config.expiryCheckIntervalMs, run: () => enqueueExpiryNotices(deps) },
        { name: 'secret-expiry', intervalMs: 60_000, run: () => expirePreviousSecrets(deps) },
        { name: 'prune-sent-mail', intervalMs: 3_600_000, run: () => pruneSentMail(deps) },
        {
          // SPEC "Organisation policy": revoke tokens dormant for the policy's revoke_dormant_after_days. This
          // instance's unrecorded uses are written first, so a token used a moment ago is not taken for dormant.
          name: 'revoke-dormant',
          intervalMs: config.policyCheckIntervalMs,
          run: async () => {
            await oauth.flushUsage();
            return revokeDormantTokens(deps);
          },
        },
      ]),
      log,
      { timers: (opts.jobs ?? 'timers') === 'timers' },
    );
    log.info('listening', {
      port,
      issuer: config.issuer,
      database: db.kind === 'embedded' ? `embedded (${config.dataDir})` : 'postgresql',
    });

    let closing: Promise<void> | undefined;
    return {
      url: `http://127.0.0.1:${port}`,
      deps,
      oauth,
      jobs: { run: (name) => jobs.run(name), names: jobs.names },
      close() {
        // SPEC "Operations": unready at once, stop accepting, let in-flight requests finish (up to the grace),
        // stop the workers, flush bookkeeping, close the pool. Each step runs even if an earlier one failed.
        closing ??= (async () => {
          beginDrain();
          stopMail.abort(); // the mail worker hands back what it has not sent yet
          const [drained] = await Promise.all([
            drainHttpServer(server, config.shutdownGraceMs, connections),
            jobs.stop().catch((err) => log.warn('background jobs did not stop cleanly', { err })),
          ]);
          if (drained.forced > 0) {
            log.warn('shutdown grace ran out; closed connections with requests in progress', {
              connections: drained.forced,
              grace_ms: config.shutdownGraceMs,
            });
          }
          mailTransport.close();
          await control?.close();
          await oauth.flushUsage().catch((err) => log.warn('could not record last use', { err }));
          await oauth.releaseHourlyReservations().catch((err) => log.warn('could not give back unused hourly-limit reservations', { err }));
          await db.close();
        })();
        return closing;
      },
    };
  } catch (err) {
    await db.close();
    throw err;
  }
}

function isLogger(value: ServeOptions | Logger): value is Logger {
  return typeof (value as Logger).info === 'function' && typeof (value as Logger).warn === 'function';
}
