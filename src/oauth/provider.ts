import { randomBytes } from 'node:crypto';
import Provider, { errors, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import type { Deps } from '../deps.js';
import {
  accessTokenLifetime,
  findTokenByClientId,
  isWellFormedClientId,
  isWellFormedSecret,
  verifySecret,
} from '../tokens/index.js';
import { presentedSecret } from './client-auth.js';
import type { KeySet } from './keys.js';

/** Client metadata our adapter hands to oidc-provider; `org_id`, `token_id`, `expires_at` are extra metadata. */
interface ClientMetadata {
  client_id: string;
  client_secret: string;
  grant_types: string[];
  response_types: string[];
  redirect_uris: string[];
  token_endpoint_auth_method: string;
  scope: string;
  org_id: string;
  token_id: string;
  expires_at: number;
}

type ProviderClient = { scope?: string; org_id: string; token_id: string; expires_at: number; clientId: string };

export interface ProviderHooks {
  /** Called after each successful token exchange (last_used_at bookkeeping; must not block). */
  onTokenIssued(tokenId: string): void;
}

/**
 * The adapter: only the Client model is ever read (JWT access tokens are not stored). Every lookup reads the
 * tokens table, so a deleted or expired token stops working at once on every instance. No cache, on purpose.
 */
function createAdapterClass(deps: Deps) {
  return class Adapter {
    constructor(private readonly model: string) {}

    async find(id: string): Promise<ClientMetadata | undefined> {
      if (this.model !== 'Client') throw new Error(`oidc-provider model ${this.model} is not used by this server`);
      if (typeof id !== 'string' || !isWellFormedClientId(id)) return undefined;
      // A secret that fails its checksum is refused without touching the database.
      const ctx = Provider.ctx as unknown as Parameters<typeof presentedSecret>[0] | undefined;
      const secret = ctx ? presentedSecret(ctx) : undefined;
      if (secret !== undefined && !isWellFormedSecret(secret)) return undefined;

      const row = await findTokenByClientId(deps.db.knex, id);
      if (!row) return undefined;
      const expiresAt = Math.floor(row.expires_at.getTime() / 1000);
      if (expiresAt - Math.floor(Date.now() / 1000) < 1) return undefined; // expired: invalid_client (401)
      return {
        client_id: row.client_id,
        client_secret: row.secret_hash,
        grant_types: ['client_credentials'],
        response_types: [],
        redirect_uris: [],
        token_endpoint_auth_method: 'client_secret_basic',
        scope: row.services.join(' '),
        org_id: row.organisation_id,
        token_id: row.id,
        expires_at: expiresAt,
      };
    }

    private unsupported(): never {
      throw new Error(`oidc-provider model ${this.model} is not used by this server`);
    }
    async upsert(): Promise<void> {
      this.unsupported();
    }
    async findByUid(): Promise<undefined> {
      this.unsupported();
    }
    async findByUserCode(): Promise<undefined> {
      this.unsupported();
    }
    async consume(): Promise<void> {
      this.unsupported();
    }
    async destroy(): Promise<void> {
      this.unsupported();
    }
    async revokeByGrantId(): Promise<void> {
      this.unsupported();
    }
  };
}

/** SPEC "OAuth 2.0 surface": no scope → all of the token's services; any scope outside them → invalid_scope. */
function applyScopeRules(ctx: KoaContextWithOIDC, client: ProviderClient): string {
  const allowed = (client.scope ?? '').split(' ').filter(Boolean);
  const raw = ctx.oidc.params?.scope;
  const requested = typeof raw === 'string' ? raw.split(' ').filter(Boolean) : [];
  if (requested.length === 0) {
    (ctx.oidc.params as Record<string, unknown>).scope = allowed.join(' ');
    return allowed.join(' ');
  }
  const allowSet = new Set(allowed);
  const outside = requested.filter((s) => !allowSet.has(s));
  if (outside.length > 0) throw new errors.InvalidScope('requested scope is not allowed', outside.join(' '));
  return allowed.join(' ');
}

export function createProvider(deps: Deps, keys: KeySet, hooks: ProviderHooks): Provider {
  const { config } = deps;
  const scopes = config.services.map((s) => s.id);
  const ttl = config.accessTokenTtlSeconds;

  const configuration: Configuration = {
    adapter: createAdapterClass(deps) as unknown as Configuration['adapter'],
    jwks: { keys: keys.keys as NonNullable<Configuration['jwks']>['keys'] },
    clockTolerance: 0,
    scopes,
    responseTypes: [],
    clientAuthMethods: ['client_secret_basic', 'client_secret_post'],
    enabledJWA: { clientAuthSigningAlgValues: [] },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: config.signingAlg,
    },
    extraClientMetadata: { properties: ['org_id', 'token_id', 'expires_at'] },
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      dPoP: { enabled: false },
      registration: { enabled: false },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.apiAudience,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== config.apiAudience) throw new errors.InvalidTarget('unknown resource indicator');
          const scope = applyScopeRules(ctx, client as unknown as ProviderClient);
          return {
            scope,
            audience: config.apiAudience,
            accessTokenTTL: ttl,
            accessTokenFormat: 'jwt',
            jwt: { sign: { alg: config.signingAlg, kid: keys.signingKid } },
          };
        },
      },
    },
    ttl: {
      // Never past the token's expiry date (SPEC); the adapter refused clients with less than a second left.
      ClientCredentials: (_ctx, token, client) => {
        const expiresAt = (client as unknown as ProviderClient).expires_at;
        const iat = (token as unknown as { iat?: number }).iat ?? Math.floor(Date.now() / 1000);
        const seconds = accessTokenLifetime(iat, ttl, new Date(expiresAt * 1000));
        if (seconds < 1) throw new errors.InvalidClient('client authentication failed');
        return seconds;
      },
    },
    extraTokenClaims: (_ctx, token) => ({
      org_id: (token as unknown as { client?: ProviderClient }).client?.org_id,
    }),
    renderError: (ctx, out) => {
      ctx.type = 'application/json';
      ctx.body = out;
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;

  provider.Client.prototype.compareClientSecret = function compareClientSecret(
    this: { clientSecret?: string },
    actual: string,
  ): boolean {
    return typeof this.clientSecret === 'string' && isWellFormedSecret(actual) && verifySecret(actual, this.clientSecret);
  };

  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client as unknown as ProviderClient | undefined;
    if (client?.token_id) hooks.onTokenIssued(client.token_id);
  });
  provider.on('server_error', (_ctx: unknown, err: Error) => {
    deps.log.error('oauth server error', { err });
  });

  return provider;
}
