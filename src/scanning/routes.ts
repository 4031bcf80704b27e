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
import { issuesToDetails, refuseContentEncoding, refuseNonJsonBody } from '../http/validate.js';
import { reportLeakedSecrets, type LeakReport } from '../tokens/index.js';
import { ScanningKeys } from './keys.js';

export const SECRET_SCANNING_PATH = '/secret-scanning/verify';
export const PUBLIC_REVOKE_PATH = '/credentials/revoke';

/** Alerts are small (GitHub batches a handful); a body past this is 413 and is not read. */
export const MAX_ALERT_BODY_BYTES = 1024 * 1024;
export const MAX_ALERTS = 1_000;
export const MAX_REVOKE_BODY_BYTES = 64 * 1024;
export const MAX_PUBLIC_CREDENTIALS = 100;
/** SPEC: 429 past 10 calls a minute from one address. */
export const PUBLIC_REVOKE_CALLS_PER_MINUTE = 10;

const KEY_ID_HEADER = 'github-public-key-identifier';
const SIGNATURE_HEADER = 'github-public-key-signature';

/** The request body, at most `limit` bytes (413 from Content-Length before reading, or while reading). */
async function readRawBody(ctx: Context, limit: number): Promise<Buffer> {
  const tooLarge = () => {
    ctx.set('Connection', 'close'); // the rest of the body is not read; do not reuse the connection
    return new AppError('payload_too_large', `The request body is larger than ${limit} bytes.`);
  };
  if (Number(ctx.get('content-length') || 0) > limit) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw tooLarge();
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

function parseJson(body: Buffer): unknown {
  try {
    return JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(body));
  } catch {
    throw new AppError('invalid_json', 'The request body is not valid JSON.');
  }
}

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
      type: z.string().max(200),
      url: z.string().max(4_096).nullish(),
      source: z.string().max(200).nullish(),
    }),
  )
  .max(MAX_ALERTS);

const publicRevokeBody = z
  .object({ credentials: z.array(z.string().max(1_000)).max(MAX_PUBLIC_CREDENTIALS) })
  .strict();

/**
 * A signed alert's `url` or `source` as storable text that displays as written: control characters (PostgreSQL text
 * cannot hold NUL) and format characters (bidi controls such as U+202E, which would show `‮gnp.exe` as "exe.png" in
 * the audit log and mails) are dropped and lone surrogates become U+FFFD, rather than refusing, and so losing, a
 * genuine alert.
 */
function storable(value: string | null | undefined): string | null {
  if (!value) return null;
  const text = value
    .replace(/[\p{Cc}\p{Cf}]/gu, '')
    .replace(/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g, '\ufffd');
  return text || null;
}

const unsigned = () =>
  new AppError('unauthorized', `The alert must be signed: ${KEY_ID_HEADER} and ${SIGNATURE_HEADER} by a key of the configured keys file.`);

/**
 * POST /secret-scanning/verify and POST /credentials/revoke. Without SECRET_SCANNING_KEYS_FILE the partner endpoint
 * answers 404 (secret scanning not configured); the public endpoint always works. Throws ScanningKeysError at start
 * when the keys file is configured but missing or malformed; `opened`: the keys `serve` read before touching the
 * database (main.ts).
 */
export function scanningRouter(deps: Deps, opened?: ScanningKeys): Router {
  const router = new Router();
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
    refuseContentEncoding(ctx);
    refuseNonJsonBody(ctx); // GitHub sends application/json
    const body = await readRawBody(ctx, MAX_ALERT_BODY_BYTES);
    if (!keys.verify(keyId, signature, body)) {
      // On the request's access-log line, not a line of its own: anyone can send these (SPEC Part 2, one short line).
      noteInAccessLog(ctx, { refused: 'bad_signature', key_identifier: keyId });
      throw unsigned();
    }
    const alerts = validate(alertsBody, parseJson(body));
    const reports: LeakReport[] = alerts.map((a) => ({ secret: a.token, url: storable(a.url), source: storable(a.source) ?? 'unknown' }));
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
    refuseContentEncoding(ctx);
    refuseNonJsonBody(ctx);
    const { credentials } = validate(publicRevokeBody, parseJson(await readRawBody(ctx, MAX_REVOKE_BODY_BYTES)));
    // A report the database will act on also counts where every instance sees it: the limit is per address, not per
    // instance behind a load balancer (the count above spares the database a flood; malformed bodies cost none).
    const waitSeconds = await registerAddressCall(deps.db.knex, `report:${bucket}`, deps.clock(), deps.config.loginThrottle, 60, PUBLIC_REVOKE_CALLS_PER_MINUTE);
    if (waitSeconds !== undefined) throw refuse(waitSeconds);
    await reportLeakedSecrets(
      deps,
      credentials.map((secret) => ({ secret, url: null, source: 'public report' })),
      { reporter: 'public-report', action: 'revoke', ip: ctx.ip || null },
    );
    // The same answer whatever matched: the caller learns nothing about which secrets were live.
    ctx.status = 202;
    ctx.body = { received: credentials.length };
  });

  return router;
}
