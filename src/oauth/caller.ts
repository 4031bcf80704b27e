import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { Deps } from '../deps.js';
import { issuerUrl } from '../config/index.js';
import { authenticateAssertion, authenticateClient, checkClientAddress, type AuthenticatedClient } from '../tokens/index.js';
import { parseClientCredentials, type ParsedCredentials, type SecretCredentials } from './credentials.js';
import { ClientAuthenticationFailed, renderOAuthError } from './errors.js';
import { readForm } from './form.js';

/**
 * An endpoint's own way to authenticate the caller together with what it reads next (one statement instead of
 * two): given the presented client secret (never called for private_key_jwt) and the `token` parameter, either
 * undefined (use authenticateClient) or the caller exactly as authenticateClient would have found it, and the
 * endpoint's data.
 */
export type CallerPrefetch<T> = (
  presented: SecretCredentials,
  token: string,
) => Promise<{ caller: AuthenticatedClient | undefined; data: T } | undefined>;

/**
 * The frame our two client-authenticated endpoints (introspection, revocation) share, with the token endpoint's
 * rules: the one form reader, the one credentials parser, tokens.authenticateClient (or the endpoint's `prefetch`,
 * which must decide the same), then `token` required and no parameter repeated. Failures are RFC 6749 §5.2 errors
 * rendered by renderOAuthError (500s logged, not shown).
 */
export function callerEndpoint<T = never>(
  deps: Deps,
  name: string,
  handle: (ctx: Context, caller: AuthenticatedClient, token: string, prefetched: T | undefined) => Promise<void>,
  prefetch?: CallerPrefetch<T>,
): Middleware {
  return async (ctx) => {
    try {
      const form = await readForm(ctx);
      const presented = parseClientCredentials(ctx.get('authorization'), form);
      if (!presented) throw new ClientAuthenticationFailed('no client authentication mechanism provided', true);
      const repeated = form.repeated();
      const presentedToken = repeated === undefined ? form.single('token') : undefined;
      // private_key_jwt (RFC 7523): verified here with the token endpoint's rules (docs/sender-constrained.md); the
      // endpoint's prefetch is for client secrets only.
      const { issuer } = deps.config;
      const early =
        prefetch && presentedToken && presented.method !== 'private_key_jwt' ? await prefetch(presented, presentedToken) : undefined;
      const caller = early
        ? early.caller
        : presented.method === 'private_key_jwt'
          ? await authenticateAssertion(deps, presented, [issuer, issuerUrl(issuer, ctx.path), issuerUrl(issuer, '/token')])
          : await authenticateClient(deps, presented);
      if (!caller) throw new ClientAuthenticationFailed('client authentication failed', presented.method === 'client_secret_basic');
      if (!(await checkClientAddress(deps, caller, ctx.ip))) {
        throw new ClientAuthenticationFailed('client authentication failed', presented.method === 'client_secret_basic');
      }
      if (repeated) throw new errors.InvalidRequest(`'${repeated}' parameter must not be provided twice`);
      const token = presentedToken;
      if (!token) throw new errors.InvalidRequest("missing required parameter 'token'");
      await handle(ctx, caller, token, early?.data);
    } catch (err) {
      renderOAuthError(ctx, err, deps.config.issuer, deps.log);
      if (ctx.status >= 500 && ctx.status !== 503) deps.log.error(`${name} failed`, { err, request_id: ctx.state.requestId });
    }
  };
}
