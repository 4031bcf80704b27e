// One-time tokens of administrator accounts (SPEC Part 2 "Administrators"): invitations (72 h) and password
// resets (1 h). 256 random bits with a recognisable prefix, shown once (in the mail), stored only as SHA-256,
// single use (consumed by one conditional UPDATE, so two concurrent uses cannot both succeed), expiring.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { setTimeout as sleep } from 'node:timers/promises';
import { lockOrganisation, type AdminOneTimeTokenRow, type Db, type OneTimeTokenPurpose } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, isValidationFailureAt, RateLimitedError } from '../errors.js';
import { withdrawUnsentPasswordResetMail } from '../mail/index.js';
import { normaliseEmail } from '../text.js';
import { addressKey, emailKey, forgiveAttempt, giveBackAttempt, registerAttempt } from './login-throttle.js';

/** How long an invitation link works, in ms: 72 hours. */
export const INVITATION_TTL_MS = 72 * 3600_000;
/** How long a password-reset link works, in ms: 1 hour. */
export const PASSWORD_RESET_TTL_MS = 3600_000;

const PREFIX: Record<OneTimeTokenPurpose, string> = { invitation: 'sai_', password_reset: 'sar_' };
const TTL: Record<OneTimeTokenPurpose, number> = { invitation: INVITATION_TTL_MS, password_reset: PASSWORD_RESET_TTL_MS };

const hashOneTimeToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('base64url');

/**
 * Issues a token (inside the caller's transaction) and returns it in clear, once: the caller puts it in a mail.
 * Earlier unused tokens of the same purpose for the same address in the organisation are withdrawn, so at most one
 * link per person and purpose works at a time (and the table stays bounded), also when several are issued at once;
 * they are returned as `replaced` (address and `created_at`, which is when their mail was queued), so the caller can
 * drop a mail that has not gone out yet with them (dropUnsentInvitationMail).
 */
export async function issueOneTimeToken(
  trx: Db,
  f: {
    purpose: OneTimeTokenPurpose;
    organisationId: string;
    adminId: string | null;
    email: string;
    createdBy: string | null;
    now: Date;
  },
): Promise<{ id: string; token: string; expiresAt: Date; replaced: Array<{ email: string; created_at: Date }> }> {
  const emailKey = normaliseEmail(f.email);
  // Issues of one organisation one at a time: two at once each withdrew only the links it could see (not the other's
  // uncommitted one), and both links stayed live. Waiting here, the second sees the first's link and withdraws it.
  await lockOrganisation(trx, f.organisationId);
  const replaced = (await trx('admin_one_time_tokens')
    .where({ purpose: f.purpose, email_key: emailKey, organisation_id: f.organisationId })
    .whereNull('used_at')
    .delete()
    .returning(['email', 'created_at'])) as Array<{ email: string; created_at: Date }>;
  const token = PREFIX[f.purpose] + randomBytes(32).toString('base64url');
  const expiresAt = new Date(f.now.getTime() + TTL[f.purpose]);
  const id = randomUUID();
  await trx<AdminOneTimeTokenRow>('admin_one_time_tokens').insert({
    id,
    purpose: f.purpose,
    token_hash: hashOneTimeToken(token),
    organisation_id: f.organisationId,
    admin_id: f.adminId,
    email: f.email,
    email_key: emailKey,
    created_by: f.createdBy,
    created_at: f.now,
    expires_at: expiresAt,
    used_at: null,
  });
  return { id, token, expiresAt, replaced };
}

/**
 * Voids every outstanding password-reset link of administrator `adminId` (a password set another way, the
 * administrator removed), inside the caller's transaction, and withdraws the mails of those links that have not gone
 * out (they would arrive later with a dead link). Returns how many links it voided.
 */
export async function voidPasswordResetLinks(trx: Knex.Transaction, adminId: string, now: Date): Promise<number> {
  const voided = (await trx('admin_one_time_tokens')
    .where({ admin_id: adminId, purpose: 'password_reset' })
    .whereNull('used_at')
    .delete()
    .returning(['email', 'created_at'])) as Array<{ email: string; created_at: Date }>;
  await withdrawUnsentPasswordResetMail(trx, voided);
  return voided.length;
}

