// Issue 10 item 15: a permanent SMTP rejection of the message (5xx to RCPT TO or DATA) fails the mail at once (logged,
// counted, not retried), a 5xx that refuses every message (AUTH, MAIL FROM) is retried as an outage, and a crashed
// sender's claim frees its mail within seconds while a live sender renews its claim.
import type { Knex } from 'knex';
import { SMTPServer } from 'smtp-server';
import { loadConfig } from '../../src/config/index.js';
import { migrateLatest, openDb, type Database, type MailOutboxRow } from '../../src/db/index.js';
import type { Deps } from '../../src/deps.js';
import { createLogger } from '../../src/log.js';
import { claimDueMail, deliverDueMail, LEASE_MS } from '../../src/mail/delivery.js';
import { enqueueMail } from '../../src/mail/index.js';
import { createMailTransport, type MailTransport, type OutgoingMail } from '../../src/mail/transport.js';
import { mailDeliveries } from '../../src/metrics.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { uniq } from '../support/fixtures.js';
import { freePort } from '../support/server.js';

describe.each(testDatabases())('mail: permanent failures and short leases on %s', (kind) => {
  let db: TestDb;
  let database: Database;
  let smtp: SMTPServer;
  let smtpUrl: string;
  const accepted: string[] = [];
  const greylisted = new Set<string>();

  beforeAll(async () => {
    db = await createTestDb(kind);
    database = await openDb(loadConfig(db.env));
    await migrateLatest(database.knex);
    const port = await freePort();
    smtpUrl = `smtp://127.0.0.1:${port}`;
    const refuse = (code: number, message: string) => Object.assign(new Error(message), { responseCode: code });
    smtp = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      authOptional: true,
      allowInsecureAuth: true,
      logger: false,
      // A relay that refuses our credentials, or our sender: every message alike, whoever it is for.
      onAuth(_auth, _session, callback) {
        callback(refuse(535, '5.7.8 Authentication credentials invalid'));
      },
      onMailFrom(address, _session, callback) {
        if (address.address.startsWith('refused-sender@')) return callback(refuse(550, '5.7.1 sender refused'));
        if (address.address.startsWith('auth-needed@')) return callback(refuse(530, '5.7.0 Authentication required'));
        callback();
      },
      onRcptTo(address, _session, callback) {
        if (address.address.startsWith('busy-')) return callback(refuse(452, '4.2.2 mailbox full, try later'));
        // Greylisting: the first delivery to the address is refused for now, the next one taken.
        if (address.address.startsWith('greylisted-') && !greylisted.has(address.address)) {
          greylisted.add(address.address);
          return callback(refuse(451, '4.7.1 Greylisted, try again later'));
        }
        if (address.address.startsWith('nobody-')) {
          const err = Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 });
          return callback(err);
        }
        callback();
      },
      onData(stream, session, callback) {
        stream.resume();
        stream.on('end', () => {
          if (session.envelope.rcptTo.some((r) => r.address.startsWith('bad-content-'))) {
            return callback(refuse(554, '5.6.0 message content refused'));
          }
          accepted.push(...session.envelope.rcptTo.map((r) => r.address));
          callback();
        });
      },
    });
    await new Promise<void>((resolve) => smtp.listen(port, '127.0.0.1', () => resolve()));
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => smtp.close(() => resolve()));
    await database?.close();
    await db?.drop();
  });

  const knex = (): Knex => database.knex;
  let base = Date.now() + 365 * 86_400_000; // each test further ahead: earlier tests' rows are never due in later ones
  const config = loadConfig({ MAIL_MAX_ATTEMPTS: '20' });
  const depsAt = (clock: () => Date, lines: string[] = []): Pick<Deps, 'db' | 'config' | 'log' | 'clock'> => ({
    db: database,
    config: { ...config, mailMaxAttempts: 20 },
    clock,
    log: createLogger('debug', {}, (l) => lines.push(l)),
  });
  async function queue(to: string, at: Date): Promise<MailOutboxRow> {
    return knex().transaction((trx) =>
      enqueueMail(trx, { kind: 'token_generated', to, content: { subject: 's', text: 't', html: '<p>t</p>' }, now: at, messageIdDomain: 'test.example' }),
    );
  }
  const smtpTransport = (options: { from?: string; url?: string } = {}): MailTransport =>
    createMailTransport(
      { smtpUrl: options.url ?? smtpUrl, mailFrom: options.from ?? 'tokens@test.example', dataDir: db.dataDir, smtpAllowPlaintextAuth: true },
      createLogger('silent'),
    );
  const failedCount = async () => (await mailDeliveries.get()).values.filter((v) => v.labels.outcome === 'failed').reduce((n, v) => n + v.value, 0);

  it('fails a mail the SMTP server rejects with 550 after one attempt, logs and counts it', async () => {
    base += 86_400_000;
    const at = new Date(base);
    const to = `nobody-${uniq('x')}@example.com`;
    const row = await queue(to, at);
    const lines: string[] = [];
    const before = await failedCount();
    const transport = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(() => at, lines), transport)).toEqual({ sent: 0, retried: 0, failed: 1, released: 0 });
    } finally {
      transport.close();
    }
    const after = (await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow;
    expect(after).toMatchObject({ status: 'failed', attempts: 1 });
    expect(after.last_error).toMatch(/550/);
    expect(await failedCount()).toBe(before + 1);
    expect(lines.filter((l) => l.includes('rejected permanently'))).toHaveLength(1);
    // Nothing is due later either: it is not retried.
    const again = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(() => new Date(base + 86_400_000)), again)).toMatchObject({ sent: 0, retried: 0, failed: 0 });
    } finally {
      again.close();
    }
  });

  it('fails a mail the SMTP server keeps refusing for a while (4xx to RCPT TO) after MAIL_MAX_ATTEMPTS, logged', async () => {
    base += 86_400_000;
    const at = new Date(base);
    const row = await queue(`busy-${uniq('x')}@example.com`, at);
    const lines: string[] = [];
    const three = (clock: () => Date) => ({ ...depsAt(clock, lines), config: { ...config, mailMaxAttempts: 3, mailRetryBaseSeconds: 1, mailRetryMaxSeconds: 1 } });
    const transport = smtpTransport();
    try {
      for (let attempt = 1; attempt <= 3; attempt++) {
        const when = new Date(base + attempt * 10_000);
        expect(await deliverDueMail(three(() => when), transport)).toEqual({ sent: 0, retried: attempt < 3 ? 1 : 0, failed: attempt < 3 ? 0 : 1, released: 0 });
      }
    } finally {
      transport.close();
    }
    const after = (await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow;
    expect(after).toMatchObject({ status: 'failed', attempts: 3 });
    expect(after.last_error).toMatch(/452/);
    expect(lines.filter((l) => l.includes('mail could not be delivered; gave up'))).toHaveLength(1);
  });

  it('counts only the relay\'s refusals of the message: after a long outage, a first 4xx is retried, not fatal', async () => {
    base += 86_400_000;
    const to = `greylisted-${uniq('x')}@example.com`;
    const row = await queue(to, new Date(base));
    const lines: string[] = [];
    const two = (when: number) => ({ ...depsAt(() => new Date(when), lines), config: { ...config, mailMaxAttempts: 2, mailRetryBaseSeconds: 1, mailRetryMaxSeconds: 1 } });
    // Five attempts while the relay is down (more than MAIL_MAX_ATTEMPTS): none counted.
    const down = smtpTransport({ url: `smtp://127.0.0.1:${await freePort()}` });
    try {
      for (let i = 1; i <= 5; i++) expect(await deliverDueMail(two(base + i * 10_000), down)).toMatchObject({ retried: 1, failed: 0 });
    } finally {
      down.close();
    }
    expect((await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow).toMatchObject({ status: 'pending', attempts: 0 });
    // The relay back, greylisting the first delivery: retried; the next one goes out.
    const up = smtpTransport();
    try {
      expect(await deliverDueMail(two(base + 60_000), up)).toMatchObject({ retried: 1, failed: 0 });
      expect(await deliverDueMail(two(base + 70_000), up)).toMatchObject({ sent: 1, failed: 0 });
    } finally {
      up.close();
    }
    expect(accepted).toContain(to);
    expect(lines.filter((l) => l.includes('gave up'))).toEqual([]);
  });

  it('fails a mail whose content the SMTP server rejects with 554 at DATA after one attempt', async () => {
    base += 86_400_000;
    const at = new Date(base);
    const row = await queue(`bad-content-${uniq('x')}@example.com`, at);
    const lines: string[] = [];
    const transport = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(() => at, lines), transport)).toEqual({ sent: 0, retried: 0, failed: 1, released: 0 });
    } finally {
      transport.close();
    }
    expect((await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow).toMatchObject({ status: 'failed', attempts: 1 });
    expect(lines.filter((l) => l.includes('rejected permanently'))).toHaveLength(1);
  });

  // SPEC "Email": an SMTP outage delays mail, never loses it. A relay that refuses our credentials or our sender
  // refuses every message: that is an outage of the relay (or of its configuration), not a verdict on the message.
  it.each([
    ['AUTH refused with 535 (EAUTH)', { url: () => smtpUrl.replace('smtp://', 'smtp://notices:wrong-password@') }, /535/],
    ['530 authentication required at MAIL FROM', { from: 'auth-needed@test.example' }, /530/],
    ['550 at MAIL FROM (the sender refused)', { from: 'refused-sender@test.example' }, /550/],
  ] as const)('retries, with backoff, a mail the relay refuses as a whole: %s', async (_what, how, code) => {
    base += 86_400_000;
    const at = new Date(base);
    const to = `${uniq('relay')}@example.com`;
    const row = await queue(to, at);
    const lines: string[] = [];
    const transport = smtpTransport({ ...('from' in how ? { from: how.from } : {}), ...('url' in how ? { url: how.url() } : {}) });
    try {
      expect(await deliverDueMail(depsAt(() => at, lines), transport)).toEqual({ sent: 0, retried: 1, failed: 0, released: 0 });
    } finally {
      transport.close();
    }
    const after = (await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow;
    expect(after).toMatchObject({ status: 'pending', attempts: 0, locked_by: null }); // an outage's attempt is not counted
    expect(after.last_error).toMatch(code);
    expect(new Date(after.next_attempt_at).getTime()).toBeGreaterThan(at.getTime()); // the backoff, not at once
    expect(lines.filter((l) => l.includes('rejected permanently'))).toEqual([]);
    expect(lines.filter((l) => l.includes('will retry'))).toHaveLength(1);
    // Once the relay takes mail again (the right sender, no refused login), the retry delivers it.
    const fixed = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(() => new Date(base + 3_600_000)), fixed)).toMatchObject({ sent: 1, failed: 0 });
    } finally {
      fixed.close();
    }
    expect(accepted).toContain(to);
  });

  // A one-time link is a credential (SPEC Part 2 "Administrators": stored only as hashes): a failed invitation or
  // reset mail, kept for inspection, keeps no copy of it either.
  it('keeps no one-time link in an invitation or reset mail it gives up on', async () => {
    base += 86_400_000;
    const at = new Date(base);
    const rows: MailOutboxRow[] = [];
    const links: string[] = [];
    for (const [kind, page] of [['admin_invitation', 'invite'], ['password_reset', 'reset']] as const) {
      const link = `https://sat.example.com/admin#/${page}?token=${uniq('onetimesecret')}`;
      links.push(link);
      rows.push(
        await knex().transaction((trx) =>
          enqueueMail(trx, {
            kind,
            to: `nobody-${uniq('x')}@example.com`,
            content: { subject: 's', text: `Open ${link}`, html: `<p>${link}</p>` },
            now: at,
            messageIdDomain: 'test.example',
          }),
        ),
      );
    }
    const transport = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(() => at), transport)).toMatchObject({ sent: 0, failed: 2 });
    } finally {
      transport.close();
    }
    for (const row of rows) {
      const after = (await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow;
      expect(after.status).toBe('failed');
      expect(after.last_error).toMatch(/550/);
      for (const link of links) expect(JSON.stringify(after)).not.toContain(link.slice(link.indexOf('token=')));
    }
  });

  it('frees a crashed sender\'s mail within seconds', async () => {
    base += 86_400_000;
    const at = new Date(base);
    const to = `${uniq('crash')}@example.com`;
    const row = await queue(to, at);
    expect((await claimDueMail(knex(), '00000000-0000-4000-8000-00000000dead', at)).map((r) => r.id)).toEqual([row.id]);
    expect(LEASE_MS).toBeLessThanOrEqual(30_000);
    const transport = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(() => new Date(at.getTime() + LEASE_MS - 1_000)), transport)).toMatchObject({ sent: 0 });
      expect(await deliverDueMail(depsAt(() => new Date(at.getTime() + LEASE_MS + 1_000)), transport)).toMatchObject({ sent: 1 });
    } finally {
      transport.close();
    }
    expect(accepted).toContain(to);
  });

  it('renews the claim while a slow send is in progress, so no other sender takes the mail', async () => {
    base += 86_400_000;
    let now = base;
    const to = `${uniq('slow')}@example.com`;
    const row = await queue(to, new Date(now));
    let release!: () => void;
    const released = new Promise<void>((r) => (release = r));
    let sending!: () => void;
    const inSend = new Promise<void>((r) => (sending = r));
    const slow: MailTransport = {
      target: 'slow',
      async send(_mail: OutgoingMail) {
        sending();
        await released;
      },
      close() {},
    };
    const first = deliverDueMail(depsAt(() => new Date(now)), slow, { heartbeatMs: 20 });
    await inSend;
    now += 10_000; // the send takes longer than the original lease
    const deadline = Date.now() + 10_000;
    for (;;) {
      const r = (await knex()('mail_outbox').where({ id: row.id }).first()) as MailOutboxRow;
      if (new Date(r.locked_until as Date).getTime() >= now + LEASE_MS) break;
      if (Date.now() > deadline) throw new Error('the claim was not renewed');
      await new Promise((res) => setTimeout(res, 20));
    }
    // Past the first lease, but not past the renewed one: another sender finds nothing to claim.
    expect(await claimDueMail(knex(), '00000000-0000-4000-8000-00000000beef', new Date(base + LEASE_MS + 1_000))).toEqual([]);
    release();
    expect(await first).toMatchObject({ sent: 1 });
  });
});
