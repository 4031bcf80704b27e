// Configuration: the only reader of process.env and of config/*.json.
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describeIssues, envSchema, fileConfigSchema, type FileConfig } from './schema.js';

export type Service = FileConfig['services'][number];
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';

export interface Config {
  port: number;
  host: string;
  issuer: string;
  /** ISSUER was not set: `issuer` is the default `http://localhost:$PORT` (sat warns where that reaches a mail). */
  issuerDefaulted: boolean;
  apiAudience: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  dataDir: string;
  smtpUrl: string | undefined;
  mailFrom: string;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  trustProxy: boolean;
  /**
   * With trustProxy: the proxies in a row that each append to X-Forwarded-For/-Proto/-Host; the client's entry is
   * this many from the right (1: the right-most, what the one load balancer added).
   */
  trustProxyHops: number;
  /** HSTS_MAX_AGE_SECONDS: `Strict-Transport-Security: max-age=N` on responses to HTTPS requests; 0: none. Default one year. */
  hstsMaxAgeSeconds: number;
  logLevel: LogLevel;
  services: readonly Service[];
  maxActiveTokens: number;
  maxTokenLifetimeDays: number;
  /** An active token expiring within this many days is "expiring" (SPEC "Credential lifecycle"). */
  expiringSoonDays: number;
  /** An active token unused for this many days (since creation when never used) is "dormant". */
  dormantAfterDays: number;
  accessTokenTtlSeconds: number;
  signingAlg: 'ES256' | 'RS256';
  adminSessionTtlSeconds: number;
  defaultOrganisation: string;
  /** Sign-in throttle of the admin API (config/default.json `loginThrottle`). */
  loginThrottle: Readonly<FileConfig['loginThrottle']>;
  /** Limits of password-reset requests, apart from the sign-in throttle (config/default.json `passwordReset`). */
  passwordReset: Readonly<FileConfig['passwordReset']>;
  /** Unexpired revoked access tokens remembered per client (config `maxRevokedAccessTokensPerClient`). */
  maxRevokedAccessTokensPerClient: number;
  /** Threads and queue of password hashing (config `passwordHashing`). */
  passwordHashing: Readonly<FileConfig['passwordHashing']>;
  /** Days before expiry at which reminder mails go out, most urgent first (config/default.json `expiryReminderDays`). */
  expiryReminderDays: readonly number[];
  /** Delivery attempts per mail before it is marked failed. */
  mailMaxAttempts: number;
  /** First retry delay; doubles per attempt (with jitter) up to mailRetryMaxSeconds. */
  mailRetryBaseSeconds: number;
  mailRetryMaxSeconds: number;
  /** How often each instance looks for due mail. */
  mailPollIntervalMs: number;
  /** Bound on each PostgreSQL statement, query, connect and pool acquire (DATABASE_TIMEOUT_SECONDS, default 5). */
  databaseTimeoutMs: number;
  /** Embedded database: free bytes under DATA_DIR below which writes are refused (MIN_FREE_DISK_MB, default 64). */
  minFreeDiskBytes: number;
  /** Send SMTP credentials without TLS (SMTP_ALLOW_PLAINTEXT_AUTH); false: smtps:// or STARTTLS required. */
  smtpAllowPlaintextAuth: boolean;
  /** Bearer token GET /metrics requires (METRICS_TOKEN); undefined: open. */
  metricsToken: string | undefined;
  /** Milliseconds a client has to send a whole request, body included (REQUEST_TIMEOUT_SECONDS, default 10). */
  requestTimeoutMs: number;
  /** How often each instance looks for tokens entering their last 7 days. */
  expiryCheckIntervalMs: number;
  /** TOKEN_FAST_PATH: answer plain token requests without oidc-provider's pipeline (docs/oauth.md); default on. */
  tokenFastPath: boolean;
  /** The key-encryption key of the signing keys (KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE); unset: see src/keys. */
  keyEncryptionKey: SecretKey | undefined;
  /** `sat keys rewrap`: the new key-encryption key from NEW_KEY_ENCRYPTION_KEY, when set. */
  newKeyEncryptionKey: SecretKey | undefined;
  /** PostgreSQL without a key-encryption key stores signing keys in clear only when this is true. */
  allowPlaintextKeys: boolean;
  /** A new signing key is published this long before it signs (default 600). */
  keyPublishAheadSeconds: number;
  /** Signing keys rotate by themselves this often (default 90; 0: never). */
  keyRotationDays: number;
  /**
   * The secret-scanning partner's public keys (`{public_keys: [{key_identifier, key, is_current}]}`, GitHub's
   * format); unset: POST /secret-scanning/verify answers 404.
   */
  secretScanningKeysFile: string | undefined;
  /** What a secret-scanning alert for a live secret does: `revoke` (default) or `notify`. */
  secretScanningAction: 'revoke' | 'notify';
  /** SIGTERM/SIGINT: how long in-flight requests may take before the remaining connections are closed. */
  shutdownGraceMs: number;
  /** How often each instance looks for tokens to revoke under the dormant-token policy (POLICY_CHECK_INTERVAL_MS). */
  policyCheckIntervalMs: number;
}

