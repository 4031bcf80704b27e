// The "secret rotated" notice (SPEC Part 2 "Secret rotation with overlap"): words, and the queueing.
import type { Knex } from 'knex';
import { issuerUrl, type Config } from '../config/index.js';
import { enqueueMail, messageIdDomain, organisationAdminEmails } from './outbox.js';
import { assertNoSecret, footer, formatInstant, ipText, oneLine, render, tokenRows, type Common, type MailContent, type MailToken } from './templates.js';

export interface SecretRotatedFacts extends Common {
  /** The rotating administrator's address; null when rotated from the command line. */
  rotatedBy: string | null;
  rotatedAt: Date;
  /** When the previous secret stops working (equal to `rotatedAt` for a grace period of 0). */
  previousStopsAt: Date;
  ip: string | null;
}

/** "The secret of token X was rotated": name, client ID, who, and when the previous secret stops. Never a secret. */
export function secretRotated(f: SecretRotatedFacts): MailContent {
  assertNoSecret(f.token);
  const rotator = f.rotatedBy ?? 'the command-line tool (sat)';
  const immediate = f.previousStopsAt.getTime() <= f.rotatedAt.getTime();
  const stops = immediate ? 'stopped working at once' : `keeps working until ${formatInstant(f.previousStopsAt)}, then stops`;
  return render(
    oneLine(`System access token "${f.token.name}": new client secret`),
    [
      { p: 'Hello,' },
      {
        p:
          `A new client secret was made for the system access token "${f.token.name}" by ${rotator}. ` +
          `The client ID stays the same. The previous secret ${stops}.`,
      },
      {
        rows: [
          ...tokenRows(f),
          ['Rotated by', rotator],
          ['When', formatInstant(f.rotatedAt)],
          [immediate ? 'Previous secret stopped' : 'Previous secret stops', formatInstant(f.previousStopsAt)],
          ['From IP address', ipText(f.ip)],
        ],
      },
      { strong: 'To do' },
      {
        p:
          (immediate
            ? 'Integrations still using the previous secret can no longer get access tokens: give each of them the new secret now. '
            : 'Give every integration using this token the new secret before the previous one stops. ') +
          `The admin console at ${f.consoleUrl} shows when each secret was last used. If you did not expect this, ` +
          'check the audit log and tell your security team.',
      },
    ],
    footer(f.consoleUrl),
  );
}

/**
 * Queues "secret rotated" to the token's creator and the rotating administrator, one copy per distinct address; when
 * there is neither (a token made with `sat`, or whose creator was removed, rotated with `sat`), to every
 * administrator of the organisation, as the expiry notices do, so a rotation is never told to no one.
 */
export async function queueSecretRotatedMail(
  trx: Knex.Transaction,
  deps: { config: Pick<Config, 'issuer' | 'mailFrom' | 'services'> },
  facts: { organisationId: string; token: MailToken; generatedBy: string | null; rotatedBy: string | null; at: Date; previousStopsAt: Date; ip: string | null },
): Promise<void> {
  const recipients = new Map<string, string>();
  const named = [facts.generatedBy, facts.rotatedBy].filter((email): email is string => !!email);
  const everyone = named.length > 0 ? [] : await organisationAdminEmails(trx, facts.organisationId);
  for (const email of [...named, ...everyone]) {
    if (!recipients.has(email.toLowerCase())) recipients.set(email.toLowerCase(), email);
  }
  const consoleUrl = issuerUrl(deps.config.issuer, '/admin');
  for (const to of recipients.values()) {
    const content = secretRotated({
      token: facts.token,
      catalogue: deps.config.services,
      consoleUrl,
      rotatedBy: facts.rotatedBy,
      rotatedAt: facts.at,
      previousStopsAt: facts.previousStopsAt,
      ip: facts.ip,
    });
    await enqueueMail(trx, { kind: 'secret_rotated', to, content, now: facts.at, messageIdDomain: messageIdDomain(deps.config) });
  }
}
