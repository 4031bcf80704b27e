import {
  createHash,
  createPrivateKey,
  createPublicKey,
  randomBytes,
  sign as signAsync,
  type JsonWebKey,
  type KeyObject,
  type SignKeyObjectInput,
} from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { decodeJwt, type JWK } from 'jose';
import Provider, { errors, ExternalSigningKey, type Adapter, type Client, type Configuration, type ResourceServer } from 'oidc-provider';
import { issuerUrl } from '../config/index.js';
import { isDatabaseUnavailable } from '../db/index.js';
import type { Deps } from '../deps.js';
import {
  ASSERTION_CLOCK_SKEW_S,
  accessTokenLifetime,
  assertionClaimsProblem,
  claimOneTimeUse,
  isOneTimeUseClaimed,
  verifySecret,
  type ClientRow,
} from '../tokens/index.js';
import { CLIENT_ASSERTION_SIGNING_ALGS, CLIENT_AUTH_METHODS, DPOP_SIGNING_ALGS } from './discovery.js';
import { createClientFactory } from './clients.js';
import { ClientAuthenticationFailed, DPOP_CATCH_ALL, dpopProofProblem, renderOAuthError, setErrorHeaders } from './errors.js';
import { createTokenFastPath, type TokenFastPath } from './fast-path.js';
import { grantedScope, servicesOf } from './scope.js';
import type { KeySet } from '../keys/index.js';
import { normalHtu, requestUrlIsOurs, type RequestUrlContext } from './request-url.js';

export interface ProviderHooks {
  /** Called after each successful token exchange, on either path (last_used_at bookkeeping; must not block). */
  onTokenIssued(tokenId: string, secretHash: string | undefined, hourlyLimited: boolean): void;
}

/**
 * The token row the edge authenticated for a request (token-endpoint.ts, with tokens.authenticateClient), by the
 * request: oidc-provider's client lookup reads it from here instead of authenticating the client a second time.
 */
const authenticatedRows = new WeakMap<IncomingMessage, ClientRow>();
/** For a client assertion: the edge's checks that wait until the provider has verified it (setAuthenticatedRow). */
const admissions = new WeakMap<IncomingMessage, Admit>();

/**
 * The edge's checks of a verified client assertion: the address allowlist first, then `problem` (what is wrong with
 * the assertion's claims, assertionClaimsProblem) if any, then the rest (the hourly limit). Throws the OAuth error.
 */
export type Admit = (problem?: string) => Promise<void>;

/**
 * Hands the authenticated row of this request to oidc-provider's client lookup (Client.find). For a client assertion
 * (`private_key_jwt`) the row is only the one the assertion names, unverified: `admit` (the address allowlist and the
 * hourly limit, SPEC "Network and rate limits per token") then runs once the provider has verified the assertion
 * (assertJwtClientAuthClaimsAndHeader), and throws the OAuth error to answer when the request may not go on.
 */
export function setAuthenticatedRow(req: IncomingMessage, row: ClientRow, admit?: Admit): void {
  authenticatedRows.set(req, row);
  if (admit) admissions.set(req, admit);
}

/**
 * The adapter. One model is stored: ReplayDetection (client assertion and DPoP proof `jti`s, RFC 7523 §3,
 * RFC 9449 §11.1), in the shared `oauth_replay` table so a `jti` is refused on every instance; expired entries are
 * pruned by the prune-expired job. No other model is (JWT access tokens are not; Client.find is replaced below).
 */
function createAdapter(deps: Deps): (model: string) => Adapter {
  return (model) => {
    const unused = async (): Promise<never> => {
      throw new Error(`oidc-provider model ${model} is not stored by this server`);
    };
    const base = { upsert: unused, find: unused, findByUserCode: unused, findByUid: unused, consume: unused, destroy: unused, revokeByGrantId: unused };
    if (model !== 'ReplayDetection') return base;
    return {
      ...base,
      async find(id: string) {
        return (await isOneTimeUseClaimed(deps.db.knex, id, new Date())) ? { jti: id } : undefined;
      },
      async upsert(id: string, _payload: unknown, expiresIn: number) {
        await claimOneTimeUse(deps.db.knex, id, new Date(Date.now() + expiresIn * 1000), new Date());
      },
      async destroy() {
        // Entries end by expiry only.
      },
    };
  };
}

