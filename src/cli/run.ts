// `sat` as a function, runCli: parses argv, dispatches, returns the exit code (0 ok, 1 failed, 2 usage). The bin,
// src/cli/index.ts, runs it on the real process's input, output and environment.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import type { Knex } from 'knex';
import { configurePasswordHashing, releasePasswordHashing } from '../accounts/index.js';
import { runCommand } from '../commands.js';
import { ConfigError, loadConfig, type Config } from '../config/index.js';
import { callControl, type ControlResponse } from '../control/index.js';
import {
  acquireDataDirLock,
  BackupTargetError,
  checkBackupTarget,
  databaseClock,
  DataDirLockedError,
  embeddedDataPath,
  hasInterruptedRestore,
  makeDirectories,
  briefDatabaseError,
  checkDataDirEntries,
  isDatabaseUnavailable,
  LATEST_MIGRATION,
  makeOwnerOnly,
  migrateLatest,
  MIGRATION_WAIT_MESSAGE,
  OlderServerRunningError,
  openDb,
  readLockHolder,
  refuseOlderServer,
  restoreEmbedded,
  RestoreRefusedError,
  type BackupSigningKey,
  restrictUmask,
  TRY_AGAIN,
  waitForDataDir,
} from '../db/index.js';
import { dataDirKeyFile, openKeyRing } from '../keys/index.js';
import { createLogger } from '../log.js';
import { secretCheck } from './secret-check.js';

const usage = `Usage: sat <command> [options]

Commands:
  serve                                   run the server (PORT, DATABASE_URL, DATA_DIR, ...: see README)
  migrate                                 apply pending database migrations
  admin add --org NAME --email EMAIL [--password-stdin]
                                          add an administrator (creates the organisation when new);
                                          the password is read from standard input (--password-stdin)
                                          or asked for on a terminal; none given: one is generated and
                                          printed once (--password PW still works, but shows the
                                          password to every user of the machine: avoid it)
  admin list --org NAME                   list the organisation's administrators
  admin invite --org NAME --email EMAIL   mail EMAIL a one-time link (valid 72 hours) to become an
                                          administrator of the organisation; the link is never printed
  admin remove --org NAME --email EMAIL   remove an administrator and end their sessions at once (an
                                          organisation keeps at least one)
  admin invitations --org NAME            list the organisation's pending invitations (not accepted, not
                                          expired), newest first
  admin withdraw --org NAME --email EMAIL withdraw the pending invitation of EMAIL: its link stops working
                                          at once (exit 1 when there is none)
  admin reset-password --email EMAIL [--password-stdin]
                                          set a new password (generated and printed once, or read
                                          from stdin), end every session of that administrator
                                          and mail them that it changed
  keys list                               show the published signing keys, the one that signs, when each
                                          retiring key leaves the JWKS and the next automatic rotation
  keys rotate [--now [--drop-unreadable]] add a new signing key: published at once, signing after
                                          KEY_PUBLISH_AHEAD_SECONDS (default 600); --now signs at once
                                          (emergency only: verifiers may reject tokens for a minute);
                                          --drop-unreadable: delete every signing key the configured
                                          key-encryption key cannot open, whatever the reason (a lost
                                          key, a damaged row: docs/keys.md)
  keys remove KID                         delete a signing key that no longer signs (a leaked one, after
                                          keys rotate --now): out of every JWKS within seconds, and its
                                          tokens no longer pass introspection (docs/keys.md)
  keys rewrap [--new-key-file FILE]       encrypt every signing key under a new key-encryption key, read
                                          from FILE or NEW_KEY_ENCRYPTION_KEY (base64 of 32 bytes)
  token create --org NAME --name NAME --expires DATE --services ID,ID
               [--allowed-ips A,CIDR|any] [--max-tokens-per-hour N|none] [--jwks FILE] [--require-dpop]
                                          generate a system access token (same rules as the admin API;
                                          DATE is YYYY-MM-DD or an ISO date-time with offset); prints
                                          the client secret once. --jwks FILE: authenticate with
                                          private_key_jwt using the public keys in FILE (a JWK Set, a
                                          JWK or a PEM public key), no secret; --require-dpop: access
                                          tokens only with a DPoP proof
  token list --org NAME [--status S] [--search TEXT]
                                          list the organisation's tokens (never their secrets); S is
                                          active, expired, expiring or dormant; TEXT: only tokens whose
                                          name or client ID contains it (any case; % and _ are literal)
  token show --org NAME TOKEN_ID          one token: its settings, status, use and live secrets' ids
                                          (never the secrets), as GET /admin/api/tokens/{id}
  token update --org NAME TOKEN_ID [--name N] [--services ID,ID] [--allowed-ips A,CIDR|any]
               [--max-tokens-per-hour N|none] [--jwks FILE] [--require-dpop | --no-require-dpop]
                                          change a token (same rules as PATCH /admin/api/tokens/{id});
                                          --jwks FILE replaces every public key of a private_key_jwt
                                          token (for a key rotation: a JWK Set with the old and the new
                                          key, later the new one alone)
  token rotate --org NAME TOKEN_ID [--grace-hours H]
                                          a new client secret for the same client ID, printed once; the
                                          previous one keeps working H hours (0 to 720, default 24)
  token retire --org NAME TOKEN_ID SECRET_ID
                                          retire one secret of a token at once (after a rotation, once
                                          every client uses the new one); SECRET_ID from token show or
                                          the rotate output
  token revoke --org NAME TOKEN_ID        revoke a token: its client stops working at once
  policy show --org NAME                  print the organisation's policy
  policy set --org NAME [--max-lifetime-days N] [--allowed-services ID,ID|all]
             [--revoke-dormant-after-days N|none] [--default-max-tokens-per-hour N|none]
                                          change the policy: the options given replace those fields
  audit list --org NAME [--token TOKEN_ID] [--limit N]
                                          the organisation's audit events, newest first (N at most,
                                          default 50, up to 10000); --token: one token's events only
  resource-server add --name NAME         credentials for a resource server of the platform: they may call
                                          introspection for every organisation's tokens and nothing else;
                                          prints the client secret once
  resource-server list                    list resource-server credentials (never their secrets)
  resource-server revoke ID               revoke resource-server credentials at once
  secret check SECRET | -                 offline: is SECRET a well-formed client secret (prefix and
                                          checksum)? exit 0 yes, 1 no; never prints it. "-" reads it
                                          from stdin, which keeps it out of ps and shell history
  backup FILE                             copy the embedded database to FILE (mode 0600; an existing FILE is
                                          replaced only by a whole backup), also while the server runs; on
                                          PostgreSQL use pg_dump (docs/operations.md)
  restore FILE [--accept-unreadable-keys]  replace the embedded database by the backup in FILE (server
                                          stopped); the replaced data is kept beside it in DATA_DIR. A
                                          backup whose signing keys the configured key-encryption key
                                          cannot open is refused, unless --accept-unreadable-keys (then
                                          sat keys rotate --now --drop-unreadable: a lost key)

Options:
  --json                                  print the result as JSON
  -h, --help                              show this help

Every command takes the same environment as the server and works on either database, whether or not
the server is running (with the embedded database, through the running server's local socket).`;

