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
  apiAudience: string;
  databaseUrl: string | undefined;
  databasePoolMax: number;
  dataDir: string;
  smtpUrl: string | undefined;
  mailFrom: string;
  adminEmail: string | undefined;
  adminPassword: string | undefined;
  trustProxy: boolean;
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
  /** Delivery attempts per mail before it is marked failed. */
  mailMaxAttempts: number;
  /** First retry delay; doubles per attempt (with jitter) up to mailRetryMaxSeconds. */
  mailRetryBaseSeconds: number;
  mailRetryMaxSeconds: number;
  /** How often each instance looks for due mail. */
  mailPollIntervalMs: number;
  /** How often each instance looks for tokens entering their last 7 days. */
  expiryCheckIntervalMs: number;
  /** How often each instance looks for tokens to revoke under the dormant-token policy (POLICY_CHECK_INTERVAL_MS). */
  policyCheckIntervalMs: number;
}

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

function readJson(file: string): unknown {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new ConfigError([`${file}: ${(err as Error).message}`]);
  }
}

/**
 * Reads the environment and config/default.json (merged with CONFIG_FILE when set)
 * and returns a validated, frozen configuration. Throws ConfigError listing every problem.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Readonly<Config> {
  const parsedEnv = envSchema.safeParse(env);
  if (!parsedEnv.success) throw new ConfigError(describeIssues(parsedEnv.error));
  const e = parsedEnv.data;

  const root = packageRoot();
  const base = readJson(path.join(root, 'config', 'default.json')) as Record<string, unknown>;
  const override = e.CONFIG_FILE ? (readJson(path.resolve(e.CONFIG_FILE)) as Record<string, unknown>) : {};
  const parsedFile = fileConfigSchema.safeParse({ ...base, ...override });
  if (!parsedFile.success) throw new ConfigError(describeIssues(parsedFile.error, 'config: '));
  const file = parsedFile.data;

  const port = e.PORT ?? 3000;
  const issuer = (e.ISSUER ?? `http://localhost:${port}`).replace(/\/+$/, '');
  return Object.freeze({
    port,
    host: e.HOST ?? '0.0.0.0',
    issuer,
    apiAudience: e.API_AUDIENCE ?? `${issuer}/api`,
    databaseUrl: e.DATABASE_URL,
    databasePoolMax: e.DATABASE_POOL_MAX ?? 10,
    dataDir: path.resolve(e.DATA_DIR ?? './data'),
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM ?? `System Access Tokens <no-reply@${new URL(issuer).hostname}>`,
    adminEmail: e.ADMIN_EMAIL,
    adminPassword: e.ADMIN_PASSWORD,
    trustProxy: e.TRUST_PROXY ?? false,
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
    mailMaxAttempts: e.MAIL_MAX_ATTEMPTS ?? 20,
    mailRetryBaseSeconds: e.MAIL_RETRY_BASE_SECONDS ?? 30,
    mailRetryMaxSeconds: e.MAIL_RETRY_MAX_SECONDS ?? 3_600,
    mailPollIntervalMs: e.MAIL_POLL_INTERVAL_MS ?? 5_000,
    expiryCheckIntervalMs: e.EXPIRY_CHECK_INTERVAL_MS ?? 600_000,
    policyCheckIntervalMs: e.POLICY_CHECK_INTERVAL_MS ?? 3_600_000,
  });
}
