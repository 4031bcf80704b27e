// GET /metrics: what operators alert on — the mail queue, failed mail, refused sign-ins, rate-limited requests.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SMTPServer } from 'smtp-server';
import { createLogger } from '../../src/log.js';
import { deliverDueMail } from '../../src/mail/delivery.js';
import { createMailTransport } from '../../src/mail/transport.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { freePort, startServer, type TestServer } from '../support/server.js';

/** The value of one sample of the Prometheus text, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{([^}]*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="([^"]*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

describe.each(testDatabases())('metrics on %s', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let confDir: string;
  const metrics = async () => (await fetch(`${server.url}/metrics`)).text();

  beforeAll(async () => {
    db = await createTestDb(kind);
    confDir = mkdtempSync(path.join(os.tmpdir(), 'sat-conf-'));
    const configFile = path.join(confDir, 'config.json');
    writeFileSync(configFile, JSON.stringify({ loginThrottle: { windowSeconds: 900, delayAfterFailures: 100, delayMs: 0, blockAfterFailures: 2, perAddressFactor: 1 } }));
    server = await startServer(db, {
      TRUST_PROXY: 'true',
      CONFIG_FILE: configFile,
      MAIL_POLL_INTERVAL_MS: '600000', // the test runs delivery itself
      MAIL_MAX_ATTEMPTS: '1',
    });
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
    rmSync(confDir, { recursive: true, force: true });
  });

  it("reports the signing key's age and when the next automatic rotation publishes a key", async () => {
    const before = await metrics();
    const age = sample(before, 'sat_signing_key_age_seconds');
    expect(age).toBeGreaterThanOrEqual(0);
    server.clock.advance(86_400_000); // one day later
    try {
      const text = await metrics();
      expect(sample(text, 'sat_signing_key_age_seconds')).toBeCloseTo((age as number) + 86_400, -2);
      // KEY_ROTATION_DAYS 90, KEY_PUBLISH_AHEAD_SECONDS 600: the next key is due 90 days after the first signed, less 600 s.
      const next = sample(text, 'sat_signing_key_next_rotation_seconds') as number;
      expect(next).toBeGreaterThan(89 * 86_400 - 600 - 3_600);
      expect(next).toBeLessThanOrEqual(89 * 86_400 - 600);
    } finally {
      server.clock.advance(-86_400_000);
    }
  });

  it('leaves out the gauges it cannot read from the database (not 0), with one short log line, no SQL or stack', async () => {
    const gauges = ['sat_mail_queue_depth', 'sat_mail_queue_oldest_age_seconds', 'sat_mail_failed_messages', 'sat_signing_key_age_seconds', 'sat_signing_key_next_rotation_seconds'];
    const knex = server.deps.db.knex;
    const logged = server.logLines.length;
    await knex.raw('alter table mail_outbox rename to mail_outbox_away');
    await knex.raw('alter table signing_keys rename to signing_keys_away');
    try {
      for (let i = 0; i < 2; i += 1) {
        const text = await metrics();
        for (const name of gauges) expect({ name, value: sample(text, name) }).toEqual({ name, value: undefined });
        expect(sample(text, 'process_cpu_seconds_total')).toEqual(expect.any(Number)); // the rest still answers
      }
    } finally {
      await knex.raw('alter table mail_outbox_away rename to mail_outbox');
      await knex.raw('alter table signing_keys_away rename to signing_keys');
    }
    const lines = server.logLines.slice(logged).filter((l) => l.includes('metrics: could not read'));
    expect(lines).toHaveLength(2); // one per source, not one per scrape
    for (const line of lines) expect(line).not.toMatch(/select |"stack"/i);
    const text = await metrics();
    for (const name of gauges) expect({ name, value: sample(text, name) }).toEqual({ name, value: expect.any(Number) });
  });

  it('reports the mail queue depth and the age of its oldest message, then the failed mail', async () => {
    const session = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    expect((await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody() })).status).toBe(201);
    // The "token generated" mail waits; make it an hour old.
    const pending = await server.deps.db.knex('mail_outbox').where({ status: 'pending' }).update({ created_at: new Date(Date.now() - 3_600_000) });
    expect(pending).toBeGreaterThanOrEqual(1);
    let text = await metrics();
    expect(sample(text, 'sat_mail_queue_depth')).toBe(pending);
    expect(sample(text, 'sat_mail_queue_oldest_age_seconds')).toBeGreaterThanOrEqual(3600);
    expect(sample(text, 'sat_mail_failed_messages')).toBe(0);
    const failedBefore = sample(text, 'sat_mail_deliveries_total', { outcome: 'failed', kind: 'token_generated' }) ?? 0;

    // Delivery to an SMTP server that refuses the recipient for good (550): the mail fails.
    const port = await freePort();
    const refusing = new SMTPServer({
      disabledCommands: ['STARTTLS'],
      authOptional: true,
      logger: false,
      onRcptTo: (_address, _session, callback) => callback(Object.assign(new Error('5.1.1 mailbox unavailable'), { responseCode: 550 })),
    });
    await new Promise<void>((resolve) => refusing.listen(port, '127.0.0.1', () => resolve()));
    const transport = createMailTransport({ smtpUrl: `smtp://127.0.0.1:${port}`, mailFrom: 'tokens@test.example', dataDir: db.dataDir }, createLogger('silent'));
    try {
      await deliverDueMail(server.deps, transport);
    } finally {
      transport.close();
      await new Promise<void>((resolve) => refusing.close(() => resolve()));
    }
    text = await metrics();
    expect(sample(text, 'sat_mail_queue_depth')).toBe(0);
    expect(sample(text, 'sat_mail_queue_oldest_age_seconds')).toBe(0);
    expect(sample(text, 'sat_mail_failed_messages')).toBe(pending);
    expect(sample(text, 'sat_mail_deliveries_total', { outcome: 'failed', kind: 'token_generated' })).toBe(failedBefore + pending);
  });

  it('counts refused sign-ins by reason and rate-limited requests by endpoint', async () => {
    const before = await metrics();
    const count = (text: string, name: string, labels: Record<string, string>) => sample(text, name, labels) ?? 0;
    const statuses: number[] = [];
    for (let i = 0; i < 5 && !statuses.includes(429); i++) {
      const res = await call(server, 'POST', '/login', {
        json: { email: 'first-admin@example.com', password: 'wrong-password' },
        headers: { 'x-forwarded-for': '203.0.113.50' },
      });
      statuses.push(res.status);
    }
    expect(statuses.at(-1)).toBe(429);
    const after = await metrics();
    const refused = statuses.filter((s) => s === 401).length;
    expect(count(after, 'sat_sign_in_failures_total', { reason: 'invalid_credentials' })).toBe(
      count(before, 'sat_sign_in_failures_total', { reason: 'invalid_credentials' }) + refused,
    );
    expect(count(after, 'sat_sign_in_failures_total', { reason: 'rate_limited' })).toBe(
      count(before, 'sat_sign_in_failures_total', { reason: 'rate_limited' }) + 1,
    );
    expect(count(after, 'sat_rate_limited_requests_total', { endpoint: '/admin/api/login' })).toBe(
      count(before, 'sat_rate_limited_requests_total', { endpoint: '/admin/api/login' }) + 1,
    );
    expect(count(after, 'sat_http_responses_total', { status_class: '4xx' })).toBeGreaterThanOrEqual(statuses.length);
  });
});
