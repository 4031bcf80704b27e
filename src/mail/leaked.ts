// The "secret leaked" notice (SPEC Part 2 "Leaked secrets"): words, and the queueing to every administrator.
import type { Knex } from 'knex';
import { issuerUrl, type Config } from '../config/index.js';
import { enqueueMail, messageIdDomain } from './outbox.js';
import { NO_CREATOR, assertNoSecret, formatInstant, footer, oneLine, render, tokenRows, type Common, type MailContent, type MailToken } from './templates.js';

/** Who reported the leak: a secret-scanning partner's signed alert, or anyone through POST /credentials/revoke. */
export type LeakReporter = 'secret-scanning' | 'public-report';

/** What the leak notice says: the token, where and how it was found, who reported it and what the server did. */
export interface TokenLeakedFacts extends Common {
  /** Where the secret was found (the alert's `url`); null when the reporter did not say. */
  url: string | null;
  /** The alert's `source` (`content`, `commit`, `npm`, ...), or `public report`. */
  source: string;
  reporter: LeakReporter;
  reportedAt: Date;
  /** What the server did: revoked the token, or only recorded the leak and told the administrators. */
  action: 'revoked' | 'notified';
  /** Who generated the token; null for one made from the command line or by a deleted account. */
  generatedBy: string | null;
  /**
   * Which secret was reported: the token's only live one (`only`, the default), or, during a rotation's grace period
   * (two live secrets), the new one (`current`), the previous one (`previous`) or both (`both`). Decides the advice
   * in notify mode: a token in a rotation cannot be rotated again (409 rotation_in_progress) until one secret is
   * retired.
   */
  leakedSecret?: LeakedSecret;
}

/** See TokenLeakedFacts.leakedSecret. */
export type LeakedSecret = 'only' | 'current' | 'previous' | 'both';

const LEAKED_SECRET_ROW: Record<Exclude<LeakedSecret, 'only'>, string> = {
  current: 'the new secret of a rotation still in its grace period (the previous secret was not reported)',
  previous: 'the previous secret, still in its rotation grace period (the new secret was not reported)',
  both: 'both secrets of a rotation still in its grace period (the new and the previous one)',
};

/** What to do first when the token was kept alive (notify mode), by which secret leaked. */
function notifiedAdvice(f: TokenLeakedFacts): string {
  switch (f.leakedSecret ?? 'only') {
    case 'previous':
      return (
        `1. Retire the previous secret now: open the token in the admin console at ${f.consoleUrl} and choose Retire ` +
        'beside the previous secret. Check first that the integrations use the new secret; after that the leaked ' +
        'one no longer works.'
      );
    case 'both':
      return (
        `1. Replace the token now, in the admin console at ${f.consoleUrl}: generate a new token, move the ` +
        'integrations to it, and revoke this one. Both of its secrets were reported, so neither can be kept.'
      );
    case 'current':
      return (
        `1. Replace the secret now, in the admin console at ${f.consoleUrl}: generate a new token, move the ` +
        'integrations to it, and revoke this one. Or, once no integration uses the previous secret any more, retire ' +
        'it and then rotate the token with no grace period (a token has at most two live secrets, so it cannot be ' +
        'rotated while the previous one is live).'
      );
    default:
      return (
        `1. Replace the secret now, in the admin console at ${f.consoleUrl}: rotate the token's secret with no ` +
        'grace period, or generate a new token, move the integrations to it, and revoke this one. Rotating stops ' +
        'the leaked secret at once, but access tokens already obtained with it stay valid until they expire; ' +
        'revoking the token ends those too.'
      );
  }
}

const REPORTERS: Record<LeakReporter, string> = {
  'secret-scanning': 'a secret-scanning partner (a signed alert, for example from GitHub secret scanning)',
  'public-report': 'a public report (POST /credentials/revoke: anyone who finds a secret may report it)',
};

/**
 * "The secret of token X leaked", to every administrator of the organisation: what leaked (name, client ID, where
 * it was found, when), what the server did, and what to do next. The secret itself never comes in.
 */
