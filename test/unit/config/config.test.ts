import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig } from '../../../src/config/index.js';
import { createLogger, redact } from '../../../src/log.js';

/** A new temporary folder, removed after the file's tests. */
const made: string[] = [];
const tempDir = (prefix: string) => {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  made.push(dir);
  return dir;
};
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

describe('loadConfig', () => {
  it('applies the SPEC defaults', () => {
    const c = loadConfig({});
    expect(c.port).toBe(3000);
    expect(c.issuer).toBe('http://localhost:3000');
    expect(c.apiAudience).toBe('http://localhost:3000/api');
    expect(c.databaseUrl).toBeUndefined();
    expect(c.dataDir).toMatch(/\/data$/);
    expect(c.maxActiveTokens).toBe(25);
    expect(c.accessTokenTtlSeconds).toBe(900);
    expect(c.maxTokenLifetimeDays).toBe(366);
    expect(c.signingAlg).toBe('ES256');
    expect(c.services.map((s) => s.id)).toEqual(['candidates', 'employees', 'jobs', 'clients', 'contacts', 'master-lists']);
  });

  it('reads TOKEN_FAST_PATH: on by default, off when set to off, nothing else', () => {
    expect(loadConfig({}).tokenFastPath).toBe(true);
    expect(loadConfig({ TOKEN_FAST_PATH: 'on' }).tokenFastPath).toBe(true);
    expect(loadConfig({ TOKEN_FAST_PATH: 'off' }).tokenFastPath).toBe(false);
    expect(() => loadConfig({ TOKEN_FAST_PATH: 'maybe' })).toThrow(/TOKEN_FAST_PATH/);
  });

  it('reads HSTS_MAX_AGE_SECONDS: a year by default, 0 for none, at most two years', () => {
    expect(loadConfig({}).hstsMaxAgeSeconds).toBe(31_536_000);
    expect(loadConfig({ HSTS_MAX_AGE_SECONDS: '0' }).hstsMaxAgeSeconds).toBe(0);
    expect(loadConfig({ HSTS_MAX_AGE_SECONDS: '300' }).hstsMaxAgeSeconds).toBe(300);
    for (const bad of ['-1', '63072001', 'a year']) expect(() => loadConfig({ HSTS_MAX_AGE_SECONDS: bad })).toThrow(/HSTS_MAX_AGE_SECONDS/);
  });

  it('reads the scrypt cost: 15 by default, PASSWORD_HASH_COST or passwordHashing.cost from 12 (the floor) to 15', () => {
    expect(loadConfig({}).passwordHashing).toEqual({ threads: 1, maxQueue: 32, nice: 19, cost: 15 });
    expect(loadConfig({ PASSWORD_HASH_COST: '12' }).passwordHashing.cost).toBe(12);
    expect(loadConfig({ PASSWORD_HASH_COST: '14' }).passwordHashing.cost).toBe(14);
    for (const bad of ['11', '0', '16', '20', '12.5', 'low']) {
      expect(() => loadConfig({ PASSWORD_HASH_COST: bad })).toThrow(/PASSWORD_HASH_COST/);
    }
    const dir = tempDir('sat-cost-');
    const withFile = (passwordHashing: unknown) => {
      const file = path.join(dir, `${Math.random().toString(36).slice(2)}.json`);
      writeFileSync(file, JSON.stringify({ passwordHashing }));
      return { CONFIG_FILE: file };
    };
    expect(loadConfig(withFile({ threads: 1, maxQueue: 32, cost: 13 })).passwordHashing.cost).toBe(13);
    expect(loadConfig(withFile({ threads: 1, maxQueue: 32 })).passwordHashing.cost).toBe(15);
    expect(loadConfig({ ...withFile({ threads: 1, maxQueue: 32, cost: 13 }), PASSWORD_HASH_COST: '12' }).passwordHashing.cost).toBe(12);
    expect(() => loadConfig(withFile({ threads: 1, maxQueue: 32, cost: 11 }))).toThrow(/passwordHashing\.cost/);
    expect(() => loadConfig(withFile({ threads: 1, maxQueue: 32, cost: 16 }))).toThrow(/passwordHashing\.cost/);
    // One field alone: the others keep their defaults (they were "expected number, received undefined").
    expect(loadConfig(withFile({ cost: 13 })).passwordHashing).toEqual({ threads: 1, maxQueue: 32, nice: 19, cost: 13 });
  });

  it('takes one field of a settings object from CONFIG_FILE, the others keeping their defaults', () => {
    const dir = tempDir('sat-partial-');
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ loginThrottle: { maxRows: 1000 }, passwordReset: { perAddress: 3 } }));
    const config = loadConfig({ CONFIG_FILE: file });
    expect(config.loginThrottle).toEqual({ windowSeconds: 900, delayAfterFailures: 5, delayMs: 1_000, blockAfterFailures: 10, maxRows: 1000, perAddressFactor: 10 });
    expect(config.passwordReset).toEqual({ perAddress: 3, mailsPerEmail: 3, mailWindowSeconds: 3_600 });
    writeFileSync(file, JSON.stringify({ loginThrottle: { windowSeconds: -5 } }));
    let err: ConfigError | undefined;
    try {
      loadConfig({ CONFIG_FILE: file });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err?.problems).toEqual(['config: loginThrottle.windowSeconds: Too small: expected number to be >=1']);
  });

  it('derives the issuer and audience from PORT and ISSUER', () => {
    expect(loadConfig({ PORT: '8080' }).issuer).toBe('http://localhost:8080');
    const c = loadConfig({ ISSUER: 'https://auth.example.com/', API_AUDIENCE: 'https://api.example.com' });
    expect(c.issuer).toBe('https://auth.example.com/'); // exactly as set (SPEC "Running it")
    expect(c.apiAudience).toBe('https://api.example.com');
    expect(loadConfig({ ISSUER: 'https://auth.example.com/' }).apiAudience).toBe('https://auth.example.com/api');
  });

  it('takes HOST as an IP address or a host name and refuses anything else', () => {
    for (const host of ['0.0.0.0', '::', '127.0.0.1', '::1', 'localhost', 'sat-1.internal.example']) {
      expect(loadConfig({ HOST: host }).host).toBe(host);
    }
    for (const host of ['1.2.3.4.5', '300.1.1.1', 'http://x', 'a b', '-bad.example']) {
      expect(() => loadConfig({ HOST: host })).toThrow(/HOST: must be an IP address/);
    }
  });

  it('refuses an embedded DATA_DIR too long for its control socket before anything is created; PostgreSQL does not need one', () => {
    const long = `/tmp/${'d'.repeat(60)}/${'e'.repeat(40)}`;
    expect(() => loadConfig({ DATA_DIR: long })).toThrow(/DATA_DIR: too long for the embedded database's control socket/);
    expect(loadConfig({ DATA_DIR: long, DATABASE_URL: 'postgres://db/sat', ALLOW_PLAINTEXT_KEYS: 'true' }).dataDir).toBe(long);
    expect(loadConfig({ DATA_DIR: `/tmp/${'d'.repeat(80)}` }).dataDir).toBe(`/tmp/${'d'.repeat(80)}`); // 94 bytes with /sat.sock
  });

  it('takes MAIL_FROM as one address, with or without a name, and refuses anything else', () => {
    for (const from of ['tokens@example.com', 'System Access Tokens <no-reply@localhost>', '"Ops, Team" <ops@example.com>']) {
      expect(loadConfig({ MAIL_FROM: from }).mailFrom).toBe(from);
    }
    expect(loadConfig({ ISSUER: 'http://localhost:3000' }).mailFrom).toBe('System Access Tokens <no-reply@localhost>');
    // Found by an operator's test: nodemailer's lenient parser made one address of each of the last three.
    for (const from of ['bad', 'Name <bad>', '<>', 'a@example.com, b@example.com', 'Tokens <>', 'Ops <a@b.c>\r\nBcc: injected@evil.test', 'Ops <a@b.c> x', 'Ops\n<a@b.c>']) {
      expect(() => loadConfig({ MAIL_FROM: from })).toThrow(/MAIL_FROM: must be one address/);
    }
  });

  it('refuses an ISSUER with a query or a fragment (RFC 8414 §2) before the database is touched', () => {
    for (const issuer of ['https://auth.example.com/?tenant=1', 'https://auth.example.com#x', 'https://auth.example.com/?']) {
      expect(() => loadConfig({ ISSUER: issuer })).toThrow(/ISSUER: must have no query or fragment/);
    }
    expect(loadConfig({ ISSUER: 'https://auth.example.com/tenant' }).issuer).toBe('https://auth.example.com/tenant');
  });

  it("refuses an ISSUER whose path starts with one of the server's own paths, which it would hide", () => {
    for (const path of ['/admin', '/admin/', '/token', '/jwks/x', '/.well-known', '/healthz', '/metrics', '/credentials', '/auth']) {
      expect(() => loadConfig({ ISSUER: `https://auth.example.com${path}` })).toThrow(/ISSUER: must not have a path whose first segment/);
    }
    for (const path of ['/sat', '/administration', '/tokens', '/authz', '/a/admin', '/']) {
      expect(loadConfig({ ISSUER: `https://auth.example.com${path}` }).issuer).toBe(`https://auth.example.com${path}`);
    }
  });

  it('lists every problem at once', () => {
    let err: ConfigError | undefined;
    try {
      loadConfig({ PORT: 'eighty', DATABASE_URL: 'mysql://x', SIGNING_ALG: 'HS256', ADMIN_EMAIL: 'nope' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    expect(err!.problems.join('\n')).toMatch(/PORT/);
    expect(err!.problems.join('\n')).toMatch(/DATABASE_URL/);
    expect(err!.problems.join('\n')).toMatch(/SIGNING_ALG/);
    expect(err!.problems.join('\n')).toMatch(/ADMIN_EMAIL/);
  });

  it('lists environment, CONFIG_FILE and key-encryption-key problems together, not one stage at a time', () => {
    const dir = tempDir('sat-config-');
    const file = path.join(dir, 'config.json');
    writeFileSync(file, JSON.stringify({ maxActiveTokens: -1 }));
    let err: ConfigError | undefined;
    try {
      loadConfig({ PORT: 'eighty', CONFIG_FILE: file, KEY_ENCRYPTION_KEY: 'short', NEW_KEY_ENCRYPTION_KEY: 'also-short' });
    } catch (e) {
      err = e as ConfigError;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const listed = err!.problems.join('\n');
    expect(listed).toMatch(/^PORT:/m);
    expect(listed).toMatch(/^config: maxActiveTokens:/m);
    expect(listed).toMatch(/^KEY_ENCRYPTION_KEY:/m);
    expect(listed).toMatch(/^NEW_KEY_ENCRYPTION_KEY:/m);
  });

  it('names CONFIG_FILE when its file cannot be read or is no JSON', () => {
    const dir = tempDir('sat-config-');
    const broken = path.join(dir, 'broken.json');
    writeFileSync(broken, '{ not json');
    for (const [file, reason] of [[path.join(dir, 'missing.json'), /ENOENT/], [broken, /JSON/]] as const) {
      let err: ConfigError | undefined;
      try {
        loadConfig({ CONFIG_FILE: file });
      } catch (e) {
        err = e as ConfigError;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect(err!.problems).toEqual([expect.stringMatching(new RegExp(`^CONFIG_FILE: ${file}: .*${reason.source}`))]);
    }
  });
});

describe('log redaction', () => {
  it('never writes secrets, passwords, cookies or credentials', () => {
    const lines: string[] = [];
    const log = createLogger('debug', {}, (l) => lines.push(l));
    const secret = 'sats_' + 'a'.repeat(49);
    log.info(`client sent ${secret}`, {
      client_secret: secret,
      password: 'hunter22',
      headers: { authorization: 'Basic abc', cookie: 'sat_session=sas_xyz' },
      note: `Bearer eyJhbGciOi.abc.def and sas_sessiontoken123`,
      err: new Error(`bad ${secret}`),
    });
    const out = lines.join('\n');
    for (const leak of [secret, 'hunter22', 'Basic abc', 'sas_xyz', 'eyJhbGciOi', 'sas_sessiontoken123']) expect(out).not.toContain(leak);
    expect(out).toContain('[REDACTED]');
    expect(redact({ nested: [{ password: 'x' }] })).toEqual({ nested: [{ password: '[REDACTED]' }] });
  });
});
