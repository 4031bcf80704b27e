// Password reset (SPEC Part 2 "Administrators"): a one-time link by mail (valid 1 h), or `sat admin reset-password`.
// Either way the new password ends every session of the administrator, is audited and the owner gets a mail.
import type { Knex } from 'knex';
import { z } from 'zod';
import { recordAudit } from '../audit/index.js';
import { affectedRows, lockOrganisation, transactionWithRetry, type AdminRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { countPasswordResetMails, queuePasswordChangedMail, queuePasswordResetMail, withdrawUnsentPasswordResetMail } from '../mail/index.js';
import { passwordResetsNotSent } from '../metrics.js';
import { registerResetRequest } from './login-throttle.js';
import { consumeOneTimeToken, countedTokenUse, forgiveTokenUse, issueOneTimeToken, usableOneTimeTokenAdminId, voidPasswordResetLinks } from './one-time.js';
import { generatePassword, hashPassword, newPassword } from './passwords.js';
import * as q from './queries.js';
import type { SessionMeta } from './sessions.js';

/** POST /admin/api/password-reset body (strict): `email`, trimmed, 1 to 254 characters. */
export const passwordResetBody = z
  .object({ email: z.string({ error: 'must be a string' }).trim().min(1, 'is required').max(254, 'must be at most 254 characters') })
  .strict();
export type PasswordResetInput = z.infer<typeof passwordResetBody>;

/** POST /admin/api/password-reset/confirm body (strict): the one-time `token` from the mail and a `new_password`. */
export const passwordResetConfirmBody = z
  .object({
    token: z.string({ error: 'must be a string' }).min(1, 'is required').max(200, 'is not valid'),
    new_password: newPassword,
  })
  .strict();
export type PasswordResetConfirmInput = z.infer<typeof passwordResetConfirmBody>;

/**
 * POST /admin/api/password-reset: always 202, and the same answer for any address. The request counts against its
 * client address's reset limit (`passwordReset.perAddress` per sign-in throttle window), never against the sign-in
 * throttle: asking for resets in someone's name must not lock them out of signing in. Then it answers at once:
 * looking the address up and queuing the mail happen after the answer, so a known and an unknown address take the
 * same time. At most `passwordReset.mailsPerEmail` reset mails go to one administrator per `mailWindowSeconds`, so
 * nobody can flood a mailbox. Past either limit nothing more is made or mailed (counted in
 * `sat_password_resets_throttled_total`, not logged). Resolves when the answer may be sent; `done` settles when the
 * background work has finished (tests).
 */
export async function requestPasswordReset(
  deps: Deps,
  input: PasswordResetInput,
  meta: SessionMeta = {},
): Promise<{ done: Promise<void> }> {
  const allowed = await registerResetRequest(
    deps.db.knex,
    meta.ip,
    deps.clock(),
    deps.config.loginThrottle,
    deps.config.passwordReset.perAddress,
  );
  if (!allowed) {
    // SPEC "202 always": past the limit the answer is the same, and nothing is looked up, made or mailed. Counted
    // in a metric, not logged: a flood must not add a log line per request beside the access line.
    passwordResetsNotSent.inc();
    return { done: Promise.resolve() };
  }
  const done = issuePasswordReset(deps, input.email, meta).catch((err: unknown) => {
    deps.log.error('password reset mail could not be queued', { err });
  });
  return { done };
}

async function issuePasswordReset(deps: Deps, email: string, meta: SessionMeta): Promise<void> {
  const admin = await q.findAdminByEmail(deps.db.knex, email);
  if (!admin) return;
  const now = deps.clock();
  const { mailsPerEmail, mailWindowSeconds } = deps.config.passwordReset;
  await deps.db.knex.transaction(async (trx) => {
    // The organisation's lock first (issueOneTimeToken takes it too): requests at once count each other's mails.
    await lockOrganisation(trx, admin.organisation_id);
    const recent = await countPasswordResetMails(trx, admin.email, new Date(now.getTime() - mailWindowSeconds * 1000));
    if (recent >= mailsPerEmail) {
      passwordResetsNotSent.inc();
      return;
    }
    const issued = await issueOneTimeToken(trx, {
      purpose: 'password_reset',
      organisationId: admin.organisation_id,
      adminId: admin.id,
      email: admin.email,
      createdBy: null,
      now,
    });
    await withdrawUnsentPasswordResetMail(trx, issued.replaced);
    await queuePasswordResetMail(trx, deps.config, {
      to: admin.email,
      token: issued.token,
      expiresAt: issued.expiresAt,
      now,
      ip: meta.ip ?? null,
    });
  });
}

/**
 * POST /admin/api/password-reset/confirm: sets the new password with a one-time link's token and ends every
 * session of that administrator. A bad, used or expired token is 400 validation_failed and counts against the
 * address's sign-in throttle.
 */
export async function confirmPasswordReset(deps: Deps, input: PasswordResetConfirmInput, meta: SessionMeta = {}): Promise<void> {
  await countedTokenUse(deps, meta.ip ?? null, async (address) => {
    const hash = await hashPassword(input.new_password);
    const now = deps.clock();
    await transactionWithRetry(deps.db.knex, async (trx) => {
      // The administrator's row locked first, as a password change locks it (self.ts), then the link used: one of
      // the two waits for the other, and whichever comes second sees what the first did (a change voids this link).
      const adminId = await usableOneTimeTokenAdminId(trx, 'password_reset', input.token, now);
      if (adminId) await trx('admins').where({ id: adminId }).forNoKeyUpdate().first('id'); // as self.ts, and why
      const reset = await consumeOneTimeToken(trx, 'password_reset', input.token, now);
      const admin = reset.admin_id ? await trx<AdminRow>('admins').where({ id: reset.admin_id }).first() : undefined;
      if (!admin) {
        throw new AppError('validation_failed', 'The link is not valid.', [{ path: 'token', message: 'is not valid' }]);
      }
      await setPasswordEndingSessions(trx, admin, hash, now);
      await recordAudit(trx, {
        organisation_id: admin.organisation_id,
        actor_id: admin.id,
        actor_email: admin.email,
        action: 'admin.password_reset',
        ip: meta.ip ?? null,
        created_at: now,
        subject_admin: { id: admin.id, email: admin.email },
      });
      await queuePasswordChangedMail(trx, deps.config, { to: admin.email, how: 'reset', now, ip: meta.ip ?? null });
      await forgiveTokenUse(trx, admin.email, address);
    });
  });
}

/** `sat admin reset-password` arguments (strict): the administrator's `email` and an optional new `password`. */
export const cliResetPasswordArgs = z
  .object({
    email: z.string().trim().min(1, 'email is required').max(254),
    password: newPassword.optional(),
  })
  .strict();

/**
 * `sat admin reset-password --email E`: a new password (the given one, or a generated one returned once for the
 * operator to hand over), every session ended, audited as done by "cli", and the owner mailed.
 */
export async function resetPasswordFromCli(
  deps: Deps,
  args: z.infer<typeof cliResetPasswordArgs>,
): Promise<{ admin: { id: string; email: string }; sessions_ended: number; generated_password?: string }> {
  const admin = await q.findAdminByEmail(deps.db.knex, args.email);
  if (!admin) throw new AppError('not_found', `no administrator with the email ${args.email}`);
  const generatedPassword = args.password === undefined ? generatePassword() : undefined;
  const hash = await hashPassword(args.password ?? (generatedPassword as string));
  const now = deps.clock();
  const ended = await transactionWithRetry(deps.db.knex, async (trx) => {
    const n = await setPasswordEndingSessions(trx, admin, hash, now);
    await recordAudit(trx, {
      organisation_id: admin.organisation_id,
      actor_id: null,
      actor_email: 'cli',
      action: 'admin.password_reset',
      created_at: now,
      subject_admin: { id: admin.id, email: admin.email },
    });
    await queuePasswordChangedMail(trx, deps.config, { to: admin.email, how: 'reset_cli', now, ip: null });
    return n;
  });
  return { admin: { id: admin.id, email: admin.email }, sessions_ended: ended, ...(generatedPassword ? { generated_password: generatedPassword } : {}) };
}

/**
 * New hash; every session and every outstanding reset link of the administrator gone, and the mails of those links
 * that have not gone out withdrawn (they would arrive with a dead link). Returns sessions ended.
 */
async function setPasswordEndingSessions(trx: Knex.Transaction, admin: AdminRow, hash: string, now: Date): Promise<number> {
  await trx('admins').where({ id: admin.id }).update({ password_hash: hash }); // the admins row first (self.ts)
  await voidPasswordResetLinks(trx, admin.id, now);
  return affectedRows(await trx('admin_sessions').where({ admin_id: admin.id }).delete());
}
