// A real SMTP server in the test process (smtp-server), each message read back with mailparser.
// stop()/start() close and reopen it on the same port, to play an outage.
import { simpleParser, type AddressObject, type ParsedMail } from 'mailparser';
import { SMTPServer } from 'smtp-server';
import { SMTPConnection } from 'smtp-server/lib/smtp-connection.js';
import { freePort } from './server.js';

// smtp-server holds every new connection 100 ms before its greeting, to catch clients that talk before it
// (SMTPConnection#init; no option turns it off). The server under test opens one SMTP connection per message, so
// each mail waited 100 ms, idle: 180 mails in expiry-reminders.test.ts's two-instance test, ~9 s of its 14. Here the
// greeting follows the connection at once (what the product does with a slow greeting is bounded by nodemailer's
// greetingTimeout; no test is about it).
SMTPConnection.prototype.init = function init(this: SMTPConnection) {
  this._setListeners(() => this.connectionReady());
};

export interface ReceivedMail {
  /** SMTP envelope recipients (RCPT TO). */
  rcptTo: string[];
  raw: string;
  parsed: ParsedMail;
  messageId: string;
  /** Addresses in the To header, lower-cased. */
  to: string[];
  subject: string;
  text: string;
  html: string;
}

export interface TestSmtp {
  port: number;
  /** SMTP_URL for the server under test. */
  url: string;
  /** Every message received so far, in arrival order. */
  messages: ReceivedMail[];
  /** Messages sent to `address` (To header, case-insensitive). */
  to(address: string): ReceivedMail[];
  /** Waits until `predicate(messages)` holds; throws with what arrived after `timeoutMs`. */
  waitFor(predicate: (messages: ReceivedMail[]) => boolean, timeoutMs?: number): Promise<ReceivedMail[]>;
  /** Closes the listener: connections are refused until start(). */
  stop(): Promise<void>;
  start(): Promise<void>;
  close(): Promise<void>;
}

function addresses(field: AddressObject | AddressObject[] | undefined): string[] {
  const list = field === undefined ? [] : Array.isArray(field) ? field : [field];
  return list.flatMap((a) => a.value.map((v) => (v.address ?? '').toLowerCase()));
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function startSmtp(): Promise<TestSmtp> {
  const port = await freePort();
  const messages: ReceivedMail[] = [];
  let server: SMTPServer | undefined;

  const create = () =>
    new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS', 'AUTH'],
      logger: false,
      onData(stream, session, callback) {
        const chunks: Buffer[] = [];
        stream.on('data', (c: Buffer) => chunks.push(c));
        stream.on('end', () => {
          const raw = Buffer.concat(chunks).toString('utf8');
          simpleParser(raw)
            .then((parsed) => {
              messages.push({
                rcptTo: session.envelope.rcptTo.map((r) => r.address.toLowerCase()),
                raw,
                parsed,
                messageId: parsed.messageId ?? '',
                to: addresses(parsed.to),
                subject: parsed.subject ?? '',
                text: parsed.text ?? '',
                html: typeof parsed.html === 'string' ? parsed.html : '',
              });
              callback();
            })
            .catch((err: Error) => callback(err));
        });
      },
    });

  const start = async () => {
    if (server) return;
    const s = create();
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.listen(port, '127.0.0.1', () => resolve());
    });
    server = s;
  };
  const stop = async () => {
    const s = server;
    server = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  };
  await start();

  return {
    port,
    url: `smtp://127.0.0.1:${port}`,
    messages,
    to: (address) => messages.filter((m) => m.to.includes(address.toLowerCase())),
    async waitFor(predicate, timeoutMs = 15_000) {
      const deadline = Date.now() + timeoutMs;
      while (!predicate(messages)) {
        if (Date.now() > deadline) {
          throw new Error(
            `timed out waiting for mail; received ${messages.length}: ` +
              JSON.stringify(messages.map((m) => ({ to: m.to, subject: m.subject }))),
          );
        }
        await sleep(50);
      }
      return messages;
    },
    stop,
    start,
    close: stop,
  };
}
