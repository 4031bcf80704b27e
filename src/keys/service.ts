import { createPrivateKey, createPublicKey, randomUUID, sign, verify, type JsonWebKey } from 'node:crypto';
import { exportJWK, generateKeyPair, type JWK } from 'jose';
import type { Knex } from 'knex';
import type { SecretKey } from '../config/index.js';
import { affectedRows, type Db, type SigningKeyRow } from '../db/index.js';
import { KeyEncryptionError, kekId, openJwk, sealJwk, type ResolvedKek } from './encryption.js';

export type SigningAlg = 'ES256' | 'RS256';

/** The algorithms of our signing keys (SIGNING_ALG picks the one of new keys; a key signs with its own). */
export const SIGNING_ALGS: readonly SigningAlg[] = ['ES256', 'RS256'];

/** JWK members that are private (RFC 7518 §6.2.2, §6.3.2). */
const PRIVATE_MEMBERS = new Set(['d', 'p', 'q', 'dp', 'dq', 'qi', 'oth', 'k']);

/** The JWK without its private members. */
export function publicJwk(jwk: Record<string, unknown>): JWK {
  return Object.fromEntries(Object.entries(jwk).filter(([k]) => !PRIVATE_MEMBERS.has(k))) as JWK;
}

const json = (v: Record<string, unknown> | string): Record<string, unknown> =>
  typeof v === 'string' ? (JSON.parse(v) as Record<string, unknown>) : v;

/** The published keys (public JWKs, the signing key first) and the one that signs, at one instant. */
export interface PublicKeySet {
  keys: JWK[];
  signingKid: string;
  /** The signer's algorithm: tokens are signed with it, whatever SIGNING_ALG says (that is for new keys). */
  signingAlg: SigningAlg;
  /** Changes whenever the published set or the signer changes. */
  fingerprint: string;
}

/** A PublicKeySet plus the private JWKs, in the same order, for the signer. */
export interface KeySet {
  /** Private JWKs, the signing key first. */
  keys: JWK[];
  /**
   * Public JWKs, the signing key first: what /jwks publishes. The same keys as `keys`, in the same order, except in a
   * PartialKeySet (it publishes keys it cannot open, and may hold a signer the database no longer publishes).
   */
  publicKeys: JWK[];
  signingKid: string;
  /** The signer's algorithm (PublicKeySet.signingAlg). */
  signingAlg: SigningAlg;
  fingerprint: string;
}

/** How long a superseded key stays published: the longest access token lifetime plus an hour (SPEC). */
export function keyRetentionMs(accessTokenTtlSeconds: number): number {
  return (accessTokenTtlSeconds + 3600) * 1000;
}

/**
 * How long `row`, once superseded, stays published and kept (ms): the longest access token lifetime any server
 * signed with it (`max_token_ttl_seconds`, recordSignerTokenTtl) plus an hour, and never less than `floorMs` (this
 * process's own keyRetentionMs: a key that no server has recorded a lifetime on, or one an older server signed
 * with). Pure.
 */
export function retentionOf(row: Pick<SigningKeyRow, 'max_token_ttl_seconds'>, floorMs: number): number {
  const recorded = row.max_token_ttl_seconds;
  return typeof recorded === 'number' ? Math.max(floorMs, keyRetentionMs(recorded)) : floorMs;
}

/**
 * Records that a server whose access tokens live `ttlSeconds` (ACCESS_TOKEN_TTL_SECONDS) signs with key `kid`:
 * raises the key's `max_token_ttl_seconds` to it (never lowers it), so every instance keeps the key published for
 * the longest lifetime of a token it signed plus an hour, whatever its own setting (SPEC Part 2 "Signing-key
 * rotation never fails a verifier"). Called before the server first signs with a key; one update per key and
 * process.
 */
export async function recordSignerTokenTtl(db: Db, kid: string, ttlSeconds: number): Promise<void> {
  await db('signing_keys')
    .where({ kid })
    .andWhere((q) => q.whereNull('max_token_ttl_seconds').orWhere('max_token_ttl_seconds', '<', ttlSeconds))
    .update({ max_token_ttl_seconds: ttlSeconds });
}

/**
 * Whether `jwk` is a usable private key whose public half is `pub`: node:crypto imports both and a signature made
 * with the one verifies with the other (SHA-256; ECDSA or RSA PKCS#1 v1.5 as the key's type says). False for a
 * damaged or mismatched private part (a plaintext row's `d` altered, say), never throws.
 */
