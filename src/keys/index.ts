// Signing keys (domain): stored encrypted under a key-encryption key, published ahead of use, rotated by hand and
// by themselves, pruned once every token they signed has expired. Used by oauth/ (signing, JWKS) and the CLI.
import { existsSync } from 'node:fs';
import type { Config } from '../config/index.js';
import type { Db, DbKind } from '../db/index.js';
import type { Logger } from '../log.js';
import { dataDirKeyFile, KeyEncryptionError, resolveKeyEncryptionKey } from './encryption.js';
import { KeyRing } from './service.js';

export {
  GENERATED_KEK_MESSAGE,
  KeyEncryptionError,
  dataDirKeyFile,
  dataDirKeyId,
  kekId,
  replaceDataDirKey,
  resolveKeyEncryptionKey,
  type ResolvedKek,
} from './encryption.js';
export {
  KeyRing,
  ensureSigningKey,
  keyRetentionMs,
  listSigningKeys,
  loadKeySet,
  loadKeySetInPart,
  loadPublicKeySet,
  publicJwk,
  pruneSigningKeys,
  recordSignerTokenTtl,
  removeSigningKey,
  retentionOf,
  retirementTimes,
  rewrapSigningKeys,
  allSealedUnder,
  rotateSigningKey,
  rotateSigningKeyIfDue,
  SIGNING_ALGS,
  signerAt,
  signingKeySchedule,
  signingKeyPlan,
  SigningKeyRemovalError,
  sealPlaintextKeys,
  type KeySet,
  type PartialKeySet,
  type PendingSigningKey,
  type PublicKeySet,
  type SigningAlg,
} from './service.js';

/**
 * openKeyRing for a command on a database that may already hold keys: on the embedded database with no key
 * configured and no DATA_DIR/key-encryption-key, a key would be generated that opens none of the stored keys, so
 * KeyEncryptionError instead (naming the settings and the recovery), unless `mayGenerate` (the lost-key recovery,
 * `sat keys rotate --now --drop-unreadable`, or a database with no sealed key).
 */
export async function openKeyRingForStoredKeys(
  db: Db,
  config: Pick<Config, 'keyEncryptionKey' | 'allowPlaintextKeys' | 'dataDir'>,
  kind: DbKind,
  log?: Logger,
  options: { mayGenerate?: boolean } = {},
): Promise<KeyRing> {
  const file = dataDirKeyFile(config.dataDir);
  if (kind === 'embedded' && !config.keyEncryptionKey && !options.mayGenerate && !existsSync(file)) {
    if (await db('signing_keys').whereNotNull('sealed_jwk').first('kid')) throw missingKeyFor(file);
  }
  return openKeyRing(config, kind, log);
}

/** The refusal of a start or command whose key-encryption key is not there (DATA_DIR's file missing). */
export function missingKeyFor(file: string): KeyEncryptionError {
  return new KeyEncryptionError(
    `the signing keys are encrypted under a key-encryption key this process does not have (${file} does not exist): ` +
      'set KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE to the key they were sealed under, or put that key file back ' +
      '(a lost key: sat keys rotate --now --drop-unreadable, docs/operations.md#key-encryption-key-custody)',
  );
}

/**
 * The key ring of this process: resolves the key-encryption key now (generating DATA_DIR's on the embedded
 * database's first start; KeyEncryptionError on PostgreSQL without one unless ALLOW_PLAINTEXT_KEYS=true).
 */
export function openKeyRing(
  config: Pick<Config, 'keyEncryptionKey' | 'allowPlaintextKeys' | 'dataDir'>,
  kind: DbKind,
  log?: Logger,
): KeyRing {
  let first = true;
  return new KeyRing(() => {
    const resolved = first ? resolveKeyEncryptionKey(config, kind, log) : resolveKeyEncryptionKey(config, kind, undefined, true);
    first = false;
    return resolved;
  });
}
