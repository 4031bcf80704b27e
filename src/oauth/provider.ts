import {
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign as signAsync,
  type JsonWebKey,
  type KeyObject,
  type SignKeyObjectInput,
} from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import querystring from 'node:querystring';
import type { JWK } from 'jose';
import type { Middleware } from 'koa';
import Provider, { errors, ExternalSigningKey, type Configuration, type KoaContextWithOIDC } from 'oidc-provider';
import { isDatabaseUnavailable, noteDatabaseOutage } from '../db/index.js';
import type { Deps } from '../deps.js';
import { tokenRequestDuration, tokenRequests } from '../metrics.js';
import {
  accessTokenLifetime,
  findTokenByClientId,
  isWellFormedClientId,
  isWellFormedSecret,
  verifySecret,
} from '../tokens/index.js';
import type { ClientRow } from '../tokens/queries.js';
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

/** Client objects kept per generation (ClientInstances): at most twice this many live at once. */
const CLIENT_INSTANCES = 5_000;

export interface ProviderHooks {
  /** Called after each successful token exchange (last_used_at bookkeeping; must not block). */
  onTokenIssued(tokenId: string): void;
}

/** The token row of a client that may authenticate now, and its expiry in epoch seconds; else undefined. */
async function loadClientRow(deps: Deps, id: unknown): Promise<{ row: ClientRow; expiresAt: number } | undefined> {
  if (typeof id !== 'string' || !isWellFormedClientId(id)) return undefined;
  // A secret that fails its checksum is refused without touching the database.
  const ctx = Provider.ctx as unknown as Parameters<typeof presentedSecret>[0] | undefined;
  const secret = ctx ? presentedSecret(ctx) : undefined;
  if (secret !== undefined && !isWellFormedSecret(secret)) return undefined;

  const row = await findTokenByClientId(deps.db.knex, id);
  if (!row) return undefined;
  const expiresAt = Math.floor(row.expires_at.getTime() / 1000);
  if (expiresAt - Math.floor(Date.now() / 1000) < 1) return undefined; // expired: invalid_client (401)
  return { row, expiresAt };
}