function pairs(jwk: Record<string, unknown>, pub: Record<string, unknown>): boolean {
  try {
    const message = Buffer.from('sat signing-key pair check');
    const signature = sign('sha256', message, createPrivateKey({ key: jwk as JsonWebKey, format: 'jwk' }));
    return verify('sha256', message, createPublicKey({ key: pub as JsonWebKey, format: 'jwk' }), signature);
  } catch {
    return false;
  }
}

/**
 * Holds the key-encryption key and the private keys opened with it (by kid: each sealed key is opened once per
 * process). `resolve` is asked again when a row was sealed under another key (after `sat keys rewrap`): it reads
 * KEY_ENCRYPTION_KEY_FILE or DATA_DIR's generated key file afresh (resolveKeyEncryptionKey), so a running server
 * whose file was replaced follows a rewrap without a restart; a key from KEY_ENCRYPTION_KEY needs one.
 */
export class KeyRing {
  #kek: ResolvedKek;
  readonly #opened = new Map<string, JWK>();

  constructor(private readonly resolve: () => ResolvedKek) {
    this.#kek = resolve();
  }

  /** The key-encryption key in use (undefined: plaintext keys, PostgreSQL with ALLOW_PLAINTEXT_KEYS). */
  get kek(): ResolvedKek {
    return this.#kek;
  }

  /** The KEK that sealed `row`, re-resolving once when the row names another one; throws when none fits. */
  #kekFor(row: Pick<SigningKeyRow, 'kid' | 'kek_id'>): SecretKey {
    const fits = (k: ResolvedKek) => k.key !== undefined && kekId(k.key) === row.kek_id;
    if (!fits(this.#kek)) {
      const again = this.resolve();
      if (fits(again)) this.#kek = again;
    }
    if (!this.#kek.key) {
      throw new KeyEncryptionError(
        `signing key ${row.kid} is encrypted but no key-encryption key is configured (KEY_ENCRYPTION_KEY or KEY_ENCRYPTION_KEY_FILE)`,
      );
    }
    if (!fits(this.#kek)) {
      throw new KeyEncryptionError(
        `signing key ${row.kid} was encrypted under another key-encryption key (id ${row.kek_id}) than the configured ` +
          `${this.#kek.key.source} (id ${kekId(this.#kek.key)}): refusing to sign; configure the right key`,
      );
    }
    return this.#kek.key;
  }

  /**
   * Whether this process can open `row`'s private key now: the configured (re-resolved) key-encryption key decrypts
   * the sealed row (or the row is in clear), and what comes out is a private JWK of the row's kid and algorithm that
   * pairs with the published one (a test signature verifies). Always opens the row afresh, never from the cache of
   * keys this process opened earlier: a row altered since (a damaged `sealed_jwk`) opens no more, whatever a running
   * server still holds in memory. What `sat keys list` reports as `opens`, and what
   * `sat keys rotate --now --drop-unreadable` keeps (docs/keys.md).
   */
  canOpen(row: SigningKeyRow): boolean {
    return succeeds(() => this.#open(row));
  }

  /**
   * Whether `row` was sealed under the configured (re-resolved) key-encryption key, by its id (`kek_id`) alone:
   * nothing is decrypted, so a damaged row passes (canOpen decrypts). For rows whose sealed part is not at hand (a
   * backup's keys, checked before a restore).
   */
  hasKekOf(row: Pick<SigningKeyRow, 'kid' | 'kek_id'>): boolean {
    return succeeds(() => this.#kekFor(row));
  }

  /** The private JWK of a row: opened (AES-256-GCM) or, for a plaintext row, read; once per kid. Throws KeyEncryptionError. */
  privateJwk(row: SigningKeyRow): JWK {
    const hit = this.#opened.get(row.kid);
    if (hit) return hit;
    const jwk = this.#open(row);
    this.#opened.set(row.kid, jwk);
    return jwk;
  }

  /** Opens `row` (no cache) and checks it is the private half of its published key; else KeyEncryptionError. */
  #open(row: SigningKeyRow): JWK {
    let jwk: Record<string, unknown>;
    if (row.sealed_jwk !== null) jwk = openJwk(row.sealed_jwk, this.#kekFor(row), row.kid, row.alg);
    else if (row.private_jwk !== null) jwk = json(row.private_jwk);
    else throw new KeyEncryptionError(`signing key ${row.kid} has no private part`);
    const pub = json(row.public_jwk);
    if (jwk.kid !== row.kid || jwk.alg !== row.alg || (['x', 'y', 'n', 'e'] as const).some((m) => jwk[m] !== pub[m]) || !pairs(jwk, pub)) {
      throw new KeyEncryptionError(`signing key ${row.kid}: the private key does not match the published one`);
    }
    return jwk as JWK;
  }

  /** The columns that store `jwk`: sealed under the current KEK, or in clear when there is none. */
  storageOf(jwk: Record<string, unknown>, kid: string, alg: string): Pick<SigningKeyRow, 'private_jwk' | 'sealed_jwk' | 'kek_id'> {
    const kek = this.#kek.key;
    if (!kek) return { private_jwk: jwk, sealed_jwk: null, kek_id: null };
    return { private_jwk: null, sealed_jwk: sealJwk(jwk, kek, kid, alg), kek_id: kekId(kek) };
  }

  /**
   * Refuses to add a key when the stored keys are sealed under another key-encryption key than ours (the database
   * was rewrapped and this process still has the old key): a key sealed under the old one would be lost at restart.
   */
  assertCurrent(rows: Pick<SigningKeyRow, 'kid' | 'kek_id' | 'sealed_jwk'>[]): void {
    for (const row of rows) if (row.sealed_jwk !== null) this.#kekFor(row);
    if (this.#kek.key === undefined && rows.some((r) => r.sealed_jwk !== null)) {
      throw new KeyEncryptionError('the signing keys are encrypted but no key-encryption key is configured');
    }
  }
}

async function newKey(ring: KeyRing, alg: SigningAlg, notBefore: Date, createdAt: Date): Promise<SigningKeyRow> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true, ...(alg === 'RS256' ? { modulusLength: 2048 } : {}) });
  const kid = randomUUID();
  const jwk = { ...(await exportJWK(privateKey)), kid, alg, use: 'sig' } as Record<string, unknown>;
  return {
    kid,
    alg,
    public_jwk: JSON.stringify(publicJwk(jwk)),
    ...ring.storageOf(jwk, kid, alg),
    created_at: createdAt,
    not_before: notBefore,
  };
}

