import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Middleware } from 'koa';
import { LRUCache } from 'lru-cache';
import type { Deps } from '../deps.js';
import { authenticateForIntrospection, findIntrospectedSubject, type IntrospectedSubject } from '../tokens/index.js';
import { callerEndpoint, type RecordCallerUse } from './caller.js';
import { keyRetentionMs, loadPublicKeySet, type KeySet } from '../keys/index.js';

/** The claims of one of our access tokens, once its signature, issuer, audience, type and times check out. */
export interface AccessTokenClaims extends JWTPayload {
  jti: string;
  exp: number;
  iat: number;
  sub: string;
  client_id: string;
  org_id?: string;
  scope?: string;
  /** RFC 9449 §6.1 / RFC 7800: the DPoP key's RFC 7638 thumbprint for a sender-constrained token. */
  cnf?: { jkt?: string };
}

/** Verified tokens remembered at most (least recently used forgotten first). */
const VERIFIED_TOKENS = 10_000;

/**
 * Verifies a JWT access token against the key set we publish (RFC 9068: `typ` at+jwt, our issuer and audience,
 * no clock tolerance). A `kid` this instance has not loaded yet (another instance rotated a moment ago) is looked
 * up in the database once before the token is judged.
 *
 * The signature is verified once per token: a token that verified against the current key set is remembered
 * (an LRU of 10,000, forgotten when the key set changes) with its claims, and `cached(token)`
 * answers from there after checking `exp` and `nbf` again at `deps.clock()` as jose does. Only the signature
 * check is remembered: revocation and the client's row are read per request by the callers.
 */
export function createAccessTokenVerifier(deps: Deps, keySet: () => Pick<KeySet, 'publicKeys' | 'fingerprint'>) {
  let cached: { fingerprint: string; jwks: JWTVerifyGetKey; algs: string[] } | undefined;
  const verifierFor = (set: Pick<KeySet, 'publicKeys' | 'fingerprint'>) => {
    if (cached?.fingerprint !== set.fingerprint) {
      const keys = set.publicKeys; // what /jwks publishes, also when some keys do not open here (loadKeySetInPart)
      cached = {
        fingerprint: set.fingerprint,
        jwks: createLocalJWKSet({ keys }),
        // Every published key's algorithm: during a change of SIGNING_ALG tokens of both are live.
        algs: [...new Set(keys.map((k) => k.alg).filter((a): a is string => typeof a === 'string'))],
      };
    }
    return cached;
  };

  let verifiedFingerprint: string | undefined;
  const verified = new LRUCache<string, AccessTokenClaims>({ max: VERIFIED_TOKENS });
  const remember = (fingerprint: string, token: string, claims: AccessTokenClaims) => {
    if (verifiedFingerprint !== fingerprint) {
      verifiedFingerprint = fingerprint;
      verified.clear();
    }
    verified.set(token, claims);
  };
  /** The claims of a token verified before against the current key set and still within its times, else undefined. */
  const cachedClaims = (token: string): AccessTokenClaims | undefined => {
    if (verifiedFingerprint !== keySet().fingerprint) return undefined;
    const claims = verified.get(token);
    if (!claims) return undefined;
    const now = Math.floor(deps.clock().getTime() / 1000); // jose's epoch(currentDate)
    if (claims.exp <= now || (typeof claims.nbf === 'number' && claims.nbf > now)) return undefined;
    return claims;
  };

  const verifyAccessToken = async (token: string): Promise<AccessTokenClaims | undefined> => {
    if (token.length > 16_384 || token.split('.').length !== 3) return undefined;
    const known = cachedClaims(token);
    if (known) return known;
    let kid: unknown;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return undefined;
    }
    const current = keySet();
    let set: Pick<KeySet, 'publicKeys' | 'fingerprint'> = current;
    if (typeof kid === 'string' && !set.publicKeys.some((k) => k.kid === kid)) {
      const fresh = await loadPublicKeySet(deps.db.knex, deps.clock(), keyRetentionMs(deps.config.accessTokenTtlSeconds));
      if (!fresh || !fresh.keys.some((k) => k.kid === kid)) return undefined;
      set = { publicKeys: fresh.keys, fingerprint: fresh.fingerprint };
    }
    const { jwks, algs } = set === current ? verifierFor(set) : { jwks: createLocalJWKSet({ keys: set.publicKeys }), algs: undefined };
    try {
      const { payload } = await jwtVerify(token, jwks, {
        issuer: deps.config.issuer,
        audience: deps.config.apiAudience,
        typ: 'at+jwt',
        ...(algs ? { algorithms: algs } : {}),
        clockTolerance: 0,
        currentDate: deps.clock(),
        requiredClaims: ['exp', 'iat', 'jti', 'sub', 'client_id'],
      });
      if (typeof payload.client_id !== 'string' || typeof payload.jti !== 'string') return undefined;
      const claims = payload as AccessTokenClaims;
      // Remembered only when verified against the set in use (not a set read for an unknown kid).
      if (set === current && current === keySet()) remember(current.fingerprint, token, claims);
      return claims;
    } catch {
      return undefined;
    }
  };
  return Object.assign(verifyAccessToken, {
    /** Synchronous: the claims when this token's signature was verified before (and its times still hold). */
    cached: (token: string): AccessTokenClaims | undefined => (token.length > 16_384 ? undefined : cachedClaims(token)),
  });
}

