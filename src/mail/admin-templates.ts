// The words of the administrator-account mails (SPEC Part 2 "Administrators"): invitation, password reset link,
// password changed. Pure functions. A one-time link is the only secret a mail ever carries, and only these two.
import { formatInstant, ipText, oneLine, render, type MailContent } from './templates.js';

const PRODUCT = 'System Access Tokens';

function footer(consoleUrl: string): string {
  return `${PRODUCT}. You receive this mail because of an administrator account at ${consoleUrl}.`;
}

export interface InvitationFacts {
  organisation: string;
  invitedBy: string;
  /** The one-time link to the console's invitation page. */
  link: string;
  expiresAt: Date;
  consoleUrl: string;
}

/** "You are invited to administer …": the one-time link (valid 72 h) where the invitee sets a password. */
export function adminInvitation(f: InvitationFacts): MailContent {
  return render(
    oneLine(`You are invited to administer system access tokens for ${f.organisation}`),
    [
      { p: 'Hello,' },
      {
        p:
          `${f.invitedBy} invited you to become an administrator of ${f.organisation}'s system access tokens. ` +
          'Open this link to choose your password and sign in:',
      },
      { link: f.link },
      { rows: [['Organisation', f.organisation], ['Invited by', f.invitedBy], ['Link valid until', formatInstant(f.expiresAt)]] },
      { p: 'The link works once. If it has expired, ask an administrator of your organisation to invite you again.' },
      { strong: 'Not expecting this?' },
      { p: 'Ignore this mail: nothing happens unless the link is opened and a password chosen.' },
    ],
    footer(f.consoleUrl),
  );
}

export interface PasswordResetFacts {
  email: string;
  link: string;
  expiresAt: Date;
  ip: string | null;
  consoleUrl: string;
}

/** "Reset your password": the one-time link (valid 1 h). */
export function passwordResetLink(f: PasswordResetFacts): MailContent {
  return render(
    'Reset your System Access Tokens password',
    [
      { p: 'Hello,' },
      { p: `Someone asked to reset the password of the administrator account ${f.email}. To choose a new password, open:` },
      { link: f.link },
      { rows: [['Link valid until', formatInstant(f.expiresAt)], ['Requested from IP address', ipText(f.ip)]] },
      {
        p:
          'The link works once. Setting a new password signs the account out everywhere. If you did not ask for this, ' +
          'ignore this mail: your password stays as it is.',
      },
    ],
    footer(f.consoleUrl),
  );
}

export interface PasswordChangedFacts {
  email: string;
  how: 'changed' | 'reset' | 'reset_cli';
  at: Date;
  ip: string | null;
  consoleUrl: string;
}

/** "Your password was changed" (after a change, a reset by mail, or `sat admin reset-password`). */
export function passwordChanged(f: PasswordChangedFacts): MailContent {
  const how =
    f.how === 'changed'
      ? 'was changed in one of its signed-in sessions (the admin console or the admin API)'
      : f.how === 'reset'
        ? 'was reset with a link sent to this address'
        : 'was reset by an operator with the command-line tool (sat)';
  const ended = f.how === 'changed' ? 'Every other session of the account was signed out.' : 'Every session of the account was signed out.';
  return render(
    'Your System Access Tokens password was changed',
    [
      { p: 'Hello,' },
      { p: `The password of the administrator account ${f.email} ${how}. ${ended}` },
      { rows: [['When', formatInstant(f.at)], ['From IP address', ipText(f.ip)]] },
      { strong: 'Was this not you?' },
      {
        p:
          `Reset your password now from the sign-in page of the admin console at ${f.consoleUrl} ("Forgot your ` +
          'password?") and tell your security team: someone else may know your password or read your mail.',
      },
    ],
    footer(f.consoleUrl),
  );
}
