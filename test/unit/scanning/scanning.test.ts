// Pure parts of the leaked-secrets feature: the secret check, the address limiter, the keys file, the leak mail,
// and the partner endpoint when no keys file is configured.
import { generateKeyPairSync, sign } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Koa from 'koa';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { loadConfig, packageRoot } from '../../../src/config/index.js';
import type { Deps } from '../../../src/deps.js';
import { errorHandler } from '../../../src/http/error-handler.js';
import { AddressRateLimiter } from '../../../src/http/address-limiter.js';
import { createLogger } from '../../../src/log.js';
import { tokenLeaked } from '../../../src/mail/leaked.js';
import { ScanningKeys, ScanningKeysError, parseScanningKeys } from '../../../src/scanning/keys.js';
import { scanningRouter } from '../../../src/scanning/routes.js';
import { checksumOf, generateClientSecret, secretFormatProblem } from '../../../src/tokens/credentials.js';

const log = createLogger('silent');
const p256 = () => {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return { privateKey, pem: publicKey.export({ type: 'spki', format: 'pem' }).toString() };
};

describe('secretFormatProblem', () => {
  it('accepts generated secrets and names the part that is wrong otherwise', () => {
    const s = generateClientSecret();
    expect(secretFormatProblem(s)).toBeUndefined();
    expect(secretFormatProblem('sat_' + s.slice(5))).toBe('prefix');
    expect(secretFormatProblem(s.slice(0, -1))).toBe('length');
    expect(secretFormatProblem(s + 'A')).toBe('length');
    expect(secretFormatProblem(s.slice(0, 10) + '-' + s.slice(11))).toBe('characters');
    const head = s.slice(0, -6);
    const wrong = checksumOf(head) === '000000' ? '000001' : '000000';
    expect(secretFormatProblem(head + wrong)).toBe('checksum');
    expect(secretFormatProblem('')).toBe('prefix');
  });

  it('is found in text by the documented scanner pattern, and the pattern does not match inside longer tokens', () => {
    // The pattern README and docs/leaked-secrets.md tell operators to register with a scanner.
    const documented = String.raw`\bsats_[0-9A-Za-z]{49}\b`;
    for (const doc of ['README.md', 'docs/leaked-secrets.md']) expect(readFileSync(path.join(packageRoot(), doc), 'utf8')).toContain(documented);
    const pattern = new RegExp(documented, 'g');
    const s = generateClientSecret();
    expect(`CLIENT_SECRET="${s}"\nother=1`.match(pattern)).toEqual([s]);
    expect(`${s}X`.match(pattern)).toBeNull();
  });
});

describe('AddressRateLimiter', () => {
  it('allows `limit` calls per window per address, then says when to come back', () => {
    let now = 1_000_000;
    const limiter = new AddressRateLimiter(10, 60_000, 100, () => now);
    for (let i = 0; i < 10; i++) expect(limiter.hit('a').allowed).toBe(true);
    expect(limiter.hit('a')).toEqual({ allowed: false, retryAfterSeconds: 60 });
    expect(limiter.hit('b').allowed).toBe(true);
    now += 59_500;
    expect(limiter.hit('a')).toEqual({ allowed: false, retryAfterSeconds: 1 });
    now += 500;
    expect(limiter.hit('a').allowed).toBe(true);
  });

  it('keeps at most maxAddresses windows, and a blocked address adds none', () => {
    const limiter = new AddressRateLimiter(1, 60_000, 50, () => 0);
    for (let i = 0; i < 1000; i++) limiter.hit(`10.0.${i >> 8}.${i & 255}`);
    expect(limiter.size).toBe(50);
    const small = new AddressRateLimiter(1, 60_000, 50, () => 0);
    small.hit('x');
    for (let i = 0; i < 1000; i++) expect(small.hit('x').allowed).toBe(false);
    expect(small.size).toBe(1);
  });
});

