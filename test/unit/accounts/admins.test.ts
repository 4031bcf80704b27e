// Pure parts of SPEC Part 2 "Administrators": one identity per address, the password rule, the mails' words.
import { normaliseEmail, newPassword } from '../../../src/accounts/index.js';
import { adminInvitation, passwordChanged, passwordResetLink } from '../../../src/mail/admin-templates.js';
import { oneTimeLink } from '../../../src/mail/index.js';

describe('normaliseEmail', () => {
  it.each([
    ['Jane.Doe@Example.COM', 'jane.doe@example.com'],
    ['  jane@example.com \t', 'jane@example.com'],
    ['\uff4a\uff41\uff4e\uff45@example.com', 'jane@example.com'], // full-width letters (NFKC)
    ['J\u0130M@example.com', 'jim@example.com'], // dotted capital I folds to plain i
    ['stra\u00dfe@example.com', 'strasse@example.com'], // ß folds like its upper case SS
    ['STRASSE@example.com', 'strasse@example.com'],
    ['\u212a\u00e9@example.com', 'k\u00e9@example.com'], // Kelvin sign → k; é stays composed
    ['e\u0301@example.com', '\u00e9@example.com'], // decomposed é composes
  ])('%j → %j', (input, key) => {
    expect(normaliseEmail(input)).toBe(key);
  });

  it('keeps different addresses apart', () => {
    expect(normaliseEmail('ann@example.com')).not.toBe(normaliseEmail('anne@example.com'));
    expect(normaliseEmail('a@example.com')).not.toBe(normaliseEmail('a@example.org'));
  });
});

describe('newPassword (12 to 256 characters)', () => {
  it.each([
    ['x'.repeat(11), false],
    ['x'.repeat(12), true],
    ['x'.repeat(256), true],
    ['x'.repeat(257), false],
    ['🔑'.repeat(12), true], // code points, not UTF-16 units: 24 units, 12 characters
    ['🔑'.repeat(6), false], // 12 units, 6 characters
    // Counted in the NFC form that is hashed (review): e + U+0301 is é, so six of them are 6 characters, not 12,
    // and the 6-character "éééééé" would sign in.
    ['e\u0301'.repeat(6), false],
    ['e\u0301'.repeat(12), true],
    ['\u1100\u1161'.repeat(6), false], // Hangul jamo: 가 × 6
    ['x'.repeat(255) + 'e\u0301', true], // 257 code points as sent, 256 once composed
  ])('%#: accepts? %s', (password, ok) => {
    expect(newPassword.safeParse(password).success).toBe(ok);
  });

  it('refuses a non-string', () => {
    expect(newPassword.safeParse(12345678901234).success).toBe(false);
  });
});

describe('administrator mails', () => {
  const config = { issuer: 'https://sat.example.com', mailFrom: 'tokens@sat.example.com' };
  const at = new Date('2026-03-01T10:00:00Z');

  it('puts the one-time token in the fragment of the console link', () => {
    expect(oneTimeLink(config, 'invite', 'sai_abc-_1')).toBe('https://sat.example.com/admin#/invite?token=sai_abc-_1');
    expect(oneTimeLink(config, 'reset', 'sar_x')).toBe('https://sat.example.com/admin#/reset?token=sar_x');
  });

  it('an invitation names the organisation, the inviter, the link and when it stops working; HTML escaped', () => {
    const m = adminInvitation({
      organisation: 'Acme <b>Ltd</b>',
      invitedBy: 'boss@example.com',
      link: 'https://sat.example.com/admin#/invite?token=sai_T',
      expiresAt: new Date(at.getTime() + 72 * 3600_000),
      consoleUrl: 'https://sat.example.com/admin',
    });
    expect(m.subject).toBe('You are invited to administer system access tokens for Acme <b>Ltd</b>');
    expect(m.text).toContain('https://sat.example.com/admin#/invite?token=sai_T');
    expect(m.text).toContain('2026-03-04 10:00 UTC');
    expect(m.text).toContain('boss@example.com');
    expect(m.html).toContain('Acme &lt;b&gt;Ltd&lt;/b&gt;');
    expect(m.html).not.toContain('<b>Ltd</b>');
    // In the HTML part the link is a link (not text that a mail program may or may not make clickable).
    expect(m.html).toContain('<a href="https://sat.example.com/admin#/invite?token=sai_T"');
  });

  it('makes only http(s) addresses into links, escaped', () => {
    const m = adminInvitation({
      organisation: 'Acme',
      invitedBy: 'boss@example.com',
      link: 'https://sat.example.com/admin#/invite?token=a"b&c',
      expiresAt: at,
      consoleUrl: 'https://sat.example.com/admin',
    });
    expect(m.html).toContain('<a href="https://sat.example.com/admin#/invite?token=a&quot;b&amp;c"');
    const odd = adminInvitation({ organisation: 'Acme', invitedBy: 'x', link: 'javascript:alert(1)', expiresAt: at, consoleUrl: 'x' });
    expect(odd.html).not.toContain('<a ');
    expect(odd.html).toContain('javascript:alert(1)');
  });

  it('a reset mail holds the link and its expiry; a change notice holds no link', () => {
    const reset = passwordResetLink({
      email: 'me@example.com',
      link: 'https://sat.example.com/admin#/reset?token=sar_T',
      expiresAt: new Date(at.getTime() + 3600_000),
      ip: '203.0.113.9',
      consoleUrl: 'https://sat.example.com/admin',
    });
    expect(reset.text).toContain('#/reset?token=sar_T');
    expect(reset.text).toContain('2026-03-01 11:00 UTC');
    expect(reset.text).toContain('203.0.113.9');
    expect(reset.html).toContain('<a href="https://sat.example.com/admin#/reset?token=sar_T"');
    for (const how of ['changed', 'reset', 'reset_cli'] as const) {
      const m = passwordChanged({ email: 'me@example.com', how, at, ip: null, consoleUrl: 'https://sat.example.com/admin' });
      expect(m.subject).toBe('Your System Access Tokens password was changed');
      expect(m.text).not.toContain('token=');
      expect(m.text).toContain(how === 'changed' ? 'Every other session' : 'Every session');
    }
  });
});
