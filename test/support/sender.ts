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
export function assertion(key: Pick<ClientKey, 'privateKey'> | { privateKey: KeyObject }, clientId: string, aud: string, claims: Record<string, unknown> = {}, alg = 'ES256'): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ jti: randomUUID(), ...claims })
    .setProtectedHeader({ alg })
    .setIssuer(clientId)
    .setSubject(clientId)
    .setAudience(aud)
    .setIssuedAt(now)
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

