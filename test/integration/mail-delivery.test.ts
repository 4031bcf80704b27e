// SPEC "Email": an SMTP outage delays mail, never loses it and never fails the admin's request; mail survives a
// restart; a crashed sender's claim runs out and the mail goes out once; an outage never ends in "failed"
// (mail-permanent.test.ts: what does).
import type { Knex } from 'knex';
import type { MailOutboxRow } from '../../src/db/index.js';
import type { Deps } from '../../src/deps.js';
import { createLogger } from '../../src/log.js';
import { claimDueMail, deliverDueMail, LEASE_MS, pruneSentMail } from '../../src/mail/delivery.js';
import { enqueueMail, type NewMail } from '../../src/mail/index.js';
import { createMailTransport, type MailTransport } from '../../src/mail/transport.js';
import type { Actor } from '../../src/tokens/index.js';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow, makeAdmin, uniq } from '../support/fixtures.js';
import { freePort, startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const YEAR = 365 * 86_400_000;

describe.each(testDatabases())('mail delivery on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  const env = () => ({
    SMTP_URL: smtp.url,
    MAIL_RETRY_BASE_SECONDS: '30',
    MAIL_RETRY_MAX_SECONDS: '60',
  });
  const RETRY_MAX_MS = 60_000;

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    // Jobs run when the test says so (server.runJob), at the server's test clock.
    server = await startServer(db, env(), { jobs: 'manual' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  const knex = (): Knex => server.deps.db.knex;
  const rowFor = (recipient: string, kindOf = 'token_generated') =>
    knex()<MailOutboxRow>('mail_outbox').where({ recipient, kind: kindOf }).first();
  /** POST /admin/api/tokens as `a`, the way the console does it. */
  async function generate(a: Actor & { password: string }) {
    const { token } = await signIn(server, a.email, a.password);
    const body = { name: uniq('token'), services: ['jobs'], expires_at: daysFromNow(30) };
    return call(server, 'POST', '/tokens', { token, json: body });
  }

  it('answers the admin at once while SMTP is down, retries, and delivers once when SMTP is back', async () => {
    const a = await makeAdmin(server.deps);
    await smtp.stop();
    // The request only queues the mail (the outbox): it never waits for SMTP.
    const res = await generate(a);
    expect(res.status).toBe(201);
    const t = res.body as { client_secret: string };
    expect(t.client_secret).toMatch(/^sats_/);

    // The worker tries twice and fails (connection refused), and keeps the mail, due again after the backoff. An
    // outage's attempts are not counted against MAIL_MAX_ATTEMPTS: each moves the next attempt on.
    await server.runJob('deliver-mail');
    const first = (await rowFor(a.email))!;
    expect(first).toMatchObject({ status: 'pending', attempts: 0 });
    expect(first.last_error).toMatch(/ECONNREFUSED|connect/i);
    await server.runJob('deliver-mail'); // not due yet: no attempt
    expect((await rowFor(a.email))!.next_attempt_at).toEqual(first.next_attempt_at);
    server.clock.advance(RETRY_MAX_MS);
    await server.runJob('deliver-mail');
    const failing = (await rowFor(a.email))!;
    expect(failing).toMatchObject({ status: 'pending', attempts: 0 });
    expect(failing.next_attempt_at.getTime()).toBeGreaterThan(first.next_attempt_at.getTime());
    expect(failing.last_error).toMatch(/ECONNREFUSED|connect/i);
    expect(server.logLines.some((l) => l.includes('mail delivery failed; will retry') && l.includes(failing.message_id))).toBe(true);

    await smtp.start();
    server.clock.advance(2 * RETRY_MAX_MS);
    await server.runJob('deliver-mail');
    expect(smtp.to(a.email)).toHaveLength(1);
    server.clock.advance(2 * RETRY_MAX_MS);
    await server.runJob('deliver-mail'); // more worker runs: no second copy
    const received = smtp.to(a.email);
    expect(received).toHaveLength(1);
    expect(received[0]!.messageId).toBe(failing.message_id);
    expect(received[0]!.raw).not.toContain(t.client_secret);
    const sent = await rowFor(a.email);
    expect(sent).toMatchObject({ status: 'sent', last_error: null, locked_by: null });
    expect(sent!.attempts).toBe(1); // the one the relay answered
  });

  it('keeps queued mail across a restart of the server and delivers it once afterwards', async () => {
    const a = await makeAdmin(server.deps);
    await smtp.stop();
    expect((await generate(a)).status).toBe(201);
    await server.runJob('deliver-mail');
    expect(await rowFor(a.email)).toMatchObject({ attempts: 0, status: 'pending', last_error: expect.stringMatching(/ECONNREFUSED|connect/i) });
    await server.close();

    // While no server runs: the mail is in the database, pending, not held by anyone.
    const { openDb } = await import('../../src/db/index.js');
    const { loadConfig } = await import('../../src/config/index.js');
    const probe = await openDb(loadConfig({ ...db.env }));
    const queued = await probe.knex<MailOutboxRow>('mail_outbox').where({ recipient: a.email }).first();
    await probe.close();
    expect(queued).toMatchObject({ status: 'pending', locked_by: null });

    await smtp.start();
    server = await startServer(db, env(), { jobs: 'manual', clock: server.clock.advance(2 * RETRY_MAX_MS) });
    await server.runJob('deliver-mail');
    expect(smtp.to(a.email)).toHaveLength(1);
    await server.runJob('deliver-mail');
    expect(smtp.to(a.email)).toHaveLength(1);
    expect(smtp.to(a.email)[0]!.messageId).toBe(queued!.message_id);
    expect((await rowFor(a.email))?.status).toBe('sent');
  });

  // The next tests drive the worker directly with deps at a clock a year ahead, on mail queued for that time (the
  // server's own job runs only when a test calls it). Each test runs at an earlier clock than the one before, so
  // rows an earlier test left behind are never due in a later one.
  const HOUR = 3_600_000;
  const ahead = (offsetMs = 0) => new Date(Date.now() + YEAR + offsetMs);
  const depsAt = (at: Date, config: Partial<Deps['config']> = {}, lines: string[] = []): Deps => ({
    ...server.deps,
    config: { ...server.deps.config, ...config },
    clock: () => at,
    log: createLogger('debug', {}, (l) => lines.push(l)),
  });
  async function queueAt(at: Date, to: string, n = 1): Promise<MailOutboxRow[]> {
    return knex().transaction(async (trx) => {
      const rows: MailOutboxRow[] = [];
      for (let i = 0; i < n; i++) {
        const mail: NewMail = {
          kind: 'token_generated',
          to,
          content: { subject: `direct ${i}`, text: `message ${i}`, html: `<p>message ${i}</p>` },
          now: at,
          messageIdDomain: 'test.example',
        };
        rows.push(await enqueueMail(trx, mail));
      }
      return rows;
    });
  }
  const smtpTransport = (): MailTransport =>
    createMailTransport({ smtpUrl: smtp.url, mailFrom: 'tokens@test.example', dataDir: db.dataDir }, createLogger('silent'));

  it('picks up mail again once a crashed sender\'s claim has run out, and sends it once', async () => {
    const at = ahead(4 * HOUR);
    const to = `${uniq('lease')}@example.com`;
    const [queued] = await queueAt(at, to);
    // A sender claims the row and dies before sending.
    const claimed = await claimDueMail(knex(), '00000000-0000-4000-8000-000000000001', at);
    expect(claimed.map((r) => r.id)).toEqual([queued!.id]);

    const transport = smtpTransport();
    try {
      // While the claim's lease lives, no other sender touches the row.
      const later = (ms: number) => depsAt(new Date(at.getTime() + ms));
      expect(await deliverDueMail(later(LEASE_MS - 1_000), transport)).toEqual({ sent: 0, retried: 0, failed: 0, released: 0 });
      // After it, the row is due again and goes out once, with the Message-ID stored at queue time.
      expect(await deliverDueMail(later(LEASE_MS + 60_000), transport)).toMatchObject({ sent: 1 });
      expect(await deliverDueMail(later(LEASE_MS + 120_000), transport)).toMatchObject({ sent: 0 });
    } finally {
      transport.close();
    }
    await smtp.waitFor(() => smtp.to(to).length >= 1);
    expect(smtp.to(to).map((m) => m.messageId)).toEqual([queued!.message_id]);
    expect(await knex()('mail_outbox').where({ id: queued!.id }).first()).toMatchObject({ status: 'sent', attempts: 2 });
  });

  it('hands back claimed mail unsent when stopped, for the next run', async () => {
    const at = ahead(3 * HOUR);
    const to = `${uniq('stop')}@example.com`;
    await queueAt(at, to, 3);
    const stop = new AbortController();
    const inner = smtpTransport();
    // Shutdown arrives while the first message is being sent.
    const transport: MailTransport = { target: inner.target, close: () => inner.close(), send: async (m) => { stop.abort(); await inner.send(m); } };
    try {
      expect(await deliverDueMail(depsAt(at), transport, { signal: stop.signal })).toEqual({ sent: 1, retried: 0, failed: 0, released: 2 });
      const rows = await knex()<MailOutboxRow>('mail_outbox').where({ recipient: to }).orderBy('status', 'desc');
      expect(rows.map((r) => [r.status, r.attempts, r.locked_by])).toEqual([
        ['sent', 1, null],
        ['pending', 0, null],
        ['pending', 0, null],
      ]);
      expect(await deliverDueMail(depsAt(at), inner)).toMatchObject({ sent: 2 });
    } finally {
      inner.close();
    }
    await smtp.waitFor(() => smtp.to(to).length >= 3);
    expect(new Set(smtp.to(to).map((m) => m.messageId)).size).toBe(3);
  });

  // A relay that cannot be reached (or hangs, up to the SMTP client's 10 minutes a message) fails every message of
  // a batch the same way: after the first such failure the rest go back unattempted, for the next run.
  it('after a failure of the relay itself, hands back the rest of the batch unattempted instead of failing each one', async () => {
    const at = ahead(5 * HOUR);
    const to = `${uniq('relaydown')}@example.com`;
    await queueAt(at, to, 3);
    const down = createMailTransport(
      { smtpUrl: `smtp://127.0.0.1:${await freePort()}`, mailFrom: 'tokens@test.example', dataDir: db.dataDir },
      createLogger('silent'),
    );
    const lines: string[] = [];
    try {
      const run = await deliverDueMail(depsAt(at, {}, lines), down);
      expect([run.sent, run.retried, run.failed]).toEqual([0, 1, 0]); // one connection refused, not one per message
      expect(run.released).toBeGreaterThanOrEqual(2);
    } finally {
      down.close();
    }
    const rows = await knex()<MailOutboxRow>('mail_outbox').where({ recipient: to });
    expect(rows.every((r) => r.status === 'pending' && r.locked_by === null)).toBe(true);
    expect(rows.reduce((n, r) => n + r.attempts, 0)).toBeLessThanOrEqual(1);
    expect(lines.some((l) => l.includes('SMTP relay unavailable; the rest of the batch waits for the next run'))).toBe(true);
    // The relay back: every one of them goes out (the one that failed after its backoff).
    const up = smtpTransport();
    try {
      await deliverDueMail(depsAt(new Date(at.getTime() + RETRY_MAX_MS + 1_000)), up);
    } finally {
      up.close();
    }
    await smtp.waitFor(() => smtp.to(to).length >= 3);
    expect(smtp.to(to)).toHaveLength(3);
  });

  it('never fails mail for an outage of the relay: past MAIL_MAX_ATTEMPTS it is retried at the longest delay', async () => {
    const at = ahead(2 * HOUR);
    const to = `${uniq('outage')}@example.com`;
    const [queued] = await queueAt(at, to);
    const closedPort = await freePort();
    const transport = createMailTransport(
      { smtpUrl: `smtp://127.0.0.1:${closedPort}`, mailFrom: 'tokens@test.example', dataDir: db.dataDir },
      createLogger('silent'),
    );
    const config = { mailMaxAttempts: 2, mailRetryBaseSeconds: 60, mailRetryMaxSeconds: 60 };
    const lines: string[] = [];
    try {
      expect(await deliverDueMail(depsAt(at, config, lines), transport)).toMatchObject({ retried: 1, failed: 0 });
      const retry = await knex()<MailOutboxRow>('mail_outbox').where({ id: queued!.id }).first();
      expect(retry).toMatchObject({ status: 'pending', attempts: 0 }); // an outage's attempt is not counted
      const delay = retry!.next_attempt_at.getTime() - at.getTime();
      expect(delay).toBeGreaterThanOrEqual(30_000); // equal jitter: between half and all of the 60 s base
      expect(delay).toBeLessThanOrEqual(60_000);
      // Not due before its retry time.
      expect(await deliverDueMail(depsAt(new Date(at.getTime() + 29_000), config, lines), transport)).toMatchObject({ retried: 0, failed: 0 });
      // The second and third attempts, past MAIL_MAX_ATTEMPTS: still retried, never failed.
      expect(await deliverDueMail(depsAt(new Date(at.getTime() + 61_000), config, lines), transport)).toMatchObject({ retried: 1, failed: 0 });
      expect(await deliverDueMail(depsAt(new Date(at.getTime() + 122_000), config, lines), transport)).toMatchObject({ retried: 1, failed: 0 });
    } finally {
      transport.close();
    }
    const waiting = await knex()<MailOutboxRow>('mail_outbox').where({ id: queued!.id }).first();
    expect(waiting).toMatchObject({ status: 'pending', attempts: 0, locked_by: null });
    expect(waiting!.last_error).toMatch(/ECONNREFUSED|connect/i);
    expect(lines.some((l) => l.includes('gave up'))).toBe(false);
    // The relay back: it goes out.
    const up = smtpTransport();
    try {
      expect(await deliverDueMail(depsAt(new Date(at.getTime() + 200_000), config), up)).toMatchObject({ sent: 1 });
    } finally {
      up.close();
    }
    await smtp.waitFor(() => smtp.to(to).length >= 1);
  });

  it('two workers racing over one outbox send each mail once', async () => {
    const at = ahead(HOUR);
    const to = `${uniq('race')}@example.com`;
    const queued = await queueAt(at, to, 24);
    const a = smtpTransport();
    const b = smtpTransport();
    try {
      const results = await Promise.all([
        deliverDueMail(depsAt(at), a, { batchSize: 3 }),
        deliverDueMail(depsAt(at), b, { batchSize: 3 }),
      ]);
      expect(results[0]!.sent + results[1]!.sent).toBe(24);
    } finally {
      a.close();
      b.close();
    }
    // Each send completed before deliverDueMail returned: everything has arrived.
    const ids = smtp.to(to).map((m) => m.messageId);
    expect(ids).toHaveLength(24);
    expect(new Set(ids)).toEqual(new Set(queued.map((r) => r.message_id)));
  });

  it('prunes mail sent more than 30 days ago and keeps the rest', async () => {
    const to = `${uniq('prune')}@example.com`;
    const [old, recent, failed] = await queueAt(ahead(5 * HOUR), to, 3);
    const now = new Date();
    const daysAgo = (d: number) => new Date(now.getTime() - d * 86_400_000);
    await knex()('mail_outbox').where({ id: old!.id }).update({ status: 'sent', sent_at: daysAgo(31) });
    await knex()('mail_outbox').where({ id: recent!.id }).update({ status: 'sent', sent_at: daysAgo(29) });
    await knex()('mail_outbox').where({ id: failed!.id }).update({ status: 'failed', created_at: daysAgo(90) });
    expect(await pruneSentMail(depsAt(now))).toBe(1);
    const left = await knex()<MailOutboxRow>('mail_outbox').where({ recipient: to }).pluck('id');
    expect(left.sort()).toEqual([recent!.id, failed!.id].sort());
  });
});
