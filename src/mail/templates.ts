// The notices' words: plain text and HTML from facts about a token. Pure functions; no secret can come in.

/** A rendered message, ready for the outbox. */
export interface MailContent {
  subject: string;
  text: string;
  html: string;
}

/**
 * What a notice may know about a token: the facts of the admin API's token resource (a `TokenResource` fits).
 * The `never` members make it a compile error to pass anything that carries the secret or its hash, such as the
 * `GeneratedToken` that generateToken returns; templates check again at run time for callers that cast.
 */
export interface MailToken {
  readonly name: string;
  readonly client_id: string;
  /** Catalogue ids. */
  readonly services: readonly string[];
  readonly expires_at: string | Date;
  readonly client_secret?: never;
  readonly secret_hash?: never;
}

export interface CatalogueEntry {
  readonly id: string;
  readonly name: string;
}

export interface Common {
  token: MailToken;
  /** The service catalogue, to name services the way the console does. */
  catalogue: readonly CatalogueEntry[];
  /** The admin console, for "what to do now" links. */
  consoleUrl: string;
}

export interface TokenGeneratedFacts extends Common {
  generatedBy: string;
  generatedAt: Date;
  /** The address the request came from; null when unknown. */
  ip: string | null;
}

export interface TokenRevokedFacts extends Common {
  /** The revoking administrator's address; null when revoked from the command line. */
  revokedBy: string | null;
  revokedAt: Date;
  ip: string | null;
  /** Who generated the token; null for a token without an administrator (CLI, or a deleted account). */
  generatedBy: string | null;
  /** The address this copy goes to: the revoking administrator reads "you revoked", the generating one "X revoked". */
  recipient: string;
}

export interface TokenExpiringFacts extends Common {
  now: Date;
  generatedBy: string | null;
}

const PRODUCT = 'System Access Tokens';

/** Replaces the five characters that matter in HTML text and attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

/** Subjects are one line: control characters (which validation already refuses in names) become spaces. */
export function oneLine(value: string): string {
  // eslint-disable-next-line no-control-regex -- stripping control characters is the point
  return value.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]+/g, ' ').trim();
}

/** `2025-03-01 23:59 UTC`: unambiguous for readers in any time zone. */
export function formatInstant(value: Date | string): string {
  const d = typeof value === 'string' ? new Date(value) : value;
  return `${d.toISOString().slice(0, 10)} ${d.toISOString().slice(11, 16)} UTC`;
}

export function assertNoSecret(token: MailToken): void {
  // The types already refuse these; this catches a caller that cast its way past them.
  for (const key of ['client_secret', 'secret_hash']) {
    if (Object.prototype.hasOwnProperty.call(token, key)) throw new Error(`mail templates never take a token's ${key}`);
  }
}

function serviceNames(token: MailToken, catalogue: readonly CatalogueEntry[]): string[] {
  return token.services.map((id) => catalogue.find((s) => s.id === id)?.name ?? id);
}

/** Days left, to the nearest day and at least 1: a token expiring in 6 days and 20 hours "expires in 7 days". */
function daysLeft(expiresAt: Date | string, now: Date): number {
  const ms = new Date(expiresAt).getTime() - now.getTime();
  return Math.max(1, Math.round(ms / 86_400_000));
}

export type Row = [label: string, value: string];

export function tokenRows(f: Common): Row[] {
  return [
    ['Token name', f.token.name],
    ['Client ID', f.token.client_id],
    ['Services', serviceNames(f.token, f.catalogue).join(', ')],
    ['Expires', formatInstant(f.token.expires_at)],
  ];
}

/** Text and HTML from one list of blocks, so both always say the same thing. */
export type Block = { p: string } | { rows: Row[] } | { strong: string } | { link: string };

/** The HTML of a link block: an `<a>` for an http(s) address, plain text for anything else (never a script URL). */
function linkHtml(url: string): string {
  const text = escapeHtml(url);
  return /^https?:\/\//i.test(url) ? `<a href="${text}" style="color:#0b57d0;word-break:break-all">${text}</a>` : text;
}

/** Renders blocks to a message (text and HTML say the same; every value escaped in the HTML). */
export function render(subject: string, blocks: Block[], footer: string): MailContent {
  const width = Math.max(...blocks.flatMap((b) => ('rows' in b ? b.rows.map(([l]) => l.length) : [0])));
  const text = [
    ...blocks.map((b) => {
      if ('p' in b) return b.p;
      if ('strong' in b) return b.strong;
      if ('link' in b) return b.link;
      return b.rows.map(([label, value]) => `  ${(label + ':').padEnd(width + 2)}${value}`).join('\n');
    }),
    `-- \n${footer}`,
  ].join('\n\n');

  const cell = 'padding:4px 12px 4px 0;vertical-align:top;';
  const htmlBlocks = blocks.map((b) => {
    if ('p' in b) return `<p style="margin:0 0 16px">${escapeHtml(b.p)}</p>`;
    if ('strong' in b) return `<p style="margin:0 0 16px"><strong>${escapeHtml(b.strong)}</strong></p>`;
    if ('link' in b) return `<p style="margin:0 0 16px">${linkHtml(b.link)}</p>`;
    const rows = b.rows
      .map(
        ([label, value]) =>
          `<tr><th scope="row" style="${cell}text-align:left;font-weight:normal;color:#555">${escapeHtml(label)}</th>` +
          `<td style="${cell}font-family:ui-monospace,Menlo,Consolas,monospace">${escapeHtml(value)}</td></tr>`,
      )
      .join('');
    return `<table role="presentation" style="border-collapse:collapse;margin:0 0 16px">${rows}</table>`;
  });
  const html =
    '<!doctype html><html lang="en"><head><meta charset="utf-8">' +
    `<title>${escapeHtml(subject)}</title></head>` +
    '<body style="margin:0;padding:24px;font-family:-apple-system,Segoe UI,Roboto,Helvetica,Arial,sans-serif;font-size:15px;line-height:1.5;color:#1a1a1a">' +
    `<div style="max-width:600px">${htmlBlocks.join('')}` +
    `<hr style="border:0;border-top:1px solid #ddd;margin:24px 0 12px">` +
    `<p style="margin:0;font-size:13px;color:#666">${escapeHtml(footer)}</p></div></body></html>`;
  return { subject, text, html };
}

