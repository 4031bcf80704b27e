#!/usr/bin/env node
// `sat`: the command-line tool. Parses argv, dispatches, sets the exit code (0 ok, 1 failed, 2 usage).
import { parseArgs } from 'node:util';
import { runCommand } from '../commands.js';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { callControl, type ControlResponse } from '../control/index.js';
import { DataDirLockedError, migrateLatest, openDb, readLockHolder } from '../db/index.js';
import { createLogger } from '../log.js';
import { serve } from '../main.js';

const usage = `Usage: sat <command> [options]

Commands:
  serve                                   run the server (PORT, DATABASE_URL, DATA_DIR, ...: see README)
  migrate                                 apply pending database migrations
  admin add --org NAME --email EMAIL [--password PW]
                                          add an administrator (creates the organisation when new;
                                          prints a generated password when none is given)
  admin reset-password --email EMAIL [--password-stdin]
                                          set a new password (generated and printed once, or read
                                          from stdin), end every session of that administrator
                                          and mail them that it changed
  keys list                               show the published signing keys and the one that signs
  keys rotate [--delay SECONDS]           add a new signing key; it signs after SECONDS (default 0)
                                          and old keys stay published until their tokens expired
  token create --org NAME --name NAME --expires DATE --services ID,ID
               [--allowed-ips A,CIDR|any] [--max-tokens-per-hour N|none]
                                          generate a system access token (same rules as the admin API;
                                          DATE is YYYY-MM-DD or an ISO date-time with offset); prints
                                          the client secret once
  token list --org NAME [--status S]      list the organisation's tokens (never their secrets); S is
                                          active, expired, expiring or dormant
  token update --org NAME TOKEN_ID [--name N] [--services ID,ID] [--allowed-ips A,CIDR|any]
               [--max-tokens-per-hour N|none]
                                          change a token (same rules as PATCH /admin/api/tokens/{id})
  policy show --org NAME                  print the organisation's policy
  policy set --org NAME [--max-lifetime-days N] [--allowed-services ID,ID|all]
             [--revoke-dormant-after-days N|none] [--default-max-tokens-per-hour N|none]
                                          change the policy: the options given replace those fields
  token revoke --org NAME TOKEN_ID        revoke a token: its client stops working at once

Options:
  --json                                  print the result as JSON
  -h, --help                              show this help

Every command takes the same environment as the server and works on either database, whether or not
the server is running (with the embedded database, through the running server's local socket).`;

class UsageError extends Error {}

/** The first line of standard input (a password piped in, never on the command line), without its line end. */
async function readPasswordFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) chunks.push(chunk);
  const line = Buffer.concat(chunks).toString('utf8').split(/\r?\n/)[0] ?? '';
  if (!line) throw new UsageError('--password-stdin: no password on standard input');
  return line;
}

function parse(argv: string[]) {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    options: {
      org: { type: 'string' },
      email: { type: 'string' },
      password: { type: 'string' },
      'password-stdin': { type: 'boolean', default: false },
      delay: { type: 'string' },
      name: { type: 'string' },
      expires: { type: 'string' },
      services: { type: 'string' },
      status: { type: 'string' },
      'allowed-ips': { type: 'string' },
      'max-tokens-per-hour': { type: 'string' },
      'max-lifetime-days': { type: 'string' },
      'allowed-services': { type: 'string' },
      'revoke-dormant-after-days': { type: 'string' },
      'default-max-tokens-per-hour': { type: 'string' },
      json: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  return { values, positionals };
}

type Parsed = ReturnType<typeof parse>;

const list = (value: string) => value.split(',').map((s) => s.trim()).filter(Boolean);
/** A whole number, or `none` for null; anything else is passed on for the command's validation to name. */
const countOrNone = (value: string): unknown => (value === 'none' ? null : /^\d{1,9}$/.test(value) ? Number(value) : value);

/** The options given, as the fields of a token update or a policy (only those given). */
function changesFrom(values: Parsed['values'], fields: Record<string, (v: string) => [string, unknown]>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [option, toField] of Object.entries(fields)) {
    const value = (values as Record<string, unknown>)[option];
    if (typeof value === 'string') {
      const [field, parsed] = toField(value);
      out[field] = parsed;
    }
  }
  return out;
}

