import {
  redactCredentials,
  checksumOf,
  containsClientSecret,
  generateClientId,
  generateClientSecret,
  hashSecret,
  isWellFormedClientId,
  isWellFormedSecret,
  randomBase62,
  toBase62,
  verifySecret,
} from '../../../src/tokens/credentials.js';

describe('credentials', () => {
  it('finds a well-formed client secret inside a text (a name), not a look-alike', () => {
    const secret = generateClientSecret();
    expect(containsClientSecret(secret)).toBe(true);
    expect(containsClientSecret(`Payroll ${secret}`)).toBe(true);
    const altered = secret.slice(0, 10) + (secret[10] === 'a' ? 'b' : 'a') + secret.slice(11);
    expect(containsClientSecret(altered)).toBe(false); // the checksum fails
    expect(containsClientSecret('sats_example')).toBe(false);
    expect(containsClientSecret('Payroll_Integration')).toBe(false);
  });

  it('makes client IDs and secrets with their prefixes and lengths', () => {
    const id = generateClientId();
    const secret = generateClientSecret();
    expect(id).toMatch(/^sat_[0-9A-Za-z]{22}$/);
    expect(secret).toMatch(/^sats_[0-9A-Za-z]{49}$/);
    // 43 base62 characters carry log2(62) * 43 ≈ 256.03 bits
    expect(Math.log2(62) * 43).toBeGreaterThanOrEqual(256);
    expect(isWellFormedClientId(id)).toBe(true);
    expect(isWellFormedSecret(secret)).toBe(true);
  });

  it('ends a secret in a CRC32 checksum that catches any single-character change', () => {
    const secret = generateClientSecret();
    expect(secret.slice(-6)).toBe(checksumOf(secret.slice(0, -6)));
    for (let i = 5; i < secret.length; i += 1) {
      const c = secret[i] === 'a' ? 'b' : 'a';
      expect(isWellFormedSecret(secret.slice(0, i) + c + secret.slice(i + 1))).toBe(false);
    }
    expect(isWellFormedSecret(secret + 'x')).toBe(false);
    expect(isWellFormedSecret(secret.replace('sats_', 'satx_'))).toBe(false);
    expect(isWellFormedSecret('')).toBe(false);
  });

  it('never repeats and draws base62 uniformly enough', () => {
    const seen = new Set(Array.from({ length: 2000 }, generateClientSecret));
    expect(seen.size).toBe(2000);
    const counts = new Map<string, number>();
    for (const ch of randomBase62(62_000)) counts.set(ch, (counts.get(ch) ?? 0) + 1);
    expect(counts.size).toBe(62);
    for (const n of counts.values()) expect(Math.abs(n - 1000)).toBeLessThan(200);
  });

  it('encodes numbers in fixed-width base62', () => {
    expect(toBase62(0, 6)).toBe('000000');
    expect(toBase62(61, 6)).toBe('00000z');
    expect(toBase62(62, 6)).toBe('000010');
    expect(toBase62(0xffffffff, 6)).toBe('4gfFC3');
  });

  it('stores a hash and verifies in constant time', () => {
    const secret = generateClientSecret();
    const hash = hashSecret(secret);
    expect(hash).not.toContain(secret.slice(5, 20));
    expect(hash).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(verifySecret(secret, hash)).toBe(true);
    expect(verifySecret(generateClientSecret(), hash)).toBe(false);
    expect(verifySecret(secret, 'short')).toBe(false);
  });
});

describe('redactCredentials', () => {
  it('replaces a well-formed client secret and a session or one-time token, and nothing that only looks like the start of one', () => {
    const secret = generateClientSecret();
    const session = `sas_${'A'.repeat(43)}`;
    expect(redactCredentials(`https://github.com/o/r/blob/main/.env#L3 ${secret}`)).toBe('https://github.com/o/r/blob/main/.env#L3 [REDACTED]');
    expect(redactCredentials(`content ${session} and sai_${'b'.repeat(43)}`)).toBe('content [REDACTED] and [REDACTED]');
    // Folder names an alert's place may hold (diff review: the log's redaction took them too).
    for (const text of ['https://github.com/acme/sas_etl/blob/x.yml', 'https://github.com/acme/SAR_reports/x.yml', 'sai_model', `sas_${'A'.repeat(44)}`]) {
      expect(redactCredentials(text)).toBe(text);
    }
    const mistyped = secret.slice(0, -1) + (secret.endsWith('A') ? 'B' : 'A'); // checksum off: not a secret of ours
    expect(redactCredentials(mistyped)).toBe(mistyped);
  });
});
