import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ConfigError, loadConfig, SecretKey } from '../../../src/config/index.js';
import { exportJWK, generateKeyPair } from 'jose';
import { KeyEncryptionError, KeyRing, kekId, publicJwk, resolveKeyEncryptionKey } from '../../../src/keys/index.js';
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

describe('KeyRing.canOpen (what `sat keys list` reports as opens, and --drop-unreadable keeps)', () => {
  const row = async (alg: 'ES256' | 'RS256') => {
    const { privateKey } = await generateKeyPair(alg, { extractable: true });
    const jwk = { ...(await exportJWK(privateKey)), kid: `k-${alg}`, alg, use: 'sig' } as Record<string, unknown>;
    return { kid: `k-${alg}`, alg, public_jwk: publicJwk(jwk) as Record<string, unknown>, private_jwk: jwk, sealed_jwk: null, kek_id: null, created_at: new Date(0), not_before: new Date(0) };
  };

  it('decrypts a sealed row: a damaged one does not open although its kek_id names the configured key', async () => {
    const k = kek();
    const ring = new KeyRing(() => ({ key: k }));
    const r = await row('ES256');
    const sealed = { ...r, ...ring.storageOf(r.private_jwk, r.kid, r.alg) }; // private_jwk null, sealed_jwk set
    expect(ring.canOpen(sealed)).toBe(true);
    const [iv, ct, tag] = sealed.sealed_jwk!.split('.') as [string, string, string];
    const flipped = Buffer.from(ct, 'base64url');
    flipped[5]! ^= 1;
    const broken = { ...sealed, sealed_jwk: [iv, flipped.toString('base64url'), tag].join('.') };
    expect(ring.hasKekOf(broken)).toBe(true);
    expect(ring.canOpen(broken)).toBe(false);
  });

  it('checks a plaintext private key pairs with the published one (another key\'s private part, or garbage, does not open)', async () => {
    const ring = new KeyRing(() => ({ key: undefined }));
    // The private members (OpenSSL signs RSA with the CRT members and checks the result, falling back to d: only a
    // key with all of them wrong signs wrong).
    const used = { ES256: ['d'], RS256: ['d', 'p', 'q', 'dp', 'dq', 'qi'] } as const;
    for (const alg of ['ES256', 'RS256'] as const) {
      const r = await row(alg);
      expect(ring.canOpen(r)).toBe(true);
      const other = await row(alg);
      const swapped = Object.fromEntries(used[alg].map((m) => [m, other.private_jwk[m]]));
      expect(ring.canOpen({ ...r, private_jwk: { ...r.private_jwk, ...swapped } })).toBe(false);
      const garbage = Object.fromEntries(used[alg].map((m) => [m, 'AAAA']));
      expect(ring.canOpen({ ...r, private_jwk: { ...r.private_jwk, ...garbage } })).toBe(false);
    }
  });
});
