import { createHash, createPublicKey, type JsonWebKey, type KeyObject } from 'node:crypto';
import { validationFailed } from '../errors.js';

/** A registered public key of a `private_key_jwt` client: only public members are ever stored. */
export interface PublicJwk {
  kty: 'EC' | 'RSA';
  crv?: 'P-256';
  x?: string;
  y?: string;
  n?: string;
  e?: string;
  kid?: string;
  alg?: string;
  use?: 'sig';
}

export interface PublicJwks {
  keys: PublicJwk[];
}

/** SPEC Part 2: one to three keys (two during a key rotation, plus one spare). */
export const MAX_CLIENT_KEYS = 3;
/** The smallest RSA modulus, in bits, a registered client key may have (smaller: 400 validation_failed). */
export const MIN_RSA_BITS = 2048;
/** Algorithms a client assertion may be signed with, by key type (RFC 7518). */
export const CLIENT_ASSERTION_ALGS = { EC: ['ES256'], RSA: ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512'] } as const;

const PRIVATE_MEMBERS = ['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k'];

/**
 * RFC 7638 JWK thumbprint (SHA-256, base64url) of an EC or RSA public key: the required members in lexicographic
 * order, no whitespace. Synchronous so the token resource can show it without a round of promises.
 */
export function jwkThumbprint(jwk: PublicJwk): string {
  const canonical =
    jwk.kty === 'EC'
      ? JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y })
      : JSON.stringify({ e: jwk.e, kty: jwk.kty, n: jwk.n });
  return createHash('sha256').update(canonical).digest('base64url');
}

/** The longest string member of a registered JWK (an RSA modulus of 16,384 bits is 2,731 characters). */
const MAX_MEMBER_LENGTH = 4096;

/**
 * Why an RSA public key (modulus `n`, public exponent `e`) offers no security, or undefined when it is well-formed:
 * RFC 8017 §3.1 requires an odd modulus and an odd exponent with 3 <= e <= n - 1. With e = 1 a "signature" is its
 * own message, so anyone could forge client assertions for the key without its private half. Pure.
 */
export function rsaParameterProblem(n: bigint, e: bigint | undefined): string | undefined {
  if (e === undefined) return 'is missing';
  if (n % 2n === 0n) return 'must be odd: an even modulus n is not a usable RSA key';
  if (e < 3n || e % 2n === 0n || e >= n) return 'must be an odd public exponent of at least 3 (usually AQAB, 65537): this key offers no security';
  return undefined;
}

function checkKey(raw: unknown, path: string): PublicJwk {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw validationFailed(path, 'must be a JWK object');
  const jwk = raw as Record<string, unknown>;
  const privateMembers = PRIVATE_MEMBERS.filter((m) => m in jwk);
  if (privateMembers.length > 0) {
    throw validationFailed(path, `must be a public key: remove the private member(s) ${privateMembers.join(', ')} (and keep the private key to yourself)`);
  }
  // Any other member (x5c, x5t#S256, key_ops, ext, a private extension) is ignored and not stored: RFC 7517 §4,
  // "member names used for representing key parameters for different keys … MUST be ignored" when not understood.
  for (const m of ['kty', 'crv', 'x', 'y', 'n', 'e', 'kid', 'alg', 'use']) {
    if (jwk[m] !== undefined && typeof jwk[m] !== 'string') throw validationFailed(`${path}.${m}`, 'must be a string');
    if (jwk[m] !== undefined && (jwk[m] as string).length > MAX_MEMBER_LENGTH) throw validationFailed(`${path}.${m}`, `must be at most ${MAX_MEMBER_LENGTH} characters`);
  }
  if (jwk.use !== undefined && jwk.use !== 'sig') throw validationFailed(`${path}.use`, 'must be "sig"');
  if (jwk.kid !== undefined && !/^[\x21-\x7e]{1,128}$/.test(jwk.kid as string)) throw validationFailed(`${path}.kid`, 'must be 1 to 128 printable ASCII characters');
  if (jwk.kty !== 'EC' && jwk.kty !== 'RSA') throw validationFailed(`${path}.kty`, 'must be "EC" (P-256) or "RSA" (2048 bits or more)');
  if (jwk.kty === 'EC' && jwk.crv !== 'P-256') throw validationFailed(`${path}.crv`, 'must be "P-256"');
  const kty = jwk.kty;
  const algs: readonly string[] = CLIENT_ASSERTION_ALGS[kty];
  if (jwk.alg !== undefined && !algs.includes(jwk.alg as string)) throw validationFailed(`${path}.alg`, `must be one of ${algs.join(', ')}`);

  for (const m of kty === 'EC' ? ['x', 'y'] : ['n', 'e']) {
    if (typeof jwk[m] !== 'string' || !/^[A-Za-z0-9_-]+$/.test(jwk[m] as string)) {
      throw validationFailed(`${path}.${m}`, 'must be base64url (A-Z a-z 0-9 - _, no padding: RFC 7515 §2)');
    }
  }
  const key: PublicJwk =
    kty === 'EC'
      ? { kty, crv: 'P-256', x: jwk.x as string, y: jwk.y as string }
      : { kty, n: jwk.n as string, e: jwk.e as string };
  let object: KeyObject;
  try {
    object = createPublicKey({ key: key as JsonWebKey, format: 'jwk' });
  } catch {
    throw validationFailed(path, kty === 'EC' ? 'is not a valid P-256 public key (x, y)' : 'is not a valid RSA public key (n, e)');
  }
  if (object.asymmetricKeyType !== (kty === 'EC' ? 'ec' : 'rsa')) throw validationFailed(path, 'is not a usable public key');
  if (kty === 'RSA' && (object.asymmetricKeyDetails?.modulusLength ?? 0) < MIN_RSA_BITS) {
    throw validationFailed(path, `is an RSA key of ${object.asymmetricKeyDetails?.modulusLength ?? 0} bits: at least ${MIN_RSA_BITS} are required`);
  }
  if (kty === 'RSA') {
    const problem = rsaParameterProblem(BigInt('0x' + Buffer.from(key.n!, 'base64url').toString('hex')), object.asymmetricKeyDetails?.publicExponent);
    if (problem) throw validationFailed(`${path}.${problem.includes('modulus') ? 'n' : 'e'}`, problem);
  }
  // The members as the key itself gives them back: minimal octets (RFC 7518 §6.3.1.1: an `n` with a leading zero
  // octet, as Java's BigInteger exports it, is the same key), so the RFC 7638 thumbprint, the kid a client names and
  // the "same key twice" check all see one representation.
  const canonical = object.export({ format: 'jwk' });
  if (kty === 'RSA') Object.assign(key, { n: canonical.n, e: canonical.e });
  else Object.assign(key, { x: canonical.x, y: canonical.y });
  if (jwk.kid !== undefined) key.kid = jwk.kid as string;
  if (jwk.alg !== undefined) key.alg = jwk.alg as string;
  key.use = 'sig';
  return key;
}

