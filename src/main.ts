// `sat serve`: config → database → migrations → first admin → keys → HTTP server → control socket → jobs.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { ensureFirstAdmin, pruneSessions } from './accounts/index.js';
import { runCommand } from './commands.js';
import type { Config } from './config/index.js';
import { startControlServer } from './control/index.js';
import { migrateLatest, openDb } from './db/index.js';
import type { Deps } from './deps.js';
import { startJobs } from './jobs.js';
import { createLogger, type Logger } from './log.js';
import { deliverDueMail, pruneSentMail } from './mail/delivery.js';
import { enqueueExpiryNotices } from './mail/index.js';
import { createMailTransport } from './mail/transport.js';
import { createServer } from './server.js';
import { pruneOneTimeUses, pruneRevokedAccessTokens } from './tokens/index.js';
import type { OAuth } from './oauth/index.js';

export interface Running {
  url: string;
  deps: Deps;
  /** The OAuth edge (key reloads, usage flush), for operations and tests. */
  oauth: OAuth;
  close(): Promise<void>;
}

export interface ServeOptions {
  /** The clock of deps (tests move it); default the system clock. */
  clock?: () => Date;
}

export async function serve(
  config: Readonly<Config>,
  log: Logger = createLogger(config.logLevel),
  options: ServeOptions = {},
): Promise<Running> {
  const db = await openDb(config, log);
  try {
    const deps: Deps = { config, db, log, clock: options.clock ?? (() => new Date()) };
    const applied = await migrateLatest(db.knex);
    if (applied.length) log.info('migrations applied', { applied });

    const first = await ensureFirstAdmin(deps);
    if (first) {
      log.info('first administrator created', { organisation: first.organisation.name, email: first.admin.email });
      if (first.generatedPassword) {
        // Printed once, on the terminal, outside the structured log: it is never logged or stored in clear.
        process.stdout.write(
          `\n  First administrator: ${first.admin.email}\n  Password (shown once): ${first.generatedPassword}\n\n`,
        );
      }
    }

    const { app, oauth } = await createServer(deps);
    const server = http.createServer(app.callback());
    server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts
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
      [
        { name: 'flush-last-used', intervalMs: 5_000, run: () => oauth.flushUsage() },
        // Keys added by another instance or `sat` (PostgreSQL), and pending keys whose time to sign has come: well
        // within the 5 s the SPEC allows for publication.
        { name: 'reload-keys', intervalMs: 2_000, run: () => oauth.reloadKeys() },
        { name: 'rotate-keys', intervalMs: 600_000, run: () => oauth.rotateKeysIfDue() },
        { name: 'prune-keys', intervalMs: 3_600_000, run: () => oauth.pruneKeys() },
        {
          // Expired admin sessions, finished sign-in throttle windows, revoked access tokens past their exp.
          name: 'prune-expired',
          intervalMs: 600_000,
          run: async () =>
            (await pruneSessions(deps)) +
            (await pruneRevokedAccessTokens(deps.db.knex, deps.clock())) +
            (await pruneOneTimeUses(deps.db.knex, new Date())),
        },
        {
          name: 'deliver-mail',
          intervalMs: config.mailPollIntervalMs,
          run: () => deliverDueMail(deps, mailTransport, { signal: stopMail.signal }),
        },
        { name: 'expiry-notices', intervalMs: config.expiryCheckIntervalMs, run: () => enqueueExpiryNotices(deps) },
        { name: 'prune-sent-mail', intervalMs: 3_600_000, run: () => pruneSentMail(deps) },
      ],
      log,
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
      close() {
        closing ??= (async () => {
          stopMail.abort();
          await jobs.stop();
          mailTransport.close();
          await control?.close();
          await new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeIdleConnections();
          });
          await oauth.flushUsage().catch((err) => log.warn('could not record last use', { err }));
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
