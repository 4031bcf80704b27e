import { randomUUID } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import { affectedRows, type Db, type SigningKeyRow } from '../db/index.js';

export type SigningAlg = 'ES256' | 'RS256';

export interface KeySet {
  /** Private JWKs, the signing key first. */
  keys: JWK[];
  /** kid of the key that signs now. */
  signingKid: string;
  /** Changes whenever the published set or the signer changes. */
  fingerprint: string;
}

/** How long a superseded key stays published: longer than any access token it signed can live. */
export function keyRetentionMs(accessTokenTtlSeconds: number): number {
  return (accessTokenTtlSeconds + 3600) * 1000;
}

async function newKeyRow(alg: SigningAlg, notBefore: Date): Promise<Omit<SigningKeyRow, 'created_at'>> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' };
  return { kid, alg, private_jwk: jwk as Record<string, unknown>, not_before: notBefore };
}

/**
 * Creates the first signing key when there is none for `alg`. The table lock makes instances that start
 * together on an empty database agree on one key set.
 */
export async function ensureSigningKey(db: Db, alg: SigningAlg): Promise<boolean> {
  return db.transaction(async (trx) => {
    await trx.raw('lock table signing_keys in share row exclusive mode');
    const existing = await trx<SigningKeyRow>('signing_keys').select('alg');
    if (existing.some((k) => k.alg === alg)) return false;
    // The very first key is active "since forever", so instances whose clocks differ slightly all see it as the
    // signer at once. A key for a newly configured algorithm supersedes the others from now on.
    await trx('signing_keys').insert(await newKeyRow(alg, existing.length === 0 ? new Date(0) : new Date()));
    return true;
  });
}

/**
 * Adds a new key, published at once and signing from `activateAt` on (default: now). Instances reload
 * their key set every few seconds; a delay of a minute or more lets every JWKS carry a key before it signs.
 */
export async function rotateSigningKey(db: Db, alg: SigningAlg, activateAt: Date): Promise<string> {
  const row = await newKeyRow(alg, activateAt);
  await db('signing_keys').insert(row);
  return row.kid;
}

/** The keys to publish and the one to sign with, at `now`; superseded keys stay until their tokens expired. */
export async function loadKeySet(db: Db, alg: SigningAlg, now: Date, retentionMs: number): Promise<KeySet | undefined> {
  const rows = await db<SigningKeyRow>('signing_keys').orderBy([
    { column: 'not_before', order: 'desc' },
    { column: 'kid', order: 'desc' },
  ]);
  const signer = rows.find((r) => r.alg === alg && r.not_before.getTime() <= now.getTime());
  if (!signer) return undefined;
  // A key is still published when it is pending, signing, or was superseded less than `retentionMs` ago.
  const published: SigningKeyRow[] = [];
  let supersededAt: number | undefined; // when the next newer active key started signing
  for (const row of rows) {
    const active = row.not_before.getTime() <= now.getTime();
    if (!active || supersededAt === undefined || now.getTime() - supersededAt < retentionMs) published.push(row);
    if (active) supersededAt = row.not_before.getTime();
  }
  const jwkOf = (r: SigningKeyRow) => (typeof r.private_jwk === 'string' ? JSON.parse(r.private_jwk) : r.private_jwk) as JWK;
  const keys = [signer, ...published.filter((r) => r.kid !== signer.kid)].map(jwkOf);
  return { keys, signingKid: signer.kid, fingerprint: `${signer.kid}|${published.map((r) => r.kid).sort().join(',')}` };
}

/** Deletes keys no longer published. */
export async function pruneSigningKeys(db: Db, keep: KeySet): Promise<number> {
  const kids = keep.keys.map((k) => k.kid as string);
  return affectedRows(await db('signing_keys').whereNotIn('kid', kids).delete());
}
