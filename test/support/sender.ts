// Client keys, client assertions (RFC 7523) and DPoP proofs (RFC 9449) made the way a client makes them, with jose.
import { randomUUID, type KeyObject } from 'node:crypto';
import { calculateJwkThumbprint, exportJWK, generateKeyPair, SignJWT, type CryptoKey, type JWK } from 'jose';

export interface ClientKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  publicJwk: JWK;
  thumbprint: string;
}

export async function clientKey(alg: 'ES256' | 'RS256' = 'ES256'): Promise<ClientKey> {
  const { privateKey, publicKey } = await generateKeyPair(alg, { extractable: true });
  const publicJwk = await exportJWK(publicKey);
  return { privateKey, publicKey, publicJwk, thumbprint: await calculateJwkThumbprint(publicJwk) };
}

/** A client assertion (RFC 7523 §3) signed by `key`. */
export function assertion(
  key: Pick<ClientKey, 'privateKey'> | { privateKey: KeyObject },
  clientId: string,
  aud: string,
  claims: Record<string, unknown> = {},
  alg = 'ES256',
  typ?: string,
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg, ...(typ === undefined ? {} : { typ }) })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(aud)
    .setIssuedAt((claims.iat as number | undefined) ?? now)
    .setExpirationTime((claims.exp as number | undefined) ?? now + 60)
    .sign(key.privateKey);
}

/** A DPoP proof (RFC 9449 §4.2) for POST `htu`. */
export function dpopProof(key: ClientKey, htu: string, jti = randomUUID()): Promise<string> {
  return new SignJWT({ jti, htm: 'POST', htu })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}


/**
 * The resource-server check of docs/sender-constrained.md, with jose: the access token (signature, iss, aud, typ),
 * the proof (embedded key, typ, age), their binding (cnf.jkt = thumbprint, ath = hash of the token), htm/htu, jti.
 */
export async function verifyDpopRequest(
  issuer: string,
  audience: string,
  req: { method: string; url: string; authorization?: string; dpop?: string },
  seenProofs: Map<string, number>,
) {
  const { createHash } = await import('node:crypto');
  const { calculateJwkThumbprint: thumbprint, createRemoteJWKSet, EmbeddedJWK, jwtVerify } = await import('jose');
  const [scheme, accessToken] = (req.authorization ?? '').split(' ');
  if (scheme !== 'DPoP' || !accessToken || !req.dpop) throw new Error('DPoP token and proof required');
  const { payload: token } = await jwtVerify(accessToken, createRemoteJWKSet(new URL(`${issuer}/jwks`)), { issuer, audience, typ: 'at+jwt' });
  const jkt = (token.cnf as { jkt?: string } | undefined)?.jkt;
  if (!jkt) throw new Error('not a DPoP-bound token');
  const { payload: proof, protectedHeader } = await jwtVerify(req.dpop, EmbeddedJWK, {
    typ: 'dpop+jwt',
    algorithms: ['ES256', 'EdDSA', 'PS256', 'RS256'],
    maxTokenAge: '60s',
  });
  if ((await thumbprint(protectedHeader.jwk!)) !== jkt) throw new Error('proof key does not match cnf.jkt');
  if (proof.ath !== createHash('sha256').update(accessToken).digest('base64url')) throw new Error('ath mismatch');
  if (proof.htm !== req.method) throw new Error('htm mismatch');
  const htu = new URL(String(proof.htu));
  const url = new URL(req.url);
  htu.search = htu.hash = url.search = url.hash = '';
  if (htu.href !== url.href) throw new Error('htu mismatch');
  const now = Date.now();
  if (typeof proof.jti !== 'string' || (seenProofs.get(proof.jti) ?? 0) > now) throw new Error('proof replayed');
  seenProofs.set(proof.jti, now + 120_000);
  return token;
}

/** A DPoP proof for a resource request (RFC 9449 §7: with `ath`, the hash of the access token). */
export async function resourceProof(key: ClientKey, method: string, url: string, accessToken: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  return new SignJWT({ jti: randomUUID(), htm: method, htu: url, ath: createHash('sha256').update(accessToken).digest('base64url') })
    .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: key.publicJwk })
    .setIssuedAt()
    .sign(key.privateKey);
}
