// Who gets which notice, queued through the outbox inside the caller's transaction (SPEC "Email").
import type { Knex } from 'knex';
import { normaliseEmail } from '../text.js';
import { issuerUrl, type Config } from '../config/index.js';
import { enqueueMail, messageIdDomain, type MailKind } from './outbox.js';
import { tokenExpiringSoon, tokenGenerated, tokenRevoked, type MailContent, type MailToken } from './templates.js';

type MailConfig = Pick<Config, 'issuer' | 'mailFrom' | 'services'>;

/** An administrator as the notices see one; `null` id/email when there is none (a token made from the CLI). */
export interface MailAdmin {
  readonly id: string | null;
  readonly email: string | null;
}

const consoleUrl = (config: MailConfig) => issuerUrl(config.issuer, '/admin');

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

/**
 * "Expires in 7 days" (SPEC "Email"), to each of `recipients`, queued in the caller's transaction. Which tokens
 * need it, who receives it and the once-per-token bookkeeping belong to the tokens module
 * (`tokens.enqueueExpiryNotices`); this only says it.
 */
export async function queueTokenExpiringMail(
  trx: Knex.Transaction,
  deps: { config: MailConfig },
  facts: { token: MailToken; generatedBy: string | null; recipients: readonly string[]; now: Date },
): Promise<void> {
  for (const to of facts.recipients) {
    const content = tokenExpiringSoon({
      token: facts.token,
      catalogue: deps.config.services,
      consoleUrl: consoleUrl(deps.config),
      now: facts.now,
      generatedBy: facts.generatedBy,
    });
    await queue(trx, deps.config, 'token_expiring', to, content, facts.now);
  }
}
