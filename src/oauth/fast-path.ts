import { randomBytes, randomUUID } from 'node:crypto';
import type { Context } from 'koa';
import type { Client, ResourceServer } from 'oidc-provider';
import type Provider from 'oidc-provider';
import type { Logger } from '../log.js';
import { tokenFastPathEnabled, tokenFastPathFallbacks } from '../metrics.js';
import type { ClientRow } from '../tokens/index.js';
import type { OAuthForm } from './form.js';
import { grantedScope, servicesOf } from './scope.js';

/** What the fast path shares with the provider's pipeline (provider.ts): nothing of it is written twice. */
export interface FastPathShared {
  provider: Provider;
  /** The resource server (RFC 8707) our tokens are for, and its settings for a client's services. */
  audience: string;
  resourceServerInfo(services: string): ResourceServer;
  /** The provider's Client object for an authenticated row (clients.ts). */
  clientFor(row: ClientRow): Client;
  /** The "issued" hook, also called on oidc-provider's grant.success. */
  issued(client: Client): void;
  /** One service id of the catalogue, for the startup self-check. */
  probeService: string;
  log: Logger;
}

/** How a request left the fast path. */
export type FastPathResult = 'answered' | 'not-plain' | 'fell-back';

export interface TokenFastPath {
  readonly enabled: boolean;
  /** Why it is off (setting or self-check), when it is. */
  readonly disabledReason: string | undefined;
  /**
   * Answers a plain client-credentials request of an authenticated token client, or leaves it to oidc-provider:
   * 'not-plain' when it is not the plain success case, 'fell-back' when the fast path failed on it (counted in
   * `sat_token_fast_path_fallbacks_total`, logged): in both cases nothing was written to the response.
   */
  answer(ctx: Context, form: OAuthForm, row: ClientRow): Promise<FastPathResult>;
}

const PLAIN_PARAMS = new Set(['grant_type', 'scope', 'client_id', 'client_secret']);
const FALLBACK_LOG_INTERVAL_MS = 60_000;

/**
 * Issues one access token the way oidc-provider's client_credentials grant does, with its own models: a
 * ClientCredentials token for the client and scope, bound to the same resource server (audience, TTL hook, extra
 * claims, signing key), saved (signed) by the provider. Throws whatever the provider's models throw.
 */
async function issue(shared: FastPathShared, client: Client, scope: string) {
  const { ClientCredentials, ResourceServer } = shared.provider;
  const token = new ClientCredentials({ client, scope });
  token.resourceServer = new ResourceServer(shared.audience, shared.resourceServerInfo(servicesOf(client.scope).join(' ')));
  const value = await token.save();
  return { value, token };
}

/**
 * Startup self-check: the provider members the fast path uses are there and behave (a token issued for a made-up
 * client in memory, never sent anywhere, is a signed JWT with an expiry, the type and scope asked for). Returns what
 * is wrong, or undefined. An oidc-provider upgrade that renames or changes them turns the fast path off, loudly,
 * instead of failing every request over to the slow path unseen.
 */
export async function checkFastPath(shared: FastPathShared): Promise<string | undefined> {
  const { ClientCredentials, ResourceServer } = shared.provider;
  if (typeof ClientCredentials !== 'function' || typeof ClientCredentials.prototype.save !== 'function') {
    return 'provider.ClientCredentials is not a token model with save()';
  }
  if (typeof ResourceServer !== 'function') return 'provider.ResourceServer is not a constructor';
  try {
    const probe: ClientRow = {
      id: randomUUID(),
      organisation_id: randomUUID(),
      client_id: `self-check-${randomBytes(8).toString('hex')}`,
      secret_hash: randomBytes(32).toString('base64url'),
      services: [shared.probeService],
      expires_at: new Date(Date.now() + 86_400_000),
      auth_method: 'client_secret',
      jwks: null,
      require_dpop: false,
    };
    const { value, token } = await issue(shared, shared.clientFor(probe), shared.probeService);
    if (typeof value !== 'string' || value.split('.').length !== 3) return 'ClientCredentials#save() did not return a JWT';
    if (!Number.isInteger(token.expiration) || token.expiration < 1) return 'ClientCredentials#expiration is not a positive integer';
    if (token.tokenType !== 'Bearer') return `ClientCredentials#tokenType is ${String(token.tokenType)}, not Bearer`;
    if (token.scope !== shared.probeService) return 'ClientCredentials#scope is not the scope it was given';
  } catch (err) {
    return `issuing a token with the provider's models failed: ${(err as Error).message}`;
  }
  return undefined;
}