/**
 * The help for the command or command group the positionals name (`sat token --help`, `sat token create -h`): the
 * entries of `usage` whose command starts with those words, with the options every command takes. A name that is no
 * command (or none) gets the whole usage.
 */
export function helpFor(positionals: readonly string[]): string {
  const { entries, tail } = usageEntries();
  // The longest prefix of at most two words that names commands: `sat backup FILE -h` is backup's help.
  for (let n = Math.min(2, positionals.length); n > 0; n--) {
    const words = positionals.slice(0, n);
    const matching = entries.filter((e) => words.every((w, i) => e.words[i] === w));
    if (matching.length === 0) continue;
    // `sat audit -h`: its one command is `audit list`, so the usage names a command still to come.
    const what = matching.some((e) => e.words.length > n) ? `${words.join(' ')} <command>` : words.join(' ');
    return `Usage: sat ${what} [options]\n\n${matching.map((e) => e.lines.join('\n')).join('\n')}\n\nOptions:\n${tail}`;
  }
  return usage;
}

/** The entries of `usage`'s command list (its lines, and the command's words: `['token', 'create']`) and the text after. */
function usageEntries(): { entries: Array<{ words: string[]; lines: string[] }>; tail: string } {
  const [, rest] = usage.split('\nCommands:\n');
  const [commands, tail] = rest!.split('\n\nOptions:\n');
  const entries: Array<{ words: string[]; lines: string[] }> = [];
  for (const line of commands!.split('\n')) {
    if (/^ {2}\S/.test(line)) {
      const column = line.trim().split(/\s{2,}/)[0]!.split(/\s+/); // the command column: words, then its arguments
      const end = column.findIndex((w) => !/^[a-z][a-z-]*$/.test(w));
      entries.push({ words: end === -1 ? column : column.slice(0, end), lines: [line] });
    } else entries.at(-1)?.lines.push(line);
  }
  return { entries, tail: tail! };
}

/** The command line itself is wrong: exit 2, with the usage. */
class UsageError extends Error {}

/**
 * A usage error as printed: `sat: MESSAGE`, then the help of the command or group `positionals` names (helpFor; the
 * whole usage when they name none), and again the message when that help is long enough to scroll it away.
 */
function usageMessage(message: string, positionals: readonly string[]): string {
  const help = helpFor(positionals);
  const again = help === usage ? `\nsat: ${message}\n` : '';
  return `sat: ${message}\n\n${help}\n${again}`;
}

/** The command line is right but what it names cannot be used (a file that cannot be read): exit 1, the reason only. */
class InputError extends Error {}

function readKeyFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new InputError(`--jwks ${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? 'error'})`);
  }
  if (text.length > 64 * 1024) throw new InputError(`--jwks ${file}: larger than 64 KiB`);
  return text;
}