/** oidc-provider's error_detail for a DPoP proof whose jti was seen before (lib/helpers/validate_dpop.js). */
const DPOP_REPLAY_DETAIL = 'DPoP proof JWT Replay detected';

/**
 * oidc-provider's DPoP acceptance window (lib/helpers/challenge.js CHALLENGE_OK_WINDOW): a proof is accepted while
 * its `iat` is within this many seconds of now, in either direction, and its jti is given a replay entry that lasts
 * this long from the first use. A proof dated ahead would outlive that entry (first use + window < iat + window),
 * so every entry is kept one window longer: a jti is refused for as long as its JWT could be accepted.
 */
export const REPLAY_ENTRY_MARGIN_S = 300;

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

export interface BuiltProvider {
  provider: Provider;
  fastPath: TokenFastPath;
}

/**
 * oidc-provider configured for client credentials with JWT access tokens (SPEC "OAuth 2.0 surface"), and the token
 * endpoint's fast path sharing its scope policy, resource server, Client objects and "issued" hook. Client
 * authentication happens before either (token-endpoint.ts): the provider's Client.find only returns the client the
 * edge authenticated for the current request.
 */
export async function createProvider(deps: Deps, keys: KeySet, hooks: ProviderHooks): Promise<BuiltProvider> {
  const { config } = deps;
  // SPEC Part 2: a client assertion's aud is the issuer or the token endpoint (an array of both is fine: namesOnlyUs).
  const assertionAudiences = [config.issuer, issuerUrl(config.issuer, '/token')];
  const scopes = config.services.map((s) => s.id);
  const ttl = config.accessTokenTtlSeconds;
  const resourceServerInfo = (services: string): ResourceServer => ({
    scope: services,
    audience: config.apiAudience,
    accessTokenTTL: ttl,
    accessTokenFormat: 'jwt',
    // The signer's own algorithm: after a change of SIGNING_ALG the previous key signs until the new one's time comes.
    jwt: { sign: { alg: keys.signingAlg, kid: keys.signingKid } },
  });
  const issued = (client: Client) => {
    // clientSecret is the hash of the secret that authenticated (tokens.authenticateClient): per-secret last use.
    if (typeof client.token_id === 'string') {
      hooks.onTokenIssued(client.token_id, typeof client.clientSecret === 'string' ? client.clientSecret : undefined, client.hourly_limited === true);
    }
  };

  const configuration: Configuration = {
    adapter: createAdapter(deps),
    // Our two algorithms sign through ThreadPoolSigningKey; anything else would stay with the provider's signer.
    jwks: { keys: keys.keys.map((jwk) => (jwk.alg === 'ES256' || jwk.alg === 'RS256' ? new ThreadPoolSigningKey(jwk) : jwk)) },
    // Used by the provider only for client assertions (nbf and exp): a client's clock may run a little ahead; the
    // hook below refuses an expired assertion without leeway, as our own endpoints do (tokens/clients.ts).
    clockTolerance: ASSERTION_CLOCK_SKEW_S,
    scopes,
    // Only `none`, for the authorization endpoint that discovery must name; no client may use it (docs/keys.md).
    responseTypes: ['none'],
    clientAuthMethods: [...CLIENT_AUTH_METHODS],
    // Asymmetric only: secrets are stored hashed, so client_secret_jwt and HS* stay off (research/oidc-provider.md Q3).
    enabledJWA: { clientAuthSigningAlgValues: [...CLIENT_ASSERTION_SIGNING_ALGS], dPoPSigningAlgValues: [...DPOP_SIGNING_ALGS] },
    // RFC 7523 §3: iss = sub = client ID and aud are checked by the provider; we add exp not past (the provider's
    // check allowed clockTolerance) and at most 5 minutes ahead, and aud naming nobody but us (namesOnlyUs). Real
    // time, as the provider's own checks. The provider calls this once the signature verified, before it claims the
    // jti: the place for the token's allowed_ips and hourly limit (the edge's `admit`), which an assertion nobody
    // signed must neither trip (token.denied_address in the audit log) nor use up (max_tokens_per_hour reservations
    // held while the provider verifies).
    assertJwtClientAuthClaimsAndHeader: async (ctx, claims, header) => {
      // The signature verified: what is wrong may be told (its error_description), as at introspection, once the
      // address passed (admit checks it first).
      const problem = assertionClaimsProblem(header, claims, [...assertionAudiences, ctx.oidc.urlFor('token')], Date.now() / 1000);
      const admit = admissions.get(ctx.req);
      if (!admit) throw new errors.InvalidClientAuth('client authentication failed');
      await admit(problem);
    },
    clientDefaults: {
      grant_types: ['client_credentials'],
      response_types: [],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: keys.signingAlg, // never used (no ID token), but an algorithm we hold a key for
    },
    extraClientMetadata: { properties: ['org_id', 'token_id', 'expires_at', 'hourly_limited'] },
    // A token request with an Origin header (a browser) is refused, as the provider's default decides for our clients
    // (confidential, no redirect URIs); set here so the default does not print its "SHOULD change" notice, a line
    // that is not JSON, on standard output among the logs.
    clientBasedCORS: () => false,
    // OpenID Connect Core §3.1.2.1: an authorization endpoint takes GET and POST (discovery names ours). The provider
    // allows POST only with SameSite=None cookies; it never sets one here (no request gets past the client checks).
    enableHttpPostMethods: true,
    cookies: { keys: [randomBytes(32).toString('base64url')], long: { sameSite: 'none' } },
    features: {
      devInteractions: { enabled: false },
      clientCredentials: { enabled: true },
      introspection: { enabled: true },
      revocation: { enabled: true },
      userinfo: { enabled: false },
      rpInitiatedLogout: { enabled: false },
      pushedAuthorizationRequests: { enabled: false },
      // RFC 9449, at the token endpoint: a valid proof binds the access token (cnf.jkt, token_type DPoP). No nonces.
      dPoP: { enabled: true },
      registration: { enabled: false },
      externalSigningSupport: { enabled: true, ack: 'experimental-01' }, // ThreadPoolSigningKey
      resourceIndicators: {
        enabled: true,
        defaultResource: () => config.apiAudience,
        useGrantedResource: () => false,
        getResourceServerInfo: (ctx, resourceIndicator, client) => {
          if (resourceIndicator !== config.apiAudience) throw new errors.InvalidTarget('unknown resource indicator');
          // require_dpop (SPEC Part 2): runs after the provider validated any proof, before it issues (its own check
          // would answer invalid_grant).
          if (client.dpopBoundAccessTokens && !ctx.get('DPoP')) throw new errors.InvalidDpopProof('DPoP proof JWT not provided');
          // The scope policy (scope.ts), as on the fast path; the provider then intersects with the services.
          const services = servicesOf(client.scope);
          const requested = ctx.oidc.params?.scope;
          const scope = grantedScope(services, typeof requested === 'string' ? requested : undefined);
          if (ctx.oidc.params) ctx.oidc.params.scope = scope;
          return resourceServerInfo(services.join(' '));
        },
      },
    },
    ttl: {
      // Never past the token's expiry date (SPEC); authenticateClient refused clients with less than a second left.
      ClientCredentials: (_ctx, token, client) => {
        const expiresAt = typeof client.expires_at === 'number' ? client.expires_at : 0;
        const iat = token.iat ?? Math.floor(deps.clock().getTime() / 1000);
        const seconds = accessTokenLifetime(iat, ttl, new Date(expiresAt * 1000));
        if (seconds < 1) throw new ClientAuthenticationFailed('client authentication failed'); // 401, as every such refusal
        return seconds;
      },
    },
    extraTokenClaims: (_ctx, token) => ({ org_id: token.client?.org_id }),
    renderError: (ctx, _out, error) => {
      renderOAuthError(ctx, error, config.issuer, deps.log);
    },
  };

  const provider = new Provider(config.issuer, configuration);
  provider.proxy = config.trustProxy;
  const clientFor = createClientFactory(provider);
  advertiseIssuerUrls(provider, config.issuer);

  // Client lookup: only the client the edge authenticated for this very request (tokens.authenticateClient read
  // its row just now: revocation is immediate), as a Client object reused while the row is unchanged.
  provider.Client.find = async (id: string) => {
    const req = Provider.ctx?.req;
    const row = req && authenticatedRows.get(req);
    return row && row.client_id === id ? clientFor(row) : undefined;
  };
  // One statement claims a jti on every instance at once (the provider's own unique() reads, then writes), kept
  // REPLAY_ENTRY_MARGIN_S past the expiry the provider names. The provider names the client as `iss` for both a
  // client assertion and a DPoP proof; a proof's jti is claimed once whichever client presents it (replayKey).
  provider.ReplayDetection.unique = async (iss: string, jti: string, exp: number) =>
    claimOneTimeUse(deps.db.knex, replayKey(Provider.ctx, iss, jti), new Date((exp + REPLAY_ENTRY_MARGIN_S) * 1000), new Date());
  // The secret was verified by authenticateClient; the provider checks it again with the same function.
  provider.Client.prototype.compareClientSecret = function compareClientSecret(this: Client, actual: string): boolean {
    return typeof this.clientSecret === 'string' && verifySecret(actual, this.clientSecret);
  };

  provider.on('grant.success', (ctx) => {
    if (ctx.oidc.client) issued(ctx.oidc.client);
  });
  // RFC 9449 §5: a DPoP proof that is invalid, a replayed one included (§11.1), is answered `invalid_dpop_proof`;
  // oidc-provider 9 reports a replay at the token endpoint as `invalid_grant` (lib/helpers/grant_common.js). And a
  // proof jose refused for any reason is "invalid DPoP key binding": said here what RFC 9449 §4.3 check it fails
  // (dpopProofProblem), same error and status. Its error handler emits this event right after it set the body,
  // before the response is written. Its answers get the headers ours have: a failed client authentication (a client
  // assertion) our challenge, the hourly limit of a client assertion's token (judged inside the provider's pipeline,
  // token-endpoint.ts `admit`) its Retry-After.
  provider.on('grant.error', (ctx, err) => {
    const body = ctx.body as { error?: unknown; error_description?: unknown } | undefined;
    setErrorHeaders(ctx, err, ctx.status, body?.error, config.issuer);
    if ((err as { error_detail?: unknown }).error_detail === DPOP_REPLAY_DETAIL && body?.error === 'invalid_grant') {
      ctx.body = { error: 'invalid_dpop_proof', error_description: 'DPoP proof JWT replay detected' };
    } else if (body?.error === 'invalid_dpop_proof' && body.error_description === DPOP_CATCH_ALL) {
      const problem = dpopProofProblem(ctx.get('DPoP'), DPOP_SIGNING_ALGS, (err as { cause?: unknown }).cause);
      if (problem) ctx.body = { ...body, error_description: problem };
    }
  });
  // Any other failure: oidc-provider has just set its own 500 body ("oops! something went wrong") and emits this
  // before the response is written. Rendered as every error of ours instead (renderOAuthError): a database outage or
  // timeout (a stalled replay table under a client assertion or a DPoP proof) is 503 temporarily_unavailable with
  // Retry-After, noted once as an outage; anything else 500 server_error, logged without stack or SQL.
  provider.on('server_error', (ctx, err) => {
    renderOAuthError(ctx, err, config.issuer, deps.log);
    if (!isDatabaseUnavailable(err)) deps.log.error('oauth server error', { err });
  });

  const fastPath = await createTokenFastPath(
    { provider, audience: config.apiAudience, resourceServerInfo, clientFor, issued, probeService: scopes[0]!, log: deps.log },
    config.tokenFastPath,
  );
  return { provider, fastPath };
}

