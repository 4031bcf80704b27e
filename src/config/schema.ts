import { isIP } from 'node:net';
import addressparser from 'nodemailer/lib/addressparser/index.js';
import { z } from 'zod';

const serviceId = z.string().regex(/^[a-z0-9][a-z0-9._:-]{0,63}$/, 'a service id is a lower-case OAuth scope token');

/**
 * scrypt cost (log2 N, with r = 8 and p = 1) of new password hashes. Default 15 (N = 32768, 32 MiB, ~0.1 s);
 * it is also the maximum (the hashing thread's 64 MiB memory bound). Floor 12 (N = 4096, 4 MiB): the test suite
 * runs at the floor to keep its many sign-ins cheap; nothing may go below it. Each hash stores the cost it was
 * made with, so a change affects new and changed passwords only; sign-in verifies any stored hash.
 */
export const DEFAULT_PASSWORD_HASH_COST = 15;
/** The lowest scrypt cost (log2 N) the configuration accepts for password hashes: N = 4096, 4 MiB. */
export const MIN_PASSWORD_HASH_COST = 12;
/** The highest scrypt cost (log2 N) accepted: N = 32768, 32 MiB, the hashing thread's memory bound. */
export const MAX_PASSWORD_HASH_COST = 15;
/**
 * The first path segments the server answers at its root (the OAuth endpoints with oidc-provider's authorization
 * endpoint, discovery, console and admin API, operations, leak reports). An ISSUER path starting with one of them
 * (`https://host/admin`) is refused: the server routes `ISSUER-path/x` as `/x` (src/http/common.ts
 * `servedUnderIssuerPath`), so `/admin/api/...` would become `/api/...` and stop working. Keep in step with the
 * routes: test/integration/discovery.test.ts checks that each is answered and every advertised endpoint is under one.
 */
export const SERVER_TOP_LEVEL_PATHS: readonly string[] = [
  'token',
  'auth',
  'jwks',
  '.well-known',
  'admin',
  'healthz',
  'readyz',
  'metrics',
  'secret-scanning',
  'credentials',
];
const passwordHashCost = z.number().int().min(MIN_PASSWORD_HASH_COST).max(MAX_PASSWORD_HASH_COST);

