// Where mail goes: nodemailer on SMTP_URL, or, with no SMTP_URL (the embedded default), `.eml` files in DATA_DIR/mail.
import { renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import nodemailer from 'nodemailer';
import type { Config } from '../config/index.js';
import { makeDirectories } from '../db/index.js';
import type { Logger } from '../log.js';

/** One message as the transport sends it: everything fixed by the outbox row, so a resend is the same message. */
export interface OutgoingMail {
  /** The outbox row id (names the `.eml` file). */
  id: string;
  kind: string;
  messageId: string;
  to: string;
  subject: string;
  text: string;
  html: string;
  date: Date;
}

export interface MailTransport {
  /** For the log: `smtp://host:port` (never the credentials) or the `.eml` directory. */
  readonly target: string;
  /** Rejects when `signal` aborts (the SMTP connection is closed at once). */
  send(mail: OutgoingMail, signal?: AbortSignal): Promise<void>;
  close(): void;
}

/**
 * nodemailer's waits, in ms. `socketTimeout` is the longest silence in the conversation: RFC 5321 §4.5.3.2.6 gives
 * the server 10 minutes to acknowledge the end of DATA, and a client that gives up sooner sends the message again
 * although the relay may have taken it (a duplicate per timeout). Before the greeting no message has been handed
 * over, so giving up there only delays it: a minute for the connection (DNS and TCP) and the greeting together. The
 * claim on the mail being sent is renewed for as long as the attempt lasts (delivery.ts, HEARTBEAT_MS), and the
 * shutdown cuts an attempt in progress (deliverDueMail's sendSignal), so neither depends on these.
 */
export const SMTP_TIMEOUTS = { connectionTimeout: 60_000, greetingTimeout: 60_000, socketTimeout: 10 * 60_000 } as const;

// RFC 3834: an automatic notice; asks auto-responders not to answer it.
const NOTICE_HEADERS = { 'Auto-Submitted': 'auto-generated', 'X-Auto-Response-Suppress': 'All' };

/** `smtp://user:pass@host:587` → `smtp://host:587`. */
export function describeSmtpUrl(url: string): string {
  const u = new URL(url);
  const port = u.port || (u.protocol === 'smtps:' ? '465' : '587');
  return `${u.protocol}//${u.hostname}:${port}`;
}

/**
 * nodemailer's TLS options for an SMTP URL: credentials (user or password in the URL) over smtp:// require STARTTLS
 * (`requireTLS`: no AUTH before the connection is encrypted, and no mail either) unless the operator allowed
 * plaintext authentication; smtps:// is TLS from the first byte anyway.
 */
export function smtpTlsOptions(url: string, allowPlaintextAuth: boolean): { requireTLS?: boolean } {
  const u = new URL(url);
  const hasCredentials = u.username !== '' || u.password !== '';
  return u.protocol === 'smtp:' && hasCredentials && !allowPlaintextAuth ? { requireTLS: true } : {};
}

/**
 * The mail transport for this configuration: nodemailer over SMTP_URL (SMTP_TIMEOUTS, STARTTLS required for
 * credentials over smtp:// unless SMTP_ALLOW_PLAINTEXT_AUTH), else each message written atomically (mode 0600) as
 * `<date>-<kind>-<id>.eml` under DATA_DIR/mail, a resend overwriting its file. Logs the choice once; `send` rejects
 * with the SMTP or file-system error. Throws on an SMTP_URL that is not a URL.
 */
export function createMailTransport(
  config: Pick<Config, 'smtpUrl' | 'mailFrom' | 'dataDir'> & Partial<Pick<Config, 'smtpAllowPlaintextAuth'>>,
  log: Logger,
): MailTransport {
  // The same message for SMTP and for .eml files.
  const message = (mail: Parameters<MailTransport['send']>[0]) => ({
    from: config.mailFrom,
    to: mail.to,
    subject: mail.subject,
    text: mail.text,
    html: mail.html,
    messageId: mail.messageId,
    date: mail.date,
    headers: NOTICE_HEADERS,
  });
  if (config.smtpUrl) {
    const target = describeSmtpUrl(config.smtpUrl);
    const tls = smtpTlsOptions(config.smtpUrl, config.smtpAllowPlaintextAuth ?? false);
    const transporter = nodemailer.createTransport({ url: config.smtpUrl, ...SMTP_TIMEOUTS, ...tls });
    log.info('mail is delivered over SMTP', { smtp: target, from: config.mailFrom, ...(tls.requireTLS ? { starttls: 'required' } : {}) });
    return {
      target,
      async send(mail, signal) {
        // nodemailer 10 closes the connection and rejects with EABORT when the signal aborts (its types lag).
        const options = { ...message(mail), ...(signal ? { signal } : {}) };
        await transporter.sendMail(options);
      },
      close: () => transporter.close(),
    };
  }

  const dir = path.join(config.dataDir, 'mail');
  const composer = nodemailer.createTransport({ streamTransport: true, buffer: true, newline: 'unix' });
  log.info('SMTP_URL is not set: mail is written as .eml files instead of being sent', { directory: dir });
  return {
    target: dir,
    async send(mail) {
      const info = await composer.sendMail(message(mail));
      makeDirectories(dir);
      // Named by queue time and row id: sorts in order, and a resend overwrites its own file instead of adding one.
      const stamp = mail.date.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
      const file = path.join(dir, `${stamp}-${mail.kind}-${mail.id}.eml`);
      const tmp = `${file}.tmp`;
      writeFileSync(tmp, info.message as Buffer, { mode: 0o600 });
      renameSync(tmp, file);
      log.info('mail written to a file (no SMTP_URL)', { file, kind: mail.kind, message_id: mail.messageId });
    },
    close: () => composer.close(),
  };
}