const invalidToken = () =>
  new AppError('validation_failed', 'The link is not valid: it was used already, has expired or was replaced by a newer one.', [
    { path: 'token', message: 'is not valid, was used already or has expired' },
  ]);

/**
 * The administrator id a usable (unused, unexpired) one-time token of `purpose` belongs to, without using it, or
 * undefined. Lets a caller lock that administrator's row before consumeOneTimeToken, in the order every password
 * change takes its locks (admins first), so a reset and a change at once wait for each other instead of deadlocking.
 */
export async function usableOneTimeTokenAdminId(trx: Db, purpose: OneTimeTokenPurpose, token: string, now: Date): Promise<string | undefined> {
  const row = (await usable(trx, purpose, token, now).first('admin_id')) as Pick<AdminOneTimeTokenRow, 'admin_id'> | undefined;
  return row?.admin_id ?? undefined;
}

/** The rows of `purpose` whose token is `token` and that may still be used (unused, unexpired at `now`). */
const usable = (trx: Db, purpose: OneTimeTokenPurpose, token: string, now: Date) =>
  trx<AdminOneTimeTokenRow>('admin_one_time_tokens').where({ token_hash: hashOneTimeToken(token), purpose }).whereNull('used_at').andWhere('expires_at', '>', now);

/**
 * Marks the token used and returns its row, inside the caller's transaction; an unknown, used, expired or
 * wrong-purpose token is 400 validation_failed (one answer for all, so the reason is not revealed).
 */
export async function consumeOneTimeToken(
  trx: Db,
  purpose: OneTimeTokenPurpose,
  token: string,
  now: Date,
): Promise<AdminOneTimeTokenRow> {
  const rows = (await usable(trx, purpose, token, now).update({ used_at: now }).returning('*')) as AdminOneTimeTokenRow[];
  const row = rows[0];
  if (!row) throw invalidToken();
  return row;
}

/**
 * Using a one-time token counts against the sign-in throttle of the client address (SPEC: "counted against the
 * same throttles as sign-in"): guessing links is guessing passwords. Refuses with 429 past the limit, waits
 * when the throttle says so. Returns the key to forgive once the token proved good.
 */
async function throttleTokenUse(deps: Deps, ip: string | null): Promise<string> {
  const key = addressKey(ip);
  const verdict = await registerAttempt(deps.db.knex, [key], deps.clock(), deps.config.loginThrottle);
  if (verdict.retryAfterSeconds !== undefined) {
    throw new RateLimitedError('Too many failed attempts. Try again later.', verdict.retryAfterSeconds);
  }
  if (verdict.delayMs > 0) await sleep(verdict.delayMs);
  return key;
}

/**
 * One use of a one-time token (accepting an invitation, confirming a password reset) counted as throttleTokenUse
 * counts it: `use` gets the address key to forgive once the token proved good. When `use` fails for another reason
 * than a bad token (a full hashing queue, 429; a database outage; an address that became an administrator, 409),
 * the address gets its attempt back (best effort), as a sign-in the server could not finish does. Rethrows.
 */
export async function countedTokenUse<T>(deps: Deps, ip: string | null, use: (address: string) => Promise<T>): Promise<T> {
  const address = await throttleTokenUse(deps, ip);
  try {
    return await use(address);
  } catch (err) {
    // Only a bad, used, replaced or expired token (400 validation_failed on `token`) counts.
    if (!isValidationFailureAt(err, 'token')) await giveBackAttempt(deps.db.knex, [address]).catch(() => undefined); // the database may be down
    throw err;
  }
}

/** After a good token: the address gets its attempt back, the account's failures are forgotten (as at sign-in). */
export async function forgiveTokenUse(trx: Db, email: string, address: string): Promise<void> {
  await forgiveAttempt(trx, emailKey(email), address);
}
