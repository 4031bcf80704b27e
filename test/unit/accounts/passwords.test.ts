// An unknown email costs the same password check as a wrong password (SPEC: same 401, no account enumeration):
// the dummy hash it is checked against has the real hash's algorithm and cost parameters.
import { dummyPasswordHash, hashPassword, verifyPassword } from '../../../src/accounts/index.js';

const parameters = (hash: string) => {
  const [scheme, n, r, p, salt, key] = hash.split('$');
  return { scheme, n, r, p, saltBytes: Buffer.from(salt!, 'base64url').length, keyBytes: Buffer.from(key!, 'base64url').length };
};

describe('dummyPasswordHash', () => {
  it('has the scheme, cost, salt and key sizes of a real password hash', async () => {
    const real = await hashPassword('correct horse battery staple');
    const dummy = await dummyPasswordHash();
    expect(parameters(dummy)).toEqual(parameters(real));
    expect(parameters(real)).toMatchObject({ scheme: 'scrypt', n: String(2 ** 15) });
    expect(dummy).not.toBe(real);
  });

  it('is the same hash every time and matches no password a caller can send', async () => {
    const dummy = await dummyPasswordHash();
    expect(await dummyPasswordHash()).toBe(dummy);
    for (const guess of ['', 'password', 'not-the-password']) expect(await verifyPassword(guess, dummy)).toBe(false);
  });

  it('verifies a real hash only with its password', async () => {
    const real = await hashPassword('s3cret-passphrase');
    expect(await verifyPassword('s3cret-passphrase', real)).toBe(true);
    expect(await verifyPassword('s3cret-passphrasE', real)).toBe(false);
  });
});