export function tokenLeaked(f: TokenLeakedFacts): MailContent {
  assertNoSecret(f.token);
  const revoked = f.action === 'revoked';
  const subject = oneLine(
    revoked
      ? `Leaked secret: system access token "${f.token.name}" was revoked`
      : `Leaked secret: replace system access token "${f.token.name}" now`,
  );
  const where = f.url ?? 'not given by the reporter';
  return render(
    subject,
    [
      { p: 'Hello,' },
      {
        p:
          `The client secret of the system access token "${f.token.name}" was found where others can read it, and ` +
          `was reported to this server by ${REPORTERS[f.reporter]}. Treat the secret as public: anybody who saw it ` +
          'can get access tokens for the services below.',
      },
      {
        rows: [
          ...tokenRows(f),
          ['Generated by', f.generatedBy ?? NO_CREATOR],
          ...(f.leakedSecret && f.leakedSecret !== 'only' ? [['Secret', LEAKED_SECRET_ROW[f.leakedSecret]] as [string, string]] : []),
          ['Found at', where],
          ['Found in', f.source],
          ['Reported', formatInstant(f.reportedAt)],
        ],
      },
      { strong: revoked ? 'What the server did: revoked the token' : 'What the server did: nothing yet, the token still works' },
      {
        p: revoked
          ? 'The token was revoked at once: every integration using its client ID and secret has stopped working, and ' +
            'the access tokens it already holds are reported inactive and expire within minutes.'
          : 'This server is set to notify only (SECRET_SCANNING_ACTION=notify): the token keeps working, for whoever ' +
            'has the secret, until you act.',
      },
      { strong: 'What to do next' },
      {
        p: revoked
          ? `1. Generate a new token in the admin console at ${f.consoleUrl} (System Access Token, then Generate a ` +
            'Token) and give the integrations that used this one its client ID and secret.'
          : notifiedAdvice(f),
      },
      {
        p:
          `2. Find where the secret was committed (${where}): remove it from the file and from the repository ` +
          'history or package, and look for other copies (forks, CI logs, chat, tickets). Deleting the file does ' +
          'not make the old secret safe again; only a new secret does.',
      },
      {
        p:
          '3. Keep secrets out of source code from now on: read them from the environment or a secret store. ' +
          `The audit log in the admin console records this report (token.leaked) with where it was found.`,
      },
    ],
    footer(f.consoleUrl),
  );
}

type MailConfig = Pick<Config, 'issuer' | 'mailFrom' | 'services'>;

/** Where a reported secret was found, and which of the token's secrets it is (TokenLeakedFacts.leakedSecret). */
export interface LeakFound {
  url: string | null;
  source: string;
  secret: Exclude<LeakedSecret, 'both'>;
}

const FOUND_LABEL: Record<Exclude<LeakedSecret, 'both'>, string> = { only: 'the secret', current: 'the new secret', previous: 'the previous secret' };

/**
 * The mail's "Found at" and "Found in" for the secrets reported together: one secret's URL and source as given; for
 * both secrets of a rotation, each URL and source named by its secret, `; ` between them.
 */
function foundText(found: readonly LeakFound[]): { url: string | null; source: string; leakedSecret: LeakedSecret } {
  if (found.length === 1) return { url: found[0]!.url, source: found[0]!.source, leakedSecret: found[0]!.secret };
  const sources = [...new Set(found.map((f) => f.source))];
  return {
    url: found.map((f) => `${f.url ?? 'not given by the reporter'} (${FOUND_LABEL[f.secret]})`).join('; '),
    source: sources.length === 1 ? sources[0]! : found.map((f) => `${f.source} (${FOUND_LABEL[f.secret]})`).join('; '),
    leakedSecret: 'both',
  };
}

/**
 * Queues the leak notice to each of `recipients` (the organisation's administrators), one copy per distinct
 * address, inside the caller's transaction. `found`: the token's secrets reported together (one, or both of a
 * rotation), each with where it was found; one mail tells of them all.
 */
export async function queueTokenLeakedMail(
  trx: Knex.Transaction,
  deps: { config: MailConfig },
  facts: {
    token: MailToken;
    recipients: readonly string[];
    generatedBy: string | null;
    found: readonly LeakFound[];
    reporter: LeakReporter;
    action: 'revoked' | 'notified';
    at: Date;
  },
): Promise<number> {
  const unique = new Map<string, string>();
  for (const email of facts.recipients) if (!unique.has(email.toLowerCase())) unique.set(email.toLowerCase(), email);
  const content = tokenLeaked({
    token: facts.token,
    catalogue: deps.config.services,
    consoleUrl: issuerUrl(deps.config.issuer, '/admin'),
    ...foundText(facts.found),
    reporter: facts.reporter,
    reportedAt: facts.at,
    action: facts.action,
    generatedBy: facts.generatedBy,
  });
  for (const to of unique.values()) {
    await enqueueMail(trx, { kind: 'token_leaked', to, content, now: facts.at, messageIdDomain: messageIdDomain(deps.config) });
  }
  return unique.size;
}
