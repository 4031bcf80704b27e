import { randomBytes, timingSafeEqual, type ScryptOptions } from 'node:crypto';
import { PasswordPool, type PasswordPoolSettings } from './password-pool.js';
import { z } from 'zod';

/** SPEC Part 2 "Administrators": passwords have 12 to 256 characters (Unicode code points). */
export const MIN_PASSWORD_LENGTH = 12;
export const MAX_PASSWORD_LENGTH = 256;

/**
 * A new or changed password (SPEC Part 2 "Administrators"): 12 to 256 characters, counted as Unicode code points of
 * its NFC form, the form that is hashed (hashPassword): `e` + U+0301 is one character, é, so six of them are a
 * 6-character password, not a 12-character one. Existing shorter passwords keep working at sign-in until changed
 * (sign-in does not apply this rule).
 */
const passwordLength = (pw: string) => [...pw.normalize('NFC')].length;
export const newPassword = z
  .string({ error: 'must be a string' })
  .refine((pw) => passwordLength(pw) >= MIN_PASSWORD_LENGTH, `must be at least ${MIN_PASSWORD_LENGTH} characters`)
  .refine((pw) => passwordLength(pw) <= MAX_PASSWORD_LENGTH, `must be at most ${MAX_PASSWORD_LENGTH} characters`)
  // For the OpenAPI document (refinements do not show there): JSON Schema counts a string's length in code points.
  .meta({
    minLength: MIN_PASSWORD_LENGTH,
    maxLength: MAX_PASSWORD_LENGTH,
    description: 'Counted in code points of the NFC form (the form that is hashed): e + U+0301 is one character.',
  });

// scrypt (RFC 7914) from node:crypto: a memory-hard password hash, no native add-on to build. N is 2^cost, the
// cost from config `passwordHashing.cost` / PASSWORD_HASH_COST (default 15, floor 12: src/config/schema.ts).
const DEFAULT_COST = 15;
const MIN_COST = 12;
const params = { N: 2 ** DEFAULT_COST, r: 8, p: 1 };
const KEY_LENGTH = 32;
const MAXMEM = 64 * 1024 * 1024;

/** SPEC Part 2: one thread, 32 waiting (a second of the storm SPEC names); more at once is refused (429 at sign-in). */
export const DEFAULT_PASSWORD_POOL: PasswordPoolSettings = { threads: 1, maxQueue: 32 };
let pool = new PasswordPool(DEFAULT_PASSWORD_POOL);

/**
 * Replaces the hashing settings (config `passwordHashing`): threads, queue and priority (the old threads stop when
 * these change) and `cost`, log2 of scrypt's N for new hashes (default 15; below 12 is refused with an Error). The
 * dummy hash follows the cost, so an unknown email still costs what a real check costs.
 */
export function configurePasswordHashing(settings: PasswordPoolSettings & { cost?: number }): void {
  const cost = settings.cost ?? DEFAULT_COST;
  if (!Number.isInteger(cost) || cost < MIN_COST || cost > DEFAULT_COST) throw new Error(`scrypt cost must be ${MIN_COST} to ${DEFAULT_COST}`);
  if (params.N !== 2 ** cost) {
    params.N = 2 ** cost;
    dummyHash = undefined;
  }
  const same = pool.settings.threads === settings.threads && pool.settings.maxQueue === settings.maxQueue;
  if (same && (pool.settings.nice ?? 19) === (settings.nice ?? 19)) return;
  const old = pool;
  pool = new PasswordPool({ threads: settings.threads, maxQueue: settings.maxQueue, nice: settings.nice });
  void old.close();
}

/**
 * Lets the hashing threads stop once idle (PasswordPool.release); the next hash starts one again. Called when a server
 * stops and when a `sat` command ends, so a process that goes on (the tests) keeps no idle thread.
 */
export function releasePasswordHashing(): void {
  pool.release();
}

/** True when a password check would be accepted now; a sign-in is refused (429) before any database work if not. */
export function passwordCheckHasRoom(): boolean {
  return pool.hasRoom();
}

function derive(password: string, salt: Buffer, opts: ScryptOptions & { N: number; r: number; p: number }): Promise<Buffer> {
  if (!(opts.N > 1 && opts.N <= 2 ** 20 && opts.r >= 1 && opts.r <= 32 && opts.p >= 1 && opts.p <= 16)) {
    return Promise.reject(new Error('unsupported scrypt parameters'));
  }
  return pool.scrypt(password.normalize('NFC'), salt, KEY_LENGTH, { N: opts.N, r: opts.r, p: opts.p, maxmem: MAXMEM });
}

/** `scrypt$N$r$p$salt$hash` (base64url parts), N = 2^cost as configured when the hash starts. */
export async function hashPassword(password: string): Promise<string> {
  const salt = randomBytes(16);
  const at = { ...params };
  const key = await derive(password, salt, at);
  return ['scrypt', at.N, at.r, at.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

/**
 * Whether `password` (NFC) matches `stored` (`scrypt$N$r$p$salt$hash`, any cost), compared in constant time; false for
 * a malformed hash. Rejects when the hashing queue is full (PasswordQueueFullError, 429) or scrypt fails.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const [scheme, n, r, p, salt, hash] = stored.split('$');
  if (scheme !== 'scrypt' || !n || !r || !p || !salt || !hash) return false;
  const expected = Buffer.from(hash, 'base64url');
  const key = await derive(password, Buffer.from(salt, 'base64url'), { N: Number(n), r: Number(r), p: Number(p) });
  return key.length === expected.length && timingSafeEqual(key, expected);
}

/**
 * Whether `stored` (`scrypt$N$r$p$salt$hash`) was made with other parameters than a new hash gets now (a cost
 * changed since: PASSWORD_HASH_COST, `passwordHashing.cost`), so that a successful sign-in makes it again: each
 * account then costs what the setting says, and a check of a known address takes as long as the dummy check of an
 * unknown one. False for a hash of the current parameters.
 */
export function needsRehash(stored: string): boolean {
  const [scheme, n, r, p] = stored.split('$');
  return scheme !== 'scrypt' || Number(n) !== params.N || Number(r) !== params.r || Number(p) !== params.p;
}

/**
 * A hash of nothing anyone knows: verifying against it costs the same time as a real check (a sign-in with an
 * unknown address). Computed once; a failed computation (the hashing queue full at that moment) is not kept, so the
 * next call computes it again instead of failing every later sign-in. Rejects as hashPassword does.
 */
let dummyHash: Promise<string> | undefined;
export function dummyPasswordHash(): Promise<string> {
  if (dummyHash) return dummyHash;
  const computing = hashPassword(randomBytes(16).toString('hex'));
  dummyHash = computing;
  computing.catch(() => {
    if (dummyHash === computing) dummyHash = undefined;
  });
  return computing;
}

/** A generated first password (no ADMIN_PASSWORD, `sat admin add` without one): 18 random bytes, base64url (24 characters). */
export function generatePassword(): string {
  return randomBytes(18).toString('base64url');
}