function toInsert(row: SigningKeyRow): Record<string, unknown> {
  return { ...row, private_jwk: row.private_jwk === null ? null : JSON.stringify(row.private_jwk) };
}

const lockKeys = (trx: Db) => trx.raw('lock table signing_keys in share row exclusive mode');
const allRows = (db: Db) => db<SigningKeyRow>('signing_keys').select('*');

type KeyTimes = Pick<SigningKeyRow, 'kid' | 'alg' | 'not_before'>;

/** Newest first: not_before descending, then kid descending (the order loadPublicKeySet reads the table in). */
const newestFirst = (a: KeyTimes, b: KeyTimes) =>
  b.not_before.getTime() - a.not_before.getTime() || (a.kid < b.kid ? 1 : a.kid > b.kid ? -1 : 0);

/**
 * The key that signs at `now`: the newest key of ANY algorithm whose not_before has passed (ties: the greater kid),
 * or undefined when none has. SIGNING_ALG plays no part: it only chooses the algorithm of new keys, so changing it
 * never brings back an older key of that algorithm, and every process (server, `sat`) names the same signer (SPEC
 * Part 2 "Signing-key rotation never fails a verifier"). Pure.
 */
export function signerAt<R extends KeyTimes>(rows: readonly R[], now: Date): R | undefined {
  return [...rows].sort(newestFirst).find((r) => r.not_before.getTime() <= now.getTime());
}

/**
 * What a start with SIGNING_ALG `alg` at `now` finds and must do (ensureSigningKey's rule), pure:
 * - `{ add: epoch }`: no key signs at all (first start): the first key, active "since forever";
 * - `{ add: now + aheadSeconds }`: SIGNING_ALG changed and no key of `alg` is pending: a key of `alg` published now,
 *   signing `aheadSeconds` (KEY_PUBLISH_AHEAD_SECONDS) later; the current signer signs until then;
 * - `{ pending: row }`: SIGNING_ALG changed and another instance, or an earlier start, already added a key of `alg`:
 *   the earliest of them, which takes over when its time comes; nothing to add;
 * - `{}`: the signer already has `alg`: nothing to add.
 */
export function signingKeyPlan<R extends KeyTimes>(rows: readonly R[], alg: SigningAlg, now: Date, aheadSeconds: number): { add?: Date; pending?: R } {
  const signer = signerAt(rows, now);
  if (!signer) return { add: new Date(0) };
  if (signer.alg === alg) return {};
  const pending = rows.filter((r) => r.alg === alg && r.not_before.getTime() > now.getTime()).sort((a, b) => a.not_before.getTime() - b.not_before.getTime())[0];
  return pending ? { pending } : { add: new Date(now.getTime() + aheadSeconds * 1000) };
}

