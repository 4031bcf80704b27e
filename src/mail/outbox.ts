import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import type { MailOutboxRow } from '../db/index.js';
import type { MailContent } from './templates.js';

export type MailKind =
  | 'token_generated'
  | 'token_revoked'
  | 'token_expiring'
  | 'token_leaked'
  | 'token_revoked_dormant'
  | 'secret_rotated'
  | 'admin_invitation'
  | 'password_reset'
  | 'password_changed';

export interface NewMail {
  kind: MailKind;
  /** One address: each recipient gets a copy of their own, so one bad address never holds back another. */
  to: string;
  content: MailContent;
  /** Queued at; the message's Date header, so a resend is byte-for-byte the same message. */
  now: Date;
  /** The right-hand side of the Message-ID (the sender's domain). */
  messageIdDomain: string;
}

/**
 * The only write path into the outbox. Takes a transaction, never the root knex, so the row commits or rolls back
 * with the change it reports (SPEC "Email"). The Message-ID is fixed here and stored: a resend after a crash
 * carries the same one, so receivers and operators can recognise it.
 */
export async function enqueueMail(trx: Knex.Transaction, mail: NewMail): Promise<MailOutboxRow> {
  const id = randomUUID();
  const row: MailOutboxRow = {
    id,
    message_id: `<${id}@${mail.messageIdDomain}>`,
    kind: mail.kind,
    recipient: mail.to,
    subject: mail.content.subject,
    text_body: mail.content.text,
    html_body: mail.content.html,
    status: 'pending',
    attempts: 0,
    next_attempt_at: mail.now,
    locked_by: null,
    locked_until: null,
    last_error: null,
    created_at: mail.now,
    sent_at: null,
  };
  await trx<MailOutboxRow>('mail_outbox').insert(row);
  return row;
}

/** The Message-ID domain: the domain of MAIL_FROM's address, else the issuer's host name. */
export function messageIdDomain(config: { mailFrom: string; issuer: string }): string {
  const address = /<([^<>]+)>\s*$/.exec(config.mailFrom)?.[1] ?? config.mailFrom;
  const domain = address.includes('@') ? address.slice(address.lastIndexOf('@') + 1).trim() : '';
  if (/^[A-Za-z0-9.-]+$/.test(domain)) return domain.toLowerCase();
  return new URL(config.issuer).hostname || 'localhost';
}

export interface MailQueueStats {
  /** Messages waiting to be sent (including those between retries). */
  pending: number;
  /** When the oldest waiting message was queued, or null when none waits. */
  oldestPendingAt: Date | null;
  /** Messages the workers gave up on (still in the outbox). */
  failed: number;
}

/** The outbox at a glance, for /metrics: one small query over every instance's shared queue. */
export async function mailQueueStats(db: Knex): Promise<MailQueueStats> {
  const rows = (await db('mail_outbox')
    .whereIn('status', ['pending', 'failed'])
    .groupBy('status')
    .select('status')
    .count({ n: '*' })
    .min({ oldest: 'created_at' })) as Array<{ status: string; n: number | string; oldest: Date | string | null }>;
  const pending = rows.find((r) => r.status === 'pending');
  const failed = rows.find((r) => r.status === 'failed');
  return {
    pending: Number(pending?.n ?? 0),
    oldestPendingAt: pending?.oldest ? new Date(pending.oldest) : null,
    failed: Number(failed?.n ?? 0),
  };
}

/**
 * The addresses of every administrator of the organisation, for a notice with nobody more specific to tell (a token
 * made with `sat`, or whose creator was removed), ordered by address.
 */
export async function organisationAdminEmails(trx: Knex.Transaction, organisationId: string): Promise<string[]> {
  return (await trx('admins').where({ organisation_id: organisationId }).orderBy('email').pluck('email')) as string[];
}
