import type { Context } from 'koa';
import { errors } from 'oidc-provider';

/**
 * `invalid_client` (401) after failed client authentication (RFC 6749 §5.2). `challenge`: answer with
 * `WWW-Authenticate: Basic`, which §5.2 requires when the client used the Authorization header; we also send it
 * when no authentication was included at all, to name the scheme we expect.
 */
export class ClientAuthenticationFailed extends errors.InvalidClientAuth {
  constructor(
    description: string,
    readonly challenge: boolean,
  ) {
    super();
    this.error_description = description;
  }
}

/** The one error body of the OAuth endpoints (oidc-provider's `errOut`): `{error, error_description?, scope?}`. */
export function oauthErrorBody(err: unknown): { status: number; body: Record<string, string> } {
  if (err instanceof errors.OIDCProviderError && err.expose) {
    const scope = (err as { scope?: unknown }).scope;
    return {
      status: err.statusCode,
      body: {
        error: err.error,
        ...(err.error_description !== undefined ? { error_description: err.error_description } : {}),
        ...(typeof scope === 'string' ? { scope } : {}),
      },
    };
  }
  return { status: 500, body: { error: 'server_error', error_description: 'the request could not be completed' } };
}

/**
 * Renders an error of an OAuth endpoint, ours or oidc-provider's (its `renderError` points here too): the error
 * classes are oidc-provider's, the body RFC 6749 §5.2's, never cached. Returns the `error` code (for metrics).
 */
export function renderOAuthError(ctx: Context, err: unknown, issuer: string): string {
  const { status, body } = oauthErrorBody(err);
  ctx.status = status;
  ctx.set('Cache-Control', 'no-store');
  if (err instanceof ClientAuthenticationFailed && err.challenge) ctx.set('WWW-Authenticate', `Basic realm="${issuer}"`);
  ctx.type = 'application/json';
  ctx.body = body;
  return body.error!;
}
