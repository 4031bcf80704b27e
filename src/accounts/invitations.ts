// Pending invitations of an organisation: listed and withdrawn by its administrators (docs/admin-api.md
// "Administrators"). A pending invitation is an `admin_one_time_tokens` row of purpose `invitation` that is neither
// used nor expired; its id is the one POST /admin/api/admins answers with. Withdrawing deletes the row, so the mailed
// link gets the answer of a used one (400 validation_failed on `token`) at once.
import { recordAudit } from '../audit/index.js';
import { isUuid, type AdminOneTimeTokenRow, type Db } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { dropUnsentInvitationMail } from '../mail/index.js';
import type { AdminActor } from './admins.js';
import { normaliseEmail } from '../text.js';
import type { SessionMeta } from './sessions.js';

/** A pending invitation as the admin API shows one. `invited_by` is null when `sat admin invite` sent it. */
export interface InvitationResource {
  id: string;
  email: string;
  created_at: string;
  expires_at: string;
  invited_by: { id: string; email: string } | null;
}

type InvitationRow = AdminOneTimeTokenRow & { inviter_email: string | null };

const notFound = () => new AppError('not_found', 'No such invitation.');

const toResource = (row: InvitationRow): InvitationResource => ({
  id: row.id,
  email: row.email,
  created_at: new Date(row.created_at).toISOString(),
  expires_at: new Date(row.expires_at).toISOString(),
  invited_by: row.created_by && row.inviter_email ? { id: row.created_by, email: row.inviter_email } : null,
});

/** The organisation's invitations that can still be accepted at `now`, with the inviter's address. */
const pendingInvitations = (db: Db, organisationId: string, now: Date) =>
  db<AdminOneTimeTokenRow>('admin_one_time_tokens as t')
    .leftJoin('admins as a', 'a.id', 't.created_by')
    .where({ 't.organisation_id': organisationId, 't.purpose': 'invitation' })
    .whereNull('t.used_at')
    .andWhere('t.expires_at', '>', now)
    // An address that became an administrator another way (`sat admin add`) can no longer accept (409 admin_exists).
    .whereNotExists(function notAnAdminYet() {
      void this.select(db.raw('1')).from('admins as x').whereRaw('x.email_key = t.email_key');
    })
    .select<InvitationRow[]>('t.*', 'a.email as inviter_email');

/** GET /admin/api/invitations: the organisation's pending invitations (not used, not expired), newest first. */
export async function listInvitations(deps: Deps, actor: AdminActor): Promise<{ items: InvitationResource[] }> {
  const rows = await pendingInvitations(deps.db.knex, actor.organisation_id, deps.clock()).orderBy([
    { column: 't.created_at', order: 'desc' },
    { column: 't.id', order: 'desc' },
  ]);
  return { items: rows.map(toResource) };
}

/**
 * DELETE /admin/api/invitations/{id}: the pending invitation is deleted and its link stops working at once (accepting
 * it is then the 400 of a used link); audit event `admin.invitation_withdrawn` (subject: the invited address).
 * 404 not_found for an id that is malformed, unknown, another organisation's, already used or expired. Returns what
 * was withdrawn. One conditional DELETE: against an accept at the same moment, exactly one of the two wins.
 */
export async function withdrawInvitation(deps: Deps, actor: AdminActor, id: string, meta: SessionMeta = {}): Promise<InvitationResource> {
  if (!isUuid(id)) throw notFound();
  const now = deps.clock();
  return deps.db.knex.transaction(async (trx) => {
    const [row] = (await trx<AdminOneTimeTokenRow>('admin_one_time_tokens')
      .where({ id, organisation_id: actor.organisation_id, purpose: 'invitation' })
      .whereNull('used_at')
      .andWhere('expires_at', '>', now)
      .delete()
      .returning('*')) as AdminOneTimeTokenRow[];
    if (!row) throw notFound();
    await dropUnsentInvitationMail(trx, row, now); // a mail still queued would carry a link that no longer works
    const inviter = row.created_by ? await trx('admins').where({ id: row.created_by }).first('email') : undefined;
    await recordAudit(trx, {
      organisation_id: actor.organisation_id,
      actor_id: actor.id,
      actor_email: actor.email,
      action: 'admin.invitation_withdrawn',
      ip: meta.ip ?? null,
      created_at: now,
      subject_admin: { id: null, email: row.email },
    });
    return toResource({ ...row, inviter_email: (inviter as { email?: string } | undefined)?.email ?? null });
  });
}

/**
 * `sat admin withdraw --org NAME --email EMAIL`: withdrawInvitation for the organisation's pending invitation of that
 * address (compared after normaliseEmail; there is at most one, a newer invitation replaces the older). 404
 * not_found, naming the address, when the organisation has none pending for it.
 */
export async function withdrawInvitationByEmail(deps: Deps, actor: AdminActor, email: string, meta: SessionMeta = {}): Promise<InvitationResource> {
  const row = await pendingInvitations(deps.db.knex, actor.organisation_id, deps.clock())
    .andWhere('t.email_key', normaliseEmail(email))
    .orderBy('t.created_at', 'desc')
    .first();
  if (!row) throw new AppError('not_found', `No pending invitation for ${email}.`);
  return withdrawInvitation(deps, actor, row.id, meta);
}
