// Leaked secrets (SPEC Part 2): the secret-scanning partner endpoint and the public revocation endpoint.
import Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import { z } from 'zod';
import { registerAddressCall } from '../accounts/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { noteInAccessLog } from '../http/access-log.js';
import { addressBucket } from '../address.js';
import { AddressRateLimiter } from '../http/address-limiter.js';
import { issuesToDetails, parseJsonBody, readJsonBodyBytes, refuseContentEncoding, refuseNonJsonBody, refuseUnsafeText } from '../http/validate.js';
import { redactCredentials, reportLeakedSecrets, type LeakReport } from '../tokens/index.js';
import { ScanningKeys } from './keys.js';

/** SPEC Part 2 "Leaked secrets": the partner endpoint (signed alerts) and the public revocation endpoint. */
export const SECRET_SCANNING_PATH = '/secret-scanning/verify';
export const PUBLIC_REVOKE_PATH = '/credentials/revoke';

/** Alerts are small (GitHub batches a handful); a body past this is 413 and is not read. */
export const MAX_ALERT_BODY_BYTES = 1024 * 1024;
/** The most alerts one signed body may hold (400 validation_failed past it). */
export const MAX_ALERTS = 1_000;
/** POST /credentials/revoke: a body past 64 KB is 413; at most MAX_PUBLIC_CREDENTIALS strings (SPEC: 100). */
export const MAX_REVOKE_BODY_BYTES = 64 * 1024;
export const MAX_PUBLIC_CREDENTIALS = 100;
/** SPEC: 429 past 10 calls a minute from one address. */
export const PUBLIC_REVOKE_CALLS_PER_MINUTE = 10;

const KEY_ID_HEADER = 'github-public-key-identifier';
const SIGNATURE_HEADER = 'github-public-key-signature';

function validate<T extends z.ZodType>(schema: T, input: unknown): z.output<T> {
  const result = schema.safeParse(input);
  if (!result.success) throw new AppError('validation_failed', 'The request is not valid.', issuesToDetails(result.error, input));
  return result.data;
}

/** GitHub's partner alert: `[{token, type, url, source}]`; other fields are ignored. */
const alertsBody = z
  .array(
    z.object({
      token: z.string().max(1_000),
      // No length limit on the descriptive fields (the body's 1 MB bounds them): one long URL must not refuse, and
      // so lose, every alert of a signed batch. What is stored is cut to a length (storable).
      type: z.string(),
      url: z.string().nullish(),
      source: z.string().nullish(),
    }),
  )
  .max(MAX_ALERTS);

const publicRevokeBody = z
  .object({ credentials: z.array(z.string().max(1_000)).max(MAX_PUBLIC_CREDENTIALS) })
  .strict();

/**
 * A signed alert's `url` or `source` as storable text that displays as written: control characters (PostgreSQL text
 * cannot hold NUL) and format characters (bidi controls such as U+202E, which would show `‮gnp.exe` as "exe.png" in
 * the audit log and mails) are dropped, lone surrogates become U+FFFD, any credential of ours in it (a well-formed
 * client secret, a session or one-time token: redactCredentials) becomes "[REDACTED]" (SPEC: no secret in any
 * response or mail; the audit log is one) while a folder named `sas_etl` stays, and text longer than `maxLength` is cut (ending in "…"), rather
 * than refusing, and so losing, a genuine alert. Null for missing or empty text.
 */
function storable(value: string | null | undefined, maxLength: number): string | null {
  if (!value) return null;
  let text = redactCredentials(
    value
      .replace(/[\p{Cc}\p{Cf}]/gu, '')
      .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd'),
  );
  if (text.length > maxLength) {
    // Cut, marked with an ellipsis, never inside a surrogate pair.
    text = text.slice(0, maxLength - 1);
    if (/[\ud800-\udbff]$/.test(text)) text = text.slice(0, -1);
    text += '\u2026';
  }
  return text || null;
}

/** The longest `url` and `source` kept in the audit log and mails (longer ones are cut, not refused). */
export const MAX_ALERT_URL_LENGTH = 4_096;
export const MAX_ALERT_SOURCE_LENGTH = 200;

/**
 * The 401 of an alert without a valid signature. Its challenge (RFC 9110 §15.5.2: every 401 has one) names GitHub's
 * signature as a scheme of its own: no registered scheme describes it (the message says which headers hold it).
 */
const unsigned = () =>
  new AppError('unauthorized', `The alert must be signed: ${KEY_ID_HEADER} and ${SIGNATURE_HEADER} by a key of the configured keys file.`, undefined, {
    'WWW-Authenticate': 'GitHub-Signature realm="secret-scanning"',
  });

/**
 * POST /secret-scanning/verify and POST /credentials/revoke. Without SECRET_SCANNING_KEYS_FILE the partner endpoint
 * answers 404 (secret scanning not configured); the public endpoint always works. Throws ScanningKeysError at start
 * when the keys file is configured but missing or malformed; `opened`: the keys `serve` read before touching the
 * database (main.ts).
 */