describe('the keys file', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'sat-keys-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('refuses a file that is not the published shape or has no P-256 key', () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).publicKey.export({ type: 'spki', format: 'pem' }).toString();
    expect(() => parseScanningKeys('f', 'nope')).toThrow(ScanningKeysError);
    expect(() => parseScanningKeys('f', '{"public_keys": []}')).toThrow(/public_keys/);
    expect(() => parseScanningKeys('f', JSON.stringify({ public_keys: [{ key_identifier: 'a', key: rsa }] }))).toThrow(/no ECDSA P-256/);
    const keys = parseScanningKeys(
      'f',
      JSON.stringify({ public_keys: [{ key_identifier: 'a', key: rsa }, { key_identifier: 'b', key: p256().pem, is_current: true, extra: 1 }] }),
    );
    expect([...keys.keys()]).toEqual(['b']);
  });

  it('stops the server at start when the configured file is missing', () => {
    expect(() => new ScanningKeys(path.join(dir, 'missing.json'), log)).toThrow(/ENOENT/);
  });

  it('verifies signatures of the raw body and picks up a refreshed file without a restart', () => {
    const file = path.join(dir, 'keys.json');
    const a = p256();
    const b = p256();
    writeFileSync(file, JSON.stringify({ public_keys: [{ key_identifier: 'ka', key: a.pem, is_current: true }] }));
    const keys = new ScanningKeys(file, log);
    const body = Buffer.from('[{"token":"x"}]');
    const sigA = sign('sha256', body, a.privateKey).toString('base64');
    const sigB = sign('sha256', body, b.privateKey).toString('base64');
    expect(keys.verify('ka', sigA, body)).toBe(true);
    expect(keys.verify('ka', sigB, body)).toBe(false);
    expect(keys.verify('kb', sigB, body)).toBe(false);
    expect(keys.verify('ka', sigA, Buffer.from('[{"token":"y"}]'))).toBe(false);
    // P1363 (raw r||s) is not the published DER encoding.
    expect(keys.verify('ka', sign('sha256', body, { key: a.privateKey, dsaEncoding: 'ieee-p1363' }).toString('base64'), body)).toBe(false);

    writeFileSync(
      file,
      JSON.stringify({ public_keys: [{ key_identifier: 'ka', key: a.pem, is_current: false }, { key_identifier: 'kb', key: b.pem, is_current: true }] }),
    );
    expect(keys.verify('kb', sigB, body)).toBe(true);
    // A broken refresh keeps the previous keys.
    writeFileSync(file, '{"public_keys": "oops"}');
    expect(keys.verify('kb', sigB, body)).toBe(true);
  });

  it('warns about a broken file once, not on every alert, and reloads when it is mended', () => {
    const file = path.join(dir, 'keys-warn.json');
    const a = p256();
    writeFileSync(file, JSON.stringify({ public_keys: [{ key_identifier: 'ka', key: a.pem }] }));
    const lines: Array<[string, string]> = [];
    const recording = { ...log, warn: (msg: string) => lines.push(['warn', msg]), info: (msg: string) => lines.push(['info', msg]) } as typeof log;
    const keys = new ScanningKeys(file, recording);
    const body = Buffer.from('[]');
    const sig = sign('sha256', body, a.privateKey).toString('base64');
    writeFileSync(file, 'not json at all');
    for (let i = 0; i < 5; i++) expect(keys.verify('ka', sig, body)).toBe(true);
    expect(lines.filter(([level]) => level === 'warn')).toHaveLength(1);
    rmSync(file);
    for (let i = 0; i < 5; i++) expect(keys.has('ka')).toBe(true);
    expect(lines.filter(([level]) => level === 'warn')).toHaveLength(2); // the file changed again (now missing): one more
    writeFileSync(file, JSON.stringify({ public_keys: [{ key_identifier: 'kb', key: a.pem }] }));
    expect(keys.has('kb')).toBe(true);
    expect(keys.has('ka')).toBe(false);
    expect(lines.filter(([level]) => level === 'info')).toHaveLength(1);
  });
});