function parse(argv: string[]) {
  const { values, positionals, tokens } = parseArgs({
    args: argv,
    allowPositionals: true,
    strict: true,
    tokens: true,
    options: {
      org: { type: 'string' },
      email: { type: 'string' },
      password: { type: 'string' },
      now: { type: 'boolean', default: false },
      'drop-unreadable': { type: 'boolean' },
      'accept-unreadable-keys': { type: 'boolean' },
      'new-key-file': { type: 'string' },
      'password-stdin': { type: 'boolean', default: false },
      name: { type: 'string' },
      expires: { type: 'string' },
      services: { type: 'string' },
      status: { type: 'string' },
      search: { type: 'string' },
      'allowed-ips': { type: 'string' },
      'max-tokens-per-hour': { type: 'string' },
      'max-lifetime-days': { type: 'string' },
      'allowed-services': { type: 'string' },
      'revoke-dormant-after-days': { type: 'string' },
      'default-max-tokens-per-hour': { type: 'string' },
      jwks: { type: 'string' },
      'require-dpop': { type: 'boolean', default: false },
      'no-require-dpop': { type: 'boolean', default: false },
      'grace-hours': { type: 'string' },
      json: { type: 'boolean', default: false },
      token: { type: 'string' },
      limit: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  // The options actually written on the command line (values also holds the defaults).
  const written = tokens.flatMap((t) => (t.kind === 'option' ? [t] : []));
  // A value given twice would be the last one silently (`--services jobs --services candidates`: candidates only).
  const twice = written.find((t, i) => t.value !== undefined && written.findIndex((u) => u.name === t.name) !== i);
  if (twice) throw new UsageError(`--${twice.name} is given more than once; give it once (a list is comma-separated)`);
  const given = new Set(written.map((t) => t.name));
  return { values, positionals, given };
}

type Parsed = ReturnType<typeof parse>;

const list = (value: string) => value.split(',').map((s) => s.trim()).filter(Boolean);
/**
 * `--allowed-ips`: `any` (every address: an empty allowlist) or addresses and CIDR ranges separated by commas. An
 * empty value is wrong usage, not "any": an unset variable (`--allowed-ips "$IPS"`) must not open a token to every
 * address.
 */
const allowedIps = (value: string): ['allowed_ips', string[]] => {
  if (value.trim() === 'any') return ['allowed_ips', []];
  const entries = list(value);
  if (entries.length === 0) throw new UsageError('--allowed-ips takes addresses or CIDR ranges separated by commas, or "any" for every address');
  return ['allowed_ips', entries];
};
/** A whole number, or `none` for null; anything else is passed on for the command's validation to name. */
/**
 * The value of `--option`, which takes a whole number (or, with `orNone`, `none`: null). A value of another form is
 * wrong usage (exit 2, README "Exit codes"), as `--grace-hours 1.5` is; one of the right form out of range is the
 * server's to refuse (exit 1).
 */
const count =
  (option: string, orNone = false) =>
  (value: string): unknown => {
    if (orNone && value === 'none') return null;
    if (!/^\d+$/.test(value)) throw new UsageError(`--${option} takes a whole number${orNone ? ' or none' : ''}`);
    return /^\d{1,9}$/.test(value) ? Number(value) : value; // longer: the server says how far out of range
  };

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

/**
 * The options each command takes (besides --json and --help). Any other option given is a usage error rather than
 * silently ignored: `token update --expires D` must not look as if it had changed the expiry.
 */
const COMMAND_OPTIONS: Readonly<Record<string, readonly string[]>> = {
  serve: [],
  migrate: [],
  backup: [],
  restore: ['accept-unreadable-keys'],
  'admin add': ['org', 'email', 'password', 'password-stdin'],
  'admin list': ['org'],
  'admin invite': ['org', 'email'],
  'admin remove': ['org', 'email'],
  'admin invitations': ['org'],
  'admin withdraw': ['org', 'email'],
  'admin reset-password': ['email', 'password', 'password-stdin'], // --password gets its own message below
  'keys list': [],
  'keys rotate': ['now', 'drop-unreadable'],
  'keys remove': [],
  'keys rewrap': ['new-key-file'],
  'token create': ['org', 'name', 'expires', 'services', 'allowed-ips', 'max-tokens-per-hour', 'jwks', 'require-dpop'],
  'token list': ['org', 'status', 'search'],
  'token show': ['org'],
  'token update': ['org', 'name', 'services', 'allowed-ips', 'max-tokens-per-hour', 'jwks', 'require-dpop', 'no-require-dpop'],
  'token revoke': ['org'],
  'token rotate': ['org', 'grace-hours'],
  'token retire': ['org'],
  'policy show': ['org'],
  'policy set': ['org', 'max-lifetime-days', 'allowed-services', 'revoke-dormant-after-days', 'default-max-tokens-per-hour'],
  'audit list': ['org', 'token', 'limit'],
  'resource-server add': ['name'],
  'resource-server list': [],
  'resource-server revoke': [],
};

/** Throws a UsageError naming the options given that the command does not take. */
function checkOptions(a: string | undefined, b: string | undefined, given: ReadonlySet<string>): void {
  const command = a === 'serve' || a === 'migrate' || a === 'backup' || a === 'restore' ? a : `${a} ${b}`;
  const allowed = COMMAND_OPTIONS[command];
  if (!allowed) return; // an unknown command: toRequest says so
  const foreign = [...given].filter((o) => o !== 'json' && o !== 'help' && !allowed.includes(o));
  if (foreign.length) {
    const expiry = command === 'token update' && foreign.includes('expires') ? " (a token's expiry cannot change)" : '';
    throw new UsageError(`${command} does not take ${foreign.map((o) => `--${o}`).join(', ')}${expiry}`);
  }
}

function toRequest({ values, positionals, given }: Parsed, config: Readonly<Config>): { command: string; args: Record<string, unknown> } {
  const [a, b, ...rest] = positionals;
  checkOptions(a, b, given);
  if (a === 'token' && b === 'revoke') {
    if (!values.org || rest.length !== 1) throw new UsageError('token revoke needs --org and one TOKEN_ID');
    return { command: 'token-revoke', args: { org: values.org, id: rest[0] } };
  }
  if (a === 'token' && b === 'rotate') {
    if (!values.org || rest.length !== 1) throw new UsageError('token rotate needs --org and one TOKEN_ID');
    const raw = values['grace-hours'];
    if (raw !== undefined && !/^\d{1,4}$/.test(raw)) throw new UsageError('--grace-hours takes a whole number of hours (0 to 720)');
    return { command: 'token-rotate', args: { org: values.org, id: rest[0], ...(raw !== undefined ? { graceHours: Number(raw) } : {}) } };
  }
  if (a === 'token' && b === 'show') {
    if (!values.org || rest.length !== 1) throw new UsageError('token show needs --org and one TOKEN_ID');
    return { command: 'token-show', args: { org: values.org, id: rest[0] } };
  }
  if (a === 'token' && b === 'retire') {
    if (!values.org || rest.length !== 2) throw new UsageError('token retire needs --org, a TOKEN_ID and a SECRET_ID');
    return { command: 'token-retire', args: { org: values.org, id: rest[0], secretId: rest[1] } };
  }
  if (a === 'resource-server' && b === 'revoke') {
    if (rest.length !== 1) throw new UsageError('resource-server revoke needs one ID');
    return { command: 'resource-server-revoke', args: { id: rest[0] } };
  }
  if (a === 'token' && b === 'update') {
    if (!values.org || rest.length !== 1) throw new UsageError('token update needs --org and one TOKEN_ID');
    if (given.has('require-dpop') && given.has('no-require-dpop')) {
      throw new UsageError('token update takes --require-dpop or --no-require-dpop, not both');
    }
    const changes: Record<string, unknown> = changesFrom(values, {
      name: (v) => ['name', v],
      services: (v) => ['services', list(v)],
      'allowed-ips': allowedIps,
      'max-tokens-per-hour': (v) => ['max_tokens_per_hour', count('max-tokens-per-hour', true)(v)],
      // Read here, by the user running sat; the server converts the text and validates it (PATCH's public_key).
      jwks: (v) => ['public_key', readKeyFile(v)],
    });
    if (given.has('require-dpop')) changes.require_dpop = true;
    if (given.has('no-require-dpop')) changes.require_dpop = false;
    if (Object.keys(changes).length === 0) {
      throw new UsageError(
        'token update needs at least one of --name, --services, --allowed-ips, --max-tokens-per-hour, --jwks, --require-dpop, --no-require-dpop',
      );
    }
    return { command: 'token-update', args: { org: values.org, id: rest[0], changes } };
  }
  if (a === 'keys' && b === 'remove') {
    if (rest.length !== 1) throw new UsageError('keys remove needs one KID (sat keys list shows them)');
    return { command: 'keys-remove', args: { kid: rest[0] } };
  }
  if (rest.length) throw new UsageError(`unexpected argument: ${rest.join(' ')}`);
  if (a === 'resource-server' && b === 'add') {
    if (values.name === undefined) throw new UsageError('resource-server add needs --name');
    return { command: 'resource-server-add', args: { name: values.name } };
  }
  if (a === 'resource-server' && b === 'list') return { command: 'resource-server-list', args: {} };
  if (a === 'policy' && b === 'show') {
    if (!values.org) throw new UsageError('policy show needs --org');
    return { command: 'policy-show', args: { org: values.org } };
  }
  if (a === 'policy' && b === 'set') {
    if (!values.org) throw new UsageError('policy set needs --org');
    const changes = changesFrom(values, {
      'max-lifetime-days': (v) => ['max_lifetime_days', count('max-lifetime-days')(v)],
      'allowed-services': (v) => ['allowed_services', v.trim() === 'all' ? 'all' : list(v)],
      'revoke-dormant-after-days': (v) => ['revoke_dormant_after_days', count('revoke-dormant-after-days', true)(v)],
      'default-max-tokens-per-hour': (v) => ['default_max_tokens_per_hour', count('default-max-tokens-per-hour', true)(v)],
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
      'allowed-ips': allowedIps,
      'max-tokens-per-hour': (v) => ['max_tokens_per_hour', count('max-tokens-per-hour', true)(v)],
    });
    // The key file is read here, by the user running sat; the server gets its text and validates it.
    const jwks = values.jwks === undefined ? undefined : readKeyFile(values.jwks);
    return {
      command: 'token-create',
      args: {
        org: values.org,
        name: values.name,
        expires: values.expires,
        services,
        ...limits,
        ...(jwks !== undefined ? { jwks } : {}),
        require_dpop: values['require-dpop'] === true,
      },
    };
  }
  if (a === 'token' && b === 'list') {
    if (!values.org) throw new UsageError('token list needs --org');
    return {
      command: 'token-list',
      args: {
        org: values.org,
        ...(values.status !== undefined ? { status: values.status } : {}),
        ...(values.search !== undefined ? { search: values.search } : {}),
      },
    };
  }
  if (a === 'audit' && b === 'list') {
    if (!values.org) throw new UsageError('audit list needs --org');
    const raw = values.limit;
    if (raw !== undefined && !/^\d{1,5}$/.test(raw)) throw new UsageError('--limit takes a whole number of events (1 to 10000)');
    return {
      command: 'audit-list',
      args: { org: values.org, ...(values.token !== undefined ? { token: values.token } : {}), ...(raw !== undefined ? { limit: Number(raw) } : {}) },
    };
  }
  if (a === 'migrate' && b === undefined) return { command: 'migrate', args: {} };
  if (a === 'restore' && b !== undefined) return { command: a, args: { file: path.resolve(b), accept_unreadable_keys: values['accept-unreadable-keys'] ?? false } };
  if (a === 'backup' && b !== undefined) return { command: a, args: { file: path.resolve(b) } };
  if (a === 'backup' || a === 'restore') throw new UsageError(`${a} needs a FILE`);
  if (a === 'admin' && b === 'add') {
    if (!values.org || !values.email) throw new UsageError('admin add needs --org and --email');
    if (values.password !== undefined && values['password-stdin']) throw new UsageError('give --password or --password-stdin, not both');
    return {
      command: 'admin-add',
      args: { org: values.org, email: values.email, ...(values.password !== undefined ? { password: values.password } : {}) },
    };
  }
  if (a === 'admin' && (b === 'list' || b === 'invitations')) {
    if (!values.org) throw new UsageError(`admin ${b} needs --org`);
    return { command: `admin-${b}`, args: { org: values.org } };
  }
  if (a === 'admin' && (b === 'invite' || b === 'remove' || b === 'withdraw')) {
    if (!values.org || !values.email) throw new UsageError(`admin ${b} needs --org and --email`);
    return { command: `admin-${b}`, args: { org: values.org, email: values.email } };
  }
  if (a === 'admin' && b === 'reset-password') {
    if (!values.email) throw new UsageError('admin reset-password needs --email');
    if (values.password !== undefined) throw new UsageError('admin reset-password reads a password only from --password-stdin');
    return { command: 'admin-reset-password', args: { email: values.email } };
  }
  if (a === 'keys' && b === 'list') return { command: 'keys-list', args: {} };
  if (a === 'keys' && b === 'rotate') {
    if (values['drop-unreadable'] && !values.now) throw new UsageError('keys rotate --drop-unreadable goes with --now');
    return { command: 'keys-rotate', args: { now: values.now ?? false, drop_unreadable: values['drop-unreadable'] ?? false } };
  }
  if (a === 'keys' && b === 'rewrap') {
    // The new key travels to the running server, if any, over the owner-only local socket; never on the command line.
    const file = values['new-key-file'];
    let newKey: string | undefined;
    if (file !== undefined) {
      try {
        newKey = readFileSync(file, 'utf8').trim();
      } catch (err) {
        throw new InputError(`--new-key-file ${file}: cannot read the file (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    } else newKey = config.newKeyEncryptionKey?.bytes.toString('base64');
    if (!newKey) throw new UsageError('keys rewrap needs --new-key-file FILE or NEW_KEY_ENCRYPTION_KEY');
    return { command: 'keys-rewrap', args: { newKey } };
  }
  // `sat token`: a group named without one of its commands (the help below lists them).
  if (positionals.length === 1 && usageEntries().entries.some((e) => e.words[0] === a && e.words.length > 1)) {
    throw new UsageError(`${a} needs a command`);
  }
  throw new UsageError(`unknown command: ${positionals.join(' ') || '(none)'}`);
}

/**
 * `sat restore FILE`: only with the server stopped (it holds the database open); takes the DATA_DIR lock itself so
 * no server starts meanwhile.
 */
// The commands that may make the embedded database when DATA_DIR has none: a first install (`sat migrate`, the first
// administrator, a resource server or a signing key set up before the first start). `serve` and `restore` make it
// elsewhere.
const MAY_CREATE_DATABASE: ReadonlySet<string> = new Set(['migrate', 'admin-add', 'resource-server-add', 'keys-rotate']);

/**
 * Any other command on an embedded DATA_DIR that holds no database is refused before anything is opened or created:
 * a mistyped DATA_DIR used to get a new, empty database (initdb and migrations) and answers such as "No key signs
 * yet" or, for `sat backup`, the backup of that empty database, exit 0. undefined when the command may go ahead.
 */
function noDatabaseRefusal(config: Readonly<Config>, command: string): ControlResponse | undefined {
  if (config.databaseUrl || MAY_CREATE_DATABASE.has(command) || existsSync(embeddedDataPath(config.dataDir))) return undefined;
  if (hasInterruptedRestore(embeddedDataPath(config.dataDir))) return undefined; // opening the database finishes it
  const what = command === 'backup' ? 'nothing to back up' : 'nothing to read or change';
  return { ok: false, error: { code: 'no_database', message: `no embedded database in ${config.dataDir}: ${what} (is DATA_DIR right?)` } };
}

/** `sat backup FILE`: a FILE that cannot be written is refused before the database is opened (nothing is taken). */
function backupTargetRefusal(file: string): ControlResponse | undefined {
  try {
    checkBackupTarget(file);
  } catch (err) {
    if (err instanceof BackupTargetError) return { ok: false, error: { code: 'backup_failed', message: err.message } };
    throw err;
  }
  return undefined;
}

/**
 * Refuses a backup whose sealed signing keys the configured key-encryption key (KEY_ENCRYPTION_KEY(_FILE), or the
 * DATA_DIR key file; none is generated here) cannot open: the server would not start on it (docs/operations.md
 * "Key-encryption key custody": a backup needs the key in force when it was taken).
 */
function backupKeysCheck(config: Readonly<Config>): (keys: BackupSigningKey[]) => void {
  return (keys) => {
    const sealed = keys.filter((k) => k.sealed);
    if (sealed.length === 0) return;
    const haveKey = config.keyEncryptionKey !== undefined || existsSync(dataDirKeyFile(config.dataDir));
    const ring = haveKey ? openKeyRing(config, 'embedded') : undefined;
    const unreadable = sealed.filter((k) => !(ring?.hasKekOf(k) ?? false));
    if (unreadable.length === 0) return;
    throw new RestoreRefusedError(
      `the backup's signing keys (${unreadable.map((k) => k.kid).join(', ')}) are sealed under another key-encryption key ` +
        `(id ${unreadable[0]!.kek_id}) than ${haveKey ? `the configured one` : 'this data directory has (none)'}: the server would not ` +
        'start on it. Restore it with the key that was in force when it was taken (KEY_ENCRYPTION_KEY, ' +
        'KEY_ENCRYPTION_KEY_FILE or DATA_DIR/key-encryption-key), or, if that key is lost, with --accept-unreadable-keys ' +
        'and then `sat keys rotate --now --drop-unreadable`. Nothing was changed.',
    );
  };
}

async function restore(config: Readonly<Config>, file: string, acceptUnreadableKeys = false): Promise<ControlResponse> {
  if (config.databaseUrl) {
    return { ok: false, error: { code: 'conflict', message: 'sat restore is for the embedded database; on PostgreSQL use pg_restore or psql (docs/operations.md).' } };
  }
  makeDirectories(config.dataDir);
  let lock;
  try {
    await refuseOlderServer(config.dataDir);
    lock = acquireDataDirLock(config.dataDir);
  } catch (err) {
    if (err instanceof OlderServerRunningError) return { ok: false, error: { code: 'conflict', message: err.message } };
    if (!(err instanceof DataDirLockedError)) throw err;
    const who = err.pid ? `process ${err.pid}` : 'another process';
    return { ok: false, error: { code: 'conflict', message: `the server (${who}) is running on ${config.dataDir}: stop it, then restore.` } };
  }
  try {
    // SPEC Part 2 "Nothing readable by other OS users": a DATA_DIR made beforehand (0777, 0755) is owner-only before
    // the restored database goes in, as a server start or any other command makes it.
    makeOwnerOnly(config.dataDir, false);
    const { previous, removed, finished } = await restoreEmbedded(embeddedDataPath(config.dataDir), file, new Date(), acceptUnreadableKeys ? undefined : backupKeysCheck(config));
    return {
      ok: true,
      result: { file, data_dir: config.dataDir, previous: previous ?? null, removed_interrupted: removed, finished_interrupted: finished ?? null },
    };
  } catch (err) {
    return { ok: false, error: { code: 'restore_failed', message: (err as Error).message } };
  } finally {
    lock.release();
  }
}

/** All of standard input, less one trailing line break: `--password-stdin`. */
async function readStdin(stdin: CliIo['stdin']): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of stdin as AsyncIterable<Buffer | string>) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return Buffer.concat(chunks).toString('utf8').replace(/\r?\n$/, '');
}

/** Asks on the terminal without echoing what is typed (on stderr, so stdout stays the command's output). */
function askHidden(io: CliIo, question: string): Promise<string> {
  return new Promise((resolve) => {
    const rl = createInterface({ input: io.stdin, output: io.stderr, terminal: true });
    const output = rl as unknown as { _writeToOutput(text: string): void };
    let muted = false;
    output._writeToOutput = (text: string) => {
      if (!muted || text.includes('\n')) io.stderr.write(muted ? '\n' : text);
    };
    rl.question(question, (answer) => {
      rl.close();
      resolve(answer);
    });
    muted = true;
  });
}

/**
 * The password of `sat admin add` (SPEC Part 2 "Passwords never on a command line or in logs"): from standard
 * input with --password-stdin, else asked twice on a terminal (empty: generate one), else none (generated).
 * `--password` keeps working for old scripts, with a warning.
 */
async function adminPassword(values: Parsed['values'], io: CliIo): Promise<string | undefined> {
  if (values['password-stdin']) {
    const password = await readStdin(io.stdin);
    if (password === '') throw new UsageError('--password-stdin read an empty password');
    return password;
  }
  if (values.password !== undefined) {
    io.stderr.write('warning: --password shows the password to other users (ps, shell history); use --password-stdin or the prompt\n');
    return values.password;
  }
  if (!io.stdin.isTTY) return undefined;
  const first = await askHidden(io, 'Password for the new administrator (empty: generate one): ');
  if (first === '') return undefined;
  const again = await askHidden(io, 'The same password again: ');
  if (again !== first) throw new UsageError('the two passwords differ');
  return first;
}

/** How long `sat` waits for a server that holds DATA_DIR but is still starting (its socket not listening yet). */
const SERVER_START_WAIT_MS = 120_000;

/**
 * Hands `req` to the server holding the embedded database. A server still starting (migrations, keys) holds
 * DATA_DIR before its socket listens, and one killed with -9 leaves its socket file behind until the next start
 * replaces it: while the lock is held, connection refusals are waited out (the command never reached a server,
 * so trying again runs it once). The holder may also be another `sat` command, which never listens. Undefined
 * when the lock is let go meanwhile (that command ended, or the server stopped or failed to start): then `sat`
 * opens the database itself.
 */
async function throughServer(
  config: Readonly<Config>,
  req: { command: string; args: Record<string, unknown> },
  timeoutMs: number | undefined,
  stderr: CliIo['stderr'],
): Promise<ControlResponse | undefined> {
  const onWait = () => stderr.write('note: DATA_DIR is in use (a server starting, or another sat command); waiting for it\n');
  return waitForDataDir(SERVER_START_WAIT_MS, onWait, async (lastTry) => {
    try {
      const refused = otherVersionRefusal(await callControl(config.dataDir, { command: 'server-version', args: {} }));
      if (refused) return refused;
      return await callControl(config.dataDir, req, timeoutMs);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || lastTry) throw err;
    }
    return readLockHolder(config.dataDir) === undefined ? undefined : TRY_AGAIN;
  });
}

/**
 * The refusal of a command that would go through a running server of another version (the package upgraded, the
 * server not restarted yet): it would run the server's code, not this `sat`'s (`sat migrate` answering "up to date"
 * with this version's migrations pending, fields this `sat` prints missing). Undefined when the versions match.
 */
function otherVersionRefusal(answer: ControlResponse): ControlResponse | undefined {
  const theirs = answer.ok ? (answer.result as { latest_migration?: unknown }).latest_migration : undefined;
  if (answer.ok && theirs === LATEST_MIGRATION) return undefined;
  const which = typeof theirs === 'string' ? `its newest migration is ${theirs}, this sat's ${LATEST_MIGRATION}` : `it is older than this sat`;
  return {
    ok: false,
    error: {
      code: 'conflict',
      message:
        `the server running on this DATA_DIR is another version of sat (${which}): restart it with this version ` +
        '(it migrates at start), or stop it and run this command again, or use the sat of the version it runs',
    },
  };
}

/** Offsets past this between this machine's clock and PostgreSQL's are pointed out (docs/keys.md). */
const CLOCK_NOTE_MS = 5_000;

/**
 * The clock of a command that works on the database itself: PostgreSQL's (`databaseClock`), so a command run on a
 * machine whose clock is off (a key rotation's "signs from", `--now`, an expiry "in the future") means what it says
 * to the servers, with a note on stderr when the two differ by more than 5 s; the embedded database's is this
 * machine's, which is the server's too.
 */
async function commandClock(config: Readonly<Config>, knex: Knex, stderr: CliIo['stderr']): Promise<() => Date> {
  if (!config.databaseUrl) return () => new Date();
  const { clock, offsetMs } = await databaseClock(knex);
  if (Math.abs(offsetMs) > CLOCK_NOTE_MS) {
    const seconds = Math.round(Math.abs(offsetMs) / 1000);
    stderr.write(`note: this machine's clock is ${seconds} s ${offsetMs > 0 ? 'behind' : 'ahead of'} the database's; sat uses the database's\n`);
  }
  return clock;
}

/**
 * The commands that may queue mail when run on the database itself (its links, From and Message-ID then take this
 * environment's ISSUER). Not `token-create`: a token made by `sat` has no creator, and no generate mail goes out
 * (SPEC "Email"). `token-revoke` mails the token's creator, so nobody for a token made by `sat`; it warns anyway.
 */
const MAIL_COMMANDS = new Set(['admin-invite', 'admin-reset-password', 'token-revoke', 'token-rotate']);

/** Runs one command: through the running server when it holds the embedded database, else on the database itself. */
async function execute(
  config: Readonly<Config>,
  req: { command: string; args: Record<string, unknown> },
  stderr: CliIo['stderr'],
): Promise<ControlResponse> {
  if (req.command === 'restore') return restore(config, String(req.args.file), req.args.accept_unreadable_keys === true);
  // Before talking to DATA_DIR's socket or taking its lock: neither may be a link or another user's (a planted
  // socket would receive the passwords `sat admin add` sends the server).
  if (!config.databaseUrl) checkDataDirEntries(config.dataDir, 'embedded');
  const refused = noDatabaseRefusal(config, req.command) ?? (req.command === 'backup' ? backupTargetRefusal(String(req.args.file)) : undefined);
  if (refused) return refused;
  // A backup of a large database takes longer than the socket's usual 30 s.
  const timeoutMs = req.command === 'backup' ? 30 * 60_000 : undefined;
  if (!config.databaseUrl && readLockHolder(config.dataDir) !== undefined) {
    const answer = await throughServer(config, req, timeoutMs, stderr);
    if (answer) return answer;
  }
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, {}, (line) => stderr.write(line + '\n'));
  const deadline = Date.now() + SERVER_START_WAIT_MS;
  let db;
  for (;;) {
    try {
      if (!config.databaseUrl) makeOwnerOnly(config.dataDir);
      db = await openDb(config, log, { quietOutage: true });
      break;
    } catch (err) {
      // Another process took DATA_DIR between our check and our open: a server starting (go through it once it
      // listens) or another `sat` command (commands run one after another: open it once that one is done).
      if (!(err instanceof DataDirLockedError) || Date.now() > deadline) throw err;
      const answer = await throughServer(config, req, timeoutMs, stderr);
      if (answer) return answer;
    }
  }
  try {
    // PostgreSQL, as the embedded database (noDatabaseRefusal): a database without the server's tables (a wrong
    // DATABASE_URL, a fresh one) is created only by the commands of a first install, never by a read or a change.
    if (config.databaseUrl && !MAY_CREATE_DATABASE.has(req.command) && !(await db.knex.schema.hasTable('knex_migrations'))) {
      return { ok: false, error: { code: 'no_database', message: 'this database has none of the server\'s tables: nothing to read or change (is DATABASE_URL right? `sat migrate` or `sat serve` creates them)' } };
    }
    if (req.command !== 'migrate') await migrateLatest(db.knex, { onWait: (heldBy) => log.warn(MIGRATION_WAIT_MESSAGE, { held_by: heldBy }) });
    configurePasswordHashing(config.passwordHashing); // the configured cost for a password set here
    if (config.issuerDefaulted && MAIL_COMMANDS.has(req.command)) {
      // Run here, not in a server (PostgreSQL, or an embedded database no server holds): the mail takes this
      // environment's ISSUER for its links, its From and its Message-ID.
      stderr.write(`warning: ISSUER is not set: the mail this command queues will link to ${config.issuer} and come from that host; set ISSUER as the server has it\n`);
    }
    return await runCommand({ config, db, log, clock: await commandClock(config, db.knex, stderr) }, req.command, req.args);
  } catch (err) {
    // PostgreSQL not reachable (a wrong host or port in DATABASE_URL, the server down): the database is named, not
    // the embedded server's local socket, which a PostgreSQL install does not have.
    if (config.databaseUrl && isDatabaseUnavailable(err) && (err as { code?: unknown }).code !== '42P01') {
      return { ok: false, error: { code: 'service_unavailable', message: `cannot use the database (DATABASE_URL): ${briefDatabaseError(err).error}` } };
    }
    throw err;
  } finally {
    releasePasswordHashing(); // the command's hashes are done (runCli also runs inside longer-lived processes)
    await db.close();
  }
}

function print(out: (text: string) => void, command: string, result: unknown, json: boolean, args: Record<string, unknown> = {}): void {
  if (json) {
    out(JSON.stringify(result, null, 2) + '\n');
    return;
  }
  const r = result as Record<string, any>;
  switch (command) {
    case 'admin-add':
      out(
        `${r.organisation.created ? 'Created' : 'Using'} organisation "${r.organisation.name}" (${r.organisation.id})\n` +
          `Added administrator ${r.admin.email} (${r.admin.id})\n` +
          (r.generated_password ? `Password (shown once, keep it safe): ${r.generated_password}\n` : ''),
      );
      break;
    case 'admin-list':
      out(
        r.items
          .map((a: Record<string, any>) => [a.id, a.email, a.created_at, a.last_sign_in_at ? `signed in ${a.last_sign_in_at}` : 'never signed in'].join('  '))
          .join('\n') + (r.items.length ? '\n' : '') + `${r.items.length} administrator${r.items.length === 1 ? '' : 's'}\n`,
      );
      break;
    case 'admin-invite':
      out(
        `Invited ${r.email}: the invitation mail is queued; its link opens ${r.console_url} and works once, until ${r.expires_at}\n` +
          '(the link is built from ISSUER: run sat with the server\'s environment)\n',
      );
      break;
    case 'admin-remove':
      out(`Removed administrator ${r.email} (${r.id}); their sessions ended\n`);
      break;
    case 'admin-invitations':
      out(
        r.items
          .map((i: Record<string, any>) =>
            [i.id, i.email, `invited ${i.created_at}`, `by ${i.invited_by ? i.invited_by.email : 'sat'}`, `expires ${i.expires_at}`].join('  '),
          )
          .join('\n') + (r.items.length ? '\n' : '') + `${r.items.length} pending invitation${r.items.length === 1 ? '' : 's'}\n`,
      );
      break;
    case 'admin-withdraw':
      out(`Withdrew the invitation of ${r.email} (${r.id}); its link no longer works\n`);
      break;
    case 'admin-reset-password':
      out(
        `Reset the password of ${r.admin.email} (${r.admin.id}); ended ${r.sessions_ended} session(s)\n` +
          (r.generated_password ? `New password (shown once, keep it safe): ${r.generated_password}\n` : ''),
      );
      break;
    case 'token-create':
      out(
        `Generated token "${r.name}" (${r.id})\n` +
          `  client ID:     ${r.client_id}\n` +
          (r.client_secret
            ? `  client secret: ${r.client_secret}\n`
            : `  auth method:   private_key_jwt (keys ${r.jwk_thumbprints.join(', ')})\n`) +
          `  services:      ${r.services.join(', ')}\n` +
          `  expires:       ${r.expires_at}\n` +
          (r.require_dpop ? '  DPoP:          required\n' : '') +
          (r.client_secret ? 'The client secret is shown only this once: keep a secure copy now.\n' : ''),
      );
      break;
    case 'token-list':
      out(
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
    case 'token-show':
      out(showToken(r));
      break;
    case 'token-update':
      out(
        `Updated token "${r.name}" (${r.id})\n` +
          `  client ID:           ${r.client_id}\n` +
          `  services:            ${r.services.join(', ')}\n` +
          `  allowed IPs:         ${r.allowed_ips.length ? r.allowed_ips.join(', ') : 'any'}\n` +
          `  max tokens per hour: ${r.max_tokens_per_hour ?? 'no limit'}\n` +
          (r.auth_method === 'private_key_jwt' ? `  auth method:         private_key_jwt (keys ${r.jwk_thumbprints.join(', ')})\n` : '') +
          `  DPoP:                ${r.require_dpop ? 'required' : 'not required'}\n` +
          `  expires:             ${r.expires_at}\n`,
      );
      break;
    case 'audit-list':
      out(
        (r.items as Array<Record<string, any>>)
          .map((e) =>
            [
              e.created_at,
              e.action.padEnd(26),
              e.actor_email,
              ...(e.subject_admin ? [`admin ${e.subject_admin.email}`] : []),
              ...(e.token_id ? [`token ${JSON.stringify(e.token_name)} ${e.client_id ?? ''}`.trim()] : []),
              ...(e.ip ? [`from ${e.ip}`] : []),
              ...(e.action === 'admin.sign_in_failed' && Number(e.details?.attempts) > 1 ? [`${e.details.attempts} attempts since ${e.details.first_at}`] : []),
              ...(e.leak ? [`leak ${e.leak.action}, ${e.leak.source}${e.leak.url ? ` ${e.leak.url}` : ''}`] : []),
            ].join('  '),
          )
          .join('\n') + (r.items.length ? '\n' : '') + (r.more ? 'More events are older: raise --limit to see them.\n' : ''),
      );
      break;
    case 'policy-show':
    case 'policy-set':
      out(
        `max_lifetime_days:           ${r.max_lifetime_days}\n` +
          `allowed_services:            ${r.allowed_services.join(', ')}\n` +
          `revoke_dormant_after_days:   ${r.revoke_dormant_after_days ?? 'none'}\n` +
          `default_max_tokens_per_hour: ${r.default_max_tokens_per_hour ?? 'none'}\n`,
      );
      break;
    case 'token-rotate': {
      const previous = (r.secrets as Array<{ id: string; last4: string; expires_at: string | null }>).find((x) => x.expires_at !== null);
      out(
        `Rotated the secret of token "${r.name}" (${r.id})\n` +
          `  client ID:     ${r.client_id} (unchanged)\n` +
          `  client secret: ${r.client_secret}\n` +
          `  previous secret: ${previous ? `…${previous.last4} (secret ID ${previous.id}) works until ${previous.expires_at}` : 'stopped at once'}\n` +
          'The client secret is shown only this once: keep a secure copy now.\n' +
          (previous ? `Once every client uses the new one: sat token retire --org ${JSON.stringify(String(args.org))} ${r.id} ${previous.id}\n` : ''),
      );
      break;
    }
    case 'token-retire':
      out(
        `Retired a secret of token "${r.name}" (${r.id}, client ID ${r.client_id}): it stopped working\n` +
          (r.secrets as Array<{ id: string; last4: string; expires_at: string | null }>)
            .map((x) => `  live secret …${x.last4} (secret ID ${x.id})${x.expires_at ? `, works until ${x.expires_at}` : ''}\n`)
            .join(''),
      );
      break;
    case 'token-revoke':
      out(`Revoked token "${r.name}" (${r.id}, client ID ${r.client_id}) at ${r.revoked_at}\n`);
      break;
    case 'resource-server-add':
      out(
        `Added resource server "${r.name}" (${r.id})\n` +
          `  client ID:     ${r.client_id}\n` +
          `  client secret: ${r.client_secret}\n` +
          'It may call introspection for every organisation\'s tokens, nothing else.\n' +
          'The client secret is shown only this once: keep a secure copy now.\n',
      );
      break;
    case 'resource-server-list':
      out(
        r.items.map((s: Record<string, any>) => [s.id, s.client_id, s.created_at, JSON.stringify(s.name)].join('  ')).join('\n') +
          (r.items.length ? '\n' : '') +
          `${r.items.length} resource server${r.items.length === 1 ? '' : 's'}\n`,
      );
      break;
    case 'resource-server-revoke':
      out(`Revoked resource server "${r.name}" (${r.id}, client ID ${r.client_id}) at ${r.revoked_at}\n`);
      break;
    case 'keys-list':
      out(
        (r.published as Array<{ kid: string; alg: string; status: string; signs_from: string | null; published_until: string | null; encrypted: boolean; opens: boolean }>)
          .map((k) =>
            [
              k.kid,
              k.alg,
              k.status.padEnd(8),
              ...(k.signs_from ? [`signs from ${k.signs_from}`] : []),
              ...(k.published_until ? [`published until ${k.published_until}`] : []),
              k.encrypted ? 'encrypted' : 'NOT encrypted at rest',
              ...(k.opens ? [] : ['CANNOT be opened with the configured key-encryption key']),
            ].join('  '),
          )
          .join('\n') +
          (r.published.length ? '\n' : '') +
          (r.signing_kid ? `Signing with ${r.signing_kid}\n` : 'No key signs yet\n') +
          (r.next_rotation_at
            ? `Next automatic rotation: ${r.next_rotation_at} (a new key published then; by KEY_ROTATION_DAYS=${r.key_rotation_days} as set where this ran)\n`
            : 'Automatic rotation is off (KEY_ROTATION_DAYS=0 as set where this ran)\n') +
          ((r.published as Array<{ opens: boolean }>).some((k) => !k.opens)
            ? 'Some keys do not open with this key-encryption key: set the key they were sealed under, or see ' +
              'docs/operations.md "Key-encryption key custody" (sat keys rotate --now --drop-unreadable)\n'
            : ''),
      );
      break;
    case 'keys-rotate':
      out(
        `Added signing key ${r.kid} (${r.alg}): published now, signs from ${r.signs_from}\n` +
          (r.dropped_pending?.length ? `Deleted the pending key(s) it replaces, which never signed: ${r.dropped_pending.join(', ')}\n` : '') +
          (r.dropped_unreadable?.length
            ? `Deleted the key(s) the configured key-encryption key cannot open (tokens they signed no longer verify): ${r.dropped_unreadable.join(', ')}\n`
            : ''),
      );
      break;
    case 'keys-remove':
      out(
        `Deleted signing key ${r.kid} (${r.alg}, ${r.was === 'pending' ? 'not signing yet' : 'no longer signing'}): every instance ` +
          'leaves it out of its JWKS within seconds, and tokens it signed no longer pass introspection\n',
      );
      break;
    case 'keys-rewrap':
      out(
        r.unchanged
          ? r.replaced_key_file
            ? `Every signing key was already sealed under this key-encryption key (id ${r.kek_id}); ${r.replaced_key_file} ` +
              'still held the previous key (an earlier rewrap stopped before it replaced it) and now holds this one\n'
            : `Every signing key is already sealed under this key-encryption key (id ${r.kek_id}): nothing changed\n`
          : `Encrypted ${r.rewrapped} signing key(s) under the new key-encryption key (id ${r.kek_id})\n` +
              (r.replaced_key_file
                ? `Replaced ${r.replaced_key_file}: backups taken before now need the previous key (docs/operations.md "Key-encryption key custody")\n`
                : 'Now give every instance the new key: replace the contents of KEY_ENCRYPTION_KEY_FILE (running instances ' +
                  'follow within seconds), or set KEY_ENCRYPTION_KEY and restart them one by one (docs/keys.md).\n'),
      );
      break;
    case 'backup':
      out(`Backed up the embedded database to ${r.file} (${r.bytes} bytes)\n`);
      break;
    case 'restore':
      out(
        `Restored the embedded database in ${r.data_dir} from ${r.file}\n` +
          (r.previous ? `The data it replaced is kept in ${r.previous} (delete it when no longer needed)\n` : '') +
          (r.removed_interrupted?.length ? `Removed what an interrupted restore left: ${r.removed_interrupted.join(', ')}\n` : '') +
          (r.finished_interrupted
            ? `Before it, finished an interrupted earlier restore (${r.finished_interrupted}): that data is what was replaced\n`
            : ''),
      );
      break;
    case 'migrate':
      out(
        (r.newly_applied.length ? `Applied: ${r.newly_applied.join(', ')}\n` : `Up to date (${r.applied.length} migrations)\n`) +
          (r.sealed_keys ? `Encrypted ${r.sealed_keys} signing key(s) stored in clear under the key-encryption key; copies taken before still hold them: run \`sat keys rotate\` to retire them\n` : ''),
      );
      break;
    default:
      out(JSON.stringify(result, null, 2) + '\n');
  }
}

/** `sat token show`: every field of the token resource, one per line (the live secrets' ids and last four only). */
function showToken(r: Record<string, any>): string {
  const line = (label: string, value: string) => `  ${(label + ':').padEnd(21)}${value}\n`;
  const flags = [...(r.expiring ? ['expiring'] : []), ...(r.dormant ? ['dormant'] : [])];
  const keyed = r.auth_method === 'private_key_jwt';
  const secrets = (r.secrets ?? []) as Array<{ id: string; created_at: string; expires_at: string | null; last_used_at: string | null; last4: string | null }>;
  return (
    `Token "${r.name}" (${r.id})\n` +
    line('client ID', r.client_id) +
    line('status', r.status + (flags.length ? ` (${flags.join(', ')})` : '')) +
    (r.leaked_at ? line('leaked', `secret reported leaked at ${r.leaked_at}; the token was kept alive: replace it`) : '') +
    line('services', r.services.join(', ')) +
    line('scopes', r.scopes) +
    line('expires', r.expires_at) +
    line('created', r.created_at) +
    line('created by', r.created_by ? `${r.created_by.email} (${r.created_by.id})` : 'no administrator (sat, or one since removed)') +
    line('last used', r.last_used_at ?? 'never') +
    line('allowed IPs', r.allowed_ips.length ? r.allowed_ips.join(', ') : 'any') +
    line(
      'max tokens per hour',
      r.max_tokens_per_hour === null ? 'no limit' : `${r.max_tokens_per_hour} (${r.tokens_last_hour} issued in the last hour)`,
    ) +
    line('auth method', keyed ? `private_key_jwt (keys ${(r.jwk_thumbprints ?? []).join(', ')})` : 'client_secret') +
    line('DPoP', r.require_dpop ? 'required' : 'not required') +
    (keyed
      ? ''
      : secrets.length
        ? secrets
            .map(
              (x) =>
                line(
                  'live secret',
                  `…${x.last4 ?? '????'} (secret ID ${x.id}), created ${x.created_at}, ` +
                    `${x.expires_at ? `works until ${x.expires_at}` : 'works as long as the token'}, ` +
                    `${x.last_used_at ? `last used ${x.last_used_at}` : 'never used'}`,
                ),
            )
            .join('')
        : line('live secret', 'none'))
  );
}

/**
 * Where `runCli` reads and writes: the real process's in the `sat` bin (src/cli/index.ts), others in tests.
 */
export interface CliIo {
  /** The environment the configuration is read from; absent: the process's own (read by loadConfig). */
  env?: NodeJS.ProcessEnv;
  /** Standard input: `--password-stdin`, `secret check -`, and the password prompt when it is a terminal. */
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /**
   * `sat serve`: starts the server with the loaded configuration; resolves once it runs (it keeps running: the
   * bin's handles signals and ends the process). Absent: `serve` is refused.
   */
  serve?: (config: Readonly<Config>) => Promise<void>;
}

/**
 * Runs the `sat` command line `argv` (without node and the script) to its end and resolves with its exit code:
 * 0 done, 1 failed, 2 usage error. It reads and writes only through `io`, never exits the process, and sets the
 * process umask to 077 (as the server does) before a command that may create files.
 */
export async function runCli(argv: string[], io: CliIo): Promise<number> {
  const out = (text: string) => void io.stdout.write(text);
  const err = (text: string) => void io.stderr.write(text);
  let parsed: Parsed;
  try {
    parsed = parse(argv);
  } catch (e) {
    // An unknown or malformed option: the message, then the help of the command it was given to.
    const named = parseArgs({ args: argv, allowPositionals: true, strict: false }).positionals;
    // Node's text for an unknown option goes on to advise a `--` for a positional argument, which no sat command
    // takes in that form: the option is named, and the help below lists those it takes.
    const unknown = (e as { code?: unknown }).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION' ? /^Unknown option '([^']*)'/.exec((e as Error).message)?.[1] : undefined;
    err(usageMessage(unknown !== undefined ? `unknown option ${unknown}` : (e as Error).message, named));
    return 2;
  }
  if (parsed.values.help || parsed.positionals.length === 0) {
    // Asked for (--help): the help is the result, on stdout. No command at all is wrong usage: stderr, as every other.
    (parsed.values.help ? out : err)(helpFor(parsed.positionals) + '\n');
    return parsed.values.help ? 0 : 2;
  }
  const [first, second, ...more] = parsed.positionals;
  if (first === 'secret') {
    // Offline: no configuration, no database.
    if (second !== 'check' || more.length !== 1) {
      err(usageMessage('secret check takes one SECRET, or - to read it from stdin', ['secret', 'check']));
      return 2;
    }
    return secretCheck(more[0]!, parsed.values.json ?? false, { stdin: io.stdin as AsyncIterable<Buffer | string>, stdout: out });
  }
  restrictUmask(); // whatever `sat` creates in DATA_DIR is owner-only (SPEC Part 2)
  try {
    const config = io.env ? loadConfig(io.env) : loadConfig();
    if (parsed.positionals[0] === 'serve' && parsed.positionals.length === 1) {
      checkOptions('serve', undefined, parsed.given);
      if (!io.serve) throw new Error('serve cannot run here');
      await io.serve(config);
      return 0; // and it keeps running
    }
    const req = toRequest(parsed, config);
    if (req.command === 'admin-reset-password' && parsed.values['password-stdin']) {
      req.args.password = await readStdin(io.stdin);
    }
    if (req.command === 'admin-add') {
      const password = await adminPassword(parsed.values, io);
      req.args = { ...req.args, ...(password !== undefined ? { password } : {}) };
    }
    const res = await execute(config, req, io.stderr);
    if (!res.ok) {
      const details = Array.isArray(res.error.details) ? (res.error.details as Array<{ path: string; message: string }>) : [];
      err(`sat: ${res.error.message}\n${details.map((d) => `  ${d.path}: ${d.message}\n`).join('')}`);
      return 1;
    }
    print(out, req.command, res.result, parsed.values.json ?? false, req.args);
    return 0;
  } catch (e) {
    if (e instanceof UsageError) {
      err(usageMessage(e.message, parsed.positionals));
      return 2;
    }
    if (e instanceof InputError || e instanceof ConfigError || e instanceof DataDirLockedError) {
      err(`sat: ${e.message}\n`);
      return 1;
    }
    const x = e as NodeJS.ErrnoException;
    if (x.code === 'ECONNREFUSED' || x.code === 'ENOENT') {
      err(`sat: could not reach the running server's local socket (${x.message})\n`);
      return 1;
    }
    err(`sat: ${x.message}\n`);
    return 1;
  }
}