/** The non-secret settings read from config/default.json (and CONFIG_FILE, when set). */
export const fileConfigSchema = z
  .object({
    services: z
      .array(z.object({ id: serviceId, name: z.string().min(1).max(100), description: z.string().max(500).default('') }).strict())
      .min(1)
      .refine((list) => new Set(list.map((s) => s.id)).size === list.length, 'service ids must be unique'),
    maxActiveTokens: z.number().int().min(1).max(100_000),
    maxTokenLifetimeDays: z.number().int().min(1).max(3660),
    // SPEC "Credential lifecycle": an active token is "expiring" within this many days of its expiry, "dormant"
    // after this many days without use (since creation when never used).
    expiringSoonDays: z.number().int().min(1).max(365).default(7),
    dormantAfterDays: z.number().int().min(1).max(3650).default(90),
    accessTokenTtlSeconds: z.number().int().min(30).max(86_400),
    signingAlg: z.enum(['ES256', 'RS256']),
    adminSessionTtlSeconds: z.number().int().min(60).max(30 * 86_400),
    defaultOrganisation: z.string().min(1).max(100),
    // Sign-in throttle (admin API), per email and per client address, counted in the database so it holds
    // across instances: failures in a fixed window; past `delayAfterFailures` each attempt waits
    // delayMs × (failures − delayAfterFailures + 1); past `blockAfterFailures` the answer is 429 until the window ends.
    // Each field of these objects has its default: a CONFIG_FILE may set one ({"loginThrottle": {"maxRows": 1000}}).
    loginThrottle: z
      .object({
        windowSeconds: z.number().int().min(1).max(86_400).default(900),
        delayAfterFailures: z.number().int().min(0).max(1_000).default(5),
        delayMs: z.number().int().min(0).max(60_000).default(1_000),
        blockAfterFailures: z.number().int().min(1).max(1_000).default(10),
        // SPEC Part 2 "Bounded state": at most this many throttle rows; past it the least telling go first
        // (pruneLoginThrottle: locked-out accounts are kept longest).
        maxRows: z.number().int().min(100).max(10_000_000).default(100_000),
        // A client address may fail this many times as often as one account before it waits or is refused: many
        // administrators share an office or NAT address, while one address guessing across many accounts is still
        // stopped (at 50 and 100 failures by default).
        perAddressFactor: z.number().int().min(1).max(1_000).default(10),
      })
      .strict()
      .default({ windowSeconds: 900, delayAfterFailures: 5, delayMs: 1_000, blockAfterFailures: 10, maxRows: 100_000, perAddressFactor: 10 }),
    // Password-reset requests (POST /admin/api/password-reset) have limits of their own and never count against the
    // sign-in throttle, so nobody can lock an administrator out of sign-in by asking for resets in their name. Past
    // either limit the answer is still 202 and nothing is mailed. `perAddress`: requests per client address per
    // sign-in throttle window (its counter is a throttle row, expiring and capped with them); `mailsPerEmail`: reset
    // mails to one administrator per `mailWindowSeconds`, counted in the mail outbox (no row for unknown addresses).
    passwordReset: z
      .object({
        perAddress: z.number().int().min(1).max(100_000).default(10),
        mailsPerEmail: z.number().int().min(1).max(1_000).default(3),
        mailWindowSeconds: z.number().int().min(60).max(7 * 86_400).default(3_600),
      })
      .strict()
      .default({ perAddress: 10, mailsPerEmail: 3, mailWindowSeconds: 3_600 }),
    // RFC 7009 revocations remembered per client until the access token's exp; past this many the revocation
    // endpoint answers 503 with Retry-After (RFC 7009 §2.2.1) until some expire (SPEC Part 2 "Bounded state").
    // Password hashing (scrypt) on its own worker threads with a bounded queue, away from the token endpoint's
    // signing on the libuv pool; a sign-in past the queue gets 429 (SPEC Part 2 "Admin sign-in cannot starve").
    passwordHashing: z
      .object({
        threads: z.number().int().min(1).max(16).default(1),
        maxQueue: z.number().int().min(0).max(10_000).default(32),
        // Linux nice value of the hashing threads: 19 lets the token endpoint have the CPU first under load.
        nice: z.number().int().min(0).max(19).default(19),
        // scrypt cost as log2 N (r 8, p 1): 15 (N = 32768, 32 MiB) by default; PASSWORD_HASH_COST overrides it.
        cost: passwordHashCost.default(DEFAULT_PASSWORD_HASH_COST),
      })
      .strict()
      .default({ threads: 1, maxQueue: 32, nice: 19, cost: DEFAULT_PASSWORD_HASH_COST }),
    maxRevokedAccessTokensPerClient: z.number().int().min(1).max(10_000_000).default(10_000),
    // Expiry reminder mails (SPEC Part 2 "Expiry reminders"): days before a token's expiry, distinct, 1 to 3660.
    expiryReminderDays: z
      .array(z.number().int().min(1).max(3660))
      .max(20)
      .refine((list) => new Set(list).size === list.length, 'reminder days must be distinct')
      .default([30, 7, 1]),
  })
  .strict();

export type FileConfig = z.infer<typeof fileConfigSchema>;

const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v.trim() === '' ? undefined : v.trim()));

const intFromEnv = (min: number, max: number) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+$/, 'must be a whole number')
      .transform(Number)
      .pipe(z.number().int().min(min).max(max))
      .optional(),
  );

/** A decimal number (for durations in seconds that tests shorten below one second). */
const numberFromEnv = (min: number, max: number) =>
  optionalString.pipe(
    z
      .string()
      .regex(/^\d+(\.\d+)?$/, 'must be a number')
      .transform(Number)
      .pipe(z.number().min(min).max(max))
      .optional(),
  );

const booleanFromEnv = optionalString.pipe(
  z
    .enum(['true', 'false', '1', '0', 'yes', 'no'])
    .optional()
    .transform((v) => (v === undefined ? undefined : ['true', '1', 'yes'].includes(v))),
);