/**
 * A 256-bit secret key read from the environment or a file. Never serialised: JSON.stringify and util.inspect
 * show `[REDACTED]`, so a logged configuration cannot leak it.
 */
export class SecretKey {
  readonly #bytes: Buffer;
  constructor(
    bytes: Buffer,
    /** Where it came from, for messages: an environment variable name or a file path. */
    readonly source: string,
    /** The file it was read from (KEY_ENCRYPTION_KEY_FILE), read again by rereadKeyFile; undefined for a variable. */
    readonly file?: string,
  ) {
    this.#bytes = bytes;
  }
  get bytes(): Buffer {
    return this.#bytes;
  }
  toJSON(): string {
    return '[REDACTED]';
  }
  [Symbol.for('nodejs.util.inspect.custom')](): string {
    return `SecretKey(${this.source})`;
  }
}

/** Base64 (or base64url) text of exactly 32 bytes → SecretKey; undefined and a problem otherwise. */
export function parseKeyEncryptionKey(text: string, source: string, problems: string[], file?: string): SecretKey | undefined {
  const trimmed = text.trim();
  const bytes = /^[A-Za-z0-9+/_-]+={0,2}$/.test(trimmed) ? Buffer.from(trimmed, trimmed.includes('-') || trimmed.includes('_') ? 'base64url' : 'base64') : undefined;
  if (!bytes || bytes.length !== 32) {
    problems.push(`${source}: must be the base64 of exactly 32 random bytes (e.g. \`openssl rand -base64 32\`)`);
    return undefined;
  }
  return new SecretKey(bytes, source, file);
}

/**
 * The key in `key`'s file as it is now (KEY_ENCRYPTION_KEY_FILE replaced after `sat keys rewrap`, say); `key` itself
 * when it came from a variable, or when the file cannot be read or holds no valid key now (a half-written
 * replacement: the next read may succeed).
 */
export function rereadKeyFile(key: SecretKey): SecretKey {
  if (!key.file) return key;
  try {
    return parseKeyEncryptionKey(readFileSync(key.file, 'utf8'), key.file, [], key.file) ?? key;
  } catch {
    return key;
  }
}