/**
 * Validates the `jwks` of a `private_key_jwt` token (SPEC Part 2, RFC 7523 / RFC 7517): `{keys: [...]}` with one to
 * three public keys, EC P-256 or RSA of at least 2048 bits, no private members (d, p, q, dp, dq, qi, oth, k),
 * distinct keys and `kid`s. Returns the keys reduced to their public members (plus kid, alg, use "sig"; a key
 * without kid gets its RFC 7638 thumbprint as kid). Throws
 * `validation_failed` naming the key and what is wrong.
 */
export function parsePublicJwks(input: unknown, path = 'jwks'): PublicJwks {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) throw validationFailed(path, 'must be a JWK Set: {"keys": [...]}');
  const keys = (input as { keys?: unknown }).keys;
  if (!Array.isArray(keys)) throw validationFailed(`${path}.keys`, 'must be an array of public JWKs');
  if (keys.length < 1 || keys.length > MAX_CLIENT_KEYS) {
    throw validationFailed(`${path}.keys`, `must hold 1 to ${MAX_CLIENT_KEYS} keys (two while you rotate), not ${keys.length}`);
  }
  const parsed = keys.map((k, i) => checkKey(k, `${path}.keys.${i}`));
  const thumbprints = parsed.map(jwkThumbprint);
  if (new Set(thumbprints).size !== thumbprints.length) throw validationFailed(`${path}.keys`, 'holds the same key twice');
  // A key without `kid` (a PEM, say) gets its RFC 7638 thumbprint, the one the token resource shows: a client that
  // names its key by thumbprint in the assertion header (openid-client and jose do when the JWK has that kid) finds
  // it; a client that sends no kid still matches any key.
  parsed.forEach((k, i) => {
    if (k.kid === undefined) k.kid = thumbprints[i]!;
  });
  const kids = parsed.map((k) => k.kid);
  if (new Set(kids).size !== kids.length) throw validationFailed(`${path}.keys`, 'holds two keys with the same kid');
  return { keys: parsed };
}

/**
 * A public key pasted as text (the console's "Public key"): a JWK, a JWK Set, or a PEM `PUBLIC KEY` (SPKI) or
 * `RSA PUBLIC KEY`, converted to a JWK and validated like `parsePublicJwks`. A PEM private key is refused.
 */
export function publicKeyFromText(text: string, path = 'public_key'): PublicJwk[] {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let value: unknown;
    try {
      value = JSON.parse(trimmed);
    } catch {
      throw validationFailed(path, 'is neither a JWK (JSON) nor a PEM public key');
    }
    const set = typeof value === 'object' && value !== null && 'keys' in value ? value : { keys: [value] };
    return parsePublicJwks(set, path).keys;
  }
  if (/-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(trimmed)) throw validationFailed(path, 'is a private key: paste the public key only');
  if (!/^-----BEGIN (RSA )?PUBLIC KEY-----[\s\S]+-----END (RSA )?PUBLIC KEY-----$/.test(trimmed)) {
    throw validationFailed(path, 'is neither a JWK (JSON) nor a PEM public key (-----BEGIN PUBLIC KEY-----)');
  }
  let jwk: JsonWebKey;
  try {
    jwk = createPublicKey({ key: trimmed, format: 'pem' }).export({ format: 'jwk' });
  } catch {
    throw validationFailed(path, 'is not a readable PEM public key');
  }
  return parsePublicJwks({ keys: [jwk] }, path).keys;
}