export function footer(consoleUrl: string): string {
  return `${PRODUCT}. You receive this notice because you administer system access tokens at ${consoleUrl}.`;
}

/** "Token generated", to the administrator who generated it (SPEC "Email"). */
export function tokenGenerated(f: TokenGeneratedFacts): MailContent {
  assertNoSecret(f.token);
  const subject = oneLine(`New system access token "${f.token.name}"`);
  return render(
    subject,
    [
      { p: 'Hello,' },
      { p: `A new system access token was generated with your administrator account (${f.generatedBy}).` },
      {
        rows: [
          ...tokenRows(f),
          ['Generated by', f.generatedBy],
          ['When', formatInstant(f.generatedAt)],
          ['From IP address', f.ip ?? 'unknown'],
        ],
      },
      {
        p:
          'The client secret is not in this email: it was shown once, when the token was generated, and cannot be ' +
          'shown again. If nobody kept a copy, revoke this token and generate a new one.',
      },
      { strong: 'Was this not you?' },
      {
        p:
          `Revoke the token now: open the admin console at ${f.consoleUrl}, go to System Access Token, select ` +
          `"${f.token.name}" and choose Revoke Access. Then change your password and tell your security team, ` +
          'because someone else may be signed in as you.',
      },
    ],
    footer(f.consoleUrl),
  );
}

/**
 * "Token revoked", to the administrator who generated the token and to the one who revoked it, one copy each
 * (the caller sends one per distinct address; `recipient` picks the wording).
 */
export function tokenRevoked(f: TokenRevokedFacts): MailContent {
  assertNoSecret(f.token);
  const isRevoker = f.revokedBy !== null && f.recipient.toLowerCase() === f.revokedBy.toLowerCase();
  const revoker = f.revokedBy ?? 'the command-line tool (sat)';
  const subject = oneLine(`System access token "${f.token.name}" was revoked`);
  const opening = isRevoker
    ? `You revoked the system access token "${f.token.name}".`
    : `The system access token "${f.token.name}" that you generated was revoked by ${revoker}.`;
  return render(
    subject,
    [
      { p: 'Hello,' },
      {
        p:
          `${opening} Every integration using its client ID and secret has stopped working: it can no longer ` +
          'get access tokens, and those it already holds are reported inactive at once and expire within minutes.',
      },
      {
        rows: [
          ...tokenRows(f),
          ['Generated by', f.generatedBy ?? 'no administrator (created from the command line)'],
          ['Revoked by', revoker],
          ['When', formatInstant(f.revokedAt)],
          ['From IP address', f.ip ?? 'unknown'],
        ],
      },
      { p: 'A revoked token cannot be restored. If an integration still needs access, generate a new token for it.' },
      { strong: isRevoker ? 'Was this not you?' : 'Did you not expect this?' },
      {
        p: isRevoker
          ? `Change your password now and tell your security team: someone else may be signed in as you. ` +
            `Check the audit log in the admin console at ${f.consoleUrl} for other changes.`
          : `Ask ${f.revokedBy ?? 'your operators'} why, and check the audit log in the admin console at ${f.consoleUrl}. ` +
            'If the change was not authorised, tell your security team.',
      },
    ],
    footer(f.consoleUrl),
  );
}

/** "Expires in 7 days", once per token, to the administrator who generated it (SPEC "Email"). */
export function tokenExpiringSoon(f: TokenExpiringFacts): MailContent {
  assertNoSecret(f.token);
  const days = daysLeft(f.token.expires_at, f.now);
  const when = days === 1 ? 'in 1 day' : `in ${days} days`;
  const subject = oneLine(`System access token "${f.token.name}" expires ${when}`);
  return render(
    subject,
    [
      { p: 'Hello,' },
      {
        p:
          `The system access token "${f.token.name}" expires on ${formatInstant(f.token.expires_at)}, ${when}. ` +
          'After that, every integration using its client ID and secret stops working.',
      },
      {
        rows: [...tokenRows(f), ['Generated by', f.generatedBy ?? 'no administrator (created from the command line)']],
      },
      { strong: 'To keep the integrations working' },
      {
        p:
          `Generate a new token in the admin console at ${f.consoleUrl} (System Access Token, then Generate a Token), ` +
          'give the integrations its client ID and secret, and revoke this token once they use the new one. ' +
          'An expiry date cannot be extended.',
      },
      { p: 'If the token is no longer needed, there is nothing to do: it stops working by itself.' },
    ],
    footer(f.consoleUrl),
  );
}
