import { createPublicKey, verify, type KeyObject } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { z } from 'zod';
import type { Logger } from '../log.js';

/** GitHub's published format (https://api.github.com/meta/public_keys/secret_scanning). Unknown fields are ignored. */
const keysDocument = z.object({
  public_keys: z
    .array(
      z.object({
        key_identifier: z.string().min(1).max(512),
        key: z.string().min(1).max(16_384),
        is_current: z.boolean().optional(),
      }),
    )
    .min(1)
    .max(1_000),
});

/** SECRET_SCANNING_KEYS_FILE missing, unreadable, not GitHub's shape, or without an ECDSA P-256 key: the start stops. */
export class ScanningKeysError extends Error {
  constructor(file: string, problem: string) {
    super(`SECRET_SCANNING_KEYS_FILE ${file}: ${problem}`);
    this.name = 'ScanningKeysError';
  }
}

/** The ECDSA P-256 public keys of a keys file, by `key_identifier`. Keys of another type are skipped (with a warning). */
export function parseScanningKeys(file: string, text: string, log?: Logger): Map<string, KeyObject> {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw new ScanningKeysError(file, 'is not JSON');
  }
  const parsed = keysDocument.safeParse(json);
  if (!parsed.success) throw new ScanningKeysError(file, 'is not {"public_keys": [{"key_identifier", "key", "is_current"}, ...]}');
  const keys = new Map<string, KeyObject>();
  for (const entry of parsed.data.public_keys) {
    let key: KeyObject;
    try {
      key = createPublicKey(entry.key);
    } catch {
      log?.warn('secret-scanning key skipped: not a PEM public key', { file, key_identifier: entry.key_identifier });
      continue;
    }
    if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
      log?.warn('secret-scanning key skipped: not an ECDSA P-256 key', { file, key_identifier: entry.key_identifier });
      continue;
    }
    keys.set(entry.key_identifier, key);
  }
  if (keys.size === 0) throw new ScanningKeysError(file, 'holds no ECDSA P-256 public key');
  return keys;
}

/**
 * The keys file, read at start (a missing or malformed file stops the server: ScanningKeysError) and read again
 * whenever its modification time or size changes, so a refreshed file takes effect without a restart. A refresh that
 * is unreadable or malformed is logged once (until the file changes again) and the previous keys stay in use.
 */
export class ScanningKeys {
  private keys: Map<string, KeyObject>;
  private stamp: string;

  constructor(
    readonly file: string,
    private readonly log: Logger,
  ) {
    this.stamp = this.stat();
    this.keys = parseScanningKeys(file, this.read(), log);
  }

  private stat(): string {
    try {
      const s = statSync(this.file);
      return `${s.mtimeMs}:${s.size}`;
    } catch (err) {
      throw new ScanningKeysError(this.file, (err as NodeJS.ErrnoException).code ?? 'cannot be read');
    }
  }

  private read(): string {
    try {
      return readFileSync(this.file, 'utf8');
    } catch (err) {
      throw new ScanningKeysError(this.file, (err as NodeJS.ErrnoException).code ?? 'cannot be read');
    }
  }

  /** The stamp of a refresh that failed: warned about once, tried again only when the file changes again. */
  private failedStamp: string | undefined;

  private refresh(): void {
    let stamp: string;
    try {
      stamp = this.stat();
    } catch (err) {
      stamp = `unreadable:${(err as Error).message}`;
    }
    if (stamp === this.stamp || stamp === this.failedStamp) return;
    try {
      this.keys = parseScanningKeys(this.file, this.read(), this.log);
      this.stamp = stamp;
      this.failedStamp = undefined;
      this.log.info('secret-scanning keys reloaded', { file: this.file, keys: [...this.keys.keys()] });
    } catch (err) {
      // Once per change of the file, not on every request that carries the headers (anyone can send those).
      this.failedStamp = stamp;
      this.log.warn('secret-scanning keys not reloaded; the previous ones stay in use', { err });
    }
  }

  /**
   * Whether `signatureB64` (base64 of a DER-encoded ECDSA P-256 SHA-256 signature) signs `body` with the key named
   * `keyId`. False for an unknown key identifier or a malformed signature; never throws.
   */
  verify(keyId: string, signatureB64: string, body: Buffer): boolean {
    this.refresh();
    const key = this.keys.get(keyId);
    if (!key) return false;
    if (!/^[A-Za-z0-9+/]+={0,2}$/.test(signatureB64) || signatureB64.length > 256) return false;
    try {
      return verify('sha256', body, key, Buffer.from(signatureB64, 'base64'));
    } catch {
      return false;
    }
  }

  /** Whether `keyId` names a usable key. */
  has(keyId: string): boolean {
    this.refresh();
    return this.keys.has(keyId);
  }
}
