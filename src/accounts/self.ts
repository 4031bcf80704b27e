// The signed-in administrator's own account (SPEC Part 2 "Administrators"): change password, see and end sessions.
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { recordAudit } from '../audit/index.js';
import { affectedRows, isUuid, transactionWithRetry, type AdminRow, type AdminSessionRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, isValidationFailureAt, RateLimitedError } from '../errors.js';
import { queuePasswordChangedMail } from '../mail/index.js';
import { addressKey, emailKey, forgiveAttempt, giveBackAttempt, registerAttempt } from './login-throttle.js';
import { voidPasswordResetLinks } from './one-time.js';
import { hashPassword, newPassword, verifyPassword } from './passwords.js';
import type { Session, SessionMeta } from './sessions.js';

/** POST /admin/api/me/password body (strict): `current_password` (1 to 1024 characters) and a `new_password`. */
export const changePasswordBody = z
  .object({
    current_password: z.string({ error: 'must be a string' }).min(1, 'is required').max(1024, 'must be at most 1024 characters'),
    new_password: newPassword,
  })
  .strict();
export type ChangePasswordInput = z.infer<typeof changePasswordBody>;

/** A session as GET /admin/api/me/sessions shows it. */
export interface SessionResource {
  id: string;
  created_at: string;
  last_seen_at: string;
  ip: string | null;
  user_agent: string | null;
  current: boolean;
}

const auditOf = (session: Session, meta: SessionMeta) => ({
  organisation_id: session.admin.organisation.id,
  actor_id: session.admin.id,
  actor_email: session.admin.email,
  ip: meta.ip ?? null,
  subject_admin: { id: session.admin.id, email: session.admin.email },
});

/**
 * POST /admin/api/me/password: checks the current password (the attempt counts against the sign-in throttle of
 * the account and the address: a stolen session must not become a password oracle), sets the new one, ends every
 * other session of this administrator and mails the owner. A wrong current password is 400 validation_failed
 * (not 401: the session itself is fine).
 */
export async function changePassword(deps: Deps, session: Session, input: ChangePasswordInput, meta: SessionMeta = {}): Promise<void> {
  const db = deps.db.knex;
  const keys = [emailKey(session.admin.email), addressKey(meta.ip)];
  const verdict = await registerAttempt(db, keys, deps.clock(), deps.config.loginThrottle);
  if (verdict.retryAfterSeconds !== undefined) {
    throw new RateLimitedError('Too many failed attempts. Try again later.', verdict.retryAfterSeconds);
  }
  if (verdict.delayMs > 0) await sleep(verdict.delayMs);
  try {
    await setNewPassword(deps, session, input, meta, keys);
  } catch (err) {
    // Only a wrong current password counts: an attempt the server could not finish (a full hashing queue, a
    // database outage) is given back, as at sign-in.
    if (!isValidationFailureAt(err, 'current_password')) await giveBackAttempt(db, keys).catch(() => undefined); // best effort: it may be down
    throw err;
  }
}

const currentPasswordWrong = () =>
  new AppError('validation_failed', 'The current password is not correct.', [{ path: 'current_password', message: 'is not correct' }]);

/**
 * changePassword once the attempt is counted: the check of the current password (hashing, outside any transaction),
 * then the change, which holds only if nothing changed meanwhile: the administrator's row is locked and must still
 * have the hash the password was checked against, or one the password given still matches (a reset or another change
 * in between makes the password given no longer current: 400 as a wrong one; a sign-in that made its hash again at
 * the current cost does not), and the caller's session must still exist (a reset in between ended it: 401).
 * Locks the admins row first, as a password reset does (password-reset.ts), so the two never deadlock.
 */
