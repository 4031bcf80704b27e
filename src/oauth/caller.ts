import type { Context, Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { Deps } from '../deps.js';
import { authenticateAssertion, authenticateClient, type AuthenticatedClient } from '../tokens/index.js';
import { parseClientCredentials } from './credentials.js';
import { ClientAuthenticationFailed, renderOAuthError } from './errors.js';
import { readForm } from './form.js';

/**
 * The frame our two client-authenticated endpoints (introspection, revocation) share, with the token endpoint's
 * rules: the one form reader, the one credentials parser, tokens.authenticateClient, then `token` required and no
 * parameter repeated. Failures are RFC 6749 §5.2 errors rendered by renderOAuthError (500s logged, not shown).
 */
export function callerEndpoint(
  deps: Deps,
  name: string,
  handle: (ctx: Context, caller: AuthenticatedClient, token: string) => Promise<void>,
): Middleware {
  return async (ctx) => {
    try {
      const form = await readForm(ctx);
      const presented = parseClientCredentials(ctx.get('authorization'), form);
      if (!presented) throw new ClientAuthenticationFailed('no client authentication mechanism provided', true);
      // private_key_jwt (RFC 7523): verified here with the token endpoint's rules (docs/sender-constrained.md).
      const { issuer } = deps.config;
      const caller =
        presented.method === 'private_key_jwt'
          ? await authenticateAssertion(deps, presented, [issuer, `${issuer}${ctx.path}`, `${issuer}/token`])
          : await authenticateClient(deps, presented);
      if (!caller) throw new ClientAuthenticationFailed('client authentication failed', presented.method === 'client_secret_basic');
      const repeated = form.repeated();
      if (repeated) throw new errors.InvalidRequest(`'${repeated}' parameter must not be provided twice`);
      const token = form.single('token');
      if (!token) throw new errors.InvalidRequest("missing required parameter 'token'");
      await handle(ctx, caller, token);
    } catch (err) {
      renderOAuthError(ctx, err, deps.config.issuer);
      if (ctx.status >= 500) deps.log.error(`${name} failed`, { err, request_id: ctx.state.requestId });
    }
  };
}
