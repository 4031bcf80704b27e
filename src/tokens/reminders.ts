// Expiry reminders (SPEC Part 2 "Expiry reminders, expiring and dormant tokens"), run by the `expiry-notices` job.
import type { Deps } from '../deps.js';
import type { Db, TokenRow } from '../db/index.js';
import { organisationAdminEmails, queueTokenExpiringMail } from '../mail/index.js';
import { keyFacts } from './resource.js';

const DAY_MS = 86_400_000;
const BATCH = 50;

interface ReminderRow extends Pick<TokenRow, 'id' | 'organisation_id' | 'name' | 'client_id' | 'services' | 'expires_at' | 'auth_method' | 'jwks'> {
  creator_email: string | null;
}

/**
 * The threshold (days) of the reminder a token is due at `now`, or undefined: the most urgent threshold that the
 * token has reached (expires within it), was not created inside (created more than that many days before expiry),
 * and is more urgent than the last one mailed. Pure; the job's SQL selects by the same rule.
 */
export function dueReminder(
  token: { expires_at: Date; created_at: Date; expiry_reminded_days?: number | null },
  thresholds: readonly number[],
  now: Date,
): number | undefined {
  const left = token.expires_at.getTime() - now.getTime();
  if (left <= 0) return undefined;
  const fromCreation = token.expires_at.getTime() - token.created_at.getTime();
  const due = [...thresholds]
    .sort((a, b) => a - b)
    .find((d) => left <= d * DAY_MS && fromCreation > d * DAY_MS);
  if (due === undefined) return undefined;
  const last = token.expiry_reminded_days;
  return last === null || last === undefined || due < last ? due : undefined;
}

/** Locks up to `limit` tokens due a reminder at threshold `days` (see dueReminder), skipping rows another instance holds. */
function lockDue(trx: Db, now: Date, days: number, limit: number): Promise<ReminderRow[]> {
  const horizon = new Date(now.getTime() + days * DAY_MS);
  return trx('tokens as t')
    .leftJoin('admins as a', 'a.id', 't.created_by')
    .select('t.id', 't.organisation_id', 't.name', 't.client_id', 't.services', 't.expires_at', 't.auth_method', 't.jwks', 'a.email as creator_email')
    .where('t.expires_at', '>', now)
    .where('t.expires_at', '<=', horizon)
    .whereRaw(`t.created_at < t.expires_at - make_interval(days => ?)`, [days])
    .where((w) => w.whereNull('t.expiry_reminded_days').orWhere('t.expiry_reminded_days', '>', days))
    .orderBy('t.expires_at')
    .limit(limit)
    .forUpdate('t')
    .skipLocked() as Promise<ReminderRow[]>;
}

/**
 * Reminder mails at `config.expiryReminderDays` (30, 7 and 1 by default) before each token's expiry: at most one per
 * threshold per token, only the most urgent due one, none for a threshold the token was created inside. Recipients:
 * the creator, or every administrator of the organisation when the token has none (made with the CLI, or its
 * administrator is gone). Thresholds are walked most urgent first; each token is locked (SKIP LOCKED), mailed
 * through the outbox and marked (`expiry_reminded_days`, `expiry_notified_at`) in one transaction, so any number of
 * instances send each reminder exactly once. Returns the number of reminders queued (tokens, not mails).
 */
export async function enqueueExpiryNotices(deps: Pick<Deps, 'config' | 'db' | 'clock'>): Promise<number> {
  let notified = 0;
  const thresholds = [...deps.config.expiryReminderDays].sort((a, b) => a - b);
  for (const days of thresholds) {
    for (;;) {
      const now = deps.clock();
      const count = await deps.db.knex.transaction(async (trx) => {
        const rows = await lockDue(trx, now, days, BATCH);
        for (const row of rows) {
          const recipients = row.creator_email ? [row.creator_email] : await organisationAdminEmails(trx, row.organisation_id);
          await queueTokenExpiringMail(trx, deps, {
            token: { name: row.name, client_id: row.client_id, services: row.services, expires_at: row.expires_at, ...keyFacts(row) },
            generatedBy: row.creator_email,
            recipients,
            now,
          });
        }
        if (rows.length > 0) {
          await trx('tokens')
            .whereIn(
              'id',
              rows.map((r) => r.id),
            )
            .update({ expiry_reminded_days: days, expiry_notified_at: now });
        }
        return rows.length;
      });
      notified += count;
      if (count < BATCH) break;
    }
  }
  return notified;
}