function toMetadata(row: ClientRow, expiresAt: number): ClientMetadata {
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

/** Every row field toMetadata reads, in one string: rows with equal keys give equal metadata (keep them in step). */
function metadataKey(row: ClientRow, expiresAt: number): string {
  return `${row.client_id} ${row.id} ${row.organisation_id} ${expiresAt} ${row.secret_hash} ${row.services.join(',')}`;
}

/**
 * The adapter: only the Client model is ever read (JWT access tokens are not stored), and Client.find is replaced
 * (createProvider), so this find is there for completeness. Every lookup reads the tokens table, so a deleted or
 * expired token stops working at once on every instance. No cache, on purpose.
 */
function createAdapterClass(deps: Deps) {
  return class Adapter {
    constructor(private readonly model: string) {}

    async find(id: string): Promise<ClientMetadata | undefined> {
      if (this.model !== 'Client') throw new Error(`oidc-provider model ${this.model} is not used by this server`);
      const found = await loadClientRow(deps, id);
      return found && toMetadata(found.row, found.expiresAt);
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

/**
 * A signing key that signs with node:crypto on the libuv thread pool (one `crypto.sign` call with a callback),
 * handed to oidc-provider through its (experimental) ExternalSigningKey hook. The provider's default path signs
 * through jose and WebCrypto: on this machine about 73 µs of CPU per ES256 signature against 29 µs here, of which
 * about 14 µs on the main thread (README "Performance"). A synchronous crypto.sign would cost 20 µs, all of it on
 * the main thread, which is the server's bottleneck. The JWS is the same: ES256 as raw r||s (ieee-p1363), RS256 as
 * PKCS #1 v1.5. Only public parts are ever exported: keyObject() is the public key, the JWKS is built from it.
 */
class ThreadPoolSigningKey extends ExternalSigningKey {
  readonly #kid: string;
  readonly #alg: string;
  readonly #public: KeyObject;
  readonly #signWith: SignKeyObjectInput & { key: KeyObject };

  constructor(jwk: JWK) {
    super();
    if (!jwk.kid || !jwk.alg) throw new Error('signing keys need a kid and an alg');
    this.#kid = jwk.kid;
    this.#alg = jwk.alg;
    const key = createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' });
    this.#public = createPublicKey(key);
    this.#signWith = jwk.kty === 'EC' ? { key, dsaEncoding: 'ieee-p1363' } : { key };
  }

  override get kid(): string {
    return this.#kid;
  }

  override get alg(): string {
    return this.#alg;
  }

  override keyObject(): KeyObject {
    return this.#public;
  }

  override sign(data: Uint8Array): Promise<Uint8Array> {
    return new Promise((resolve, reject) => {
      signAsync('sha256', data, this.#signWith, (err, signature) => (err ? reject(err) : resolve(signature)));
    });
  }
}

/**
 * Client objects by the exact metadata they were built from (two generations, like oidc-provider's own LRU of 100,
 * but large enough for every active client of a big deployment, and keyed by the row fields instead of a SHA-256 of
 * the serialised metadata). The row is still read on every request: a revoked or changed token is never served from
 * here, because its row is gone or its fields, and so the key, differ. What is reused is only the validated Client
 * object (oidc-provider would otherwise re-validate the metadata of every client beyond the 100 most recent).
 */
class ClientInstances<T> {
  #recent = new Map<string, T>();
  #stale = new Map<string, T>();

  constructor(private readonly maxSize: number) {}

  get(key: string): T | undefined {
    const hit = this.#recent.get(key);
    if (hit !== undefined) return hit;
    const old = this.#stale.get(key);
    if (old !== undefined) {
      this.#stale.delete(key);
      this.set(key, old);
    }
    return old;
  }

  set(key: string, value: T): void {
    this.#recent.set(key, value);
    if (this.#recent.size >= this.maxSize) {
      this.#stale = this.#recent;
      this.#recent = new Map();
    }
  }
}

type FastClient = ProviderClient & {
  compareClientSecret(secret: string): boolean | Promise<boolean>;
  checkClientSecretExpiration(message: string): void;
  grantTypeAllowed(type: string): boolean;
};
type TokenModel = { scope?: string; expiration: number; tokenType: string; resourceServer: unknown; save(): Promise<string> };

const FORM = 'application/x-www-form-urlencoded';
const FORM_UTF8 = /^application\/x-www-form-urlencoded;\s*charset=utf-8$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const SCOPE_LIST = /^[a-z0-9][a-z0-9._:-]*( [a-z0-9][a-z0-9._:-]*)*$/;

/**
 * The request body, read and put back (unshifted) in the same tick, so the stream is still unread when the fast
 * path hands the request over: oidc-provider then reads it itself, as if nothing had looked at it. Undefined when
 * the stream ends or fails before `length` bytes (then it is left as it is).
 */
function peekBody(req: IncomingMessage, length: number): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let received = 0;
    const finish = (body: Buffer | undefined) => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onEnd);
      resolve(body);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      received += chunk.length;
      if (received < length) return;
      req.pause();
      const body = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      finish(body);
      req.unshift(body);
    };
    const onEnd = () => finish(undefined);
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onEnd);
  });
}

/** `grant_type=client_credentials`, optionally with `scope`, each once and nothing else; else undefined. */
function plainClientCredentials(body: string): { scope?: string } | undefined {
  const params = querystring.parse(body);
  let scope: string | undefined;
  let n = 0;
  for (const key in params) {
    n++;
    if (key === 'grant_type') {
      if (params[key] !== 'client_credentials') return undefined;
    } else if (key === 'scope') {
      const value = params[key];
      if (typeof value !== 'string' || !SCOPE_LIST.test(value)) return undefined;
      scope = value;
    } else return undefined;
  }
  if (params.grant_type === undefined || n > 2) return undefined;
  return scope === undefined ? {} : { scope };
}