async function setNewPassword(deps: Deps, session: Session, input: ChangePasswordInput, meta: SessionMeta, keys: string[]): Promise<void> {
  const db = deps.db.knex;
  const admin = await db<AdminRow>('admins').where({ id: session.admin.id }).first();
  if (!admin || !(await verifyPassword(input.current_password, admin.password_hash))) throw currentPasswordWrong();
  const hash = await hashPassword(input.new_password);
  const now = deps.clock();
  let checked = admin.password_hash; // the hash current_password was checked against
  for (let attempt = 1; ; attempt++) {
    const changed = await transactionWithRetry(db, async (trx) => {
      // FOR NO KEY UPDATE, as sign-in locks it (sessions.ts): it orders the writers of this row (a reset's
      // confirmation too) but not the inserts that point at it (a reset request's new link), which FOR UPDATE would
      // block: a deadlock when this transaction then voids that request's links.
      const locked = await trx<AdminRow>('admins').where({ id: admin.id }).forNoKeyUpdate().first('password_hash');
      if (!locked) throw new AppError('unauthorized', 'Your session has ended: this administrator was removed.');
      if (locked.password_hash !== checked) return locked.password_hash; // checked again below, outside the lock
      if (!(await trx('admin_sessions').where({ id: session.id }).first('id'))) {
        throw new AppError('unauthorized', 'Your session has ended.');
      }
      await trx('admins').where({ id: admin.id }).update({ password_hash: hash });
      await trx('admin_sessions').where({ admin_id: admin.id }).whereNot({ id: session.id }).delete();
      // Outstanding reset links were asked for with the old password in mind: they no longer apply.
      await voidPasswordResetLinks(trx, admin.id, now);
      await recordAudit(trx, { ...auditOf(session, meta), action: 'admin.password_changed', created_at: now });
      await queuePasswordChangedMail(trx, deps.config, { to: admin.email, how: 'changed', now, ip: meta.ip ?? null });
      await forgiveAttempt(trx, keys[0]!, keys[1]!);
      return undefined;
    });
    if (changed === undefined) return;
    // Changed meanwhile: a reset or another change (the password given is no longer current), or a sign-in that made
    // the same password's hash again at the current cost (sessions.ts; still current). Checked against the hash as
    // it is now, with no row lock or connection held while hashing.
    if (attempt >= 3 || !(await verifyPassword(input.current_password, changed))) throw currentPasswordWrong();
    checked = changed;
  }
}

/** GET /admin/api/me/sessions: this administrator's live sessions, newest first; `current` marks the caller's. */
export async function listOwnSessions(deps: Deps, session: Session): Promise<{ items: SessionResource[] }> {
  const rows = await deps.db
    .knex<AdminSessionRow>('admin_sessions')
    .where({ admin_id: session.admin.id })
    .andWhere('expires_at', '>', deps.clock())
    .orderBy([
      { column: 'created_at', order: 'desc' },
      { column: 'id', order: 'desc' },
    ]);
  return {
    items: rows.map((row) => ({
      id: row.id,
      created_at: new Date(row.created_at).toISOString(),
      last_seen_at: new Date(row.last_seen_at ?? row.created_at).toISOString(),
      ip: row.ip,
      user_agent: row.user_agent ?? null,
      current: row.id === session.id,
    })),
  };
}

/**
 * POST /admin/api/me/sessions/{id}/revoke: ends one of the caller's own live sessions, as GET /me/sessions lists them
 * (another's, an expired one, or none: 404).
 */
export async function revokeOwnSession(deps: Deps, session: Session, id: string, meta: SessionMeta = {}): Promise<void> {
  if (!isUuid(id)) throw new AppError('not_found', 'No such session.');
  await deps.db.knex.transaction(async (trx) => {
    const deleted = affectedRows(
      await trx('admin_sessions').where({ id, admin_id: session.admin.id }).andWhere('expires_at', '>', deps.clock()).delete(),
    );
    if (deleted === 0) throw new AppError('not_found', 'No such session.');
    await recordAudit(trx, { ...auditOf(session, meta), action: 'admin.session_revoked', created_at: deps.clock() });
  });
}

/** POST /admin/api/me/sessions/revoke-others: ends every session of the caller but this one; returns how many. */
export async function revokeOtherSessions(deps: Deps, session: Session, meta: SessionMeta = {}): Promise<number> {
  return deps.db.knex.transaction(async (trx) => {
    const revoked = affectedRows(
      // The live ones, as listOwnSessions shows them (expired ones are pruned by the housekeeping job).
      await trx('admin_sessions').where({ admin_id: session.admin.id }).whereNot({ id: session.id }).andWhere('expires_at', '>', deps.clock()).delete(),
    );
    if (revoked > 0) {
      await recordAudit(trx, { ...auditOf(session, meta), action: 'admin.session_revoked', created_at: deps.clock() });
    }
    return revoked;
  });
}
