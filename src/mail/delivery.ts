// The outbox worker: claim due mail in one short statement, send outside any transaction, record the outcome.
import { randomUUID } from 'node:crypto';
import type { Knex } from 'knex';
import { affectedRows, type MailOutboxRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { mailDeliveries } from '../metrics.js';
import type { MailTransport } from './transport.js';

/**
 * How long a claim holds its rows without renewal. The sender renews the lease of its claimed rows every
 * HEARTBEAT_MS while it works (however long one SMTP conversation takes: up to transport.ts's SMTP_TIMEOUTS per
 * answer, 10 minutes for the end of DATA), so the lease never has to outlast an attempt: only a sender that crashed
 * loses its claim, and its rows are due again within seconds. A renewal comes at least twice per lease, so one
 * slow or failed renewal does not lose it. A mail in flight at a crash may then go out twice, with the same
 * Message-ID (docs/mail.md, docs/security.md).
 */
export const LEASE_MS = 15_000;
/** How often, in ms, a sender renews the lease (LEASE_MS) of the mail it has claimed while it works on them. */
export const HEARTBEAT_MS = 5_000;
/** How many due messages one claim takes from the outbox (deliverDueMail's default `batchSize`). */
export const BATCH_SIZE = 10;
const MAX_BATCHES_PER_RUN = 20;

export interface DeliveryResult {
  sent: number;
  retried: number;
  failed: number;
  /** Claimed but handed back unsent because the worker was stopping. */
  released: number;
}

type DeliveryDeps = Pick<Deps, 'db' | 'config' | 'log' | 'clock'>;

/**
 * Claims up to `limit` due messages for `claimId`: pending, due, and not under another sender's live lease.
 * One UPDATE over a `FOR UPDATE SKIP LOCKED` subquery: two instances never claim the same row, and neither waits
 * for the other.
 */
export async function claimDueMail(knex: Knex, claimId: string, now: Date, limit = BATCH_SIZE): Promise<MailOutboxRow[]> {
  const rows = (await knex<MailOutboxRow>('mail_outbox')
    .whereIn('id', (sub) =>
      sub
        .select('id')
        .from('mail_outbox')
        .where('status', 'pending')
        .andWhere('next_attempt_at', '<=', now)
        .andWhere((w) => w.whereNull('locked_until').orWhere('locked_until', '<=', now))
        .orderBy([{ column: 'next_attempt_at' }, { column: 'id' }])
        .limit(limit)
        .forUpdate()
        .skipLocked(),
    )
    .update({
      attempts: knex.raw('attempts + 1') as unknown as number,
      locked_by: claimId,
      locked_until: new Date(now.getTime() + LEASE_MS),
    })
    .returning('*')) as unknown as MailOutboxRow[];
  // RETURNING comes in no particular order (the IN list is hashed), not the subquery's: sent in queue order, one
  // recipient's mails arrive in the order of the changes they report ("generated" before "revoked").
  const due = (r: MailOutboxRow) => new Date(r.next_attempt_at).getTime();
  return rows.sort((a, b) => due(a) - due(b) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/**
 * Delay before the next attempt after `attempts` failed ones: base × 2^(attempts-1), capped, with "equal jitter"
 * (half fixed, half random) so instances that failed together do not retry together.
 */
export function retryDelayMs(
  attempts: number,
  config: { mailRetryBaseSeconds: number; mailRetryMaxSeconds: number },
  random: () => number = Math.random,
): number {
  const exp = Math.min(config.mailRetryMaxSeconds, config.mailRetryBaseSeconds * 2 ** Math.max(0, attempts - 1)) * 1000;
  return Math.round(exp / 2 + random() * (exp / 2));
}

function describeError(err: unknown): string {
  const e = err as { code?: string; responseCode?: number; message?: string };
  const text = [e?.code, e?.responseCode, e?.message ?? String(err)].filter((v) => v !== undefined && v !== '').join(' ');
  return text.slice(0, 500);
}

export interface DeliveryOptions {
  /** Shutdown: aborted, the worker stops between messages and hands back what it claimed but did not send. */
  signal?: AbortSignal;
  /**
   * Shutdown, later: aborted, a send in progress is cut (the SMTP connection closed) and its message handed back
   * unsent, not failed, with the rest. Default: `signal`.
   */
  sendSignal?: AbortSignal;
  batchSize?: number;
  heartbeatMs?: number;
}

/**
 * SPEC "Email": sends due mail from the outbox through `transport`. A failure schedules a retry with backoff; after
 * MAIL_MAX_ATTEMPTS, or at once for a permanent rejection of the message (isPermanentSmtpFailure), the message is
 * marked failed, logged and counted. When `options.signal` aborts (shutdown), the worker stops between messages;
 * when `options.sendSignal` aborts, a send in progress is cut too. What was claimed but not sent is handed back
 * (pending, unlocked, the attempt not counted), so the next run or start sends it at once.
 */
export async function deliverDueMail(deps: DeliveryDeps, transport: MailTransport, options: DeliveryOptions = {}): Promise<DeliveryResult> {
  const { knex } = deps.db;
  const batchSize = options.batchSize ?? BATCH_SIZE;
  const result: DeliveryResult = { sent: 0, retried: 0, failed: 0, released: 0 };
  const sendSignal = options.sendSignal ?? options.signal;
  const stopping = () => Boolean(options.signal?.aborted || sendSignal?.aborted);

  for (let batch = 0; batch < MAX_BATCHES_PER_RUN && !stopping(); batch++) {
    const claimId = randomUUID();
    const rows = await claimDueMail(knex, claimId, deps.clock(), batchSize);
    if (rows.length === 0) break;
    // Renew the claim while this batch is worked on: the lease stays short, a crash frees the rows in seconds.
    const heartbeat = setInterval(() => {
      void renewClaim(knex, claimId, deps.clock()).catch((err) => deps.log.warn('could not renew the mail claim', { err }));
    }, options.heartbeatMs ?? HEARTBEAT_MS);
    try {
      for (const [index, row] of rows.entries()) {
        if (stopping()) {
          result.released += await releaseClaim(knex, claimId, rows.slice(index));
          break;
        }
        if ((await deliverOne(deps, transport, claimId, row, result, sendSignal)) === 'relay-down' && index + 1 < rows.length) {
          // The relay itself failed (no connection, a timeout, a refused login): the rest of the batch would fail the
          // same way, one timeout each. Handed back unattempted; the next run tries again.
          const rest = rows.slice(index + 1);
          result.released += await releaseClaim(knex, claimId, rest);
          deps.log.info('SMTP relay unavailable; the rest of the batch waits for the next run', { waiting: rest.length, via: transport.target });
          return result;
        }
      }
    } finally {
      clearInterval(heartbeat);
    }
    if (rows.length < batchSize) break;
  }
  return result;
}

/**
 * Sends one claimed message and records the outcome (sent, retried, failed, or handed back when the shutdown cut it).
 * 'relay-down' when it failed in a way that is not about this message (isAboutMessage): the relay or the way to it.
 */
async function deliverOne(
  deps: DeliveryDeps,
  transport: MailTransport,
  claimId: string,
  row: MailOutboxRow,
  result: DeliveryResult,
  signal: AbortSignal | undefined,
): Promise<'done' | 'relay-down'> {
  const { knex } = deps.db;
  const mine = () => knex<MailOutboxRow>('mail_outbox').where({ id: row.id, locked_by: claimId });
  const fields = { mail_id: row.id, message_id: row.message_id, kind: row.kind, attempt: row.attempts };
  try {
    await transport.send({
      id: row.id,
      kind: row.kind,
      messageId: row.message_id,
      to: row.recipient,
      subject: row.subject,
      text: row.text_body,
      html: row.html_body,
      date: row.created_at,
    }, signal);
  } catch (err) {
    if (signal?.aborted) {
      // Cut by the shutdown, not refused by the relay: handed back unsent. Had the relay already taken it, the next
      // send is a duplicate with the same Message-ID, as after a crash.
      result.released += await releaseClaim(knex, claimId, [row]);
      deps.log.info('mail send cut short by the shutdown; handed back for the next run', { ...fields, via: transport.target });
      return 'done';
    }
    const error = describeError(err);
    const now = deps.clock();
    const permanent = isPermanentSmtpFailure(err);
    // MAIL_MAX_ATTEMPTS counts the relay's answers about this message (a 4xx to RCPT TO or DATA). A relay that cannot
    // be reached or refuses every message (an outage, a timeout, a refused login) never fails mail (SPEC "Email": an
    // SMTP outage delays mail, never loses it): the attempt is not counted (the claim counted it: taken back), and the
    // message is retried after the retry delay of the refusals it did have, until the relay is back.
    const about = isAboutMessage(err);
    if (permanent || (about && row.attempts >= deps.config.mailMaxAttempts)) {
      // Kept for inspection, but not the one-time link: it would still work for hours and is a credential.
      await mine().update({ status: 'failed', last_error: error, locked_by: null, locked_until: null, ...withoutOneTimeLink(row, 'not delivered') });
      mailDeliveries.inc({ outcome: 'failed', kind: row.kind });
      result.failed++;
      deps.log.error(permanent ? 'mail rejected permanently by the SMTP server; not retried' : 'mail could not be delivered; gave up', {
        ...fields,
        recipient: row.recipient,
        error,
        via: transport.target,
      });
    } else {
      const next = new Date(now.getTime() + retryDelayMs(row.attempts, deps.config));
      await mine().update({
        next_attempt_at: next,
        last_error: error,
        locked_by: null,
        locked_until: null,
        ...(about ? {} : { attempts: knex.raw('attempts - 1') as unknown as number }),
      });
      mailDeliveries.inc({ outcome: 'retried', kind: row.kind });
      result.retried++;
      deps.log.warn('mail delivery failed; will retry', { ...fields, error, next_attempt_at: next.toISOString(), via: transport.target });
    }
    return about ? 'done' : 'relay-down';
  }
  const updated = affectedRows(
    await mine().update({
      status: 'sent',
      sent_at: deps.clock(),
      last_error: null,
      locked_by: null,
      locked_until: null,
      // A one-time link is a credential: once delivered, the outbox keeps no copy of it.
      ...withoutOneTimeLink(row, 'delivered'),
    }),
  );
  mailDeliveries.inc({ outcome: 'sent', kind: row.kind });
  result.sent++;
  if (updated === 0) {
    // Our lease ran out mid-send and another sender took the row: it may go out twice, with the same Message-ID.
    deps.log.warn('mail sent after its claim expired; another instance may send it again', fields);
  } else {
    deps.log.debug('mail sent', fields);
  }
  return 'done';
}

/** Extends the lease of the rows `claimId` still holds to `now + LEASE_MS`. */
export async function renewClaim(knex: Knex, claimId: string, now: Date): Promise<number> {
  return affectedRows(
    await knex<MailOutboxRow>('mail_outbox')
      .where({ locked_by: claimId, status: 'pending' })
      .update({ locked_until: new Date(now.getTime() + LEASE_MS) }),
  );
}

/** The SMTP commands whose 5xx answer is about this message (RFC 5321 §3.3): its recipient, or its content. */
const MESSAGE_COMMANDS = new Set(['RCPT TO', 'DATA']);
/**
 * 5xx answers that are never about one message: 503 (bad sequence of commands: the session, not the message) and
 * 530 / 535 / 538 (RFC 4954 §6: authentication required, refused, or needs encryption: the relay refuses everyone).
 */
const RELAY_WIDE_CODES = new Set([503, 530, 535, 538]);

/**
 * Whether a send failure is a permanent rejection of this message, so sending it again cannot help: a 5xx answer
 * (RFC 5321 §4.2.1: permanent negative completion) to RCPT TO or to DATA / the message content, such as
 * `550 mailbox unavailable` or `554 message refused`. Everything else is retried with backoff (SPEC "Email": an SMTP
 * outage delays mail, never loses it): 4xx answers, connection and timeout errors, and the failures that would hit
 * every message alike: authentication (EAUTH, 535; 530 authentication required at any step), and a refused
 * MAIL FROM (the relay refuses our sender). `err` is nodemailer's error (`responseCode`, `command`); anything
 * without both is not permanent.
 */
export function isPermanentSmtpFailure(err: unknown): boolean {
  const e = err as { responseCode?: unknown; command?: unknown; code?: unknown } | null;
  const code = e?.responseCode;
  if (typeof code !== 'number' || code < 500 || code > 599 || RELAY_WIDE_CODES.has(code)) return false;
  if (e?.code === 'EAUTH') return false;
  return typeof e?.command === 'string' && MESSAGE_COMMANDS.has(e.command);
}

/**
 * Whether a send failure is the relay's answer about this message: a reply code (4xx or 5xx) to RCPT TO or DATA, but
 * none of the codes that refuse every message alike (RELAY_WIDE_CODES, 421 service not available). Anything else (no
 * connection, a timeout, a refused login or MAIL FROM) is about the relay, and the next message would meet it too.
 */
export function isAboutMessage(err: unknown): boolean {
  const e = err as { responseCode?: unknown; command?: unknown } | null;
  const code = e?.responseCode;
  if (typeof code !== 'number' || code === 421 || RELAY_WIDE_CODES.has(code)) return false;
  return typeof e?.command === 'string' && MESSAGE_COMMANDS.has(e.command);
}

async function releaseClaim(knex: Knex, claimId: string, rows: MailOutboxRow[]): Promise<number> {
  if (rows.length === 0) return 0;
  return affectedRows(
    await knex<MailOutboxRow>('mail_outbox')
      .whereIn(
        'id',
        rows.map((r) => r.id),
      )
      .andWhere({ locked_by: claimId })
      .update({
        attempts: knex.raw('attempts - 1') as unknown as number,
        locked_by: null,
        locked_until: null,
      }),
  );
}

/** How many days sent mail (and withdrawn reset mail, from when it was queued) stays in the outbox: pruneSentMail. */
export const SENT_RETENTION_DAYS = 30;

/** Mail kinds whose body holds a one-time link (invitation, password reset). */
const ONE_TIME_LINK_KINDS = new Set(['admin_invitation', 'password_reset']);

/** The body columns that replace a one-time link mail's once it is delivered or given up on; nothing for others. */
function withoutOneTimeLink(row: MailOutboxRow, outcome: 'delivered' | 'not delivered'): Partial<MailOutboxRow> {
  if (!ONE_TIME_LINK_KINDS.has(row.kind)) return {};
  return { text_body: outcome === 'delivered' ? '[one-time link removed after delivery]' : '[one-time link removed: the mail could not be delivered]', html_body: '' };
}

/**
 * Deletes mail sent more than `retentionDays` ago, so the outbox stays small, and withdrawn reset mails queued
 * that long ago. Failed mail is kept for operators to inspect (and, if they choose, to queue again).
 */
export async function pruneSentMail(deps: Pick<Deps, 'db' | 'clock'>, retentionDays = SENT_RETENTION_DAYS): Promise<number> {
  const cutoff = new Date(deps.clock().getTime() - retentionDays * 86_400_000);
  const sent = affectedRows(await deps.db.knex('mail_outbox').where('status', 'sent').andWhere('sent_at', '<', cutoff).delete());
  // Withdrawn reset mails (never sent, no link left) go after the same time, counted from when they were queued.
  const withdrawn = affectedRows(await deps.db.knex('mail_outbox').where('status', 'withdrawn').andWhere('created_at', '<', cutoff).delete());
  return sent + withdrawn;
}