/** A key of the configured algorithm that is not signing yet, as ensureSigningKey reports it. */
export interface PendingSigningKey {
  kid: string;
  alg: SigningAlg;
  /** When it starts signing. */
  signsFrom: Date;
  /** Whether this call added it (false: it was there already, from another instance or an earlier start). */
  created: boolean;
  /** Keys of other algorithms that were still pending, deleted by this call (they would have taken over from it). */
  dropped: string[];
}

/**
 * Run at every start, under the table lock so that instances starting together agree on one key set: makes sure a
 * key of `alg` (SIGNING_ALG) signs or will sign (signingKeyPlan's rule). The first key signs at once ("since
 * forever", so instances whose clocks differ slightly all see it as the signer). When SIGNING_ALG changed, the new
 * key is published now and signs `aheadSeconds` (KEY_PUBLISH_AHEAD_SECONDS) later, so that every verifier's cached
 * JWKS holds it before a token carries its kid (SPEC Part 2 "Signing-key rotation never fails a verifier").
 *
 * Returns undefined when the signer has `alg` or the first key was just made; else (SIGNING_ALG changed) the key of
 * `alg` that takes over (the one made now, or the earliest one pending; with `aheadSeconds` 0 it signs at once), and
 * the pending keys of other algorithms it deleted (they would have taken over from it), for the caller to log. Throws KeyEncryptionError when a key must be added and the stored keys are sealed under
 * another key-encryption key.
 */
export async function ensureSigningKey(
  db: Db,
  ring: KeyRing,
  alg: SigningAlg,
  now: Date,
  aheadSeconds: number,
): Promise<PendingSigningKey | undefined> {
  return (db as Knex).transaction(async (trx) => {
    await lockKeys(trx);
    const existing = await allRows(trx);
    const { add, pending } = signingKeyPlan(existing, alg, now, aheadSeconds);
    if (!pending && (!add || add.getTime() === 0)) {
      if (!add) return undefined;
      ring.assertCurrent(existing);
      await trx('signing_keys').insert(toInsert(await newKey(ring, alg, add, now)));
      return undefined;
    }
    // SIGNING_ALG changed. A key of another algorithm still pending (a routine rotation just before the change) is
    // newer than the signer: when its time came it would sign, and the old algorithm would be back with
    // SIGNING_ALG unchanged. It never signed, so no token needs it: it goes, as with `sat keys rotate --now`.
    const dropped = existing.filter((r) => r.alg !== alg && r.not_before.getTime() > now.getTime()).map((r) => r.kid);
    if (dropped.length > 0) await trx('signing_keys').whereIn('kid', dropped).delete();
    if (pending) return { kid: pending.kid, alg, signsFrom: pending.not_before, created: false, dropped };
    ring.assertCurrent(existing);
    const row = await newKey(ring, alg, add!, now);
    await trx('signing_keys').insert(toInsert(row));
    return { kid: row.kid, alg, signsFrom: add!, created: true, dropped };
  });
}

/**
 * Adds a new key: published at once, signing from `now + aheadSeconds` (SPEC: KEY_PUBLISH_AHEAD_SECONDS, so that
 * every verifier's cached JWKS holds it before a token carries its kid; 0 only for `sat keys rotate --now`).
 *
 * With 0 (the emergency rotation) the keys still pending, of every algorithm, are deleted in the same transaction
 * (`dropped`): they were made before the emergency, and the newest key whose time has come signs whatever its
 * algorithm, so a pending key would otherwise take over from the emergency key when its time comes. None of them
 * has signed anything, so no token needs them.
 *
 * When no key of any algorithm signs yet (`sat keys rotate` before the first start), the key signs at once: no
 * verifier holds anything to protect and the server needs a signer. A `sat` whose SIGNING_ALG differs from the
 * server's adds a key of its own `alg`, published ahead all the same. Throws KeyEncryptionError (see KeyRing).
 *
 * `dropUnreadable` (with 0 only: `sat keys rotate --now --drop-unreadable`, the way back from a lost
 * key-encryption key or a damaged row) first deletes every key this process cannot open (`unreadable`), whatever
 * the reason: sealed under another key-encryption key, a sealed or plaintext part that does not decrypt or does
 * not pair with the published key (KeyRing.canOpen, which decrypts each row afresh).
 */
