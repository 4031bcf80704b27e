// Administrator-account mails, queued through the outbox inside the caller's transaction (SPEC Part 2).
import type { Knex } from 'knex';
import { issuerUrl, type Config } from '../config/index.js';
import { affectedRows } from '../db/index.js';
import { adminInvitation, passwordChanged, passwordResetLink } from './admin-templates.js';
import { enqueueMail, messageIdDomain } from './outbox.js';

type MailConfig = Pick<Config, 'issuer' | 'mailFrom'>;

const consoleUrl = (config: MailConfig) => issuerUrl(config.issuer, '/admin');

/**
 * The console link holding a one-time token. The token rides in the fragment (`/admin#/invite?token=…`), which
 * browsers never send to a server: it stays out of access logs, proxies and Referer headers.
 */
export function oneTimeLink(config: MailConfig, page: 'invite' | 'reset', token: string): string {
  return `${consoleUrl(config)}#/${page}?token=${encodeURIComponent(token)}`;
}

/**
 * Queues the invitation mail (kind `admin_invitation`) in the caller's transaction: the console's one-time invite link
 * (oneTimeLink) and its expiry. The token appears only in the link's fragment. Database errors propagate.
 */
export async function queueInvitationMail(
  trx: Knex.Transaction,
  config: MailConfig,
  f: { to: string; organisation: string; invitedBy: string; token: string; expiresAt: Date; now: Date },
): Promise<void> {
  const content = adminInvitation({
    organisation: f.organisation,
    invitedBy: f.invitedBy,
    link: oneTimeLink(config, 'invite', f.token),
    expiresAt: f.expiresAt,
    consoleUrl: consoleUrl(config),
  });
  await enqueueMail(trx, { kind: 'admin_invitation', to: f.to, content, now: f.now, messageIdDomain: messageIdDomain(config) });
}

/**
 * Queues the password-reset mail (kind `password_reset`) in the caller's transaction: the one-time reset link
 * (oneTimeLink), its expiry and the requesting IP (`null`: none shown). Database errors propagate.
 */
export async function queuePasswordResetMail(
  trx: Knex.Transaction,
  config: MailConfig,
  f: { to: string; token: string; expiresAt: Date; now: Date; ip: string | null },
): Promise<void> {
  const content = passwordResetLink({
    email: f.to,
    link: oneTimeLink(config, 'reset', f.token),
    expiresAt: f.expiresAt,
    ip: f.ip,
    consoleUrl: consoleUrl(config),
  });
  await enqueueMail(trx, { kind: 'password_reset', to: f.to, content, now: f.now, messageIdDomain: messageIdDomain(config) });
}

/**
 * A newer password-reset request replaced these links (issueOneTimeToken's `replaced`): their mails that have not
 * gone out are withdrawn (never sent, link removed from the row), in the caller's transaction, so after a mail
 * backlog the inbox does not end with a dead link. One a sender holds at that moment may be on its way: that send
 * goes as it is (recorded `sent`), a failed one is not tried again. The rows stay and still count toward the reset
 * mails per address (countPasswordResetMails). Returns how many were withdrawn.
 */
export async function withdrawUnsentPasswordResetMail(
  trx: Knex.Transaction,
  replaced: ReadonlyArray<{ email: string; created_at: Date }>,
): Promise<number> {
  let n = 0;
  for (const link of replaced) {
    n += affectedRows(
      await trx('mail_outbox')
        .where({ kind: 'password_reset', recipient: link.email, status: 'pending', created_at: link.created_at })
        // One a sender holds right now (under a live lease) may be on its way: that send goes as it is (a success is
        // recorded as `sent`), but a failed attempt is not tried again.
        .update({ status: 'withdrawn', text_body: '[one-time link removed: a newer reset link replaced it]', html_body: '' }),
    );
  }
  return n;
}

/**
 * How many password-reset mails were queued for `to` (the administrator's stored address) since `since`, sent or
 * not: the per-email limit of reset requests counts mails, so it needs no row of its own and an unknown address adds
 * nothing. Read it under the organisation's lock so that requests at once count each other.
 */
export async function countPasswordResetMails(db: Knex, to: string, since: Date): Promise<number> {
  const row = (await db('mail_outbox')
    .where({ kind: 'password_reset', recipient: to })
    .andWhere('created_at', '>', since)
    .count({ n: '*' })
    .first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/**
 * Queues the "password changed" notice (kind `password_changed`) in the caller's transaction; `how` says whether it
 * was changed, reset by mail or reset with `sat admin reset-password`. Database errors propagate.
 */
export async function queuePasswordChangedMail(
  trx: Knex.Transaction,
  config: MailConfig,
  f: { to: string; how: 'changed' | 'reset' | 'reset_cli'; now: Date; ip: string | null },
): Promise<void> {
  const content = passwordChanged({ email: f.to, how: f.how, at: f.now, ip: f.ip, consoleUrl: consoleUrl(config) });
  await enqueueMail(trx, { kind: 'password_changed', to: f.to, content, now: f.now, messageIdDomain: messageIdDomain(config) });
}

/**
 * Drops the invitation mail queued with an invitation that is withdrawn or voided before the mail went out (same
 * recipient, queued at the invitation's `created_at`, still pending), inside the caller's transaction, so the
 * invitee never receives a link that no longer works. A mail a sender holds under a live lease at `now` may be on
 * its way: that send goes as it is, but the row is marked `withdrawn` with its link removed, so a failed attempt is
 * not tried again (the sender records a success as `sent`). Returns how many were dropped or marked (0 or 1).
 */
export async function dropUnsentInvitationMail(trx: Knex.Transaction, invitation: { email: string; created_at: Date }, now: Date): Promise<number> {
  const queued = () => trx('mail_outbox').where({ kind: 'admin_invitation', recipient: invitation.email, status: 'pending', created_at: invitation.created_at });
  const dropped = affectedRows(await queued().andWhere((w) => w.whereNull('locked_until').orWhere('locked_until', '<=', now)).delete());
  const marked = affectedRows(
    await queued().andWhere('locked_until', '>', now).update({ status: 'withdrawn', text_body: '[one-time link removed: the invitation was withdrawn]', html_body: '' }),
  );
  return dropped + marked;
}
