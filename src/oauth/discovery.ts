// The two discovery documents and the JWKS, prepared once (per key change for the JWKS) and served from memory
// with caching and CORS headers (SPEC Part 2 "OAuth conformance"; issue 17 item 5). See docs/keys.md "Discovery".
import { createHash } from 'node:crypto';
import fresh from 'fresh';
import type { JWK } from 'jose';
import type { Middleware } from 'koa';
import { issuerUrl, type Config } from '../config/index.js';
import { SIGNING_ALGS } from '../keys/index.js';
import { CLIENT_ASSERTION_ALGS } from '../tokens/index.js';

/** Client authentication methods of the token endpoint (provider.ts configures oidc-provider with this list). */
export const CLIENT_AUTH_METHODS = ['client_secret_basic', 'client_secret_post', 'private_key_jwt'] as const;

/** Client authentication methods of introspection and revocation (our own endpoints, caller.ts): the same. */
export const CALLER_AUTH_METHODS = CLIENT_AUTH_METHODS;

/** Algorithms of `private_key_jwt` client assertions (RFC 7523): EC P-256 and RSA keys; never HS* (secrets are hashed). */
export const CLIENT_ASSERTION_SIGNING_ALGS = [...CLIENT_ASSERTION_ALGS.EC, ...CLIENT_ASSERTION_ALGS.RSA];

/** Algorithms of DPoP proofs (RFC 9449 §5.1) the token endpoint accepts; provider.ts configures the same list. */
export const DPOP_SIGNING_ALGS = ['ES256', 'ES384', 'Ed25519', 'EdDSA', 'PS256', 'RS256'] as const;

/** Seconds a verifier or client may cache /jwks and discovery: at most 300 (SPEC), well inside the ahead window. */
export const METADATA_MAX_AGE = 300;

/** The path of oidc-provider's authorization endpoint, which we expose so discovery names no endpoint that is absent. */
export const AUTHORIZATION_PATH = '/auth';

/**
 * RFC 8414 metadata. `response_types_supported` is REQUIRED and strict parsers (Authlib) treat an empty list as
 * missing; this server's authorization endpoint (oidc-provider's) supports only `none` (OAuth 2.0 Multiple Response
 * Types §5: nothing is issued), and no client is allowed even that (every client has `response_types: []`), so every
 * authorization request ends in an RFC 6749 §4.1.2.1 error. No grant type uses the endpoint, so
 * `grant_types_supported` stays `client_credentials`.
 */
export function authorizationServerMetadata(config: Pick<Config, 'issuer' | 'services'>): Record<string, unknown> {
  const at = (p: string) => issuerUrl(config.issuer, p);
  return {
    issuer: config.issuer,
    authorization_endpoint: at(AUTHORIZATION_PATH),
    token_endpoint: at('/token'),
    jwks_uri: at('/jwks'),
    introspection_endpoint: at('/token/introspection'),
    revocation_endpoint: at('/token/revocation'),
    scopes_supported: config.services.map((s) => s.id),
    response_types_supported: ['none'],
    response_modes_supported: ['query'],
    grant_types_supported: ['client_credentials'],
    token_endpoint_auth_methods_supported: [...CLIENT_AUTH_METHODS],
    token_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_SIGNING_ALGS],
    introspection_endpoint_auth_methods_supported: [...CALLER_AUTH_METHODS],
    introspection_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_SIGNING_ALGS],
    revocation_endpoint_auth_methods_supported: [...CALLER_AUTH_METHODS],
    revocation_endpoint_auth_signing_alg_values_supported: [...CLIENT_ASSERTION_SIGNING_ALGS],
    dpop_signing_alg_values_supported: [...DPOP_SIGNING_ALGS],
  };
}

/**
 * OpenID Connect Discovery 1.0 §3: RFC 8414's members plus the OpenID ones that are REQUIRED. No ID token is ever
 * issued; `id_token_signing_alg_values_supported` holds every algorithm access tokens may be signed with
 * (express-oauth2-jwt-bearer takes this list as the algorithms it accepts): SIGNING_ALG first, then the other of
 * ES256 and RS256, because after a change of SIGNING_ALG the previous algorithm's key signs until the new key's
 * time comes (docs/keys.md "Changing SIGNING_ALG"). RS256, which §3 requires in the list, is always there. Request
 * objects, the claims parameter and request_uri are declared unsupported (request_uri_parameter_supported defaults
 * to true).
 */
