import type { Middleware } from 'koa';
import { errors } from 'oidc-provider';
import type { Deps } from '../deps.js';
import { revokeAccessToken } from '../tokens/index.js';
import { callerEndpoint, type RecordCallerUse } from './caller.js';
import { TemporarilyUnavailable } from './errors.js';
import type { AccessTokenVerifier } from './introspection.js';

/**
 * POST /token/revocation (RFC 7009), in place of oidc-provider's, which refuses JWT access tokens. When the token
 * is one of our access tokens issued to the calling client, its `jti` is recorded (until its `exp`) and
 * introspection reports it inactive from then on. One of our unexpired access tokens (signature verified; revoked
 * or not) issued to another client of the same organisation: 400 unauthorized_client, nothing recorded (RFC 7009
 * §2.1); another organisation's: 200, nothing. Every other well-formed request also gets 200 with an
 * empty body (RFC 7009 §2.2: an invalid token is no error). Resource servers that verify JWTs offline cannot see this:
 * they must introspect when they need to know at once. Resource servers may not revoke: 400 unauthorized_client.
 * The calling token's authentication is a use of it (`recordUse`, callerEndpoint).
 */
export function revocationEndpoint(deps: Deps, verify: AccessTokenVerifier, recordUse: RecordCallerUse): Middleware {
  return callerEndpoint(deps, 'revocation', recordUse, async (ctx, caller, token) => {
    if (caller.kind !== 'token') {
      throw new errors.UnauthorizedClient('resource server credentials may only be used at the introspection endpoint');
    }
    const verified = await verify(token);
    // Another organisation's token is one this caller cannot know, as at introspection (`active: false`): 200 and
    // nothing recorded, so revocation tells no client whether another organisation's token is live (RFC 7009 §2.2).
    const claims = verified && verified.org_id === caller.token.organisation_id ? verified : undefined;
    if (claims && claims.client_id !== caller.clientId) {
      // RFC 7009 §2.1: the server "verifies whether the token was issued to the client making the revocation request.
      // If this validation fails, the request is refused and the client is informed of the error" (as fosite and
      // Keycloak do): a 200 here would tell a script that used the wrong credentials that a live token is revoked.
      throw new errors.UnauthorizedClient('this access token was not issued to the calling client; only that client may revoke it');
    }
    if (claims) {
      const outcome = await revokeAccessToken(
        deps.db.knex,
        { jti: claims.jti, client_id: claims.client_id, organisation_id: caller.token.organisation_id, expires_at: new Date(claims.exp * 1000) },
        deps.clock(),
        deps.config.maxRevokedAccessTokensPerClient,
      );
      if (!outcome.recorded) {
        // RFC 7009 §2.2.1: temporarily unable; the client may retry after Retry-After (when its oldest expire).
        throw new TemporarilyUnavailable('too many revoked access tokens of this client are on record; retry later', outcome.retryAfterSeconds);
      }
    }
    ctx.set('Cache-Control', 'no-store');
    ctx.status = 200;
    ctx.body = '';
  });
}