describe('tokenLeaked mail', () => {
  const base = {
    token: { name: 'Payroll <b>', client_id: 'sat_abc', services: ['jobs'], expires_at: '2031-01-01T00:00:00.000Z' },
    catalogue: [{ id: 'jobs', name: 'Job API' }],
    consoleUrl: 'https://sat.example.com/admin',
    url: 'https://github.com/o/r/blob/1/.env?a=1&b=<2>',
    source: 'commit',
    reporter: 'secret-scanning' as const,
    reportedAt: new Date('2030-05-06T07:08:09Z'),
    generatedBy: 'alice@example.com',
  };

  it('says what leaked, where, when, what was done and what to do, in text and escaped HTML', () => {
    const m = tokenLeaked({ ...base, action: 'revoked' });
    expect(m.subject).toBe('Leaked secret: system access token "Payroll <b>" was revoked');
    for (const needle of ['sat_abc', 'Job API', base.url, 'commit', '2030-05-06 07:08 UTC', 'alice@example.com', 'revoked', 'Generate a new token']) {
      expect(m.text).toContain(needle);
    }
    expect(m.html).toContain('https://github.com/o/r/blob/1/.env?a=1&amp;b=&lt;2&gt;');
    expect(m.html).toContain('Payroll &lt;b&gt;');
    expect(m.html).not.toContain('<b>');
  });

  it('in notify mode says the token still works and how to replace the secret', () => {
    const m = tokenLeaked({ ...base, action: 'notified', url: null });
    expect(m.subject).toBe('Leaked secret: replace system access token "Payroll <b>" now');
    expect(m.text).toContain('the token still works');
    expect(m.text).toContain('rotate the token');
    expect(m.text).toContain('not given by the reporter');
  });

  it('in notify mode during a rotation names the leaked secret and gives advice that works (no second rotation)', () => {
    const only = tokenLeaked({ ...base, action: 'notified' });
    expect(only.text).not.toMatch(/^\s+Secret:/m);
    const previous = tokenLeaked({ ...base, action: 'notified', leakedSecret: 'previous' });
    expect(previous.text).toMatch(/^\s+Secret:\s+the previous secret, still in its rotation grace period/m);
    expect(previous.text).toContain('Retire the previous secret now');
    expect(previous.text).not.toContain('rotate the token');
    const current = tokenLeaked({ ...base, action: 'notified', leakedSecret: 'current' });
    expect(current.text).toMatch(/^\s+Secret:\s+the new secret of a rotation/m);
    expect(current.text).toContain('generate a new token, move the integrations to it, and revoke this one');
    expect(current.text).toContain('cannot be rotated while the previous one is live');
    expect(current.text).not.toContain("rotate the token's secret with no grace period, or");
    // Revoked: which secret is said, the advice is the same (the whole token is gone).
    const revoked = tokenLeaked({ ...base, action: 'revoked', leakedSecret: 'previous' });
    expect(revoked.text).toMatch(/^\s+Secret:\s+the previous secret/m);
    expect(revoked.text).toContain('Generate a new token');
    // Both secrets reported: the token cannot be kept.
    const both = tokenLeaked({ ...base, action: 'notified', leakedSecret: 'both' });
    expect(both.text).toMatch(/^\s+Secret:\s+both secrets of a rotation/m);
    expect(both.text).toContain('Both of its secrets were reported, so neither can be kept.');
    expect(both.text).not.toContain('Retire the previous secret now');
  });

  it('names a public report once, without repeating "to this server"', () => {
    const m = tokenLeaked({ ...base, reporter: 'public-report', source: 'public report', url: null, action: 'revoked' });
    expect(m.text).toContain('was reported to this server by a public report (POST /credentials/revoke');
    expect(m.text).not.toMatch(/to this server by a public report to this server/);
  });

  it('refuses a token that carries its secret', () => {
    const token = { ...base.token, client_secret: 'sats_x' } as unknown as typeof base.token;
    expect(() => tokenLeaked({ ...base, token, action: 'revoked' })).toThrow(/client_secret/);
  });
});

describe('POST /secret-scanning/verify without SECRET_SCANNING_KEYS_FILE', () => {
  it('answers 404 saying secret scanning is not configured, and the public endpoint still answers', async () => {
    const config = loadConfig({ DATA_DIR: os.tmpdir() });
    expect(config.secretScanningKeysFile).toBeUndefined();
    expect(config.secretScanningAction).toBe('revoke');
    const deps = { config, log, clock: () => new Date(), db: undefined } as unknown as Deps;
    const app = new Koa();
    app.use(errorHandler(log));
    app.use(scanningRouter(deps).routes());
    const server = http.createServer(app.callback());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const post = (path: string, body: string) => fetch(url + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
    try {
      const res = await post('/secret-scanning/verify', '[]');
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual({ error: 'not_found', message: expect.stringContaining('SECRET_SCANNING_KEYS_FILE') });
      const bad = await post('/credentials/revoke', '{"credentials": 1}');
      expect(bad.status).toBe(400);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('rejects an unknown SECRET_SCANNING_ACTION', () => {
    expect(() => loadConfig({ SECRET_SCANNING_ACTION: 'delete' })).toThrow(/SECRET_SCANNING_ACTION/);
  });
});