export function openIdProviderMetadata(config: Pick<Config, 'issuer' | 'services' | 'signingAlg'>): Record<string, unknown> {
  return {
    ...authorizationServerMetadata(config),
    subject_types_supported: ['public'],
    id_token_signing_alg_values_supported: [config.signingAlg, ...SIGNING_ALGS.filter((a) => a !== config.signingAlg)],
    claims_parameter_supported: false,
    request_parameter_supported: false,
    request_uri_parameter_supported: false,
  };
}

/** A JSON body prepared once: its bytes and a strong ETag. */
export interface PreparedJson {
  body: Buffer;
  etag: string;
}

/**
 * `value` serialised once: its UTF-8 JSON bytes and a strong ETag (quoted, the first 27 base64url characters of
 * their SHA-256). Pure.
 */
export function prepareJson(value: unknown): PreparedJson {
  const body = Buffer.from(JSON.stringify(value), 'utf8');
  return { body, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

/** The JWKS document of these public keys. */
export function prepareJwks(publicKeys: JWK[]): PreparedJson {
  return prepareJson({ keys: publicKeys });
}

/**
 * The JWKS's `max-age` in seconds: METADATA_MAX_AGE (300), or half of `KEY_PUBLISH_AHEAD_SECONDS` when that is
 * shorter, so that a cache (a CDN, a verifier honouring the header) that fetched the JWKS just before a rotation
 * holds the new key well before it signs (SPEC Part 2 "Signing-key rotation never fails a verifier"); 0 with no
 * ahead window at all.
 */
export function jwksMaxAgeSeconds(keyPublishAheadSeconds: number): number {
  return Math.min(METADATA_MAX_AGE, Math.floor(keyPublishAheadSeconds / 2));
}

/**
 * Serves a prepared document: GET/HEAD with `Cache-Control: public, max-age=N` (`maxAgeSeconds`, 300 unless
 * given), an ETag and `Access-Control-Allow-Origin: *`; 304 when `If-None-Match` names the ETag (RFC 9110
 * §13.1.2: compared weakly, one of a list, or `*`; the `fresh` package); OPTIONS (CORS preflight) 204; anything
 * else 405.
 */
export function servePrepared(current: () => PreparedJson, maxAgeSeconds = METADATA_MAX_AGE): Middleware {
  return async (ctx) => {
    ctx.set('Access-Control-Allow-Origin', '*');
    if (ctx.method === 'OPTIONS') {
      ctx.set('Allow', 'GET, HEAD, OPTIONS');
      ctx.set('Access-Control-Allow-Methods', 'GET, HEAD, OPTIONS');
      const requested = ctx.get('Access-Control-Request-Headers');
      if (requested) ctx.set('Access-Control-Allow-Headers', requested);
      ctx.set('Access-Control-Max-Age', '86400');
      ctx.status = 204;
      return;
    }
    if (ctx.method !== 'GET' && ctx.method !== 'HEAD') {
      ctx.status = 405;
      ctx.set('Allow', 'GET, HEAD, OPTIONS');
      ctx.body = { error: 'invalid_request', error_description: 'use GET' };
      return;
    }
    const doc = current();
    ctx.set('Cache-Control', `public, max-age=${maxAgeSeconds}`);
    ctx.set('ETag', doc.etag);
    // Only If-None-Match is judged, not the request's Cache-Control: fetch() in its default cache mode adds `no-cache`
    // to a request that carries a validator (Fetch standard, HTTP-network-or-cache fetch), and koa's ctx.fresh would
    // then never say 304.
    if (fresh({ 'if-none-match': ctx.get('If-None-Match') || undefined }, { etag: doc.etag })) {
      ctx.status = 304;
      return;
    }
    ctx.type = 'application/json; charset=utf-8';
    ctx.body = doc.body;
  };
}