/** Environment variables (SPEC "Running it"), all optional. */
export const envSchema = z.object({
  PORT: intFromEnv(0, 65_535),
  // An address to listen on: an IPv4 or IPv6 address, or a host name (RFC 1123 labels), checked here so that a typo
  // stops the start before the database is touched rather than at listen().
  HOST: optionalString.pipe(
    z
      .string()
      .refine(
        (v) => isIP(v) !== 0 || (!/^[\d.]+$/.test(v) && /^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/.test(v)),
        'must be an IP address (0.0.0.0, ::, 127.0.0.1, …) or a host name',
      )
      .optional(),
  ),
  // RFC 8414 §2: the issuer is an https URL with no query or fragment. oidc-provider refuses one only when the
  // provider is built, after the database has been migrated and the first administrator created.
  ISSUER: optionalString.pipe(
    z
      .url({ protocol: /^https?$/ })
      .refine((v) => !/[?#]/.test(v), 'must have no query or fragment (RFC 8414 §2)')
      .refine(
        (v) => !URL.canParse(v) || !SERVER_TOP_LEVEL_PATHS.includes(new URL(v).pathname.split('/')[1] ?? ''),
        `must not have a path whose first segment is one of the server's own paths (${SERVER_TOP_LEVEL_PATHS.map((p) => `/${p}`).join(', ')}): every endpoint is also served under ISSUER's path, which would hide that one`,
      )
      .optional(),
  ),
  API_AUDIENCE: optionalString,
  DATABASE_URL: optionalString.pipe(z.string().regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL').optional()),
  DATABASE_POOL_MAX: intFromEnv(1, 200),
  DATA_DIR: optionalString,
  SMTP_URL: optionalString.pipe(
    z
      .string()
      .regex(/^smtps?:\/\//, 'must be an smtp:// or smtps:// URL')
      .refine((v) => URL.canParse(v) && new URL(v).hostname !== '', 'must be an smtp:// or smtps:// URL with a host')
      .optional(),
  ),
  // One sender (nodemailer's own address parser): a bare word would go out as an empty MAIL FROM, which relays refuse.
  // The whole value is that address, bare or in <> at the end: nodemailer's parser is lenient and made one address
  // of "Ops <a@b.c>\r\nBcc: x@evil.test" (x@evil.test: the envelope sender and the Message-ID's domain) or of
  // "Ops <a@b.c> x". No control characters at all.
  MAIL_FROM: optionalString.pipe(
    z
      .string()
      .refine((v) => {
        if (/[\u0000-\u001f\u007f]/.test(v)) return false;
        const parsed = addressparser(v, { flatten: true });
        if (parsed.length !== 1 || !/^[^\s@<>]+@[^\s@<>]+$/.test(parsed[0]!.address)) return false;
        const address = parsed[0]!.address;
        return v.trim() === address || v.trim().endsWith(`<${address}>`);
      }, 'must be one address, such as "Tokens <no-reply@example.com>" or "no-reply@example.com"')
      .optional(),
  ),
  // The shape only; the address is checked as every administrator's (accounts ensureFirstAdmin) at the first start.
  ADMIN_EMAIL: optionalString.refine((v) => v === undefined || /^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(v), 'must be an email address'),
  // Used only at a first start with no administrator, where the new-password rule (12 to 256 characters, SPEC Part 2
  // "Administrators") is applied (accounts ensureFirstAdmin); any other start ignores it, so an upgraded deployment
  // whose environment still holds the first release's shorter password (8 characters then) keeps starting.
  ADMIN_PASSWORD: optionalString.pipe(
    z
      .string()
      .refine((pw) => [...pw.normalize('NFC')].length <= 256, 'must have at most 256 characters') // as newPassword counts
      .optional(),
  ),
  CONFIG_FILE: optionalString,
  TRUST_PROXY: booleanFromEnv,
  // With TRUST_PROXY: how many proxies in a row append to X-Forwarded-* (a CDN, then a load balancer: 2).
  TRUST_PROXY_HOPS: intFromEnv(1, 10),
  // Strict-Transport-Security on responses to HTTPS requests: its max-age in seconds, 0 to send none.
  HSTS_MAX_AGE_SECONDS: intFromEnv(0, 63_072_000),
  LOG_LEVEL: optionalString.pipe(z.enum(['debug', 'info', 'warn', 'error', 'silent']).optional()),
  SIGNING_ALG: optionalString.pipe(z.enum(['ES256', 'RS256']).optional()),
  ACCESS_TOKEN_TTL_SECONDS: intFromEnv(30, 86_400),
  MAX_ACTIVE_TOKENS: intFromEnv(1, 100_000),
  // Mail delivery (SPEC "Email"): retries with exponential backoff, then the message is marked failed.
  MAIL_MAX_ATTEMPTS: intFromEnv(1, 1_000),
  MAIL_RETRY_BASE_SECONDS: numberFromEnv(0.01, 86_400),
  MAIL_RETRY_MAX_SECONDS: numberFromEnv(0.01, 7 * 86_400),
  MAIL_POLL_INTERVAL_MS: intFromEnv(50, 600_000),
  // SPEC "Operations": how long SIGTERM waits for in-flight requests before closing what is left.
  SHUTDOWN_GRACE_SECONDS: numberFromEnv(0, 3_600),
  // SPEC Part 2 / issue 10: credentials in SMTP_URL travel only over TLS (smtps:// or STARTTLS) unless this is true.
  SMTP_ALLOW_PLAINTEXT_AUTH: booleanFromEnv,
  // A bearer token GET /metrics requires when set.
  METRICS_TOKEN: optionalString.pipe(z.string().min(16, 'must have at least 16 characters').optional()),
  // Seconds a client has to send a whole request (headers and body); slower requests get 408.
  REQUEST_TIMEOUT_SECONDS: numberFromEnv(0.5, 600),
  // Bound on every PostgreSQL call: statement timeout, client-side query timeout (+1 s), connect and pool-acquire
  // timeouts; a stalled database fails requests within seconds (issue 10 item 11). Migrations are not bounded.
  DATABASE_TIMEOUT_SECONDS: numberFromEnv(0.2, 600),
  // Embedded database: writes are refused (507) and /readyz says 503 below this much free space in DATA_DIR.
  MIN_FREE_DISK_MB: numberFromEnv(0, 10_000_000),
  // SPEC: the expiry check runs at least hourly.
  EXPIRY_CHECK_INTERVAL_MS: intFromEnv(50, 3_600_000),
  // The token endpoint's fast path (docs/oauth.md): `off` sends every token request through oidc-provider.
  TOKEN_FAST_PATH: optionalString.pipe(z.enum(['on', 'off']).optional()),
  // Signing keys (SPEC Part 2 "Signing keys encrypted at rest", "Signing-key rotation never fails a verifier").
  KEY_ENCRYPTION_KEY: optionalString,
  KEY_ENCRYPTION_KEY_FILE: optionalString,
  NEW_KEY_ENCRYPTION_KEY: optionalString,
  ALLOW_PLAINTEXT_KEYS: booleanFromEnv,
  KEY_PUBLISH_AHEAD_SECONDS: intFromEnv(0, 7 * 86_400),
  KEY_ROTATION_DAYS: intFromEnv(0, 3_650),
  // Leaked secrets (SPEC Part 2): the secret-scanning partner's published keys; what to do with a reported live secret.
  SECRET_SCANNING_KEYS_FILE: optionalString,
  SECRET_SCANNING_ACTION: optionalString.pipe(z.enum(['revoke', 'notify']).optional()),
  // scrypt cost (log2 N) of new password hashes, MIN_PASSWORD_HASH_COST..MAX_PASSWORD_HASH_COST; overrides the
  // config file's passwordHashing.cost. The test suite sets the floor; production keeps the default.
  PASSWORD_HASH_COST: intFromEnv(MIN_PASSWORD_HASH_COST, MAX_PASSWORD_HASH_COST),
  // How often each instance revokes tokens dormant under their organisation's policy.
  POLICY_CHECK_INTERVAL_MS: intFromEnv(50, 86_400_000),
});

/** Renders zod issues as one line each: `NAME: message`. */
export function describeIssues(error: z.ZodError, prefix = ''): string[] {
  return error.issues.map((issue) => `${prefix}${issue.path.join('.') || '(root)'}: ${issue.message}`);
}
