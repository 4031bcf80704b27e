import { errors as joseErrors } from 'jose';
import type { Context } from 'koa';
import {
  ClientAuthenticationFailed,
  dpopProofProblem,
  NoClientAuthentication,
  RateLimited,
  setErrorHeaders,
  TemporarilyUnavailable,
} from '../../../src/oauth/errors.js';

/**
 * The headers setErrorHeaders sets, through a context that records ctx.set and whose request carried the
 * Authorization header `authorization` (undefined: none; '' an empty one, which is still the header).
 */
function headersSet(err: unknown, status: number, error: string, authorization?: string, issuer = 'https://auth.example.com'): Record<string, string> {
  const set: Record<string, string> = {};
  const ctx = { set: (name: string, value: string) => void (set[name] = value), headers: authorization === undefined ? {} : { authorization } };
  setErrorHeaders(ctx as unknown as Context, err, status, error, issuer);
  return set;
}

describe('setErrorHeaders', () => {
  const failed = new ClientAuthenticationFailed('client authentication failed');

  it('challenges an invalid_client 401 when Basic was used (RFC 6749 §5.2), with the error as oidc-provider does', () => {
    expect(headersSet(failed, 401, 'invalid_client', 'Basic aWQ6cw==')).toEqual({
      'WWW-Authenticate': 'Basic realm="https://auth.example.com", error="invalid_client"',
    });
    expect(headersSet(failed, 401, 'invalid_client', 'Bearer x')).toEqual({
      'WWW-Authenticate': 'Basic realm="https://auth.example.com", error="invalid_client"',
    });
    expect(headersSet(failed, 401, 'invalid_client', '')).toEqual({
      'WWW-Authenticate': 'Basic realm="https://auth.example.com", error="invalid_client"',
    }); // an empty Authorization header is one, as oidc-provider counts it
  });

  it('names the scheme when no authentication came at all, and nothing for a failed form or assertion (SPEC)', () => {
    expect(headersSet(new NoClientAuthentication(), 401, 'invalid_client')).toEqual({ 'WWW-Authenticate': 'Basic realm="https://auth.example.com"' });
    expect(headersSet(failed, 401, 'invalid_client')).toEqual({});
    expect(headersSet(undefined, 401, 'invalid_client')).toEqual({}); // oidc-provider's, for a client assertion
  });

  it('challenges nothing but an invalid_client 401', () => {
    expect(headersSet(failed, 400, 'invalid_client', 'Basic aWQ6cw==')).toEqual({});
    expect(headersSet(undefined, 400, 'invalid_request', 'Basic aWQ6cw==')).toEqual({});
  });

  it('escapes the issuer inside the realm (RFC 9110 quoted-string)', () => {
    expect(headersSet(new NoClientAuthentication(), 401, 'invalid_client', undefined, 'https://auth.example.com/a"b\\c')).toEqual({
      'WWW-Authenticate': 'Basic realm="https://auth.example.com/a\\"b\\\\c"',
    });
  });

  it('gives our 429 and 503 their Retry-After', () => {
    expect(headersSet(new RateLimited(1790), 429, 'rate_limited')).toEqual({ 'Retry-After': '1790' });
    expect(headersSet(new TemporarilyUnavailable('later', 5), 503, 'temporarily_unavailable')).toEqual({ 'Retry-After': '5' });
  });
});

describe('dpopProofProblem and crit', () => {
  const b64url = (value: unknown) => Buffer.from(JSON.stringify(value)).toString('base64url');
  const jwk = { kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU', y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0' };
  const proof = (header: Record<string, unknown>) => `${b64url({ typ: 'dpop+jwt', alg: 'ES256', jwk, ...header })}.${b64url({ htm: 'POST' })}.c2ln`;
  const ALGS = ['ES256'];

  it('names a crit jose refused', () => {
    const unknown = new joseErrors.JOSENotSupported('Extension Header Parameter "x-ext" is not recognized');
    expect(dpopProofProblem(proof({ crit: ['x-ext'], 'x-ext': 1 }), ALGS, unknown)).toBe(
      'DPoP proof crit header parameter names an extension this server does not process',
    );
    const malformed = new joseErrors.JWSInvalid('"crit" (Critical) Header Parameter MUST be an array of non-empty strings when present');
    expect(dpopProofProblem(proof({ crit: 'x-ext' }), ALGS, malformed)).toBe('DPoP proof crit header parameter names an extension this server does not process');
  });

  it('does not blame a crit jose accepted (b64) for another failure with the same error code', () => {
    const badSignature = new joseErrors.JWSInvalid('Failed to base64url decode the signature');
    expect(dpopProofProblem(proof({ crit: ['b64'], b64: true }), ALGS, badSignature)).toBeUndefined();
    const keyMismatch = new joseErrors.JOSENotSupported('Invalid or unsupported JWK "alg" (Algorithm) Parameter value');
    expect(dpopProofProblem(proof({ crit: ['b64'], b64: true }), ALGS, keyMismatch)).toBeUndefined();
  });
});