/** A claim of a JWT given as a string, decoded without verifying it; undefined when it is not one. */
function unverifiedClaim(jwt: string | undefined, claim: string): unknown {
  if (!jwt) return undefined;
  try {
    return decodeJwt(jwt)[claim];
  } catch {
    return undefined;
  }
}

/**
 * The replay-store key of a jti the provider claims for client `iss`. A DPoP proof's jti (the request's `DPoP`
 * header names it, and the client assertion, if any, does not) is one key for every client: SPEC Part 2 "Proof jtis
 * are not accepted twice on any instance", so a proof accepted for one client is refused for any other (RFC 9449
 * §11.1). A client assertion's jti stays per client (`iss` + `jti`), the key introspection and revocation claim too.
 */
export function replayKey(ctx: { get(field: string): string; oidc?: { params?: Record<string, unknown> } } | undefined, iss: string, jti: string): string {
  const proofJti = ctx ? unverifiedClaim(ctx.get('DPoP') || undefined, 'jti') : undefined;
  const assertion = ctx?.oidc?.params?.client_assertion;
  const assertionJti = typeof assertion === 'string' ? unverifiedClaim(assertion, 'jti') : undefined;
  const material = proofJti === jti && assertionJti !== jti ? `DPoP proof ${jti}` : `${iss}${jti}`;
  return createHash('sha256').update(material).digest('base64url');
}

