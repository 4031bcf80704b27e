// Administrators of an organisation (SPEC Part 2 "Administrators"): list, invite, accept an invitation, remove.
// Every call but accepting an invitation acts for a signed-in administrator and sees only their organisation:
// another organisation's administrator is a 404, exactly like one that does not exist.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { recordAudit } from '../audit/index.js';
import { isUniqueViolation, isUuid, lockOrganisation, transactionWithRetry, type AdminRow, type Db } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { dropUnsentInvitationMail, queueInvitationMail } from '../mail/index.js';
import { isEmailAddress, normaliseEmail } from '../text.js';
import { consumeOneTimeToken, countedTokenUse, forgiveTokenUse, issueOneTimeToken, voidPasswordResetLinks } from './one-time.js';
import { hashPassword, newPassword } from './passwords.js';
import * as q from './queries.js';
import { createSession, signedIn, type SessionMeta, type SignedIn } from './sessions.js';

/** Who acts: the signed-in administrator, or (id null, email "cli") the `sat` tool's operator (the tokens module's
 * Actor fits). */
export interface AdminActor {
  id: string | null;
  email: string;
  organisation_id: string;
}

/** An administrator as the admin API shows one. */
export interface AdminResource {
  id: string;
  email: string;
  created_at: string;
  last_sign_in_at: string | null;
}

/**
 * An address as given, in the one spelling addresses are compared and stored in (NFKC, case folding: `İvan`,
 * `straße`, full-width letters), so a look-alike of an existing administrator's address is that administrator.
 */
const normalisedAddress = z
  .string({ error: 'must be a string' })
  .trim()
  .min(1, 'is required')
  .max(254, 'must be at most 254 characters')
  .transform(normaliseEmail);

/** Body of POST /admin/api/admins: `{email}`, normalised (normaliseEmail) then checked as an address (409 admin_exists
 * for a look-alike, not a malformed address). */
export const inviteAdminBody = z.object({ email: normalisedAddress.refine(isEmailAddress, 'must be an email address') }).strict();
export type InviteAdminInput = z.infer<typeof inviteAdminBody>;

/**
 * `{email}` naming an administrator or invitation that exists (`sat admin remove|withdraw`): normalised as stored,
 * without the address rules of a new one, so an address an earlier release took is still found.
 */
export const existingAdminEmail = z.object({ email: normalisedAddress }).strict();

const oneTimeTokenField = z.string({ error: 'must be a string' }).min(1, 'is required').max(200, 'is not valid');

/** Body of POST /admin/api/invitations/accept: the link's `token` and the new administrator's `password` (12-256). */
export const acceptInvitationBody = z.object({ token: oneTimeTokenField, password: newPassword }).strict();
export type AcceptInvitationInput = z.infer<typeof acceptInvitationBody>;

const toResource = (row: AdminRow): AdminResource => ({
  id: row.id,
  email: row.email,
  created_at: new Date(row.created_at).toISOString(),
  last_sign_in_at: row.last_sign_in_at ? new Date(row.last_sign_in_at).toISOString() : null,
});

const adminExists = (email: string) =>
  new AppError('admin_exists', `${email} is already an administrator.`, [{ path: 'email', message: 'is already an administrator' }]);

const notFound = () => new AppError('not_found', 'No such administrator.');

/** Who the invitation mail says invited the recipient when `sat admin invite` did. */
const OPERATOR = 'An operator of this server';

/** GET /admin/api/admins: the organisation's administrators, oldest first. */
export async function listAdmins(deps: Deps, actor: AdminActor): Promise<{ items: AdminResource[] }> {
  const rows = await deps.db.knex<AdminRow>('admins').where({ organisation_id: actor.organisation_id }).orderBy([
    { column: 'created_at', order: 'asc' },
    { column: 'id', order: 'asc' },
  ]);
  return { items: rows.map(toResource) };
}

/**
 * POST /admin/api/admins: mails `email` a one-time link (valid 72 h) to the console, where the invitee sets a
 * password. 409 admin_exists when the address (after normaliseEmail) is an administrator of any organisation.
 * Inviting the same address again replaces the earlier link, and drops the earlier mail if it has not gone out yet
 * (as a withdrawal does). Invitations of one organisation are made one at a time (its lock first, the time read
 * after it): of several at once, on any instance, the last one made is the newest, its link is the one that works,
 * and its mail is the one still queued.
 */
