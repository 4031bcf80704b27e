// Who gets which notice, queued through the outbox inside the caller's transaction (SPEC "Email").
import type { Knex } from 'knex';
import { normaliseEmail } from '../accounts/index.js';
import type { Config } from '../config/index.js';
import type { Deps } from '../deps.js';
import { enqueueMail, messageIdDomain, type MailKind } from './outbox.js';
import { tokenExpiringSoon, tokenGenerated, tokenRevoked, type MailContent, type MailToken } from './templates.js';

type MailConfig = Pick<Config, 'issuer' | 'mailFrom' | 'services'>;

/** An administrator as the notices see one; `null` id/email when there is none (a token made from the CLI). */
export interface MailAdmin {
  readonly id: string | null;
  readonly email: string | null;
}

const consoleUrl = (config: MailConfig) => `${config.issuer}/admin`;

function queue(trx: Knex.Transaction, config: MailConfig, kind: MailKind, to: string, content: MailContent, now: Date) {
  return enqueueMail(trx, { kind, to, content, now, messageIdDomain: messageIdDomain(config) });
}

/**
 * "Token generated", to the administrator who generated it. A token made without an administrator (from the
 * command line: the operator sees the result on the terminal) gets no mail: there is nobody to address.
 */
export async function queueTokenGeneratedMail(
  trx: Knex.Transaction,
  deps: { config: MailConfig },
  facts: { token: MailToken; generatedBy: MailAdmin; at: Date; ip?: string | null },
): Promise<void> {
  const to = facts.generatedBy.email;
  if (!to) return;
  const content = tokenGenerated({
    token: facts.token,
    catalogue: deps.config.services,
    consoleUrl: consoleUrl(deps.config),
    generatedBy: to,
    generatedAt: facts.at,
    ip: facts.ip ?? null,
  });
  await queue(trx, deps.config, 'token_generated', to, content, facts.at);
}

/** "Token revoked", to the generating and the revoking administrator: one copy per distinct address. */
export async function queueTokenRevokedMail(
  trx: Knex.Transaction,
  deps: { config: MailConfig },
  facts: { token: MailToken; generatedBy: MailAdmin | null; revokedBy: MailAdmin; at: Date; ip?: string | null },
): Promise<void> {
  // Deduplicated by address: an administrator who revokes their own token gets one copy.
  const recipients = new Map<string, string>();
  for (const email of [facts.generatedBy?.email, facts.revokedBy.email]) {
    if (email && !recipients.has(normaliseEmail(email))) recipients.set(normaliseEmail(email), email);
  }
  for (const to of recipients.values()) {
    const content = tokenRevoked({
      token: facts.token,
      catalogue: deps.config.services,
      consoleUrl: consoleUrl(deps.config),
      revokedBy: facts.revokedBy.email,
      revokedAt: facts.at,
      ip: facts.ip ?? null,
      generatedBy: facts.generatedBy?.email ?? null,
      recipient: to,
    });
    await queue(trx, deps.config, 'token_revoked', to, content, facts.at);
  }
}

export const EXPIRY_NOTICE_DAYS = 7;
const DAY_MS = 86_400_000;
const BATCH = 50;

interface ExpiringRow {
  id: string;
  organisation_id: string;
  name: string;
  client_id: string;
  services: string[];
  expires_at: Date;
  creator_email: string | null;
}

/**
 * "Expires in 7 days" (SPEC "Email"): finds tokens that entered their last 7 days and queues one notice per token,
 * marking it in the same transaction, so each token gets exactly one, whichever instance runs the check.
 *
 * Rules where SPEC is silent: a token generated with less than 7 days to live gets none (its "generated" mail
 * already gave the date); a token with no administrator (made from the CLI, or its administrator deleted) notifies
 * every administrator of its organisation, so it never expires unannounced.
 * Returns the number of tokens notified.
 */
export async function enqueueExpiryNotices(deps: Pick<Deps, 'config' | 'db' | 'clock'>): Promise<number> {
  let notified = 0;
  for (;;) {
    const now = deps.clock();
    const horizon = new Date(now.getTime() + EXPIRY_NOTICE_DAYS * DAY_MS);
    const count = await deps.db.knex.transaction(async (trx) => {
      const rows: ExpiringRow[] = await trx('tokens as t')
        .leftJoin('admins as a', 'a.id', 't.created_by')
        .select('t.id', 't.organisation_id', 't.name', 't.client_id', 't.services', 't.expires_at', 'a.email as creator_email')
        .whereNull('t.expiry_notified_at')
        .where('t.expires_at', '>', now)
        .where('t.expires_at', '<=', horizon)
        .whereRaw(`t.created_at < t.expires_at - interval '${EXPIRY_NOTICE_DAYS} days'`)
        .orderBy('t.expires_at')
        .limit(BATCH)
        // Another instance running the same check skips the rows this one holds.
        .forUpdate('t')
        .skipLocked();
      for (const row of rows) {
        const recipients = row.creator_email
          ? [row.creator_email]
          : ((await trx('admins').where({ organisation_id: row.organisation_id }).orderBy('email').pluck('email')) as string[]);
        const token: MailToken = { name: row.name, client_id: row.client_id, services: row.services, expires_at: row.expires_at };
        for (const to of recipients) {
          const content = tokenExpiringSoon({
            token,
            catalogue: deps.config.services,
            consoleUrl: consoleUrl(deps.config),
            now,
            generatedBy: row.creator_email,
          });
          await queue(trx, deps.config, 'token_expiring', to, content, now);
        }
      }
      if (rows.length > 0) {
        await trx('tokens')
          .whereIn(
            'id',
            rows.map((r) => r.id),
          )
          .update({ expiry_notified_at: now });
      }
      return rows.length;
    });
    notified += count;
    if (count < BATCH) return notified;
  }
}
