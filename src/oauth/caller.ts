import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { Deps } from '../deps.js';
import { issuerUrl } from '../config/index.js';
import {
  authenticateAssertion,
  authenticateClient,
  checkClientAddress,
  recordUseOfQuietToken,
  type AuthenticatedClient,
} from '../tokens/index.js';
import { parseClientCredentials, type ParsedCredentials, type SecretCredentials } from './credentials.js';
import { ClientAuthenticationFailed, NoClientAuthentication, renderOAuthError } from './errors.js';
import { readForm } from './form.js';
import { requestUrlIsOurs } from './request-url.js';

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
 * Records a use of the token `tokenId` by the secret whose hash is `secretHash` (undefined for `private_key_jwt`):
 * `last_used_at` of the token and of that secret, through the usage recorder the token endpoint uses
 * (tokens/usage.ts), with no access token counted.
 */
export type RecordCallerUse = (tokenId: string, secretHash: string | undefined) => void;

/**
 * What a client assertion's `aud` may name at one of our caller endpoints (introspection, revocation): the token
 * endpoint's rule (oidc-provider's clientJwtAuthExpectedAudience plus the advertised URLs, provider.ts): the issuer,
 * the token endpoint and this endpoint, each as discovery advertises it (ISSUER + path) and, when the request's host
 * names this server (requestUrlIsOurs), as the server sees the request (scheme and Host; they differ behind a load
 * balancer that ends TLS, or when a client reaches an instance directly). docs/sender-constrained.md
 * "Authenticating with private_key_jwt".
 */
function assertionAudiences(ctx: Context, issuer: string): string[] {
  const advertised = [issuer, issuerUrl(issuer, ctx.path), issuerUrl(issuer, '/token')];
  if (!requestUrlIsOurs(ctx, issuer)) return [...new Set(advertised)];
  const href = new URL(ctx.href); // scheme and Host as the server sees them (Koa 3's ctx.origin is the Origin header)
  const mount = href.pathname.endsWith(ctx.path) ? href.pathname.slice(0, href.pathname.length - ctx.path.length) : '';
  const seen = (path: string) => new URL(mount + path, href).href;
  return [...new Set([...advertised, seen(ctx.path), seen('/token')])];
}

/**
 * The frame our two client-authenticated endpoints (introspection, revocation) share, with the token endpoint's
 * rules: the one form reader, the one credentials parser, tokens.authenticateClient (or the endpoint's `prefetch`,
 * which must decide the same), then `token` required and no parameter repeated. Failures are RFC 6749 §5.2 errors
 * rendered by renderOAuthError (500s logged, not shown).
 *
 * A token that authenticated (secret or assertion) from an address its `allowed_ips` admits has been used
 * (docs/lifecycle.md "Used means…"; SPEC "dormant": not used for `dormantAfterDays`): `recordUse`, and for a token
 * quiet for about a month the use is written at once, as at the token endpoint (tokens/dormant.ts), so a token
 * that only ever introspects is neither flagged dormant nor revoked by the policy while in use. A resource server
 * is no token: nothing is recorded.
 */
export function callerEndpoint<T = never>(
  deps: Deps,
  name: string,
  recordUse: RecordCallerUse,
  handle: (ctx: Context, caller: AuthenticatedClient, token: string, prefetched: T | undefined) => Promise<void>,
  prefetch?: CallerPrefetch<T>,
): Middleware {
  return async (ctx) => {
    try {
      const form = await readForm(ctx);
      const presented = parseClientCredentials(ctx.get('authorization'), form);
      if (!presented) throw new NoClientAuthentication();
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
          ? await authenticateAssertion(deps, presented, assertionAudiences(ctx, issuer))
          : await authenticateClient(deps, presented);
      if (!caller) throw new ClientAuthenticationFailed('client authentication failed');
      // The address first, for a refused assertion too: what is wrong with one signed by the client's key is told
      // only where the token's allowed_ips let the caller in (else it would learn that the key it holds is good).
      const client = caller.kind === 'refused' ? { kind: 'token' as const, clientId: caller.token.client_id, token: caller.token } : caller;
      if (!(await checkClientAddress(deps, client, ctx.ip))) {
        throw new ClientAuthenticationFailed('client authentication failed');
      }
      if (caller.kind === 'refused') throw new ClientAuthenticationFailed(caller.problem);
      if (caller.kind === 'token') {
        // Revoked by the dormancy job a moment ago (the quiet use lost the row lock to its delete): gone.
        if (!(await recordUseOfQuietToken(deps, caller.token))) {
          throw new ClientAuthenticationFailed('client authentication failed');
        }
        recordUse(caller.token.id, caller.token.secret_hash ?? undefined); // the hash that matched (clients.ts)
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
