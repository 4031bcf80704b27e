import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import { isDatabaseUnavailable, noteDatabaseOutage, OUTAGE_RETRY_AFTER_SECONDS } from '../db/index.js';
import type { Logger } from '../log.js';

/**
 * `invalid_client` (401) after failed client authentication (RFC 6749 §5.2). Rendered with a `WWW-Authenticate:
 * Basic` challenge when the client used the Authorization header (setErrorHeaders).
 */
export class ClientAuthenticationFailed extends errors.InvalidClientAuth {
  constructor(description: string) {
    super();
    this.error_description = description;
  }
}

/**
 * `invalid_client` (401) for a request with no client authentication at all: its challenge names the scheme this
 * server expects (RFC 6749 §5.2 "to indicate which HTTP authentication schemes are supported").
 */
export class NoClientAuthentication extends ClientAuthenticationFailed {
  constructor() {
    super('no client authentication mechanism provided');
  }
}

/**
 * 503 `temporarily_unavailable` with `Retry-After` (RFC 6749 §5.2, RFC 7009 §2.2.1): the server cannot do this now,
 * the client may retry after `retryAfterSeconds`.
 */
export class TemporarilyUnavailable extends errors.OIDCProviderError {
  constructor(
    description: string,
    readonly retryAfterSeconds: number,
  ) {
    super(503, 'temporarily_unavailable');
    this.error_description = description;
    this.expose = true;
  }
}

/**
 * 429 `rate_limited` with `Retry-After` (SPEC Part 2 "Network and rate limits per token"): the token has had its
 * `max_tokens_per_hour` access tokens in the last rolling hour; one more is possible in `retryAfterSeconds`.
 */
export class RateLimited extends errors.OIDCProviderError {
  constructor(readonly retryAfterSeconds: number) {
    super(429, 'rate_limited');
    this.error_description = `this token's hourly access-token limit is reached; retry in ${retryAfterSeconds} seconds`;
    this.expose = true;
  }
}

/**
 * RFC 6749 §5.2: `error` and `error_description` hold only %x20-21 / %x23-5B / %x5D-7E (printable ASCII without
 * '"' and '\\'). Descriptions that echo the request (an Origin, say) get '?' for anything else.
 */
export function errorText(text: string): string {
  return text.replace(/[^\x20-\x21\x23-\x5B\x5D-\x7E]/gu, '?');
}

/**
 * oidc-provider middleware: its own JSON error bodies (it writes them itself, without `renderError`) get the same
 * RFC 6749 §5.2 characters as ours.
 */
export const providerErrorText: Middleware = async (ctx, next) => {
  await next();
  const body = ctx.body as Record<string, unknown> | undefined;
  if (!body || typeof body !== 'object' || Buffer.isBuffer(body) || typeof body.error !== 'string') return;
  body.error = errorText(body.error);
  if (typeof body.error_description === 'string') body.error_description = errorText(body.error_description);
};

/** oidc-provider's description for any DPoP proof that jose refused (lib/helpers/validate_dpop.js), whatever the reason. */
export const DPOP_CATCH_ALL = 'invalid DPoP key binding';

const PRIVATE_JWK_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'] as const;