/** Basic credentials in the exact form our clients send (canonical base64 of `sat_…:sats_…`); else undefined. */
function plainBasic(header: string): { id: string; secret: string } | undefined {
  if (!header.startsWith('Basic ')) return undefined;
  const b64 = header.slice(6);
  if (b64.length % 4 !== 0 || !BASE64.test(b64)) return undefined;
  const decoded = Buffer.from(b64, 'base64').toString('latin1');
  const i = decoded.indexOf(':');
  if (i === -1) return undefined;
  const id = decoded.slice(0, i);
  const secret = decoded.slice(i + 1);
  if (!isWellFormedClientId(id) || !isWellFormedSecret(secret)) return undefined;
  return { id, secret };
}

/**
 * POST /token, the plain success case, without oidc-provider's per-request pipeline (README "Performance"): a
 * request with exactly `grant_type=client_credentials` (and optionally `scope`) in an urlencoded body, HTTP Basic
 * credentials in our format, no Origin, DPoP or attestation header, from a client that authenticates and may have
 * the scope. The token is still oidc-provider's: its ClientCredentials model with the same resource server, TTL
 * hook, extra claims and signing key, saved (signed) by the provider, and the response carries the same headers
 * and members (test/integration/oauth-token-fast-path.test.ts compares both paths). Anything else, every error
 * included, goes on to oidc-provider's own token endpoint, which reads the body itself (peekBody put it back), so
 * every error answer and every unusual request is exactly the provider's. A failing request costs a second client
 * lookup that way; only the success case is made cheaper. Skipped for that case: the provider's router and
 * AsyncLocalStorage context, its CORS and no-cache middleware, the async-iterator body reader, parameter
 * allow-lists and duplicate checks, the client-authentication middleware chain and the grant handler's generic
 * checks (DPoP, mTLS, rich authorization requests), about 40 % of the server's CPU per token (bench profiles).
 * Revocation is as immediate as before: the client row is read on every request (ClientModel.find).
 * On this path the `ctx` argument of the ttl and extraTokenClaims hooks is undefined; they do not use it.
 */