function toRequest({ values, positionals }: Parsed): { command: string; args: Record<string, unknown> } {
  const [a, b, ...rest] = positionals;
  if (a === 'token' && b === 'revoke') {
    if (!values.org || rest.length !== 1) throw new UsageError('token revoke needs --org and one TOKEN_ID');
    return { command: 'token-revoke', args: { org: values.org, id: rest[0] } };
  }
  if (a === 'token' && b === 'update') {
    if (!values.org || rest.length !== 1) throw new UsageError('token update needs --org and one TOKEN_ID');
    const changes = changesFrom(values, {
      name: (v) => ['name', v],
      services: (v) => ['services', list(v)],
      'allowed-ips': (v) => ['allowed_ips', v.trim() === 'any' ? [] : list(v)],
      'max-tokens-per-hour': (v) => ['max_tokens_per_hour', countOrNone(v)],
    });
    if (Object.keys(changes).length === 0) {
      throw new UsageError('token update needs at least one of --name, --services, --allowed-ips, --max-tokens-per-hour');
    }
    return { command: 'token-update', args: { org: values.org, id: rest[0], changes } };
  }
  if (rest.length) throw new UsageError(`unexpected argument: ${rest.join(' ')}`);
  if (a === 'policy' && b === 'show') {
    if (!values.org) throw new UsageError('policy show needs --org');
    return { command: 'policy-show', args: { org: values.org } };
  }
  if (a === 'policy' && b === 'set') {
    if (!values.org) throw new UsageError('policy set needs --org');
    const changes = changesFrom(values, {
      'max-lifetime-days': (v) => ['max_lifetime_days', countOrNone(v)],
      'allowed-services': (v) => ['allowed_services', v.trim() === 'all' ? 'all' : list(v)],
      'revoke-dormant-after-days': (v) => ['revoke_dormant_after_days', countOrNone(v)],
      'default-max-tokens-per-hour': (v) => ['default_max_tokens_per_hour', countOrNone(v)],
    });
    if (Object.keys(changes).length === 0) throw new UsageError('policy set needs at least one option to change');
    return { command: 'policy-set', args: { org: values.org, changes } };
  }
  if (a === 'token' && b === 'create') {
    if (!values.org || values.name === undefined || !values.expires || !values.services) {
      throw new UsageError('token create needs --org, --name, --expires and --services');
    }
    const services = values.services.split(',').map((s) => s.trim()).filter(Boolean);
    const limits = changesFrom(values, {
      'allowed-ips': (v) => ['allowed_ips', v.trim() === 'any' ? [] : list(v)],
      'max-tokens-per-hour': (v) => ['max_tokens_per_hour', countOrNone(v)],
    });
    return { command: 'token-create', args: { org: values.org, name: values.name, expires: values.expires, services, ...limits } };
  }
  if (a === 'token' && b === 'list') {
    if (!values.org) throw new UsageError('token list needs --org');
    return { command: 'token-list', args: { org: values.org, ...(values.status !== undefined ? { status: values.status } : {}) } };
  }
  if (a === 'migrate' && b === undefined) return { command: 'migrate', args: {} };
  if (a === 'admin' && b === 'add') {
    if (!values.org || !values.email) throw new UsageError('admin add needs --org and --email');
    return {
      command: 'admin-add',
      args: { org: values.org, email: values.email, ...(values.password !== undefined ? { password: values.password } : {}) },
    };
  }
  if (a === 'admin' && b === 'reset-password') {
    if (!values.email) throw new UsageError('admin reset-password needs --email');
    if (values.password !== undefined) throw new UsageError('admin reset-password reads a password only from --password-stdin');
    return { command: 'admin-reset-password', args: { email: values.email } };
  }
  if (a === 'keys' && b === 'list') return { command: 'keys-list', args: {} };
  if (a === 'keys' && b === 'rotate') {
    const delay = values.delay === undefined ? 0 : Number(values.delay);
    if (!Number.isInteger(delay) || delay < 0) throw new UsageError('--delay takes a whole number of seconds');
    return { command: 'keys-rotate', args: { delaySeconds: delay } };
  }
  throw new UsageError(`unknown command: ${positionals.join(' ') || '(none)'}`);
}

/** Runs one command: through the running server when it holds the embedded database, else on the database itself. */
async function execute(config: Readonly<Config>, req: { command: string; args: Record<string, unknown> }): Promise<ControlResponse> {
  if (!config.databaseUrl && readLockHolder(config.dataDir) !== undefined) {
    return callControl(config.dataDir, req);
  }
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, {}, (line) => process.stderr.write(line + '\n'));
  let db;
  try {
    db = await openDb(config, log);
  } catch (err) {
    // The server started between our check and our open: go through it after all.
    if (err instanceof DataDirLockedError) return callControl(config.dataDir, req);
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
    case 'admin-reset-password':
      process.stdout.write(
        `Reset the password of ${r.admin.email} (${r.admin.id}); ended ${r.sessions_ended} session(s)\n` +
          (r.generatedPassword ? `New password (shown once, keep it safe): ${r.generatedPassword}\n` : ''),
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
            [
              t.id,
              t.client_id,
              t.status.padEnd(7),
              t.expires_at,
              t.last_used_at ?? 'never used',
              t.services.join(','),
              JSON.stringify(t.name),
              ...(t.expiring ? ['[expiring]'] : []),
              ...(t.dormant ? ['[dormant]'] : []),
            ].join('  '),
          )
          .join('\n') + (r.items.length ? '\n' : '') + `${r.active_count} of at most ${r.max_active} tokens active\n`,
      );
      break;
    case 'token-update':
      process.stdout.write(
        `Updated token "${r.name}" (${r.id})\n` +
          `  client ID:           ${r.client_id}\n` +
          `  services:            ${r.services.join(', ')}\n` +
          `  allowed IPs:         ${r.allowed_ips.length ? r.allowed_ips.join(', ') : 'any'}\n` +
          `  max tokens per hour: ${r.max_tokens_per_hour ?? 'no limit'}\n` +
          `  expires:             ${r.expires_at}\n`,
      );
      break;
    case 'policy-show':
    case 'policy-set':
      process.stdout.write(
        `max_lifetime_days:           ${r.max_lifetime_days}\n` +
          `allowed_services:            ${r.allowed_services.join(', ')}\n` +
          `revoke_dormant_after_days:   ${r.revoke_dormant_after_days ?? 'none'}\n` +
          `default_max_tokens_per_hour: ${r.default_max_tokens_per_hour ?? 'none'}\n`,
      );
      break;
    case 'token-revoke':
      process.stdout.write(`Revoked token "${r.name}" (${r.id}, client ID ${r.client_id}) at ${r.revoked_at}\n`);
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
  const running = await serve(config, log);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info('shutting down', { signal });
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    running.close().then(
      () => process.exit(0),
      (err) => {
        log.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
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
    if (req.command === 'admin-reset-password' && parsed.values['password-stdin']) {
      req.args.password = await readPasswordFromStdin();
    }
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