export async function inviteAdmin(
  deps: Deps,
  actor: AdminActor,
  input: InviteAdminInput,
  meta: SessionMeta = {},
): Promise<{ id: string; email: string; expires_at: string }> {
  return deps.db.knex.transaction(async (trx) => {
    // The lock before the clock: an invitation made after another one waited for is also the newer one, so the
    // mail of the invitation whose link works is the newest mail.
    if (!(await lockOrganisation(trx, actor.organisation_id))) throw notFound();
    const now = deps.clock();
    if (await q.findAdminByEmail(trx, input.email)) throw adminExists(input.email);
    const organisation = await q.findOrganisationById(trx, actor.organisation_id);
    if (!organisation) throw notFound();
    const issued = await issueOneTimeToken(trx, {
      purpose: 'invitation',
      organisationId: organisation.id,
      adminId: null,
      email: input.email,
      createdBy: actor.id,
      now,
    });
    // The replaced link no longer works: a mail of it still queued must not go out (a withdrawal drops it too).
    for (const earlier of issued.replaced) await dropUnsentInvitationMail(trx, earlier, now);
    await recordAudit(trx, {
      organisation_id: organisation.id,
      actor_id: actor.id,
      actor_email: actor.email,
      action: 'admin.invited',
      ip: meta.ip ?? null,
      created_at: now,
      subject_admin: { id: null, email: input.email },
    });
    await queueInvitationMail(trx, deps.config, {
      to: input.email,
      organisation: organisation.name,
      invitedBy: actor.id === null ? OPERATOR : actor.email,
      token: issued.token,
      expiresAt: issued.expiresAt,
      now,
    });
    return { id: issued.id, email: input.email, expires_at: issued.expiresAt.toISOString() };
  });
}

/**
 * POST /admin/api/invitations/accept: the invitee's account is created with their password and signed in (the
 * answer is a login's). The link works once; 409 admin_exists when the address became an administrator meanwhile.
 */
export async function acceptInvitation(deps: Deps, input: AcceptInvitationInput, meta: SessionMeta = {}): Promise<SignedIn> {
  return countedTokenUse(deps, meta.ip ?? null, (address) => createInvitedAdmin(deps, input, meta, address));
}

/** acceptInvitation once its use is counted: the password hashed, the token consumed, the account and its session. */
async function createInvitedAdmin(deps: Deps, input: AcceptInvitationInput, meta: SessionMeta, address: string): Promise<SignedIn> {
  const passwordHash = await hashPassword(input.password);
  const now = deps.clock();
  try {
    return await deps.db.knex.transaction(async (trx) => {
      const invitation = await consumeOneTimeToken(trx, 'invitation', input.token, now);
      if (await q.findAdminByEmail(trx, invitation.email)) throw adminExists(invitation.email);
      const organisation = await q.findOrganisationById(trx, invitation.organisation_id);
      if (!organisation) throw notFound();
      const admin = await q.insertAdmin(trx, {
        id: randomUUID(),
        organisation_id: organisation.id,
        email: invitation.email,
        password_hash: passwordHash,
      });
      // Invitations to the same person from other organisations are void now: one identity per administrator. Their
      // mails not gone out yet are dropped (their links no longer work), and each organisation's log says where its
      // pending invitation went.
      const voided = (await trx('admin_one_time_tokens')
        .where({ purpose: 'invitation', email_key: normaliseEmail(invitation.email) })
        .whereNull('used_at')
        .delete()
        .returning(['email', 'created_at', 'organisation_id', 'expires_at'])) as Array<{ email: string; created_at: Date; organisation_id: string; expires_at: Date }>;
      for (const other of voided) {
        await dropUnsentInvitationMail(trx, other, now);
        if (other.expires_at.getTime() <= now.getTime()) continue; // already expired: it was no longer pending
        await recordAudit(trx, {
          organisation_id: other.organisation_id,
          actor_id: null,
          actor_email: 'server', // no administrator did it (docs/admin-api.md "Audit log": actors)
          action: 'admin.invitation_withdrawn',
          ip: null,
          created_at: now,
          subject_admin: { id: null, email: other.email },
          details: { reason: 'the address became an administrator of another organisation' },
        });
      }
      const session = await createSession(trx, deps, admin, meta, now);
      await recordAudit(trx, {
        organisation_id: organisation.id,
        actor_id: admin.id,
        actor_email: admin.email,
        action: 'admin.added',
        ip: meta.ip ?? null,
        created_at: now,
        subject_admin: { id: admin.id, email: admin.email },
      });
      await forgiveTokenUse(trx, admin.email, address);
      return signedIn(session.token, session.expiresAt, admin, organisation);
    });
  } catch (err) {
    if (isUniqueViolation(err, 'admins_email_key_uq') || isUniqueViolation(err, 'admins_email_uq')) {
      throw new AppError('admin_exists', 'This address is already an administrator.');
    }
    throw err;
  }
}