/**
 * The token endpoint's fast path (README "Performance", docs/oauth.md): the plain success case (an authenticated
 * token client, `grant_type=client_credentials` and optionally `scope`, no Origin, DPoP or attestation header, a
 * scope the token has) is answered without oidc-provider's per-request pipeline, with its models; everything else,
 * every error included, goes to oidc-provider. `enabled: false` (TOKEN_FAST_PATH=off) sends everything there.
 * The self-check runs first; when it fails the fast path stays off and a warning is logged.
 */
export async function createTokenFastPath(shared: FastPathShared, enabled: boolean): Promise<TokenFastPath> {
  const problem = enabled ? await checkFastPath(shared) : 'TOKEN_FAST_PATH=off';
  if (enabled && problem) shared.log.warn('token fast path disabled: the self-check failed', { reason: problem });
  const on = problem === undefined;
  tokenFastPathEnabled.set(on ? 1 : 0);

  let lastLogged = 0;
  let unlogged = 0;
  const fellBack = (err: unknown): FastPathResult => {
    tokenFastPathFallbacks.inc();
    const now = Date.now();
    if (now - lastLogged >= FALLBACK_LOG_INTERVAL_MS) {
      shared.log.warn('token fast path failed; oidc-provider answered instead', { err, since_last_warning: unlogged });
      lastLogged = now;
      unlogged = 0;
    } else unlogged++;
    return 'fell-back';
  };

  return {
    enabled: on,
    disabledReason: problem,
    async answer(ctx, form, row) {
      if (!on) return 'not-plain';
      // Sender-constrained and secretless tokens are oidc-provider's alone (SPEC Part 2): never a token that requires
      // DPoP or authenticates with private_key_jwt, never a request with a DPoP proof or a client assertion.
      if (row.require_dpop || row.auth_method !== 'client_secret') return 'not-plain';
      const h = ctx.req.headers;
      if (h.origin !== undefined || h.dpop !== undefined || h['oauth-client-attestation'] !== undefined || h['oauth-client-attestation-pop'] !== undefined) {
        return 'not-plain';
      }
      const { params } = form;
      if (params.grant_type !== 'client_credentials') return 'not-plain';
      if (params.client_assertion !== undefined || params.client_assertion_type !== undefined) return 'not-plain';
      for (const key in params) if (!PLAIN_PARAMS.has(key) || typeof params[key] !== 'string') return 'not-plain';

      let scope: string;
      try {
        scope = grantedScope(row.services, typeof params.scope === 'string' ? params.scope : undefined);
      } catch {
        return 'not-plain'; // invalid_scope: oidc-provider's answer, from the same policy
      }
      try {
        const client = shared.clientFor(row);
        if (!client.grantTypeAllowed('client_credentials')) return 'not-plain';
        const { value, token } = await issue(shared, client, scope);
        ctx.set('Cache-Control', 'no-store');
        ctx.vary('Origin');
        ctx.set('Access-Control-Allow-Origin', '*');
        ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate');
        ctx.body = { access_token: value, expires_in: token.expiration, scope: token.scope, token_type: token.tokenType };
        shared.issued(client);
        return 'answered';
      } catch (err) {
        return fellBack(err);
      }
    },
  };
}
