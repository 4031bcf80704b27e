// `sat serve`: config (and what it names: keys, files) → database → migrations → first admin → keys → HTTP server → control socket → jobs.
import { accessSync, constants, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { AddressInfo } from 'node:net';
import type { Knex } from 'knex';
import { configurePasswordHashing, ensureFirstAdmin, pruneSessions, releasePasswordHashing } from './accounts/index.js';
import { runCommand } from './commands.js';
import type { Config } from './config/index.js';
import { startControlServer } from './control/index.js';
import { MIGRATION_WAIT_MESSAGE, checkDataDirEntries, makeDirectories, makeOwnerOnly, migrateLatest, openDb, restrictUmask, type Database } from './db/index.js';
import type { Deps } from './deps.js';
import { startJobs, type Job, type Jobs } from './jobs.js';
import { createLogger, type Logger } from './log.js';
import { deliverDueMail, pruneSentMail } from './mail/delivery.js';
import { createMailTransport } from './mail/transport.js';
import { drainHttpServer, trackConnections } from './http/drain.js';
import { answerClientErrors, answerConnect } from './http/client-error.js';
import { invitesBody } from './http/common.js';
import { MAX_JSON_BODY_BYTES } from './http/validate.js';
import { MAX_REVOKE_BODY_BYTES, PUBLIC_REVOKE_PATH } from './scanning/routes.js';
import { GENERATED_KEK_MESSAGE, missingKeyFor, openKeyRing, type KeyRing } from './keys/index.js';
import { ScanningKeys } from './scanning/keys.js';
import { createServer, type Prepared } from './server.js';
import { enqueueExpiryNotices, expirePreviousSecrets, pruneIssuanceBuckets, pruneOneTimeUses, pruneRevokedAccessTokens, revokeDormantTokens } from './tokens/index.js';
import { MAX_FORM_BYTES, oauthEndpointMatcher, type OAuth } from './oauth/index.js';

/** A started server (serve): its URL, its services, the OAuth edge and the jobs, and close() for a graceful stop. */
export interface Running {
  url: string;
  deps: Deps;
  /** The OAuth edge (key reloads, usage flush), for operations and tests. */
  oauth: OAuth;
  /** The background jobs: `jobs.run('deliver-mail')` runs one now (tests, with `jobs: 'manual'`). */
  jobs: Pick<Jobs, 'run' | 'names' | 'schedule'>;
  close(): Promise<void>;
}

/** How long a starting server waits for a `sat` command that holds DATA_DIR (commands wait as long for a server). */
const DATA_DIR_WAIT_MS = 120_000;

/** DATA_DIR/initial-admin-password, 0600 (SPEC Part 2 "Passwords never on a command line or in logs"). */
export function initialAdminPasswordPath(dataDir: string): string {
  return path.join(dataDir, 'initial-admin-password');
}

/**
 * Makes DATA_DIR (owner-only) and checks that this process may write in it, for initial-admin-password; throws an
 * Error naming the directory otherwise.
 */
function checkInitialAdminPasswordPlace(dataDir: string): void {
  try {
    makeDirectories(dataDir);
    accessSync(dataDir, constants.W_OK);
  } catch (err) {
    throw new Error(
      `cannot write the first administrator's generated password to ${initialAdminPasswordPath(dataDir)} ` +
        `(${(err as NodeJS.ErrnoException).code ?? (err as Error).message}): make DATA_DIR writable, set ADMIN_PASSWORD, or start once on a terminal. Nothing was created`,
    );
  }
}

function writeInitialAdminPassword(dataDir: string, email: string, password: string): string {
  makeDirectories(dataDir);
  const file = initialAdminPasswordPath(dataDir);
  // A new file, never through what is there: one left by an earlier start goes first, and 'wx' (O_CREAT | O_EXCL)
  // refuses a link or file that appears meanwhile instead of writing the password through it.
  rmSync(file, { force: true });
  writeFileSync(file, `${email}\n${password}\n`, { mode: 0o600, flag: 'wx' });
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
  // The scanning keys first: a start refused for them creates nothing (the key-encryption key below may be made).
  const file = config.secretScanningKeysFile;
  const scanningKeys = file ? new ScanningKeys(file, log) : undefined;
  // No log here: a key-encryption key generated now is announced once the database shows it is wanted
  // (refuseForeignSealedKeys), not before a start that refuses it and removes it again.
  const keyRing = openKeyRing(config, config.databaseUrl ? 'postgres' : 'embedded');
  return { keyRing, ...(scanningKeys ? { scanningKeys } : {}) };
}

/**
 * An embedded install whose key-encryption key came from KEY_ENCRYPTION_KEY(_FILE), started once without it (or a
 * restored backup whose key file was not restored): the start generated DATA_DIR/key-encryption-key, which opens none
 * of the stored keys. Rather than leave a useless key behind, the file goes and the start stops, naming the fix.
 * Otherwise a DATA_DIR key that seals no signing key yet (generated by this start, or by an earlier one refused
 * before it got this far) is logged, telling the operator to back it up.
 */
async function refuseForeignSealedKeys(knex: Knex, ring: KeyRing, log: Logger): Promise<void> {
  const file = ring.kek.dataDirFile;
  if (!file) return;
  const sealed = await knex('signing_keys').whereNotNull('sealed_jwk').first('kid');
  if (ring.kek.generated && sealed) {
    rmSync(file, { force: true }); // the one just generated
    throw missingKeyFor(file);
  }
  // Told while the key seals nothing yet: at the start that generated it, and also at the next one when that start
  // was refused before it got here (another server held DATA_DIR, a newer database): the file exists, and the line
  // that says to back it up was never written. The file is never removed then: another process may have read it.
  if (!sealed) log.warn(GENERATED_KEK_MESSAGE, { file });
}

/** What a caller (a test, an embedding) may inject into `serve`; production passes nothing. */
export interface ServeOptions {
  log?: Logger;
  /** The clock every service reads (deps.clock). Default: the wall clock. */
  clock?: () => Date;
  /** `timers` (default): each job runs on its interval. `manual`: no timers; call `running.jobs.run(name)`. */
  jobs?: 'timers' | 'manual';
  /** `false`: no job runs before its first interval (the test servers, whose clocks tests move). Default true. */
  jobsSoonAfterStart?: boolean;
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
 * Throws StartCancelledError when a stop was asked for (`signal` aborted), once the event loop has taken the signals
 * that came meanwhile. A process signal's handler runs only in the loop's poll phase, and the steps of a start on
 * the embedded database (its engine, building the provider) are CPU work chained through promises: a SIGTERM sent
 * during them used to be seen after `listening` (found by an operator's test: "shutting down" right after it).
 */
export async function stopIfCancelled(signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return;
  // Two check phases: the second comes after a whole turn of the loop, whose poll phase ran the signals' handlers
  // (the first may come right after the poll phase this code runs in).
  await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve)));
  if (signal.aborted) throw new StartCancelledError();
}

