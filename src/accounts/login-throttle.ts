import type { Config } from '../config/index.js';
import { addressBucket } from '../address.js';
import { normaliseEmail } from '../text.js';
import { affectedRows, type Db, type LoginThrottleRow } from '../db/index.js';

export type ThrottleSettings = Config['loginThrottle'];

export interface ThrottleVerdict {
  /** Seconds until the window of the blocking key ends; set when the attempt must be refused (429). */
  retryAfterSeconds?: number;
  /** How long to wait before checking the password. */
  delayMs: number;
}

const MAX_DELAY_MS = 10_000;

/** The throttle key of an email: its one normalised spelling, so look-alike spellings share one bucket. */
export const emailKey = (email: string): string => `email:${normaliseEmail(email)}`;
/**
 * The throttle key of a client address: its bucket (`addressBucket`: an IPv6 address by its /64, one subscriber's
 * network where a host can pick any of 2^64 addresses; an IPv4 address, also IPv4-mapped IPv6, by itself).
 */
export const addressKey = (ip: string | null | undefined): string => (ip ? `ip:${addressBucket(ip)}` : 'ip:unknown');

/**
 * Counts this attempt against each key *before* the password is checked, in one atomic upsert, so a burst of
 * parallel guesses cannot all slip under the limit; a successful sign-in gives the attempt back (see
 * `forgiveAttempt`). Counters live in the database, so every instance sees the same numbers. A key's window
 * starts at its first failure and lasts `windowSeconds`; an old window restarts at 1. A client address (`ip:` key)
 * waits and is refused at `perAddressFactor` times the thresholds of an account (`email:` key).
 */
export async function registerAttempt(db: Db, keys: string[], now: Date, s: ThrottleSettings): Promise<ThrottleVerdict> {
  const windowStart = new Date(now.getTime() - s.windowSeconds * 1000);
  const values = keys.map(() => '(?, 1, ?)').join(', ');
  const result = await db.raw(
    `insert into login_throttle (key, failures, window_started_at) values ${values}
       on conflict (key) do update set
         failures = case when login_throttle.window_started_at <= ? then 1 else login_throttle.failures + 1 end,
         window_started_at = case when login_throttle.window_started_at <= ? then excluded.window_started_at
                                  else login_throttle.window_started_at end
     returning key, failures, window_started_at`,
    [...keys.flatMap((k) => [k, now]), windowStart, windowStart],
  );
  const rows = (result as { rows: LoginThrottleRow[] }).rows;
  let retryAfterSeconds: number | undefined;
  let delayMs = 0;
  for (const row of rows) {
    const earlier = row.failures - 1; // attempts before this one that have not been given back
    const started = new Date(row.window_started_at).getTime();
    // A client address gets `perAddressFactor` times an account's allowance (config/schema.ts).
    const factor = row.key.startsWith('ip:') ? (s.perAddressFactor ?? 1) : 1;
    if (earlier >= s.blockAfterFailures * factor) {
      const seconds = Math.max(1, Math.ceil((started + s.windowSeconds * 1000 - now.getTime()) / 1000));
      retryAfterSeconds = Math.max(retryAfterSeconds ?? 0, seconds);
    } else if (earlier >= s.delayAfterFailures * factor) {
      delayMs = Math.max(delayMs, Math.min(MAX_DELAY_MS, s.delayMs * (earlier - s.delayAfterFailures * factor + 1)));
    }
  }
  return retryAfterSeconds === undefined ? { delayMs } : { retryAfterSeconds, delayMs: 0 };
}

/**
 * The throttle key of password-reset requests from a client address (same bucket as `addressKey`). A key of its own,
 * never passed to sign-in: reset requests must not use up anybody's sign-in allowance, nor sign-ins theirs.
 */
export const resetAddressKey = (ip: string | null | undefined): string => `reset:${addressKey(ip)}`;

/**
 * Counts a password-reset request against its client address (`resetAddressKey`), in the sign-in throttle's table
 * and window, so the row expires and is capped with the others (SPEC Part 2 "Bounded state"). True while the
 * address is within `perAddress` requests in the window; never a wait (the answer is 202 either way).
 */
export async function registerResetRequest(db: Db, ip: string | null | undefined, now: Date, s: ThrottleSettings, perAddress: number): Promise<boolean> {
  // Refused from the (perAddress + 1)-th request of the sign-in throttle's window.
  return (await registerAddressCall(db, resetAddressKey(ip), now, s, s.windowSeconds, perAddress)) === undefined;
}

/**
 * Counts one call of an unauthenticated endpoint against `key` (e.g. `report:ip:…` for POST /credentials/revoke) in
 * the throttle table, over a window of `windowSeconds`, so that the limit holds across every instance on the
 * database (an in-memory count allowed each instance its own). The row expires and is capped with the sign-in
 * throttle's (SPEC Part 2 "Bounded state"). Returns the seconds to wait once `limit` calls were counted in the
 * window, or undefined while within it.
 */
export async function registerAddressCall(
  db: Db,
  key: string,
  now: Date,
  s: ThrottleSettings,
  windowSeconds: number,
  limit: number,
): Promise<number | undefined> {
  const verdict = await registerAttempt(db, [key], now, { ...s, windowSeconds, delayAfterFailures: limit, blockAfterFailures: limit, perAddressFactor: 1 });
  return verdict.retryAfterSeconds;
}

/**
 * Gives back the one attempt registerAttempt counted against each of `keys`, for an attempt that was not a wrong
 * password (the server could not finish it, or the account's lockout refused it unchecked): the counts go down by
 * one, never below 0, and nothing else changes.
 */
export async function giveBackAttempt(db: Db, keys: string[]): Promise<void> {
  await db('login_throttle').whereIn('key', keys).update({ failures: db.raw('greatest(failures - 1, 0)') });
}

/**
 * After a successful sign-in: the email's failures are forgotten (SPEC: success resets it) and the address
 * gets this attempt back, so administrators signing in from one office address do not use up its allowance.
 */
export async function forgiveAttempt(db: Db, email: string, address: string): Promise<void> {
  await db('login_throttle').where({ key: email }).delete();
  await giveBackAttempt(db, [address]);
}

/**
 * Finished windows go; then, if more than `maxRows` rows are left (a flood from many addresses or emails), the
 * least telling rows go until `maxRows` remain (SPEC Part 2 "Bounded state"). Kept first: accounts being slowed
 * down or locked out (`email:` rows at `delayAfterFailures` or more), then rows by failures, most first, then the
 * newest windows. So a flood of cheap rows (one reset request or one refused sign-in from each of many addresses)
 * cannot push a locked-out account's row out and give an attacker a fresh allowance of guesses: to evict it, the
 * flood would need more than `maxRows` accounts slowed down themselves, each of those failures a password check.
 */
export async function pruneLoginThrottle(db: Db, now: Date, s: ThrottleSettings): Promise<number> {
  const expired = affectedRows(
    await db('login_throttle')
      .where('window_started_at', '<=', new Date(now.getTime() - s.windowSeconds * 1000))
      .delete(),
  );
  const over = affectedRows(
    await db.raw(
      `delete from login_throttle where key in (
         select key from login_throttle
          order by (key like 'email:%' and failures >= ?) desc, failures desc, window_started_at desc
         offset ?)`,
      [s.delayAfterFailures, s.maxRows],
    ),
  );
  return expired + over;
}