function readKeyEncryptionKey(
  env: { KEY_ENCRYPTION_KEY?: string; KEY_ENCRYPTION_KEY_FILE?: string },
  problems: string[],
): SecretKey | undefined {
  let key: SecretKey | undefined;
  if (env.KEY_ENCRYPTION_KEY && env.KEY_ENCRYPTION_KEY_FILE) {
    problems.push('KEY_ENCRYPTION_KEY, KEY_ENCRYPTION_KEY_FILE: set one of them, not both');
  } else if (env.KEY_ENCRYPTION_KEY) {
    key = parseKeyEncryptionKey(env.KEY_ENCRYPTION_KEY, 'KEY_ENCRYPTION_KEY', problems);
  } else if (env.KEY_ENCRYPTION_KEY_FILE) {
    const file = path.resolve(env.KEY_ENCRYPTION_KEY_FILE);
    let text: string | undefined;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      problems.push(`KEY_ENCRYPTION_KEY_FILE: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (text !== undefined) key = parseKeyEncryptionKey(text, file, problems, file);
  }
  return key;
}

/** Thrown by loadConfig with every configuration problem found: `problems`, one line each, all in the message. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n  ${problems.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

/** The package root: the nearest folder above this file with a package.json (works from src/ and dist/src/). */
export function packageRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
}

/** A JSON file's value, or undefined with a problem that names `setting` (CONFIG_FILE) and the file when there is one. */
function readJson(file: string, problems: string[], setting?: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    problems.push(`${setting ? `${setting}: ` : ''}${file}: ${(err as Error).message}`);
    return undefined;
  }
}

/** A variable as given, when it is non-blank text (for the checks that still run when others failed). */
function rawSetting(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const value = env[name];
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

/** ISSUER's path without a trailing slash (`https://host/sat/` → `/sat`), '' for an ISSUER without one. */
export function issuerPath(issuer: string): string {
  return new URL(issuer).pathname.replace(/\/+$/, '');
}

/**
 * The public URL of `path` (starting with "/") under `issuer`: ISSUER may end in "/" (it is then the `issuer` and
 * `iss` with that slash, exactly as set), but endpoint URLs never get a doubled slash.
 */
export function issuerUrl(issuer: string, path: string): string {
  return issuer.replace(/\/+$/, '') + path;
}

/** The longest control-socket path (DATA_DIR/sat.sock) accepted: sockaddr_un holds 108 bytes on Linux, 104 on macOS. */
export const MAX_SOCKET_PATH_BYTES = 100;

/**
 * Reads the environment and config/default.json (merged with CONFIG_FILE when set)
 * and returns a validated, frozen configuration. Throws ConfigError listing every problem.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  // Every stage runs even when an earlier one failed, so that one start names every problem at once.
  const problems: string[] = [];
  const parsedEnv = envSchema.safeParse(env);
  if (!parsedEnv.success) problems.push(...describeIssues(parsedEnv.error));

  const root = packageRoot();
  const base = readJson(path.join(root, 'config', 'default.json'), problems) as Record<string, unknown> | undefined;
  const configFile = rawSetting(env, 'CONFIG_FILE');
  const override = configFile ? (readJson(path.resolve(configFile), problems, 'CONFIG_FILE') as Record<string, unknown> | undefined) : {};
  const parsedFile = base && override !== undefined ? fileConfigSchema.safeParse({ ...base, ...override }) : undefined;
  if (parsedFile && !parsedFile.success) problems.push(...describeIssues(parsedFile.error, 'config: '));

  const keyEncryptionKey = readKeyEncryptionKey(
    { KEY_ENCRYPTION_KEY: rawSetting(env, 'KEY_ENCRYPTION_KEY'), KEY_ENCRYPTION_KEY_FILE: rawSetting(env, 'KEY_ENCRYPTION_KEY_FILE') },
    problems,
  );
  const newKeyText = rawSetting(env, 'NEW_KEY_ENCRYPTION_KEY');
  const newKeyEncryptionKey = newKeyText ? parseKeyEncryptionKey(newKeyText, 'NEW_KEY_ENCRYPTION_KEY', problems) : undefined;
  // The embedded database's control socket is DATA_DIR/sat.sock, and a Unix socket's path holds ~100 bytes: refused
  // here, before a first start creates anything, rather than after it (src/control).
  if (parsedEnv.success && !parsedEnv.data.DATABASE_URL) {
    const socket = path.join(path.resolve(parsedEnv.data.DATA_DIR ?? './data'), 'sat.sock');
    if (Buffer.byteLength(socket) > MAX_SOCKET_PATH_BYTES) {
      problems.push(`DATA_DIR: too long for the embedded database's control socket (${socket} is over ${MAX_SOCKET_PATH_BYTES} bytes): choose a shorter path`);
    }
  }
  if (problems.length || !parsedEnv.success || !parsedFile?.success) throw new ConfigError(problems);
  const e = parsedEnv.data;
  const file = parsedFile.data;

  const port = e.PORT ?? 3000;
  // Kept exactly as given (SPEC: discovery `issuer` and every `iss` "equal it exactly"); URLs are joined with issuerUrl.
  const issuer = e.ISSUER ?? `http://localhost:${port}`;
  return Object.freeze({
    port,
    host: e.HOST ?? '0.0.0.0',
    issuer,
    issuerDefaulted: e.ISSUER === undefined,
    apiAudience: e.API_AUDIENCE ?? issuerUrl(issuer, '/api'),
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX ?? 10,
    dataDir: path.resolve(e.DATA_DIR ?? './data'),
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM ?? `System Access Tokens <no-reply@${new URL(issuer).hostname}>`,
    adminEmail: e.ADMIN_EMAIL,
    adminPassword: e.ADMIN_PASSWORD,
    trustProxy: e.TRUST_PROXY ?? false,
    trustProxyHops: e.TRUST_PROXY_HOPS ?? 1,
    hstsMaxAgeSeconds: e.HSTS_MAX_AGE_SECONDS ?? 31_536_000,
    logLevel: e.LOG_LEVEL ?? 'info',
    services: Object.freeze(file.services.map((s) => Object.freeze({ ...s }))),
    maxActiveTokens: e.MAX_ACTIVE_TOKENS ?? file.maxActiveTokens,
    maxTokenLifetimeDays: file.maxTokenLifetimeDays,
    expiringSoonDays: file.expiringSoonDays,
    dormantAfterDays: file.dormantAfterDays,
    accessTokenTtlSeconds: e.ACCESS_TOKEN_TTL_SECONDS ?? file.accessTokenTtlSeconds,
    signingAlg: e.SIGNING_ALG ?? file.signingAlg,
    adminSessionTtlSeconds: file.adminSessionTtlSeconds,
    defaultOrganisation: file.defaultOrganisation,
    loginThrottle: Object.freeze({ ...file.loginThrottle }),
    passwordReset: Object.freeze({ ...file.passwordReset }),
    maxRevokedAccessTokensPerClient: file.maxRevokedAccessTokensPerClient,
    passwordHashing: Object.freeze({ ...file.passwordHashing, cost: e.PASSWORD_HASH_COST ?? file.passwordHashing.cost }),
    expiryReminderDays: Object.freeze([...file.expiryReminderDays].sort((a, b) => a - b)),
    mailMaxAttempts: e.MAIL_MAX_ATTEMPTS ?? 20,
    mailRetryBaseSeconds: e.MAIL_RETRY_BASE_SECONDS ?? 30,
    mailRetryMaxSeconds: e.MAIL_RETRY_MAX_SECONDS ?? 3_600,
    mailPollIntervalMs: e.MAIL_POLL_INTERVAL_MS ?? 5_000,
    expiryCheckIntervalMs: e.EXPIRY_CHECK_INTERVAL_MS ?? 600_000,
    tokenFastPath: e.TOKEN_FAST_PATH !== 'off',
    keyEncryptionKey,
    newKeyEncryptionKey,
    allowPlaintextKeys: e.ALLOW_PLAINTEXT_KEYS ?? false,
    keyPublishAheadSeconds: e.KEY_PUBLISH_AHEAD_SECONDS ?? 600,
    keyRotationDays: e.KEY_ROTATION_DAYS ?? 90,
    secretScanningKeysFile: e.SECRET_SCANNING_KEYS_FILE ? path.resolve(e.SECRET_SCANNING_KEYS_FILE) : undefined,
    secretScanningAction: e.SECRET_SCANNING_ACTION ?? 'revoke',
    shutdownGraceMs: Math.round((e.SHUTDOWN_GRACE_SECONDS ?? 10) * 1000),
    smtpAllowPlaintextAuth: e.SMTP_ALLOW_PLAINTEXT_AUTH ?? false,
    minFreeDiskBytes: Math.round((e.MIN_FREE_DISK_MB ?? 64) * 1024 * 1024),
    databaseTimeoutMs: Math.round((e.DATABASE_TIMEOUT_SECONDS ?? 5) * 1000),
    metricsToken: e.METRICS_TOKEN,
    requestTimeoutMs: Math.round((e.REQUEST_TIMEOUT_SECONDS ?? 10) * 1000),
    policyCheckIntervalMs: e.POLICY_CHECK_INTERVAL_MS ?? 3_600_000,
  });
}