export async function rotateSigningKey(
  db: Db,
  ring: KeyRing,
  alg: SigningAlg,
  now: Date,
  aheadSeconds: number,
  options: { dropUnreadable?: boolean } = {},
): Promise<{ kid: string; signsFrom: Date; dropped: string[]; unreadable: string[] }> {
  if (options.dropUnreadable && aheadSeconds !== 0) throw new Error('dropping unreadable keys is for the emergency rotation (ahead 0) only');
  return (db as Knex).transaction(async (trx) => {
    await lockKeys(trx);
    let rows = await allRows(trx);
    // The key-encryption key was lost, or a row was damaged (docs/operations.md "Key-encryption key custody"): such
    // keys can never sign or be opened again; they go, and the tokens they signed stop verifying. Only when asked
    // for in so many words: a process with a stale key-encryption key must not delete the keys every instance can
    // open.
    const unreadable = options.dropUnreadable ? rows.filter((r) => !ring.canOpen(r)).map((r) => r.kid) : [];
    if (unreadable.length > 0) {
      await trx('signing_keys').whereIn('kid', unreadable).delete();
      rows = rows.filter((r) => !unreadable.includes(r.kid));
    }
    ring.assertCurrent(rows);
    const signing = signerAt(rows, now) !== undefined; // of any algorithm
    const signsFrom = new Date(now.getTime() + (signing ? aheadSeconds : 0) * 1000);
    const dropped = signsFrom.getTime() <= now.getTime() ? rows.filter((r) => r.not_before.getTime() > now.getTime()).map((r) => r.kid) : [];
    if (dropped.length > 0) await trx('signing_keys').whereIn('kid', dropped).delete();
    const row = await newKey(ring, alg, signsFrom, now);
    await trx('signing_keys').insert(toInsert(row));
    return { kid: row.kid, signsFrom, dropped, unreadable };
  });
}

/** True when `step` runs without a KeyEncryptionError, false when it throws one; any other error propagates. */
function succeeds(step: () => unknown): boolean {
  try {
    step();
    return true;
  } catch (err) {
    if (err instanceof KeyEncryptionError) return false;
    throw err;
  }
}

/** Why `removeSigningKey` refused: no such key, the key that signs now, or one that signed or signs within seconds. */
export class SigningKeyRemovalError extends Error {
  constructor(
    readonly reason: 'not_found' | 'signing' | 'too_soon',
    message: string,
  ) {
    super(message);
    this.name = 'SigningKeyRemovalError';
  }
}

/** How far apart the clocks of instances may be for `removeSigningKey`: each switches keys by its own clock. */
export const KEY_SWITCH_SKEW_MS = 10_000;

/**
 * Deletes the signing key `kid` at once (docs/keys.md "A leaked signing key"): it leaves every instance's JWKS at
 * its next reload (within 2 s; the embedded server at once), and tokens it signed no longer pass this server's
 * introspection. Refused (SigningKeyRemovalError) for an unknown kid ('not_found'), for the key that signs at `now`
 * ('signing': rotate with --now first), and, each instance switching keys by its own clock, for a key that stopped
 * signing or starts signing within KEY_SWITCH_SKEW_MS of `now` ('too_soon', saying how long to wait): an instance
 * whose clock lags (or runs ahead) may still sign with it, and after its reload would have no signer. Under the key
 * table's lock, as rotations are. Returns what it was: 'retiring' (superseded) or 'pending' (not signing yet).
 */
export async function removeSigningKey(db: Db, kid: string, now: Date): Promise<{ kid: string; alg: string; was: 'retiring' | 'pending' }> {
  return (db as Knex).transaction(async (trx) => {
    await lockKeys(trx);
    const rows = await allRows(trx);
    const row = rows.find((r) => r.kid === kid);
    if (!row) throw new SigningKeyRemovalError('not_found', `no signing key ${kid} (sat keys list shows them)`);
    const signer = signerAt(rows, now);
    if (signer?.kid === kid) {
      throw new SigningKeyRemovalError('signing', `${kid} is the key that signs now: run sat keys rotate --now first, then remove it`);
    }
    const tooSoon = (until: number, what: string) =>
      new SigningKeyRemovalError('too_soon', `${kid} ${what}; try again in ${Math.ceil((until - now.getTime()) / 1000)} s`);
    if (signer && signerAt(rows, new Date(now.getTime() - KEY_SWITCH_SKEW_MS))?.kid === kid) {
      throw tooSoon(startsSigning(signer) + KEY_SWITCH_SKEW_MS, 'stopped signing a moment ago: instances whose clocks lag by seconds may still sign with it');
    }
    const from = row.not_before.getTime();
    if (from > now.getTime() && from <= now.getTime() + KEY_SWITCH_SKEW_MS) {
      throw tooSoon(from + KEY_SWITCH_SKEW_MS, 'starts signing in a moment: instances whose clocks run ahead by seconds may already sign with it');
    }
    await trx('signing_keys').where({ kid }).delete();
    return { kid, alg: row.alg, was: row.not_before.getTime() > now.getTime() ? 'pending' : 'retiring' };
  });
}