/** A base64url JSON object, or undefined. */
function jsonObject(segment: string | undefined): Record<string, unknown> | undefined {
  if (!segment || !/^[A-Za-z0-9_-]+$/.test(segment)) return undefined;
  try {
    const value: unknown = JSON.parse(Buffer.from(segment, 'base64url').toString('utf8'));
    return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why a DPoP proof was refused, for the proofs oidc-provider answers with DPOP_CATCH_ALL ("invalid DPoP key
 * binding", which sent client developers the wrong way), in RFC 9449 §4.3's order: more than one `DPoP` header field
 * (step 1; Node joins them with a comma, which no JWT holds), not a JWT (2), `typ` not `dpop+jwt` (4: compared as
 * jose does, case-insensitive, `application/` optional), `alg` not one of `algs` (5: the advertised
 * dpop_signing_alg_values_supported), `jwk` not a public key (7), an `iat` that is not a number (as a missing one is
 * told), an `exp` in the past or an `nbf` in the future (optional claims jose checks when present), a `jwk` that does
 * not fit `alg` (curve or type). `proof`: the `DPoP` header; `cause`: the provider's error's cause (jose's).
 * Undefined when none of these holds: the catch-all is then right (a signature that does not verify with the
 * embedded key).
 */
export function dpopProofProblem(proof: string, algs: readonly string[], cause: unknown): string | undefined {
  if (proof.includes(',')) return 'more than one DPoP header field: send exactly one DPoP proof';
  const parts = proof.trim().split('.');
  const header = parts.length === 3 ? jsonObject(parts[0]) : undefined;
  if (!header || !jsonObject(parts[1]) || !/^[A-Za-z0-9_-]*$/.test(parts[2]!)) return 'the DPoP header is not a JWT (compact JWS)';
  const typ = typeof header.typ === 'string' ? header.typ.toLowerCase().replace(/^application\//, '') : undefined;
  if (typ !== 'dpop+jwt') return 'DPoP proof typ header parameter must be dpop+jwt';
  if (typeof header.alg !== 'string' || !algs.includes(header.alg)) return `DPoP proof alg must be one of ${algs.join(', ')}`;
  const jwk = header.jwk;
  if (jwk === null || typeof jwk !== 'object' || Array.isArray(jwk) || PRIVATE_JWK_MEMBERS.some((m) => m in jwk)) {
    return 'DPoP proof jwk header parameter must be a public key (JWK)';
  }
  const claim = (cause as { code?: unknown; claim?: unknown; message?: unknown } | undefined) ?? {};
  // A `crit` header parameter (RFC 7515 §4.1.11) jose refused: an extension it does not process (it knows `b64` only),
  // or a malformed list. Told by jose's own message, since the same codes mean other failures too. Not echoed: the
  // names are the sender's text.
  if (typeof claim.message === 'string' && /^("crit"|Extension Header Parameter)/.test(claim.message)) {
    return 'DPoP proof crit header parameter names an extension this server does not process';
  }
  if (claim.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim.claim === 'iat') return 'DPoP proof must have a iat number property';
  // An optional `exp` or `nbf` the proof carries is checked too (jose's jwtVerify): said as such, not as a key binding.
  if (claim.code === 'ERR_JWT_EXPIRED') return 'DPoP proof has expired (its exp claim is in the past)';
  if (claim.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && claim.claim === 'nbf') return 'DPoP proof is not valid yet (its nbf claim is in the future)';
  if (claim.code === 'ERR_JWT_CLAIM_VALIDATION_FAILED' && (claim.claim === 'exp' || claim.claim === 'nbf')) return `DPoP proof ${claim.claim} claim must be a number`;
  // A jwk that WebCrypto cannot import for `alg` (ES384 with a P-256 key; an Ed448 key, which EdDSA here does not
  // take; coordinates that are not a point of the curve): a DOMException DataError from the key import.
  if (cause instanceof DOMException && cause.name === 'DataError') {
    return `DPoP proof jwk is not a key its alg ${header.alg} can verify with (P-256 for ES256, P-384 for ES384, Ed25519 for EdDSA)`;
  }
  // jose refuses RSA keys under 2048 bits for RS256 and PS256 (RFC 7518 §3.3), before it checks the signature.
  if (cause instanceof TypeError && /requires key modulusLength to be 2048 bits or larger/.test(cause.message)) {
    return 'DPoP proof jwk is an RSA key under 2048 bits (RS256 and PS256 need 2048 or more)';
  }
  return undefined;
}

/** The one error body of the OAuth endpoints (oidc-provider's `errOut`): `{error, error_description?, scope?}`. */
export function oauthErrorBody(err: unknown): { status: number; body: Record<string, string> } {
  if (isDatabaseUnavailable(err)) {
    // SPEC Part 2 / issue 10 item 12: a database outage is 503 in the OAuth error shape, never a 500.
    return { status: 503, body: { error: 'temporarily_unavailable', error_description: 'the authorization server is temporarily unavailable; retry later' } };
  }
  if (err instanceof errors.OIDCProviderError && err.expose) {
    const scope = (err as { scope?: unknown }).scope;
    return {
      status: err.statusCode,
      body: {
        error: errorText(err.error),
        ...(err.error_description !== undefined ? { error_description: errorText(err.error_description) } : {}),
        // The scope asked for, echoed with the same characters (RFC 6749 §3.3's scope-tokens are printable ASCII).
        ...(typeof scope === 'string' ? { scope: errorText(scope) } : {}),
      },
    };
  }
  return { status: 500, body: { error: 'server_error', error_description: 'the request could not be completed' } };
}

/** `text` as the inside of an RFC 9110 §5.6.4 quoted-string: `\` and `"` escaped (ISSUER may hold either). */
function quotedStringContent(text: string): string {
  return text.replace(/[\\"]/g, '\\$&');
}

/**
 * The headers an OAuth error answer carries beside its body, whoever renders it (renderOAuthError, or oidc-provider's
 * own error handler for what fails inside its pipeline: a client assertion, a DPoP proof; provider.ts 'grant.error'):
 * - `Retry-After` (seconds) on our 429 `rate_limited` and 503 `temporarily_unavailable` (SPEC Part 2 "Network and
 *   rate limits per token"; RFC 9110 §10.2.3), whichever path the request took;
 * - `WWW-Authenticate: Basic realm="<issuer>", error="invalid_client"` on an `invalid_client` 401 when the client
 *   used the Authorization header (RFC 6749 §5.2 requires it then; SPEC "with WWW-Authenticate when Basic was used"),
 *   as oidc-provider's own, and `Basic realm="<issuer>"` when it sent no authentication at all (naming the scheme
 *   expected). A failed `client_secret_post` or client assertion gets none: real clients (openid-client,
 *   oauth4webapi) read a 401 with a challenge as a challenge, not as the `invalid_client` body their users expect.
 */
export function setErrorHeaders(ctx: Context, err: unknown, status: number, error: unknown, issuer: string): void {
  if (err instanceof TemporarilyUnavailable || err instanceof RateLimited) ctx.set('Retry-After', String(err.retryAfterSeconds));
  if (status !== 401 || error !== 'invalid_client') return;
  const realm = `Basic realm="${quotedStringContent(issuer)}"`;
  if (ctx.headers.authorization !== undefined) ctx.set('WWW-Authenticate', `${realm}, error="invalid_client"`); // as oidc-provider tells
  else if (err instanceof NoClientAuthentication) ctx.set('WWW-Authenticate', realm);
}

/**
 * Renders an error of an OAuth endpoint, ours or oidc-provider's (its `renderError` points here too): the error
 * classes are oidc-provider's, the body RFC 6749 §5.2's, never cached. A database outage is 503
 * `temporarily_unavailable` with Retry-After, noted once in `log` (db/outage.ts), not per request. Returns the
 * `error` code (for metrics).
 */
export function renderOAuthError(ctx: Context, err: unknown, issuer: string, log?: Logger): string {
  const { status, body } = oauthErrorBody(err);
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (isDatabaseUnavailable(err)) {
    ctx.set('Retry-After', String(OUTAGE_RETRY_AFTER_SECONDS));
    if (log) noteDatabaseOutage(log, err, ctx.path);
  }
  setErrorHeaders(ctx, err, status, body.error, issuer);
  ctx.type = 'application/json';
  ctx.body = body;
  return body.error!;
}