/**
 * KEY_ENCRYPTION_KEY_FILE readable or writable by other OS users (mode 0644, say): a warning at start, naming the fix.
 * The server does not change a file it did not create (a mounted secret may be read-only, or shared by design).
 */
function warnIfKeyFileReadable(config: Readonly<Config>, log: Logger): void {
  const source = config.keyEncryptionKey?.source;
  if (!source || !path.isAbsolute(source)) return; // KEY_ENCRYPTION_KEY itself: no file
  try {
    const mode = statSync(source).mode & 0o777;
    if (mode & 0o077) {
      log.warn('KEY_ENCRYPTION_KEY_FILE is readable by other users of this machine: make it owner-only (chmod 600)', {
        file: source,
        mode: mode.toString(8).padStart(4, '0'),
      });
    }
  } catch {
    // Read a moment ago by the configuration; gone now: the key in memory is what counts.
  }
}

/** The shortest KEY_PUBLISH_AHEAD_SECONDS without a warning at start: twice common verifiers' refetch interval. */
const SAFE_PUBLISH_AHEAD_SECONDS = 120;

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
  // None of the files it uses there a link or an untrusted user's (UnsafeDataDirError).
  checkDataDirEntries(config.dataDir, config.databaseUrl ? (config.smtpUrl ? 'postgres' : 'postgres-mail-files') : 'embedded');
  warnIfKeyFileReadable(config, log);
  log.info('starting', { database: config.databaseUrl ? 'postgresql' : `embedded (${config.dataDir})` });
  if (config.keyPublishAheadSeconds < SAFE_PUBLISH_AHEAD_SECONDS) {
    // Allowed (a test setup, a platform whose verifiers refetch on an unknown kid at once), but risky: docs/keys.md.
    log.warn(
      `KEY_PUBLISH_AHEAD_SECONDS is below ${SAFE_PUBLISH_AHEAD_SECONDS}: verifiers that refetch the JWKS every 30 to 60 s may reject tokens of a new signing key for a while`,
      { key_publish_ahead_seconds: config.keyPublishAheadSeconds },
    );
  }
  const prepared = checkStartConfig(config, log);
  // A `sat` command holding the embedded database (a cron job's backup) is waited for, as commands wait for the
  // server: up to two minutes (docs/operations.md).
  const db = await openDb(config, log, { lockWaitMs: DATA_DIR_WAIT_MS });
  try {
    const deps: Deps = { config, db, log, clock };
    const applied = await migrateLatest(db.knex, { onWait: (heldBy) => log.warn(MIGRATION_WAIT_MESSAGE, { held_by: heldBy }) });
    if (applied.length) log.info('migrations applied', { applied });
    await refuseForeignSealedKeys(db.knex, prepared.keyRing!, log);
    await stopIfCancelled(opts.signal);

    // Where a generated password will go when stdout is no terminal: checked before the administrator exists, so a
    // DATA_DIR that cannot be written (a read-only root filesystem) stops the start before a password nobody sees.
    const first = await ensureFirstAdmin(deps, {
      beforeGenerating: () => {
        if (!process.stdout.isTTY) checkInitialAdminPasswordPlace(config.dataDir);
      },
    });
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

    await stopIfCancelled(opts.signal);
    const { app, oauth, beginDrain } = await createServer(deps, prepared);
    await stopIfCancelled(opts.signal);
    // A request (headers and body) must arrive within REQUEST_TIMEOUT_SECONDS, else Node answers 408 and closes:
    // a body trickled byte by byte cannot hold a connection and a handler for minutes. Checked every second.
    // Node's own Host check answers an empty 400 and logs nothing: the app answers it instead (http/common.ts).
    const handle = app.callback();
    const server = http.createServer({ requestTimeout: config.requestTimeoutMs, connectionsCheckingInterval: 1_000, requireHostHeader: false }, handle);
    const connections = trackConnections(server); // the shutdown waits for those it closes (their access-log lines)
    server.headersTimeout = Math.min(server.headersTimeout, config.requestTimeoutMs);
    server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
    // 408 / 431 / 400 from Node itself, in SPEC's JSON error shape (RFC 6749's at the OAuth endpoints)
    const isOAuthPath = oauthEndpointMatcher(config.issuer);
    server.on('clientError', answerClientErrors(log, { isOAuthEndpoint: isOAuthPath }));
    server.on('checkExpectation', handle); // Expect other than 100-continue: the app's 417, not Node's empty one
    // Expect: 100-continue (RFC 9110 §10.1.1): a body its endpoint would not read (over its limit: the OAuth forms'
    // 56 KB, the public reports' 64 KB, 1 MB elsewhere), or a request whose head is refused, is not invited with
    // "100 Continue" only to be refused (the client may send it all first); any other is.
    const bodyLimit = (path: string) => (isOAuthPath(path) ? MAX_FORM_BYTES : path.endsWith(PUBLIC_REVOKE_PATH) ? MAX_REVOKE_BODY_BYTES : MAX_JSON_BODY_BYTES);
    server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (invitesBody(req, bodyLimit)) res.writeContinue();
      handle(req, res);
    });
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
    const stopMail = new AbortController(); // shutdown: the mail worker stops between messages
    const cutMailSend = new AbortController(); // shutdown, after the drain: a send still in progress is cut
    const jobs = startJobs(
      whileDiskAllows(db, [
        { name: 'flush-last-used', intervalMs: 5_000, run: () => oauth.flushUsage() },
        // Keys added by another instance or `sat` (PostgreSQL), and pending keys whose time to sign has come: well
        // within the 5 s the SPEC allows for publication.
        { name: 'reload-keys', intervalMs: 2_000, run: () => oauth.reloadKeys() },
        { name: 'rotate-keys', intervalMs: 600_000, run: () => oauth.rotateKeysIfDue(), soonAfterStart: true },
        { name: 'prune-keys', intervalMs: 3_600_000, run: () => oauth.pruneKeys(), soonAfterStart: true },
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
          run: () => deliverDueMail(deps, mailTransport, { signal: stopMail.signal, sendSignal: cutMailSend.signal }),
        },
        // Soon after a start too: "the expiry check runs at least hourly" (SPEC "Email") also for an instance
        // restarted more often than its interval.
        { name: 'expiry-notices', intervalMs: config.expiryCheckIntervalMs, run: () => enqueueExpiryNotices(deps), soonAfterStart: true },
        { name: 'secret-expiry', intervalMs: 60_000, run: () => expirePreviousSecrets(deps) },
        { name: 'prune-sent-mail', intervalMs: 3_600_000, run: () => pruneSentMail(deps), soonAfterStart: true },
        {
          // SPEC "Organisation policy": revoke tokens dormant for the policy's revoke_dormant_after_days. This
          // instance's unrecorded uses are written first, so a token used a moment ago is not taken for dormant.
          name: 'revoke-dormant',
          intervalMs: config.policyCheckIntervalMs,
          firstRunAfterMs: 600_000, // 10-20 min after a start (or its interval when shorter): live clients seen first
          run: async () => {
            await oauth.flushUsage();
            return revokeDormantTokens(deps);
          },
        },
      ]),
      log,
      { timers: (opts.jobs ?? 'timers') === 'timers', soonAfterStart: opts.jobsSoonAfterStart ?? true },
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
      jobs: { run: (name) => jobs.run(name), names: jobs.names, schedule: jobs.schedule },
      close() {
        // SPEC "Operations": unready at once, stop accepting, let in-flight requests finish (up to the grace),
        // flush bookkeeping, stop the workers, close the pool. Each step runs even if an earlier one failed.
        closing ??= (async () => {
          beginDrain();
          stopMail.abort(); // the mail worker sends no further message
          const jobsStopped = jobs.stop().catch((err) => log.warn('background jobs did not stop cleanly', { err }));
          const drained = await drainHttpServer(server, config.shutdownGraceMs, connections);
          // A send still in progress (a hanging relay waits up to SMTP_TIMEOUTS) is cut: its message is handed back
          // unsent and the next run sends it; the shutdown never waits for the relay past the drain.
          cutMailSend.abort();
          if (drained.forced > 0) {
            log.warn('shutdown grace ran out; closed connections with requests in progress', {
              connections: drained.forced,
              grace_ms: config.shutdownGraceMs,
            });
          }
          // The last requests' bookkeeping, written before waiting for the jobs: whatever a job still does, it is kept.
          await oauth.flushUsage().catch((err) => log.warn('could not record last use', { err }));
          await oauth.releaseHourlyReservations().catch((err) => log.warn('could not give back unused hourly-limit reservations', { err }));
          await jobsStopped;
          mailTransport.close();
          await control?.close();
          releasePasswordHashing(); // no request left to hash for; a hash of another server in this process finishes
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