/**
 * DELETE /admin/api/admins/{id}: the administrator is deleted and with them every session (at once: sessions are
 * looked up on every request). 409 last_admin for the organisation's only administrator; the organisation row is
 * locked first, so two administrators removing each other at once cannot leave none.
 */
export async function removeAdmin(deps: Deps, actor: AdminActor, id: string, meta: SessionMeta = {}): Promise<void> {
  if (!isUuid(id)) throw notFound();
  const now = deps.clock();
  // Retried when chosen as a deadlock's victim: the token update below locks every token of theirs, in the table's
  // order, and the usage flush locks the tokens it writes in its own.
  await transactionWithRetry(deps.db.knex, async (trx) => {
    await lockOrganisation(trx, actor.organisation_id);
    const target = await trx<AdminRow>('admins').where({ id, organisation_id: actor.organisation_id }).first();
    if (!target) throw notFound();
    if ((await countOrganisationAdmins(trx, actor.organisation_id)) <= 1) {
      throw new AppError('last_admin', 'An organisation keeps at least one administrator: invite another one first.');
    }
    // Their tokens first, then their row: ON DELETE SET NULL would lock the row first and then the tokens, while a
    // rotate, retire or revoke by them holds a token and then (its audit event's foreign key) their row: 40P01.
    await trx('tokens').where({ created_by: target.id }).update({ created_by: null });
    // The invitations they sent and nobody has accepted yet go with them: an administrator being offboarded could
    // otherwise invite a private address and come back through it (their sessions end below, by cascade).
    const voided = (await trx('admin_one_time_tokens')
      .where({ created_by: target.id, purpose: 'invitation' })
      .whereNull('used_at')
      .delete()
      .returning(['email', 'created_at'])) as Array<{ email: string; created_at: Date }>;
    for (const invitation of voided) await dropUnsentInvitationMail(trx, invitation, now);
    // Their own reset links would go with their row (cascade); voided here so the mails not gone out are withdrawn.
    await voidPasswordResetLinks(trx, target.id, now);
    await trx('admins').where({ id: target.id }).delete();
    await recordAudit(trx, {
      organisation_id: actor.organisation_id,
      // The actor may be the removed administrator (removing oneself): their id is gone, keep the address.
      actor_id: actor.id === target.id ? null : actor.id,
      actor_email: actor.email,
      action: 'admin.removed',
      ip: meta.ip ?? null,
      created_at: now,
      subject_admin: { id: target.id, email: target.email },
      // What went with them besides their sessions: the invitations they had sent that nobody accepted.
      ...(voided.length > 0 ? { details: { invitations_voided: voided.map((i) => i.email) } } : {}),
    });
  });
}

async function countOrganisationAdmins(db: Db, organisationId: string): Promise<number> {
  const row = await db('admins').where({ organisation_id: organisationId }).count<{ count: number | string }>({ count: '*' }).first();
  return Number(row?.count ?? 0);
}

/**
 * `sat admin remove --org NAME --email EMAIL` (offboarding from a script): removeAdmin for the organisation's
 * administrator with that address (compared after normaliseEmail). 404 not_found when the organisation has no
 * such administrator (also when the address belongs to another organisation's); 409 last_admin as removeAdmin.
 */
export async function removeAdminByEmail(deps: Deps, actor: AdminActor, email: string, meta: SessionMeta = {}): Promise<AdminResource> {
  const target = await q.findAdminByEmail(deps.db.knex, email);
  if (!target || target.organisation_id !== actor.organisation_id) throw notFound();
  await removeAdmin(deps, actor, target.id, meta);
  return toResource(target);
}
