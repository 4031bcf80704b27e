// An unknown email costs the same password check as a wrong password (SPEC: same 401, no account enumeration):
// the dummy hash it is checked against has the real hash's algorithm and cost parameters.
import { configurePasswordHashing, dummyPasswordHash, hashPassword, verifyPassword } from '../../../src/accounts/index.js';

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

describe('configurePasswordHashing: the scrypt cost (config passwordHashing.cost / PASSWORD_HASH_COST)', () => {
  const settings = { threads: 1, maxQueue: 32, nice: 19 };
  afterAll(() => configurePasswordHashing({ ...settings, cost: 15 }));

  it('computes the dummy hash again after a computation refused by a full queue, instead of failing every later sign-in', async () => {
    configurePasswordHashing({ threads: 1, maxQueue: 1, nice: 19, cost: 12 }); // a new cost: the dummy hash is to be made
    const busy = [hashPassword('one-running-now'), hashPassword('one-waiting-now')]; // the thread and the queue are full
    await expect(dummyPasswordHash()).rejects.toThrow(/too many|queue|busy/i);
    await Promise.all(busy);
    const dummy = await dummyPasswordHash();
    expect(parameters(dummy)).toMatchObject({ scheme: 'scrypt', n: String(2 ** 12) });
    expect(await dummyPasswordHash()).toBe(dummy);
    configurePasswordHashing({ ...settings, cost: 15 });
  });

  it('hashes new passwords at 2^cost, verifies hashes of any cost, and the dummy hash follows the cost', async () => {
    const before = await hashPassword('made-at-cost-15');
    const dummyBefore = await dummyPasswordHash();
    configurePasswordHashing({ ...settings, cost: 12 });
    const low = await hashPassword('made-at-cost-12');
    expect(parameters(low)).toMatchObject({ scheme: 'scrypt', n: String(2 ** 12), r: '8', p: '1', saltBytes: 16, keyBytes: 32 });
    expect(await verifyPassword('made-at-cost-12', low)).toBe(true);
    expect(await verifyPassword('made-at-cost-15', before)).toBe(true); // an older hash keeps its own cost
    const dummy = await dummyPasswordHash();
    expect(dummy).not.toBe(dummyBefore);
    expect(parameters(dummy)).toEqual(parameters(low));
    configurePasswordHashing({ ...settings, cost: 15 });
    expect(parameters(await hashPassword('back-at-15'))).toMatchObject({ n: String(2 ** 15) });
    expect(parameters(await dummyPasswordHash())).toMatchObject({ n: String(2 ** 15) });
  });

  it('refuses a cost below the floor of 12 or above 15, and keeps the one it had', async () => {
    for (const cost of [11, 4, 16, 12.5]) expect(() => configurePasswordHashing({ ...settings, cost })).toThrow(/scrypt cost must be 12 to 15/);
    expect(parameters(await hashPassword('still-at-15'))).toMatchObject({ n: String(2 ** 15) });
  });
});
