import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, SecretKey } from '../../../src/config/index.js';
import { KeyEncryptionError, kekId, resolveKeyEncryptionKey } from '../../../src/keys/index.js';
import { openJwk, sealJwk } from '../../../src/keys/encryption.js';

const kek = () => new SecretKey(randomBytes(32), 'test');
const jwk = { kty: 'EC', crv: 'P-256', x: 'x', y: 'y', d: 'private-part', kid: 'k1', alg: 'ES256' };

describe('sealJwk / openJwk (AES-256-GCM, kid and alg as associated data)', () => {
  it('round-trips, and the sealed text holds no part of the key', () => {
    const k = kek();
    const sealed = sealJwk(jwk, k, 'k1', 'ES256');
    expect(sealed).not.toContain('private-part');
    expect(sealed.split('.')).toHaveLength(3);
    expect(openJwk(sealed, k, 'k1', 'ES256')).toEqual(jwk);
    expect(sealJwk(jwk, k, 'k1', 'ES256')).not.toBe(sealed); // fresh IV each time
  });

  it('refuses a wrong key, another kid or alg, and any altered byte', () => {
    const k = kek();
    const sealed = sealJwk(jwk, k, 'k1', 'ES256');
    expect(() => openJwk(sealed, kek(), 'k1', 'ES256')).toThrow(KeyEncryptionError);
    expect(() => openJwk(sealed, k, 'k2', 'ES256')).toThrow(KeyEncryptionError);
    expect(() => openJwk(sealed, k, 'k1', 'RS256')).toThrow(KeyEncryptionError);
    const [iv, ct, tag] = sealed.split('.') as [string, string, string];
    const flipped = Buffer.from(ct, 'base64url');
    flipped[0]! ^= 1;
    expect(() => openJwk([iv, flipped.toString('base64url'), tag].join('.'), k, 'k1', 'ES256')).toThrow(KeyEncryptionError);
  });

  it('names a key by a fingerprint that differs per key and is not the key', () => {
    const k = kek();
    expect(kekId(k)).toBe(kekId(new SecretKey(Buffer.from(k.bytes), 'copy')));
    expect(kekId(k)).not.toBe(kekId(kek()));
    expect(kekId(k)).not.toContain(k.bytes.toString('base64url').slice(0, 8));
  });
});

describe('key-encryption key settings', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'kek-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('reads KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE (base64 of 32 bytes), never both, and never serialises it', () => {
    const b64 = randomBytes(32).toString('base64');
    const fromEnv = loadConfig({ KEY_ENCRYPTION_KEY: b64 });
    expect(fromEnv.keyEncryptionKey?.bytes.toString('base64')).toBe(b64);
    expect(JSON.stringify(fromEnv)).not.toContain(b64);
    const file = path.join(dir, 'kek');
    writeFileSync(file, `${b64}\n`);
    expect(loadConfig({ KEY_ENCRYPTION_KEY_FILE: file }).keyEncryptionKey?.bytes.toString('base64')).toBe(b64);
    expect(() => loadConfig({ KEY_ENCRYPTION_KEY: b64, KEY_ENCRYPTION_KEY_FILE: file })).toThrow(ConfigError);
    expect(() => loadConfig({ KEY_ENCRYPTION_KEY: randomBytes(16).toString('base64') })).toThrow(/32/);
    expect(() => loadConfig({ KEY_ENCRYPTION_KEY_FILE: path.join(dir, 'missing') })).toThrow(ConfigError);
    expect(loadConfig({}).keyPublishAheadSeconds).toBe(600);
    expect(loadConfig({}).keyRotationDays).toBe(90);
  });

  it('PostgreSQL without a key refuses unless ALLOW_PLAINTEXT_KEYS; the embedded mode generates one into DATA_DIR', () => {
    const base = { keyEncryptionKey: undefined, allowPlaintextKeys: false, dataDir: dir };
    expect(() => resolveKeyEncryptionKey(base, 'postgres')).toThrow(/KEY_ENCRYPTION_KEY/);
    expect(resolveKeyEncryptionKey({ ...base, allowPlaintextKeys: true }, 'postgres').key).toBeUndefined();
    const first = resolveKeyEncryptionKey(base, 'embedded');
    expect(first.dataDirFile).toBe(path.join(dir, 'key-encryption-key'));
    expect(resolveKeyEncryptionKey(base, 'embedded').key?.bytes.equals(first.key!.bytes)).toBe(true); // reused
  });
});