/** When a key starts signing: its not_before, or its creation for the first key (active "since forever"). */
const startsSigning = (r: Pick<SigningKeyRow, 'not_before' | 'created_at'>) => Math.max(r.not_before.getTime(), r.created_at.getTime());

/**
 * For the operators' metrics (SPEC "Operations"): how long the key that signs at `now` (of any algorithm) has
 * signed (`ageSeconds`; null when none signs yet), and in how many seconds the next automatic rotation adds a key
 * (`nextRotationSeconds`, 0 when due; null when KEY_ROTATION_DAYS is 0 or there is no key). Same rule as
 * rotateSigningKeyIfDue: the newest key of any algorithm counts. Pure.
 */
export function signingKeySchedule(
  rows: ReadonlyArray<Pick<SigningKeyRow, 'not_before' | 'created_at'>>,
  now: Date,
  rotationDays: number,
  aheadSeconds: number,
): { ageSeconds: number | null; nextRotationSeconds: number | null } {
  const starts = rows.map(startsSigning);
  const signing = starts.filter((t) => t <= now.getTime());
  const ageSeconds = signing.length ? (now.getTime() - Math.max(...signing)) / 1000 : null;
  if (rotationDays <= 0 || starts.length === 0) return { ageSeconds, nextRotationSeconds: null };
  const dueAt = Math.max(...starts) + rotationDays * 86_400_000 - aheadSeconds * 1000;
  return { ageSeconds, nextRotationSeconds: Math.max(0, (dueAt - now.getTime()) / 1000) };
}

/**
 * Automatic rotation (SPEC: every KEY_ROTATION_DAYS, with the same ahead publication): when the newest key (of any
 * algorithm: a key of the previous SIGNING_ALG, or one pending after a change, counts) has signed (or will sign)
 * for `rotationDays` minus the ahead window at `now`, adds a key of `alg` that signs `aheadSeconds` later, so key
 * lifetimes stay `rotationDays`. Exactly once across instances: the check and the insert run under the table
 * lock, and a second instance then sees the new (pending) key and does nothing. Returns the new kid.
 */
export async function rotateSigningKeyIfDue(
  db: Db,
  ring: KeyRing,
  alg: SigningAlg,
  now: Date,
  rotationDays: number,
  aheadSeconds: number,
): Promise<string | undefined> {
  if (rotationDays <= 0) return undefined;
  const due = (rows: SigningKeyRow[]) => {
    const newest = Math.max(...rows.map(startsSigning));
    return Number.isFinite(newest) && now.getTime() >= newest + rotationDays * 86_400_000 - aheadSeconds * 1000;
  };
  if (!due(await allRows(db))) return undefined; // the common case, without a lock
  return (db as Knex).transaction(async (trx) => {
    await lockKeys(trx);
    const rows = await allRows(trx);
    if (!due(rows)) return undefined;
    ring.assertCurrent(rows);
    const row = await newKey(ring, alg, new Date(now.getTime() + aheadSeconds * 1000), now);
    await trx('signing_keys').insert(toInsert(row));
    return row.kid;
  });
}

/**
 * When each superseded key leaves the JWKS (and may be pruned), by loadPublicKeySet's rule: the moment its successor
 * (the next newer key whose time has come) started signing, plus retentionOf(key, `retentionMs`). Keys that sign or
 * are pending at `now` are absent. For `sat keys list`. Pure.
 */
export function retirementTimes(
  rows: ReadonlyArray<Pick<SigningKeyRow, 'kid' | 'alg' | 'not_before' | 'max_token_ttl_seconds'>>,
  now: Date,
  retentionMs: number,
): Map<string, Date> {
  const out = new Map<string, Date>();
  let supersededAt: number | undefined; // when the next newer active key started signing
  for (const row of [...rows].sort(newestFirst)) {
    if (row.not_before.getTime() > now.getTime()) continue;
    if (supersededAt !== undefined) out.set(row.kid, new Date(supersededAt + retentionOf(row, retentionMs)));
    supersededAt = row.not_before.getTime();
  }
  return out;
}

