import { createLocalJWKSet, decodeProtectedHeader, jwtVerify, type JWK, type JWTPayload, type JWTVerifyGetKey } from 'jose';
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { findTokenByClientId, isAccessTokenRevoked } from '../tokens/index.js';
import { callerEndpoint } from './caller.js';
import { keyRetentionMs, loadPublicKeySet, type KeySet } from '../keys/index.js';

const PUBLIC_MEMBERS = ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use'] as const;

function publicJwk(jwk: JWK): JWK {
  const out: Record<string, unknown> = {};
  for (const k of PUBLIC_MEMBERS) if (jwk[k] !== undefined) out[k] = jwk[k];
  return out as JWK;
}

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

/**
 * Verifies a JWT access token against the key set we publish (RFC 9068: `typ` at+jwt, our issuer and audience,
 * no clock tolerance). A `kid` this instance has not loaded yet (another instance rotated a moment ago) is looked
 * up in the database once before the token is judged.
 */
export function createAccessTokenVerifier(deps: Deps, keySet: () => KeySet) {
  let cached: { fingerprint: string; jwks: JWTVerifyGetKey; algs: string[] } | undefined;
  const verifierFor = (set: Pick<KeySet, 'keys' | 'fingerprint'>) => {
    if (cached?.fingerprint !== set.fingerprint) {
      const keys = set.keys.map(publicJwk);
      cached = {
        fingerprint: set.fingerprint,
        jwks: createLocalJWKSet({ keys }),
        algs: [...new Set(keys.map((k) => k.alg).filter((a): a is string => typeof a === 'string'))],
      };
    }
    return cached;
  };

  return async function verifyAccessToken(token: string): Promise<AccessTokenClaims | undefined> {
    if (token.length > 16_384 || token.split('.').length !== 3) return undefined;
    let kid: unknown;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      return undefined;
    }
    let set: Pick<KeySet, 'keys' | 'fingerprint'> = keySet();
    if (typeof kid === 'string' && !set.keys.some((k) => k.kid === kid)) {
      const fresh = await loadPublicKeySet(
        deps.db.knex,
        deps.config.signingAlg,
        deps.clock(),
        keyRetentionMs(deps.config.accessTokenTtlSeconds),
      );
      if (!fresh || !fresh.keys.some((k) => k.kid === kid)) return undefined;
      set = fresh;
    }
    const { jwks, algs } = set === keySet() ? verifierFor(set) : { jwks: createLocalJWKSet({ keys: set.keys.map(publicJwk) }), algs: undefined };
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
      return payload as AccessTokenClaims;
    } catch {
      return undefined;
    }
  };
}

export type AccessTokenVerifier = ReturnType<typeof createAccessTokenVerifier>;

/**
 * POST /token/introspection (RFC 7662), in place of oidc-provider's, which refuses JWT access tokens. The caller
 * authenticates as any valid token of an organisation, or as a resource server of the platform (docs/oauth.md);
 * the answer is `active: true` with the token's claims only when the JWT is ours and unexpired, its client still
 * exists and has not expired, it belongs to the caller's organisation (any organisation for a resource server),
 * and it was not revoked at the revocation endpoint. Anything else is `{active: false}`.
 */
export function introspectionEndpoint(deps: Deps, verify: AccessTokenVerifier): Middleware {
  return callerEndpoint(deps, 'introspection', async (ctx, caller, token) => {
    ctx.set('Cache-Control', 'no-store');
    ctx.set('Pragma', 'no-cache');
    ctx.body = await introspect(deps, verify, caller.kind === 'token' ? caller.token.organisation_id : undefined, token);
  });
}

/** `organisationId`: the caller's organisation; undefined for a resource server, which sees every organisation. */
async function introspect(
  deps: Deps,
  verify: AccessTokenVerifier,
  organisationId: string | undefined,
  token: string,
): Promise<Record<string, unknown>> {
  const inactive = { active: false };
  const claims = await verify(token);
  if (!claims || typeof claims.org_id !== 'string') return inactive;
  if (organisationId !== undefined && claims.org_id !== organisationId) return inactive;
  const client = await findTokenByClientId(deps.db.knex, claims.client_id);
  if (!client || client.organisation_id !== claims.org_id || client.expires_at.getTime() <= deps.clock().getTime()) return inactive;
  if (await isAccessTokenRevoked(deps.db.knex, claims.jti)) return inactive;
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