function tokenFastPath(
  provider: Provider,
  clients: { find(id: unknown): Promise<object | undefined> },
  audience: string,
  resourceServerInfo: (scope: string) => object,
  hooks: ProviderHooks,
): Middleware {
  const { ClientCredentials, ResourceServer } = provider as unknown as {
    ClientCredentials: new (init: { client: object; scope?: string }) => TokenModel;
    ResourceServer: new (identifier: string, info: object) => unknown;
  };
  return async (ctx, next) => {
    if (ctx.method !== 'POST' || ctx.path !== '/token') return next();
    const h = ctx.req.headers;
    const length = Number(h['content-length']);
    if (
      (h['content-type'] !== FORM && !FORM_UTF8.test(h['content-type'] ?? '')) ||
      h.authorization === undefined ||
      h.origin !== undefined ||
      h.dpop !== undefined ||
      h['oauth-client-attestation'] !== undefined ||
      h['oauth-client-attestation-pop'] !== undefined ||
      !(length > 0 && length <= 1024)
    ) {
      return next();
    }
    const started = process.hrtime.bigint();
    const raw = await peekBody(ctx.req, length);
    if (raw === undefined) return next();
    try {
      const params = plainClientCredentials(raw.toString('latin1'));
      const basic = params && plainBasic(h.authorization);
      const client = basic && ((await clients.find(basic.id)) as FastClient | undefined);
      if (!params || !basic || !client || !client.grantTypeAllowed('client_credentials')) return next();
      client.checkClientSecretExpiration('expired');
      if (!(await client.compareClientSecret(basic.secret))) return next();

      const allowed = (client.scope ?? '').split(' ').filter(Boolean);
      let scope: string;
      if (params.scope === undefined) {
        if (allowed.length === 0) return next();
        scope = allowed.join(' ');
      } else {
        const requested = params.scope.split(' ');
        if (new Set(requested).size !== requested.length || requested.some((s) => !allowed.includes(s))) return next();
        scope = params.scope;
      }

      const token = new ClientCredentials({ client, scope });
      token.resourceServer = new ResourceServer(audience, resourceServerInfo(allowed.join(' ')));
      const value = await token.save();

      ctx.req.resume(); // the body was put back for the provider; it is not needed any more
      ctx.set('Cache-Control', 'no-store');
      ctx.vary('Origin');
      ctx.set('Access-Control-Allow-Origin', '*');
      ctx.set('Access-Control-Expose-Headers', 'WWW-Authenticate');
      ctx.body = { access_token: value, expires_in: token.expiration, scope: token.scope, token_type: token.tokenType };
      hooks.onTokenIssued(client.token_id);
      tokenRequests.inc({ outcome: 'ok' });
      tokenRequestDuration.observe({ outcome: 'ok' }, Number(process.hrtime.bigint() - started) / 1e9);
    } catch {
      // Whatever failed here (the database, a bad row) fails again, and is answered, in oidc-provider's pipeline.
      if (ctx.body === undefined) return next();
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
  const Adapter = createAdapterClass(deps);
  const resourceServerInfo = (scope: string) => ({
    scope,
    audience: config.apiAudience,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt' as const,
    jwt: { sign: { alg: config.signingAlg, kid: keys.signingKid } },
  });

  const configuration: Configuration = {
    adapter: Adapter as unknown as Configuration['adapter'],
    // Our two algorithms sign through ThreadPoolSigningKey; anything else would stay with the provider's signer.
    jwks: { keys: keys.keys.map((jwk) => (jwk.alg === 'ES256' || jwk.alg === 'RS256' ? new ThreadPoolSigningKey(jwk) : jwk)) },
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
      externalSigningSupport: { enabled: true, ack: 'experimental-01' }, // ThreadPoolSigningKey
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.apiAudience,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== config.apiAudience) throw new errors.InvalidTarget('unknown resource indicator');
          return resourceServerInfo(applyScopeRules(ctx, client as unknown as ProviderClient));
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

  // Client lookup, replacing Client.find: the row is read on every request (no cache of rows: revocation is
  // immediate), and the validated Client object is reused while the row is unchanged (ClientInstances).
  const ClientModel = provider.Client as unknown as { new (metadata: ClientMetadata): object; find(id: unknown): Promise<object | undefined> };
  const instances = new ClientInstances<object>(CLIENT_INSTANCES);
  ClientModel.find = async (id: unknown) => {
    const found = await loadClientRow(deps, id);
    if (!found) return undefined;
    const key = metadataKey(found.row, found.expiresAt);
    let client = instances.get(key);
    if (client === undefined) {
      client = new ClientModel(toMetadata(found.row, found.expiresAt)); // validates (invalid_client_metadata)
      instances.set(key, client);
    }
    return client;
  };

  provider.Client.prototype.compareClientSecret = function compareClientSecret(
    this: { clientSecret?: string },
    actual: string,
  ): boolean {
    return typeof this.clientSecret === 'string' && isWellFormedSecret(actual) && verifySecret(actual, this.clientSecret);
  };

  provider.use(tokenFastPath(provider, ClientModel, config.apiAudience, resourceServerInfo, hooks));

  provider.on('grant.success', (ctx: KoaContextWithOIDC) => {
    const client = ctx.oidc.client as unknown as ProviderClient | undefined;
    if (client?.token_id) hooks.onTokenIssued(client.token_id);
  });
  provider.on('server_error', (ctx: KoaContextWithOIDC, err: Error) => {
    if (isDatabaseUnavailable(err)) {
      // Answered 503 by postProcess (src/oauth/index.ts); logged once per outage, not per request.
      ctx.state.databaseUnavailable = true;
      noteDatabaseOutage(deps.log, err, ctx.path);
      return;
    }
    deps.log.error('oauth server error', { err });
  });

  return provider;
}
