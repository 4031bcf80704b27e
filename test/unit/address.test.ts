import { addressBucket } from '../../src/address.js';

describe('addressBucket', () => {
  it.each([
    ['198.51.100.7', '198.51.100.7'],
    ['198.51.100.7:5123', '198.51.100.7'],
    ['::ffff:198.51.100.7', '198.51.100.7'],
    ['::198.51.100.7', '::/64'], // IPv4-compatible (RFC 4291 §2.5.5.1): an IPv6 address, not 198.51.100.7
    ['2001:DB8:0::1', '2001:db8::/64'],
    ['2001:db8:1:2:ffff::1', '2001:db8:1:2::/64'],
    ['[2001:db8:1:2::5]:443', '2001:db8:1:2::/64'],
    ['fe80::1%eth0', 'fe80::/64'],
    ['1.2.3', '1.2.3'],
    ['not-an-ip', 'not-an-ip'],
  ])('%s counts as %s', (address, bucket) => {
    expect(addressBucket(address)).toBe(bucket);
  });
});
