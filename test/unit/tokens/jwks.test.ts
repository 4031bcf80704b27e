import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { jwkThumbprint, parsePublicJwks, publicKeyFromText, rsaParameterProblem, type PublicJwk } from '../../../src/tokens/jwks.js';

const ec = () => generateKeyPairSync('ec', { namedCurve: 'P-256' });
const rsaJwk = () => generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' });
/** A 2048-bit modulus with its lowest bit cleared. */
const evenModulus = () => {
  const n = Buffer.from(rsaJwk().n!, 'base64url');
  n[n.length - 1]! &= 0xfe;
  return n.toString('base64url');
};
const detailsOf = (fn: () => unknown): string => {
  try {
    fn();
  } catch (err) {
    return JSON.stringify((err as { details?: unknown }).details);
  }
  throw new Error('did not throw');
};

describe('jwkThumbprint', () => {
  it('is RFC 7638, as jose computes it, for EC and RSA keys', async () => {
    for (const pair of [ec(), generateKeyPairSync('rsa', { modulusLength: 2048 })]) {
      const jwk = pair.publicKey.export({ format: 'jwk' }) as JWK;
      expect(jwkThumbprint(jwk as PublicJwk)).toBe(await calculateJwkThumbprint(jwk));
    }
  });
});

describe('parsePublicJwks', () => {
  it('keeps only public members and marks the keys for signatures', () => {
    const jwk = ec().publicKey.export({ format: 'jwk' });
    const { keys } = parsePublicJwks({ keys: [{ ...jwk, kid: 'k1', alg: 'ES256' }] });
    expect(keys).toEqual([{ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid: 'k1', alg: 'ES256', use: 'sig' }]);
  });

  it('ignores members it does not use (RFC 7517 §4), as a key store or a certificate exports them, and stores none', () => {
    const jwk = ec().publicKey.export({ format: 'jwk' });
    const extra = { x5c: ['MIIB…'], 'x5t#S256': 'aGVsbG8', key_ops: ['verify'], ext: true, exp: 1893456000, 'vendor-tag': 'hsm-7' };
    const { keys } = parsePublicJwks({ keys: [{ ...jwk, ...extra, kid: 'k1' }] });
    expect(keys).toEqual([{ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid: 'k1', use: 'sig' }]);
  });

  it.each([
    ['a private EC key', () => ({ keys: [ec().privateKey.export({ format: 'jwk' })] }), /private member/],
    ['RSA under 2048 bits', () => ({ keys: [generateKeyPairSync('rsa', { modulusLength: 1024 }).publicKey.export({ format: 'jwk' })] }), /1024 bits/],
    ['P-384', () => ({ keys: [generateKeyPairSync('ec', { namedCurve: 'P-384' }).publicKey.export({ format: 'jwk' })] }), /P-256/],
    ['four keys', () => ({ keys: [1, 2, 3, 4].map(() => ec().publicKey.export({ format: 'jwk' })) }), /1 to 3/],
    ['a symmetric key', () => ({ keys: [{ kty: 'oct', k: 'c2VjcmV0' }] }), /private member/],
    ['an EC alg on an RSA key', () => ({ keys: [{ ...generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ format: 'jwk' }), alg: 'ES256' }] }), /alg/],
    ['a point off the curve', () => ({ keys: [{ ...ec().publicKey.export({ format: 'jwk' }), y: 'AAAA' }] }), /not a valid P-256/],
    ['use enc', () => ({ keys: [{ ...ec().publicKey.export({ format: 'jwk' }), use: 'enc' }] }), /sig/],
    // e = 1: s^e mod n = s, so an assertion "signed" with no private key at all verifies (RFC 8017 §3.1: 3 <= e).
    ['an RSA key with e = 1', () => ({ keys: [{ ...rsaJwk(), e: 'AQ' }] }), /keys\.0\.e.*odd public exponent/],
    ['an RSA key with an even e', () => ({ keys: [{ ...rsaJwk(), e: 'AAI' }] }), /odd public exponent/],
    ['an RSA key with an even modulus', () => ({ keys: [{ ...rsaJwk(), n: evenModulus() }] }), /keys\.0\.n.*even modulus/],
    ['n in base64 rather than base64url', () => ({ keys: [{ ...rsaJwk(), n: Buffer.from(rsaJwk().n!, 'base64url').toString('base64') }] }), /keys\.0\.n.*base64url/],
    ['a member over 4096 characters', () => ({ keys: [{ ...ec().publicKey.export({ format: 'jwk' }), kid: 'k'.repeat(4097) }] }), /kid.*at most 4096 characters/],
  ])('refuses %s', (_label, input, message) => {
    expect(detailsOf(() => parsePublicJwks(input()))).toMatch(message);
  });
});

describe('parsePublicJwks canonical members', () => {
  it('stores an RSA n with a leading zero octet (a Java export) as the same key: one thumbprint, and refused twice', () => {
    const jwk = rsaJwk();
    const padded = { ...jwk, n: Buffer.concat([Buffer.from([0]), Buffer.from(jwk.n!, 'base64url')]).toString('base64url') };
    const [stored] = parsePublicJwks({ keys: [padded] }).keys;
    expect(stored!.n).toBe(jwk.n);
    expect(jwkThumbprint(stored!)).toBe(jwkThumbprint(jwk as PublicJwk));
    expect(detailsOf(() => parsePublicJwks({ keys: [jwk, padded] }))).toMatch(/same key twice/);
  });
});

describe('rsaParameterProblem (RFC 8017 §3.1)', () => {
  it('accepts the usual exponents and refuses degenerate ones', () => {
    const n = (1n << 2047n) + 1n;
    expect(rsaParameterProblem(n, 65537n)).toBeUndefined();
    expect(rsaParameterProblem(n, 3n)).toBeUndefined();
    for (const e of [1n, 2n, 0n, n, n + 2n]) expect(rsaParameterProblem(n, e)).toMatch(/odd public exponent/);
    expect(rsaParameterProblem(n - 1n, 65537n)).toMatch(/even modulus/);
  });
});

describe('publicKeyFromText', () => {
  it('converts a PEM public key (SPKI or PKCS#1 RSA) and a JWK', () => {
    const pair = ec();
    const jwk = pair.publicKey.export({ format: 'jwk' });
    expect(publicKeyFromText(pair.publicKey.export({ format: 'pem', type: 'spki' }) as string)[0]).toMatchObject({ x: jwk.x, y: jwk.y });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    expect(publicKeyFromText(rsa.publicKey.export({ format: 'pem', type: 'pkcs1' }) as string)[0]).toMatchObject({ kty: 'RSA' });
    expect(publicKeyFromText(JSON.stringify(jwk))).toHaveLength(1);
  });

  it('refuses a PEM private key and text that is no key', () => {
    expect(detailsOf(() => publicKeyFromText(ec().privateKey.export({ format: 'pem', type: 'pkcs8' }) as string))).toMatch(/private key/);
    expect(detailsOf(() => publicKeyFromText('hello'))).toMatch(/neither/);
  });
});