/**
 * The `htu` of the request's DPoP proof, decoded but not verified: it only picks which URL of this endpoint the
 * provider compares it with; the provider verifies the proof.
 */
function proofHtu(ctx: { get(field: string): string }): string | undefined {
  const htu = unverifiedClaim(ctx.get('DPoP') || undefined, 'htu');
  return typeof htu === 'string' ? htu : undefined;
}

/**
 * The URLs of this server's endpoints that oidc-provider uses as the expected DPoP `htu` and client assertion `aud`
 * (`urlFor`, `clientJwtAuthExpectedAudience`). oidc-provider builds them from the request (scheme and `Host`, which
 * the client writes); here they are the URLs discovery advertises (ISSUER + path, discovery.ts), and the request's
 * own only when its host names this server (requestUrlIsOurs: ISSUER's host, loopback, the address the connection
 * reached): an assertion or proof addressed to another server's URL is not accepted by sending its name as `Host`
 * (RFC 7523 §3, RFC 9449 §4.3). A proof's `htu` is compared after RFC 3986 §6.2.2 normalisation (`%74oken` is
 * `token`): when it normalises to one of the endpoint's URLs, that `htu` is the URL the provider expects. A client
 * assertion may also name the advertised token endpoint as its `aud` (SPEC Part 2: "`aud` the issuer or the token
 * endpoint").
 */
