// Signing keys (domain): stored encrypted under a key-encryption key, published ahead of use, rotated by hand and
// by themselves, pruned once every token they signed has expired. Used by oauth/ (signing, JWKS) and the CLI.
import type { Config } from '../config/index.js';
import type { DbKind } from '../db/index.js';
import type { Logger } from '../log.js';
import { resolveKeyEncryptionKey } from './encryption.js';
import { KeyRing } from './service.js';

export {
  KeyEncryptionError,
  dataDirKeyFile,
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
  loadPublicKeySet,
  publicJwk,
  pruneSigningKeys,
  rewrapSigningKeys,
  rotateSigningKey,
  rotateSigningKeyIfDue,
  SIGNING_ALGS,
  signerAt,
  signingKeySchedule,
  signingKeyPlan,
  sealPlaintextKeys,
  type KeySet,
  type PendingSigningKey,
  type PublicKeySet,
  type SigningAlg,
} from './service.js';

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
    const resolved = resolveKeyEncryptionKey(config, kind, first ? log : undefined);
    first = false;
    return resolved;
  });
}