/**
 * The keys to publish and the one to sign with at `now` (`retentionMs`: this process's keyRetentionMs): the newest
 * key of any algorithm whose not_before has passed signs (signerAt), with its own algorithm (`signingAlg`); pending
 * keys are published; a superseded key stays published for retentionOf(key, retentionMs) after its successor
 * started (the longest lifetime recorded on it plus an hour). Undefined when no key signs yet. The same answer in
 * every process, whatever its SIGNING_ALG (and, for keys signed with since migration 0150, whatever its
 * ACCESS_TOKEN_TTL_SECONDS, unless it is longer than any recorded).
 */
export async function loadPublicKeySet(
  db: Db,
  now: Date,
  retentionMs: number,
): Promise<(PublicKeySet & { rows: SigningKeyRow[] }) | undefined> {
  const rows = (await db<SigningKeyRow>('signing_keys').select('*')).sort(newestFirst);
  const signer = signerAt(rows, now);
  if (!signer) return undefined;
  // Pending and signing keys have no retirement time; a superseded key is published until its own.
  const leaves = retirementTimes(rows, now, retentionMs);
  const published = rows.filter((r) => (leaves.get(r.kid)?.getTime() ?? Infinity) > now.getTime());
  const ordered = [signer, ...published.filter((r) => r.kid !== signer.kid)];
  return {
    rows: ordered,
    keys: ordered.map((r) => json(r.public_jwk) as JWK),
    signingKid: signer.kid,
    signingAlg: signer.alg as SigningAlg,
    fingerprint: `${signer.kid}|${published.map((r) => r.kid).sort().join(',')}`,
  };
}

/** loadPublicKeySet plus the private keys (opened through `ring`; throws KeyEncryptionError, never signs garbage). */
export async function loadKeySet(db: Db, ring: KeyRing, now: Date, retentionMs: number): Promise<KeySet | undefined> {
  const set = await loadPublicKeySet(db, now, retentionMs);
  if (!set) return undefined;
  return {
    keys: set.rows.map((r) => ring.privateJwk(r)),
    publicKeys: set.keys,
    signingKid: set.signingKid,
    signingAlg: set.signingAlg,
    fingerprint: set.fingerprint,
  };
}

/** A key set this process could load only in part (loadKeySetInPart): some published keys do not open here. */
export interface PartialKeySet extends KeySet {
  /** Published keys whose private part does not open in this process (sealed under a key-encryption key it lacks). */
  unopened: string[];
  /**
   * When the key this process signs with leaves the published set (retirementTimes): undefined while it is the
   * database's signer (no end in sight); a time already past when the database no longer publishes it at all. Its
   * tokens verify nowhere once it has left: they must not outlive that time.
   */
  signerPublishedUntil: Date | undefined;
}

/**
 * The key set of a process that cannot open every published key (loadKeySet threw KeyEncryptionError: a key added
 * after `sat keys rewrap`, on an instance that does not have the new key-encryption key yet). It publishes exactly
 * what the database publishes at `now` (public halves are stored in clear), so keys added, pruned or removed by
 * `sat keys remove` show in this instance's JWKS as in every other's; it signs with the database's signer when that
 * opens here, else with `previous`'s signer (what this process signed with until now: it never signs with a key it
 * could not authenticate), whose end of publication `signerPublishedUntil` gives. The private keys are the signer's
 * plus those of the published keys that open (opening fills `ring`'s cache, and may have it read its key-encryption
 * key again: KeyRing). Undefined when no key signs yet.
 */
export async function loadKeySetInPart(
  db: Db,
  ring: KeyRing,
  now: Date,
  retentionMs: number,
  previous: Pick<KeySet, 'keys' | 'signingKid' | 'signingAlg'>,
): Promise<PartialKeySet | undefined> {
  const set = await loadPublicKeySet(db, now, retentionMs);
  if (!set) return undefined;
  const opened = new Map<string, JWK>();
  const unopened: string[] = [];
  for (const row of set.rows) {
    try {
      opened.set(row.kid, ring.privateJwk(row));
    } catch (err) {
      if (!(err instanceof KeyEncryptionError)) throw err;
      unopened.push(row.kid);
    }
  }
  const ownSigner = opened.get(set.signingKid);
  const signer = ownSigner ?? previous.keys[0]!;
  const signingKid = ownSigner ? set.signingKid : previous.signingKid;
  const others = set.rows.filter((r) => r.kid !== signingKid && opened.has(r.kid)).map((r) => opened.get(r.kid)!);
  return {
    keys: [signer, ...others],
    publicKeys: set.keys,
    signingKid,
    signingAlg: ownSigner ? set.signingAlg : previous.signingAlg,
    // Another signer or another published set than the complete load's: any change of either rebuilds.
    fingerprint: `${signingKid}|${set.keys.map((k) => k.kid).sort().join(',')}|unopened:${unopened.sort().join(',')}`,
    unopened,
    signerPublishedUntil: ownSigner
      ? undefined
      : set.rows.some((r) => r.kid === signingKid)
        ? retirementTimes(set.rows, now, retentionMs).get(signingKid)
        : new Date(0),
  };
}

