import {
  escapeHtml,
  tokenExpiringSoon,
  tokenGenerated,
  tokenRevoked,
  type MailToken,
} from '../../../src/mail/templates.js';
import { secretRotated } from '../../../src/mail/rotated.js';
import { messageIdDomain } from '../../../src/mail/outbox.js';
import { retryDelayMs } from '../../../src/mail/delivery.js';
import type { GeneratedToken, TokenResource } from '../../../src/tokens/index.js';

const catalogue = [
  { id: 'candidates', name: 'Candidate API' },
  { id: 'jobs', name: 'Job API' },
];
const evil = '<img src=x onerror=alert(1)>';
const token: MailToken = {
  name: 'HR_API_Token',
  client_id: 'sat_abc123',
  services: ['candidates', 'jobs'],
  expires_at: '2031-03-01T23:59:59.999Z',
};
const consoleUrl = 'https://sat.example.com/admin';

describe('tokenGenerated', () => {
  const mail = tokenGenerated({
    token,
    catalogue,
    consoleUrl,
    generatedBy: 'alice@example.com',
    generatedAt: new Date('2031-02-01T10:15:00Z'),
    ip: '203.0.113.7',
  });

  it('names the token, client ID, services by name, expiry, who, when and from where, in text and HTML', () => {
    expect(mail.subject).toBe('New system access token "HR_API_Token"');
    for (const body of [mail.text, mail.html]) {
      expect(body).toContain('HR_API_Token');
      expect(body).toContain('sat_abc123');
      expect(body).toContain('Candidate API, Job API');
      expect(body).toContain('2031-03-01 23:59 UTC');
      expect(body).toContain('alice@example.com');
      expect(body).toContain('2031-02-01 10:15 UTC');
      expect(body).toContain('203.0.113.7');
      expect(body).toContain('Was this not you?');
      expect(body).toContain(consoleUrl);
    }
    expect(mail.text).toMatch(/Client ID:\s+sat_abc123/);
    expect(mail.html).toMatch(/^<!doctype html>/);
  });

  it('says the secret is not in the mail and contains none', () => {
    expect(mail.text).toContain('The client secret is not in this email');
    expect(mail.text + mail.html).not.toMatch(/sats_/);
  });

  it('HTML-escapes every user-supplied value and keeps the text verbatim', () => {
    const m = tokenGenerated({
      token: { ...token, name: evil, client_id: 'sat_"quoted"&' },
      catalogue: [{ id: 'candidates', name: '<b>Candidates</b>' }],
      consoleUrl,
      generatedBy: 'o\'brien+<x>@example.com',
      generatedAt: new Date(),
      ip: null,
    });
    expect(m.html).not.toContain('<img');
    expect(m.html).not.toContain('<b>Candidates');
    expect(m.html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(m.html).toContain('sat_&quot;quoted&quot;&amp;');
    expect(m.html).toContain('o&#39;brien+&lt;x&gt;@example.com');
    expect(m.text).toContain(evil);
    expect(m.subject).toBe(`New system access token "${evil}"`);
    expect(m.text).toMatch(/From IP address:\s+unknown/);
  });

  it('keeps the subject on one line', () => {
    const m = tokenGenerated({ token: { ...token, name: 'a\r\nBcc: x@evil.test' }, catalogue, consoleUrl, generatedBy: 'a@b.c', generatedAt: new Date(), ip: null });
    expect(m.subject).not.toMatch(/[\r\n]/);
  });

  it('refuses, at compile time and at run time, a token that carries its secret', () => {
    const resource: TokenResource = {
      id: '1',
      name: 'n',
      client_id: 'sat_x',
      services: ['jobs'],
      scopes: 'jobs',
      status: 'active',
      expires_at: '2031-01-01T00:00:00.000Z',
      created_at: '2030-01-01T00:00:00.000Z',
      created_by: null,
      last_used_at: null,
      leaked_at: null,
      expiring: false,
      dormant: false,
      allowed_ips: [],
      max_tokens_per_hour: null,
      auth_method: 'client_secret',
      jwk_thumbprints: null,
      require_dpop: false,
      tokens_last_hour: 0,
    };
    const generated: GeneratedToken = { ...resource, client_secret: 'sats_this-must-never-be-mailed' };
    const facts = { catalogue, consoleUrl, generatedBy: 'a@b.c', generatedAt: new Date(), ip: null };
    // A token resource (no secret) is accepted as it is.
    expect(() => tokenGenerated({ ...facts, token: resource })).not.toThrow();
    // @ts-expect-error -- the point of the test: an object with client_secret does not type-check as a MailToken
    expect(() => tokenGenerated({ ...facts, token: generated })).toThrow(/never take a token's client_secret/);
    const withHash = { ...token, secret_hash: 'abc' };
    // @ts-expect-error -- nor does one with the secret's hash
    expect(() => tokenGenerated({ ...facts, token: withHash })).toThrow(/secret_hash/);
  });
});

describe('tokenRevoked', () => {
  const base = {
    token,
    catalogue,
    consoleUrl,
    revokedBy: 'bob@example.com',
    revokedAt: new Date('2031-02-10T08:00:00Z'),
    ip: '198.51.100.2',
    generatedBy: 'alice@example.com',
  };

  it('tells the revoking administrator "you revoked"', () => {
    const m = tokenRevoked({ ...base, recipient: 'BOB@example.com' });
    expect(m.subject).toBe('System access token "HR_API_Token" was revoked');
    expect(m.text).toContain('You revoked the system access token "HR_API_Token".');
    expect(m.text).toMatch(/Revoked by:\s+bob@example.com/);
    expect(m.text).toMatch(/Generated by:\s+alice@example.com/);
    expect(m.text).toContain('198.51.100.2');
    expect(m.text).toContain('2031-02-10 08:00 UTC');
  });

  it('tells the generating administrator who revoked it', () => {
    const m = tokenRevoked({ ...base, recipient: 'alice@example.com' });
    expect(m.text).toContain('that you generated was revoked by bob@example.com');
    expect(m.html).toContain('that you generated was revoked by bob@example.com');
  });

  it('names the command line when no administrator revoked it', () => {
    const m = tokenRevoked({ ...base, revokedBy: null, recipient: 'alice@example.com' });
    expect(m.text).toContain('revoked by the command-line tool (sat)');
  });
});

describe('tokenExpiringSoon', () => {
  it('gives the date, the days left and what to do', () => {
    const m = tokenExpiringSoon({
      token,
      catalogue,
      consoleUrl,
      now: new Date('2031-02-22T20:00:00Z'),
      generatedBy: 'alice@example.com',
    });
    expect(m.subject).toBe('System access token "HR_API_Token" expires in 7 days');
    expect(m.text).toContain('expires on 2031-03-01 23:59 UTC, in 7 days');
    expect(m.text).toContain('Generate a new token');
    expect(m.html).toContain('Candidate API, Job API');
  });

  it('rounds to the nearest day, and says "1 day" in the singular', () => {
    const at = (now: string) => tokenExpiringSoon({ token, catalogue, consoleUrl, now: new Date(now), generatedBy: null });
    expect(at('2031-02-22T23:59:59.998Z').subject).toContain('expires in 7 days'); // 7 days and 1 ms
    expect(at('2031-02-22T12:00:01Z').subject).toContain('expires in 7 days'); // 7½ days less a second
    expect(at('2031-03-01T20:00:00Z').subject).toContain('expires in 1 day'); // 4 hours
    const m = at('2031-03-01T00:00:00Z');
    expect(m.subject).toMatch(/expires in 1 day$/);
    expect(m.text).toContain('no administrator on record (created from the command line, or by an administrator since removed)');
  });
});

describe('escapeHtml', () => {
  it('escapes the five HTML-significant characters', () => {
    expect(escapeHtml(`<a href="x" title='y'>&</a>`)).toBe('&lt;a href=&quot;x&quot; title=&#39;y&#39;&gt;&amp;&lt;/a&gt;');
  });
});

describe('messageIdDomain', () => {
  it('takes the domain of MAIL_FROM, else the issuer host', () => {
    expect(messageIdDomain({ mailFrom: 'Tokens <no-reply@Mail.Example.com>', issuer: 'http://x' })).toBe('mail.example.com');
    expect(messageIdDomain({ mailFrom: 'ops@example.org', issuer: 'http://x' })).toBe('example.org');
    expect(messageIdDomain({ mailFrom: 'nobody', issuer: 'https://sat.example.net:8443' })).toBe('sat.example.net');
  });
});

describe('retryDelayMs', () => {
  const config = { mailRetryBaseSeconds: 30, mailRetryMaxSeconds: 3600 };
  it('doubles per attempt with equal jitter, capped', () => {
    expect(retryDelayMs(1, config, () => 0)).toBe(15_000);
    expect(retryDelayMs(1, config, () => 1)).toBe(30_000);
    expect(retryDelayMs(3, config, () => 0)).toBe(60_000);
    expect(retryDelayMs(3, config, () => 1)).toBe(120_000);
    expect(retryDelayMs(30, config, () => 1)).toBe(3_600_000);
    expect(retryDelayMs(30, config, () => 0)).toBe(1_800_000);
  });
});

describe('secretRotated', () => {
  const at = new Date('2031-02-01T10:15:00Z');
  const mail = (previousStopsAt: Date) =>
    secretRotated({ token, catalogue, consoleUrl, rotatedBy: 'alice@example.com', rotatedAt: at, previousStopsAt, ip: '203.0.113.7' });

  it('with a grace period: when the previous secret stops, and to hand over the new one before then', () => {
    const m = mail(new Date(at.getTime() + 24 * 3600_000));
    expect(m.text).toContain('The previous secret keeps working until 2031-02-02 10:15 UTC, then stops.');
    expect(m.text).toContain('Previous secret stops');
    expect(m.text).toContain('before the previous one stops');
  });

  it('with a grace period of 0: says it stopped, and nothing that can no longer be done', () => {
    const m = mail(at);
    expect(m.text).toContain('The previous secret stopped working at once.');
    expect(m.text).toContain('Previous secret stopped');
    expect(m.text).not.toContain('Previous secret stops');
    expect(m.text).not.toContain('before the previous one stops');
    expect(m.text).toContain('can no longer get access tokens: give each of them the new secret now');
  });
});
