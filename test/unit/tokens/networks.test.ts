import { isAddressAllowed, normaliseNetwork } from '../../../src/tokens/networks.js';
import { allowedIps } from '../../../src/tokens/schemas.js';
import { isDormant, isExpiring } from '../../../src/tokens/resource.js';

describe('normaliseNetwork', () => {
  it.each([
    ['203.0.113.7', '203.0.113.7'],
    [' 203.0.113.7 ', '203.0.113.7'],
    ['203.0.113.7/32', '203.0.113.7'],
    ['10.1.2.3/8', '10.0.0.0/8'],
    ['0.0.0.0/0', '0.0.0.0/0'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['2001:db8::1/128', '2001:db8::1'],
    ['2001:db8:1234::/32', '2001:db8::/32'],
    ['::/0', '::/0'],
    ['::ffff:192.0.2.1', '192.0.2.1'],
    ['::ffff:192.0.2.0/120', '192.0.2.0/24'],
    // IPv4-compatible (RFC 4291 §2.5.5.1, ::/96) is not IPv4-mapped: it stays the IPv6 address it is.
    ['::1.2.3.4', '::102:304'],
    ['::102:304', '::102:304'],
    ['::0.0.0.1', '::1'],
    ['::1.2.3.0/120', '::102:300/120'],
    ['::1.2.3.4/128', '::102:304'],
    ['64:ff9b::192.0.2.1', '64:ff9b::c000:201'],
    ['::FFFF:192.0.2.1', '192.0.2.1'],
  ])('%s → %s', (input, expected) => {
    expect(normaliseNetwork(input)).toBe(expected);
  });

  it.each([
    ['empty', ''],
    ['text', 'localhost'],
    ['three parts', '10.1.2'],
    ['hex', '0x7f.0.0.1'],
    ['one number', '2130706433'],
    ['octet too big', '256.1.1.1'],
    ['prefix too long (v4)', '10.0.0.0/33'],
    ['prefix too long (v6)', '2001:db8::/129'],
    ['negative prefix', '10.0.0.0/-1'],
    ['prefix with a leading zero', '10.0.0.1/08'],
    ['prefix with a plus sign', '10.0.0.0/+8'],
    ['empty prefix', '10.0.0.0/'],
    ['two prefixes', '10.0.0.0/8/8'],
    ['zone id', 'fe80::1%eth0'],
    ['bad v6', '2001:db8:::1'],
    ['control character inside', '10.0.\u00000.1'],
    ['short dotted tail', '::1.2.3'],
    ['octal-looking dotted tail', '::ffff:010.1.2.3'],
  ])('refuses %s', (_label, input) => {
    expect(normaliseNetwork(input)).toBeUndefined();
  });
});

describe('allowed_ips schema', () => {
  it('normalises and drops duplicates, in the order given', () => {
    expect(allowedIps.parse(['10.1.2.3/8', '10.0.0.0/8', '2001:DB8::1', '::ffff:192.0.2.1', '192.0.2.1'])).toEqual([
      '10.0.0.0/8',
      '2001:db8::1',
      '192.0.2.1',
    ]);
    expect(allowedIps.parse([])).toEqual([]);
  });

  it('names each bad entry and refuses more than 20', () => {
    const bad = allowedIps.safeParse(['10.0.0.1', 'nope', '1.2.3']);
    expect(bad.success).toBe(false);
    expect(bad.error!.issues.map((i) => i.path)).toEqual([[1], [2]]);
    const many = Array.from({ length: 21 }, (_, i) => `10.0.0.${i}`);
    expect(allowedIps.safeParse(many).success).toBe(false);
    expect(allowedIps.safeParse(many.slice(0, 20)).success).toBe(true);
  });
});

describe('isAddressAllowed', () => {
  const list = ['10.0.0.0/8', '2001:db8::/32', '192.0.2.7'];
  it.each([
    ['10.200.3.4', true],
    ['11.0.0.1', false],
    ['192.0.2.7', true],
    ['192.0.2.8', false],
    ['::ffff:10.1.1.1', true],
    ['::10.1.1.1', false], // IPv4-compatible ::a01:101, not 10.1.1.1
    ['2001:db8:5::1', true],
    ['2001:db9::1', false],
    ['not an address', false],
  ])('%s → %s', (address, expected) => {
    expect(isAddressAllowed(address, list)).toBe(expected);
  });
  it('remembers each decision by address and allowlist: the same address, another list, another answer', () => {
    for (let round = 0; round < 2; round++) {
      expect(isAddressAllowed('10.1.1.1', ['10.0.0.0/8'])).toBe(true);
      expect(isAddressAllowed('10.1.1.1', ['10.0.0.0/16'])).toBe(false);
      expect(isAddressAllowed('10.1.1.1', ['192.0.2.0/24', '10.1.0.0/16'])).toBe(true);
      expect(isAddressAllowed('10.1.1.1', ['192.0.2.0/24 10.1.0.0/16'])).toBe(false); // not one list of two
    }
  });
  it('stays right past the memo bound (many distinct addresses)', () => {
    for (let i = 0; i < 5000; i++) {
      const address = `10.${(i >> 8) & 255}.${i & 255}.1`;
      expect(isAddressAllowed(address, ['10.0.0.0/12'])).toBe(((i >> 8) & 255) < 16);
    }
    expect(isAddressAllowed('11.0.0.1', ['10.0.0.0/8'])).toBe(false);
  });
  it('lets any address through an empty list', () => {
    expect(isAddressAllowed('198.51.100.1', [])).toBe(true);
  });
});

describe('expiring and dormant', () => {
  const now = new Date('2030-06-01T12:00:00Z');
  const DAY = 86_400_000;
  const at = (days: number) => new Date(now.getTime() + days * DAY);

  it('expiring: active and at most 7 days to go', () => {
    expect(isExpiring(at(7), now, 7)).toBe(true);
    expect(isExpiring(new Date(at(7).getTime() + 1), now, 7)).toBe(false);
    expect(isExpiring(new Date(now.getTime() + 1), now, 7)).toBe(true);
    expect(isExpiring(now, now, 7)).toBe(false); // expired at this instant
  });

  it('dormant: active and unused for 90 days, counted from creation when never used', () => {
    const active = at(30);
    expect(isDormant({ expires_at: active, created_at: at(-90), last_used_at: null }, now, 90)).toBe(true);
    expect(isDormant({ expires_at: active, created_at: new Date(at(-90).getTime() + 1), last_used_at: null }, now, 90)).toBe(false);
    expect(isDormant({ expires_at: active, created_at: at(-300), last_used_at: at(-89) }, now, 90)).toBe(false);
    expect(isDormant({ expires_at: active, created_at: at(-300), last_used_at: at(-90) }, now, 90)).toBe(true);
    expect(isDormant({ expires_at: at(-1), created_at: at(-300), last_used_at: null }, now, 90)).toBe(false);
  });
});