/**
 * Deletes the keys that are superseded and whose tokens have all expired, as one statement: a key goes only when
 * the same statement sees a newer key that has been signing for at least retentionOf(key, `retentionMs`) at `now`
 * (the longest lifetime recorded on the key plus an hour, at least this process's `retentionMs`). A key inserted at
 * any moment (even between a reload's read and this delete) is never the older one, so it is never deleted.
 */
export async function pruneSigningKeys(db: Db, now: Date, retentionMs: number): Promise<number> {
  return affectedRows(
    await db.raw(
      'delete from signing_keys k where exists ' +
        '(select 1 from signing_keys n where n.not_before > k.not_before and n.not_before <= ' +
        "?::timestamptz - greatest(?::bigint, (coalesce(k.max_token_ttl_seconds, 0)::bigint + 3600) * 1000) * interval '1 millisecond')",
      [now, retentionMs],
    ),
  );
}

/** Seals every plaintext private key under the ring's KEK (startup step when a KEK is configured). Returns the count. */
export async function sealPlaintextKeys(db: Db, ring: KeyRing): Promise<number> {
  if (!ring.kek.key) return 0;
  return (db as Knex).transaction(async (trx) => {
    await lockKeys(trx);
    const rows = await trx<SigningKeyRow>('signing_keys').whereNotNull('private_jwk');
    for (const row of rows) {
      const jwk = ring.privateJwk(row) as Record<string, unknown>;
      await trx('signing_keys').where({ kid: row.kid }).update(ring.storageOf(jwk, row.kid, row.alg));
    }
    return rows.length;
  });
}

/**
 * Whether every stored key is sealed under the key-encryption key whose id is `id` (false with no key at all): a
 * `sat keys rewrap` to that key has nothing to do, whichever key the process that asks has configured.
 */
export async function allSealedUnder(db: Db, id: string): Promise<boolean> {
  const rows = await db<SigningKeyRow>('signing_keys').select('kek_id', 'sealed_jwk');
  return rows.length > 0 && rows.every((r) => r.sealed_jwk !== null && r.kek_id === id);
}

/**
 * `sat keys rewrap`: opens every key with the current KEK and seals it under `next`, in one transaction.
 * Throws KeyEncryptionError (and changes nothing) when any key does not open.
 */
export async function rewrapSigningKeys(db: Db, ring: KeyRing, next: SecretKey): Promise<number> {
  const nextRing = new KeyRing(() => ({ key: next }));
  return (db as Knex).transaction(async (trx) => {
    await lockKeys(trx);
    const rows = await allRows(trx);
    for (const row of rows) {
      const jwk = ring.privateJwk(row) as Record<string, unknown>;
      await trx('signing_keys').where({ kid: row.kid }).update(nextRing.storageOf(jwk, row.kid, row.alg));
    }
    return rows.length;
  });
}

/**
 * Every stored key for `sat keys list`, newest first: public facts only. With `ring`, also `opens`: whether that
 * ring opens the key now (KeyRing.canOpen: decrypted afresh and checked against the published key, so a damaged
 * row says false).
 */
export async function listSigningKeys(
  db: Db,
  ring?: KeyRing,
): Promise<Array<Pick<SigningKeyRow, 'kid' | 'alg' | 'created_at' | 'not_before' | 'kek_id' | 'max_token_ttl_seconds'> & { encrypted: boolean; opens?: boolean }>> {
  const rows: SigningKeyRow[] = await db<SigningKeyRow>('signing_keys').select('*').orderBy('not_before', 'desc');
  return rows.map((r) => ({
    kid: r.kid,
    alg: r.alg,
    created_at: r.created_at,
    not_before: r.not_before,
    kek_id: r.kek_id,
    max_token_ttl_seconds: r.max_token_ttl_seconds,
    encrypted: r.sealed_jwk !== null,
    ...(ring ? { opens: ring.canOpen(r) } : {}),
  }));
}