export type AccessTokenVerifier = ReturnType<typeof createAccessTokenVerifier>;

/**
 * POST /token/introspection (RFC 7662), in place of oidc-provider's, which refuses JWT access tokens. The caller
 * authenticates as any valid token of an organisation, or as a resource server of the platform (docs/oauth.md);
 * the answer is `active: true` with the token's claims only when the JWT is ours and unexpired, its client still
 * exists and has not expired, it belongs to the caller's organisation (any organisation for a resource server),
 * and it was not revoked at the revocation endpoint. Anything else is `{active: false}`.
 *
 * Cost (docs/performance.md): a token whose signature was verified before is not verified again, and then one
 * statement, shared with concurrent introspection requests, reads the caller's row, the token's client row and
 * its revocation; otherwise the caller is authenticated first (so an unauthenticated caller never costs a
 * signature check), then the signature verified, then the client row and revocation read in one statement.
 * A calling token's authentication is a use of it (`recordUse`, callerEndpoint).
 */
export function introspectionEndpoint(deps: Deps, verify: AccessTokenVerifier, recordUse: RecordCallerUse): Middleware {
  return callerEndpoint<{ claims: AccessTokenClaims; subject: IntrospectedSubject }>(
    deps,
    'introspection',
    recordUse,
    async (ctx, caller, token, prefetched) => {
      ctx.set('Cache-Control', 'no-store');
      ctx.set('Pragma', 'no-cache');
      const organisationId = caller.kind === 'token' ? caller.token.organisation_id : undefined;
      ctx.body = await introspect(deps, verify, organisationId, token, prefetched);
    },
    async (presented, token) => {
      const claims = verify.cached(token);
      if (!claims) return undefined;
      const { caller, subject } = await authenticateForIntrospection(deps, presented, { clientId: claims.client_id, jti: claims.jti });
      return { caller, data: { claims, subject } };
    },
  );
}

/** `organisationId`: the caller's organisation; undefined for a resource server, which sees every organisation. */
async function introspect(
  deps: Deps,
  verify: AccessTokenVerifier,
  organisationId: string | undefined,
  token: string,
  prefetched: { claims: AccessTokenClaims; subject: IntrospectedSubject } | undefined,
): Promise<Record<string, unknown>> {
  const inactive = { active: false };
  const claims = prefetched?.claims ?? (await verify(token));
  if (!claims || typeof claims.org_id !== 'string') return inactive;
  if (organisationId !== undefined && claims.org_id !== organisationId) return inactive;
  const { client, revoked } = prefetched?.subject ?? (await findIntrospectedSubject(deps, { clientId: claims.client_id, jti: claims.jti }));
  if (!client || client.organisation_id !== claims.org_id || client.expires_at.getTime() <= deps.clock().getTime()) return inactive;
  if (revoked) return inactive;
  // RFC 9449 §6.2: a DPoP-bound token is reported with token_type DPoP and its cnf (the resource server must check
  // the proof's key against cnf.jkt).
  const jkt = typeof claims.cnf?.jkt === 'string' ? claims.cnf.jkt : undefined;
  return {
    active: true,
    scope: claims.scope ?? '',
    client_id: claims.client_id,
    sub: claims.sub,
    aud: claims.aud,
    iss: claims.iss,
    exp: claims.exp,
    iat: claims.iat,
    jti: claims.jti,
    org_id: claims.org_id,
    token_type: jkt ? 'DPoP' : 'Bearer',
    ...(jkt ? { cnf: { jkt } } : {}),
  };
}
