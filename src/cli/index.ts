#!/usr/bin/env node
// `sat`: the command-line tool. Parses argv, dispatches, sets the exit code (0 ok, 1 failed, 2 usage).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { runCommand } from '../commands.js';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { callControl, type ControlResponse } from '../control/index.js';
import {
  acquireDataDirLock,
  DataDirLockedError,
  embeddedDataPath,
  migrateLatest,
  openDb,
  readLockHolder,
  restoreEmbedded,
} from '../db/index.js';
import { createLogger } from '../log.js';
import { serve } from '../main.js';

const usage = `Usage: sat <command> [options]

Commands:
  serve                                   run the server (PORT, DATABASE_URL, DATA_DIR, ...: see README)
  migrate                                 apply pending database migrations
  admin add --org NAME --email EMAIL [--password PW]
                                          add an administrator (creates the organisation when new;
                                          prints a generated password when none is given)
  keys list                               show the published signing keys and the one that signs
  keys rotate [--delay SECONDS]           add a new signing key; it signs after SECONDS (default 0)
                                          and old keys stay published until their tokens expired
  token create --org NAME --name NAME --expires DATE --services ID,ID
                                          generate a system access token (same rules as the admin API;
                                          DATE is YYYY-MM-DD or an ISO date-time with offset); prints
                                          the client secret once
  token list --org NAME                   list the organisation's tokens (never their secrets)
  token revoke --org NAME TOKEN_ID        revoke a token: its client stops working at once
  backup FILE                             copy the embedded database to FILE (mode 0600), also while the
                                          server runs; on PostgreSQL use pg_dump (docs/operations.md)
  restore FILE                            replace the embedded database by the backup in FILE (server
                                          stopped); the replaced data is kept beside it in DATA_DIR

Options:
  --json                                  print the result as JSON
  -h, --help                              show this help

Every command takes the same environment as the server and works on either database, whether or not
the server is running (with the embedded database, through the running server's local socket).`;

class UsageError extends Error {}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      org: { type: 'string' },
      email: { type: 'string' },
      password: { type: 'string' },
      delay: { type: 'string' },
      name: { type: 'string' },
      expires: { type: 'string' },
      services: { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return { values, positionals };
}

type Parsed = ReturnType<typeof parse>;

function toRequest({ values, positionals }: Parsed): { command: string; args: Record<string, unknown> } {
  const [a, b, ...rest] = positionals;
  if (a === 'token' && b === 'revoke') {
    if (!values.org || rest.length !== 1) throw new UsageError('token revoke needs --org and one TOKEN_ID');
    return { command: 'token-revoke', args: { org: values.org, id: rest[0] } };
  }
  if (rest.length) throw new UsageError(`unexpected argument: ${rest.join(' ')}`);
  if (a === 'token' && b === 'create') {
    if (!values.org || values.name === undefined || !values.expires || !values.services) {
      throw new UsageError('token create needs --org, --name, --expires and --services');
    }
    const services = values.services.split(',').map((s) => s.trim()).filter(Boolean);
    return { command: 'token-create', args: { org: values.org, name: values.name, expires: values.expires, services } };
  }
  if (a === 'token' && b === 'list') {
    if (!values.org) throw new UsageError('token list needs --org');
    return { command: 'token-list', args: { org: values.org } };
  }
  if (a === 'migrate' && b === undefined) return { command: 'migrate', args: {} };
  if ((a === 'backup' || a === 'restore') && b !== undefined) return { command: a, args: { file: path.resolve(b) } };
  if (a === 'backup' || a === 'restore') throw new UsageError(`${a} needs a FILE`);
  if (a === 'admin' && b === 'add') {
    if (!values.org || !values.email) throw new UsageError('admin add needs --org and --email');
    return {
      command: 'admin-add',
      args: { org: values.org, email: values.email, ...(values.password !== undefined ? { password: values.password } : {}) },
    };
  }
  if (a === 'keys' && b === 'list') return { command: 'keys-list', args: {} };
  if (a === 'keys' && b === 'rotate') {
    const delay = values.delay === undefined ? 0 : Number(values.delay);
    if (!Number.isInteger(delay) || delay < 0) throw new UsageError('--delay takes a whole number of seconds');
    return { command: 'keys-rotate', args: { delaySeconds: delay } };
  }
  throw new UsageError(`unknown command: ${positionals.join(' ') || '(none)'}`);
}

/**
 * `sat restore FILE`: only with the server stopped (it holds the database open); takes the DATA_DIR lock itself so
 * no server starts meanwhile.
 */
async function restore(config: Readonly<Config>, file: string): Promise<ControlResponse> {
  if (config.databaseUrl) {
    return { ok: false, error: { code: 'conflict', message: 'sat restore is for the embedded database; on PostgreSQL use pg_restore or psql (docs/operations.md).' } };
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  let lock;
  try {
    lock = acquireDataDirLock(config.dataDir);
  } catch (err) {
    if (!(err instanceof DataDirLockedError)) throw err;
    const who = err.pid ? `process ${err.pid}` : 'another process';
    return { ok: false, error: { code: 'conflict', message: `the server (${who}) is running on ${config.dataDir}: stop it, then restore.` } };
  }
  try {
    const { previous } = await restoreEmbedded(embeddedDataPath(config.dataDir), file);
    return { ok: true, result: { file, data_dir: config.dataDir, previous: previous ?? null } };
  } catch (err) {
    return { ok: false, error: { code: 'restore_failed', message: (err as Error).message } };
  } finally {
    lock.release();
  }
}

/** Runs one command: through the running server when it holds the embedded database, else on the database itself. */
async function execute(config: Readonly<Config>, req: { command: string; args: Record<string, unknown> }): Promise<ControlResponse> {
  if (req.command === 'restore') return restore(config, String(req.args.file));
  // A backup of a large database takes longer than the socket's usual 30 s.
  const timeoutMs = req.command === 'backup' ? 30 * 60_000 : undefined;
  if (!config.databaseUrl && readLockHolder(config.dataDir) !== undefined) {
    return callControl(config.dataDir, req, timeoutMs);
  }
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, {}, (line) => process.stderr.write(line + '\n'));
  let db;
  try {
    db = await openDb(config, log);
  } catch (err) {
    // The server started between our check and our open: go through it after all.
    if (err instanceof DataDirLockedError) return callControl(config.dataDir, req, timeoutMs);
    throw err;
  }
  try {
    if (req.command !== 'migrate') await migrateLatest(db.knex);
    return await runCommand({ config, db, log, clock: () => new Date() }, req.command, req.args);
  } finally {
    await db.close();
  }
}

