import type { Context, Middleware } from 'koa';
import { isDatabaseUnavailable, noteDatabaseOutage, OUTAGE_RETRY_AFTER_SECONDS } from '../db/index.js';
import type { Deps } from '../deps.js';
import { findTokenByClientId, isWellFormedClientId, isWellFormedSecret, verifySecret } from '../tokens/index.js';

/** RFC 6749 §5.2 error, rendered as `{error, error_description}` by `sendOAuthError`. */
export class OAuthEndpointError extends Error {
  constructor(
    readonly status: number,
    readonly error: string,
    readonly description: string,
    readonly headers: Record<string, string> = {},
  ) {
    super(description);
    this.name = 'OAuthEndpointError';
  }
}

/** RFC 6749-shaped 503 while the database is out of reach (issue 10 item 12). */
export const databaseUnavailable = (): OAuthEndpointError =>
  new OAuthEndpointError(503, 'temporarily_unavailable', 'the authorization server is temporarily unavailable; retry later', {
    'Retry-After': String(OUTAGE_RETRY_AFTER_SECONDS),
  });

export function sendOAuthError(ctx: Context, err: OAuthEndpointError): void {
  ctx.status = err.status;
  ctx.set(err.headers);
  ctx.set('Cache-Control', 'no-store');
  ctx.body = { error: err.error, error_description: err.description };
}

const MAX_FORM_BYTES = 64 * 1024;

/**
 * The urlencoded body of an introspection or revocation request, read here and only on those two paths
 * (oidc-provider reads its own body on /token). A parameter may appear once (RFC 6749 §3.2).
 */
export async function readForm(ctx: Context): Promise<Map<string, string>> {
  if (!ctx.is('application/x-www-form-urlencoded')) {
    throw new OAuthEndpointError(400, 'invalid_request', 'the request body must be application/x-www-form-urlencoded');
  }
  if (Number(ctx.get('content-length') || 0) > MAX_FORM_BYTES) {
    ctx.set('Connection', 'close');
    throw new OAuthEndpointError(413, 'invalid_request', 'the request body is too large');
  }
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_FORM_BYTES) {
      ctx.set('Connection', 'close');
      throw new OAuthEndpointError(413, 'invalid_request', 'the request body is too large');
    }
    chunks.push(chunk);
  }
  const form = new Map<string, string>();
  for (const [key, value] of new URLSearchParams(Buffer.concat(chunks).toString('utf8'))) {
    if (form.has(key)) throw new OAuthEndpointError(400, 'invalid_request', `'${key}' parameter must not be provided twice`);
    form.set(key, value);
  }
  return form;
}

/** The authenticated caller: a valid (existing, unexpired) system access token. */
export interface Caller {
  tokenId: string;
  clientId: string;
  organisationId: string;
}

function decodeBasic(header: string): { id: string; secret: string } | undefined {
  const m = /^Basic\s+([A-Za-z0-9+/=._~-]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const text = Buffer.from(m[1]!, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i === -1) return undefined;
  // RFC 6749 §2.3.1: both parts are form-urlencoded before they are joined.
  const decode = (s: string) => decodeURIComponent(s.replace(/\+/g, '%20'));
  try {
    return { id: decode(text.slice(0, i)), secret: decode(text.slice(i + 1)) };
  } catch {
    return undefined;
  }
}

/**
 * Client authentication for our introspection and revocation endpoints, as at the token endpoint:
 * `client_secret_basic` or `client_secret_post`, one of them. Any failure is 401 invalid_client
 * (with `WWW-Authenticate: Basic` when the Authorization header was used or nothing was sent).
 */
export async function authenticateCaller(deps: Deps, ctx: Context, form: Map<string, string>): Promise<Caller> {
  const header = ctx.get('authorization');
  const posted = form.has('client_secret') || form.has('client_id');
  if (header && posted && form.has('client_secret')) {
    throw new OAuthEndpointError(400, 'invalid_request', 'client authentication must only be provided using one mechanism');
  }
  const challenge = { 'WWW-Authenticate': `Basic realm="${deps.config.issuer}"` };
  const failed = (usedBasic: boolean) =>
    new OAuthEndpointError(401, 'invalid_client', 'client authentication failed', usedBasic ? challenge : {});

  let id: string | undefined;
  let secret: string | undefined;
  if (header) {
    const basic = decodeBasic(header);
    if (!basic) throw failed(true);
    ({ id, secret } = basic);
    if (form.has('client_id') && form.get('client_id') !== id) {
      throw new OAuthEndpointError(400, 'invalid_request', 'mismatch between the client_id in the body and in the Authorization header');
    }
  } else if (posted) {
    id = form.get('client_id');
    secret = form.get('client_secret');
  } else {
    throw new OAuthEndpointError(401, 'invalid_client', 'no client authentication mechanism provided', challenge);
  }
  const usedBasic = Boolean(header);
  if (!id || !secret || !isWellFormedClientId(id) || !isWellFormedSecret(secret)) throw failed(usedBasic);
  const row = await findTokenByClientId(deps.db.knex, id);
  if (!row || row.expires_at.getTime() <= deps.clock().getTime() || !verifySecret(secret, row.secret_hash)) {
    throw failed(usedBasic);
  }
  return { tokenId: row.id, clientId: row.client_id, organisationId: row.organisation_id };
}

/**
 * The frame our two client-authenticated endpoints (introspection, revocation) share: read the form,
 * authenticate the caller, require `token`, and answer failures as RFC 6749 §5.2 errors (500s logged, not shown).
 */
export function callerEndpoint(
  deps: Deps,
  name: string,
  handle: (ctx: Context, caller: Caller, token: string) => Promise<void>,
): Middleware {
  return async (ctx) => {
    try {
      const form = await readForm(ctx);
      const caller = await authenticateCaller(deps, ctx, form);
      const token = form.get('token');
      if (!token) throw new OAuthEndpointError(400, 'invalid_request', "missing required parameter 'token'");
      await handle(ctx, caller, token);
    } catch (err) {
      if (err instanceof OAuthEndpointError) return sendOAuthError(ctx, err);
      if (isDatabaseUnavailable(err)) {
        noteDatabaseOutage(deps.log, err, ctx.path);
        return sendOAuthError(ctx, databaseUnavailable());
      }
      deps.log.error(`${name} failed`, { err, request_id: ctx.state.requestId });
      sendOAuthError(ctx, new OAuthEndpointError(500, 'server_error', `${name} failed`));
    }
  };
}