export function scanningRouter(deps: Deps, opened?: ScanningKeys): Router {
  const router = new Router({ sensitive: true, strict: true }); // exact paths, as the admin API's
  const file = deps.config.secretScanningKeysFile;
  const keys = opened ?? (file ? new ScanningKeys(file, deps.log) : undefined);
  const limiter = new AddressRateLimiter(PUBLIC_REVOKE_CALLS_PER_MINUTE, 60_000, 10_000, () => deps.clock().getTime());

  const noStore: Middleware = async (ctx, next) => {
    ctx.set('Cache-Control', 'no-store');
    await next();
  };

  router.post(SECRET_SCANNING_PATH, noStore, async (ctx) => {
    if (!keys) {
      throw new AppError('not_found', 'Secret scanning is not configured on this server (SECRET_SCANNING_KEYS_FILE is not set).');
    }
    // Nothing is parsed before the signature is verified: the headers are looked at, the raw bytes are read.
    const keyId = ctx.get(KEY_ID_HEADER);
    const signature = ctx.get(SIGNATURE_HEADER);
    if (!keyId || !signature || keyId.length > 512) throw unsigned();
    if (!keys.has(keyId)) {
      // No key to verify with: refused before the body is read (up to 1 MB that could only be thrown away).
      noteInAccessLog(ctx, { refused: 'unknown_key', key_identifier: keyId });
      ctx.set('Connection', 'close');
      throw unsigned();
    }
    refuseContentEncoding(ctx);
    refuseNonJsonBody(ctx); // GitHub sends application/json
    const body = await readJsonBodyBytes(ctx, MAX_ALERT_BODY_BYTES);
    if (!keys.verify(keyId, signature, body)) {
      // On the request's access-log line, not a line of its own: anyone can send these (SPEC Part 2, one short line).
      noteInAccessLog(ctx, { refused: 'bad_signature', key_identifier: keyId });
      throw unsigned();
    }
    const alerts = validate(alertsBody, parseJsonBody(body));
    const reports: LeakReport[] = alerts.map((a) => ({
      secret: a.token.trim(), // the answer's token_raw stays as sent
      url: storable(a.url, MAX_ALERT_URL_LENGTH),
      source: storable(a.source, MAX_ALERT_SOURCE_LENGTH) ?? 'unknown',
    }));
    const labels = await reportLeakedSecrets(deps, reports, {
      reporter: 'secret-scanning',
      action: deps.config.secretScanningAction,
      ip: ctx.ip || null,
    });
    ctx.status = 200;
    ctx.body = alerts.map((a, i) => ({ token_raw: a.token, token_type: a.type, label: labels[i] }));
  });

  router.post(PUBLIC_REVOKE_PATH, noStore, async (ctx) => {
    // Counted before anything else: a blocked address costs no body read and no database work.
    // Per address, an IPv6 address per /64 (addressBucket).
    const bucket = addressBucket(ctx.ip || 'unknown');
    const refuse = (retryAfterSeconds: number) => {
      ctx.set('Connection', 'close');
      return new AppError(
        'rate_limited',
        `Too many reports from this address: at most ${PUBLIC_REVOKE_CALLS_PER_MINUTE} a minute. Try again later.`,
        undefined,
        { 'Retry-After': String(retryAfterSeconds) },
      );
    };
    const decision = limiter.hit(bucket);
    if (!decision.allowed) throw refuse(decision.retryAfterSeconds);
    // Every call that got past the count above also counts where every instance sees it: the limit is per address,
    // not per instance behind a load balancer (the count above spares the database a flood: at most 10 writes a
    // minute per address and instance).
    const countShared = async () => registerAddressCall(deps.db.knex, `report:${bucket}`, deps.clock(), deps.config.loginThrottle, 60, PUBLIC_REVOKE_CALLS_PER_MINUTE);
    let credentials: string[];
    try {
      refuseContentEncoding(ctx);
      refuseNonJsonBody(ctx);
      const body = parseJsonBody(await readJsonBodyBytes(ctx, MAX_REVOKE_BODY_BYTES));
      // NUL or a lone surrogate is no credential: 400, as in the admin API (SPEC Part 2 "Bad input never gives 5xx":
      // a 4xx). Not so for a signed alert, whose batch would be lost: its url and source are stored cleaned.
      refuseUnsafeText(body);
      ({ credentials } = validate(publicRevokeBody, body));
    } catch (err) {
      // A malformed call counts too, at best effort: a database out of reach leaves its 4xx a 4xx.
      const wait = await countShared().catch(() => undefined);
      if (wait !== undefined) throw refuse(wait);
      throw err;
    }
    const waitSeconds = await countShared();
    if (waitSeconds !== undefined) throw refuse(waitSeconds);
    await reportLeakedSecrets(
      deps,
      // As pasted from a log or a .env file: the whitespace around a secret is not part of it.
      credentials.map((secret) => ({ secret: secret.trim(), url: null, source: 'public report' })),
      { reporter: 'public-report', action: 'revoke', ip: ctx.ip || null },
    );
    // The same answer whatever matched: the caller learns nothing about which secrets were live.
    ctx.status = 202;
    ctx.body = { received: credentials.length };
  });

  return router;
}