function advertiseIssuerUrls(provider: Provider, issuer: string): void {
  const Context = provider.OIDCContext;
  const requestUrlFor = Context.prototype.urlFor;
  const requestAudiences = Context.prototype.clientJwtAuthExpectedAudience;
  const advertised = (name: string, options?: Record<string, unknown>) => issuerUrl(issuer, provider.pathFor(name, { ...options, mountPath: '' }));
  Context.prototype.urlFor = function urlFor(
    this: InstanceType<typeof Context> & { ctx: { get(field: string): string } & RequestUrlContext },
    name,
    options,
  ) {
    const ours = advertised(name, options);
    const seen = requestUrlIsOurs(this.ctx, issuer) ? requestUrlFor.call(this, name, options) : ours;
    const htu = proofHtu(this.ctx); // a DPoP proof's htu that names this endpoint, however spelled, is expected as is
    if (htu !== undefined) {
      const normal = normalHtu(htu);
      if (normal !== undefined && (normal === normalHtu(ours) || normal === normalHtu(seen))) {
        const exact = new URL(htu);
        exact.search = exact.hash = '';
        return exact.href;
      }
    }
    return seen;
  };
  Context.prototype.clientJwtAuthExpectedAudience = function clientJwtAuthExpectedAudience(this: InstanceType<typeof Context>) {
    const audiences = requestAudiences.call(this);
    audiences.add(advertised('token'));
    if (this.route) audiences.add(advertised(this.route));
    return audiences;
  };
}