function print(command: string, result: unknown, json: boolean): void {
  if (json) {
    process.stdout.write(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const r = result as Record<string, any>;
  switch (command) {
    case 'admin-add':
      process.stdout.write(
        `${r.organisation.created ? 'Created' : 'Using'} organisation "${r.organisation.name}" (${r.organisation.id})\n` +
          `Added administrator ${r.admin.email} (${r.admin.id})\n` +
          (r.generatedPassword ? `Password (shown once, keep it safe): ${r.generatedPassword}\n` : ''),
      );
      break;
    case 'token-create':
      process.stdout.write(
        `Generated token "${r.name}" (${r.id})\n` +
          `  client ID:     ${r.client_id}\n` +
          `  client secret: ${r.client_secret}\n` +
          `  services:      ${r.services.join(', ')}\n` +
          `  expires:       ${r.expires_at}\n` +
          'The client secret is shown only this once: keep a secure copy now.\n',
      );
      break;
    case 'token-list':
      process.stdout.write(
        r.items
          .map((t: Record<string, any>) =>
            [t.id, t.client_id, t.status.padEnd(7), t.expires_at, t.last_used_at ?? 'never used', t.services.join(','), JSON.stringify(t.name)].join('  '),
          )
          .join('\n') + (r.items.length ? '\n' : '') + `${r.active_count} of at most ${r.max_active} tokens active\n`,
      );
      break;
    case 'token-revoke':
      process.stdout.write(`Revoked token "${r.name}" (${r.id}, client ID ${r.client_id}) at ${r.revoked_at}\n`);
      break;
    case 'backup':
      process.stdout.write(`Backed up the embedded database to ${r.file} (${r.bytes} bytes)\n`);
      break;
    case 'restore':
      process.stdout.write(
        `Restored the embedded database in ${r.data_dir} from ${r.file}\n` +
          (r.previous ? `The data it replaced is kept in ${r.previous} (delete it when no longer needed)\n` : ''),
      );
      break;
    case 'migrate':
      process.stdout.write(
        r.newly_applied.length ? `Applied: ${r.newly_applied.join(', ')}\n` : `Up to date (${r.applied.length} migrations)\n`,
      );
      break;
    default:
      process.stdout.write(JSON.stringify(result, null, 2) + '\n');
  }
}

async function runServe(config: Readonly<Config>): Promise<void> {
  const log = createLogger(config.logLevel);
  // The handlers are in place before the server starts: a signal during startup waits for it, then stops it
  // (without them, a SIGTERM right after "listening" would kill the process the default way).
  const starting = serve(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    const started = Date.now();
    log.info('shutting down', { signal, grace_ms: config.shutdownGraceMs });
    // Backstop only: the drain ends by itself within the grace; this catches a stuck database or SMTP close.
    const force = setTimeout(() => {
      log.error('shutdown did not finish; exiting', { after_ms: Date.now() - started });
      process.exit(1);
    }, config.shutdownGraceMs + 15_000);
    force.unref();
    starting.then((running) => running.close()).then(
      () => {
        log.info('stopped', { signal, ms: Date.now() - started });
        process.exit(0);
      },
      (err: unknown) => {
        log.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  await starting;
}

async function main(argv: string[]): Promise<number> {
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (err) {
    process.stderr.write(`sat: ${(err as Error).message}\n\n${usage}\n`);
    return 2;
  }
  if (parsed.values.help || parsed.positionals.length === 0) {
    process.stdout.write(usage + '\n');
    return parsed.values.help ? 0 : 2;
  }
  try {
    const config = loadConfig();
    if (parsed.positionals[0] === 'serve' && parsed.positionals.length === 1) {
      await runServe(config);
      return -1; // keeps running
    }
    const req = toRequest(parsed);
    const res = await execute(config, req);
    if (!res.ok) {
      const details = Array.isArray(res.error.details) ? (res.error.details as Array<{ path: string; message: string }>) : [];
      process.stderr.write(`sat: ${res.error.message}\n${details.map((d) => `  ${d.path}: ${d.message}\n`).join('')}`);
      return 1;
    }
    print(req.command, res.result, parsed.values.json ?? false);
    return 0;
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`sat: ${err.message}\n\n${usage}\n`);
      return 2;
    }
    if (err instanceof ConfigError || err instanceof DataDirLockedError) {
      process.stderr.write(`sat: ${err.message}\n`);
      return 1;
    }
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'ECONNREFUSED' || e.code === 'ENOENT') {
      process.stderr.write(`sat: could not reach the running server's local socket (${e.message})\n`);
      return 1;
    }
    process.stderr.write(`sat: ${e.message}\n`);
    return 1;
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exitCode = code;
});
