// The OAuth 2.0 edge: oidc-provider configured for client credentials, its keys, and what it does not do for us.
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { tokenRequestDuration, tokenRequests } from '../metrics.js';
import { UsageRecorder } from '../tokens/index.js';
import { ensureSigningKey, keyRetentionMs, loadKeySet, pruneSigningKeys, type KeySet } from './keys.js';
import { createProvider } from './provider.js';
import { databaseUnavailable } from './caller.js';
import { createAccessTokenVerifier, introspectionEndpoint } from './introspection.js';
import { revocationEndpoint } from './revocation.js';

export { ensureSigningKey, rotateSigningKey, loadKeySet, pruneSigningKeys, keyRetentionMs } from './keys.js';

/** The provider endpoints we expose; every other route oidc-provider registers stays unreachable. */
const exposed = new Map<string, string>([
  ['/.well-known/openid-configuration', 'GET'],
  ['/.well-known/oauth-authorization-server', 'GET'],
  ['/jwks', 'GET'],
  ['/token', 'POST'],
  ['/token/introspection', 'POST'],
  ['/token/revocation', 'POST'],
]);

export interface OAuth {
  middleware: Middleware;
  /** Re-reads the key set; rebuilds the provider when it changed. Returns true on a change. */
  reloadKeys(): Promise<boolean>;
  /** Writes batched last_used_at updates. */
  flushUsage(): Promise<number>;
  readonly keySet: KeySet;
}

export async function createOAuth(deps: Deps): Promise<OAuth> {
  const { config } = deps;
  const usage = new UsageRecorder();
  const hooks = { onTokenIssued: (tokenId: string) => usage.record(tokenId) };
  const retention = keyRetentionMs(config.accessTokenTtlSeconds);
  const load = async () => {
    const now = new Date();
    let set = await loadKeySet(deps.db.knex, config.signingAlg, now, retention);
    if (!set) {
      // First start (or a new SIGNING_ALG): create the key under a table lock, then read what won.
      await ensureSigningKey(deps.db.knex, config.signingAlg);
      set = await loadKeySet(deps.db.knex, config.signingAlg, new Date(), retention);
    }
    if (!set) throw new Error('no signing key available');
    return set;
  };

  let keySet = await load();
  const build = (set: KeySet) => {
    const p = createProvider(deps, set, hooks);
    p.use(postProcess(config.services.map((s) => s.id), config.issuer));
    return p.callback();
  };
  let providerCallback = build(keySet);
  // RFC 7662 / RFC 7009 for our JWT access tokens: served by us, oidc-provider refuses JWTs on both.
  const verifyAccessToken = createAccessTokenVerifier(deps, () => keySet);
  const ownEndpoints = new Map<string, Middleware>([
    ['/token/introspection', introspectionEndpoint(deps, verifyAccessToken)],
    ['/token/revocation', revocationEndpoint(deps, verifyAccessToken)],
  ]);

  const middleware: Middleware = async (ctx, next) => {
    const method = exposed.get(ctx.path);
    if (method === undefined) return next();
    if (ctx.method !== method && !(method === 'GET' && ctx.method === 'HEAD')) {
      ctx.status = 405;
      ctx.set('Allow', method);
      ctx.body = { error: 'invalid_request', error_description: `use ${method}` };
      return;
    }
    const own = ownEndpoints.get(ctx.path);
    if (own) return own(ctx, next);
    ctx.respond = false;
    await providerCallback(ctx.req, ctx.res);
  };

  return {
    middleware,
    get keySet() {
      return keySet;
    },
    async reloadKeys() {
      const next = await load();
      await pruneSigningKeys(deps.db.knex, next); // keys no longer published: their tokens have all expired
      if (next.fingerprint === keySet.fingerprint) return false;
      keySet = next;
      providerCallback = build(keySet);
      deps.log.info('signing keys reloaded', { signing_kid: keySet.signingKid, published: keySet.keys.length });
      return true;
    },
    flushUsage: () => usage.flush(deps.db.knex),
  };
}

/**
 * Runs inside each provider instance, around its router: token endpoint metrics, and discovery as the provider
 * renders it minus what we do not serve (RFC 8414 §2: no authorization endpoint without a grant that uses it).
 */
function postProcess(scopes: string[], issuer: string): Middleware {
  return async (ctx, next) => {
    if (ctx.path === '/token') {
      const started = process.hrtime.bigint();
      await next();
      if (ctx.state.databaseUnavailable) {
        const e = databaseUnavailable();
        ctx.status = e.status;
        ctx.set(e.headers);
        ctx.body = { error: e.error, error_description: e.description };
      }
      const body = ctx.body as { error?: string } | undefined;
      const outcome = ctx.status < 400 ? 'ok' : (body?.error ?? String(ctx.status));
      tokenRequests.inc({ outcome });
      tokenRequestDuration.observe({ outcome }, Number(process.hrtime.bigint() - started) / 1e9);
      return;
    }
    await next();
    if (ctx.path.startsWith('/.well-known/') && ctx.status === 200 && ctx.body && typeof ctx.body === 'object') {
      const doc = { ...(ctx.body as Record<string, unknown>) };
      for (const key of [
        'authorization_endpoint',
        'claims_parameter_supported',
        'claims_supported',
        'subject_types_supported',
        'id_token_signing_alg_values_supported',
        'request_parameter_supported',
        'request_uri_parameter_supported',
        'require_request_uri_registration',
        'code_challenge_methods_supported',
        'response_modes_supported',
        'authorization_response_iss_parameter_supported',
        'claim_types_supported',
      ]) {
        delete doc[key];
      }
      doc.scopes_supported = scopes;
      doc.response_types_supported = [];
      // Endpoints hang off ISSUER, whatever Host the request used (oidc-provider builds them from the request).
      for (const [key, value] of Object.entries(doc)) {
        if (/_(endpoint|uri)$/.test(key) && typeof value === 'string' && /^https?:\/\//.test(value)) {
          const url = new URL(value);
          doc[key] = issuer + url.pathname + url.search;
        }
      }
      ctx.body = doc;
    }
  };
}
