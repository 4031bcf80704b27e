// SPEC "Email" with several instances behind a load balancer on one PostgreSQL database: every instance runs the
// outbox worker, and each mail still goes out exactly once. (The embedded database admits one server at a time.)
import type { MailOutboxRow } from '../../src/db/index.js';
import { generateToken } from '../../src/tokens/index.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow, makeAdmin, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { TestClock } from '../support/clock.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const kinds = testDatabases().filter((k) => k === 'postgres');
const suite = kinds.length ? describe.each(kinds) : describe.skip.each(['postgres' as const]);

suite('mail from two instances on one %s database', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    const env = { SMTP_URL: smtp.url, MAX_ACTIVE_TOKENS: '100' };
    // One clock for both instances; their jobs run when the test says, on both at once.
    const options = { jobs: 'manual' as const, clock: new TestClock() };
    [a, b] = await Promise.all([startServer(db, env, options), startServer(db, env, options)]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await smtp?.close();
    await db?.drop();
  });

  /** Both instances run `job` at the same moment, as their timers would on a busy day. */
  const bothRun = (job: string) => Promise.all([a.runJob(job), b.runJob(job)]);

  it('delivers each mail once while both workers poll the same outbox', async () => {
    const admin = await makeAdmin(a.deps);
    const n = 40;
    // Generated on both instances at once, as behind a load balancer.
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        generateToken(i % 2 ? a.deps : b.deps, admin, { name: uniq(`t${i}`), services: ['jobs'], expires_at: daysFromNow(30) }),
      ),
    );
    for (let round = 0; round < 5 && smtp.to(admin.email).length < n; round += 1) await bothRun('deliver-mail');
    await bothRun('deliver-mail'); // more polls by each worker: no second copy may appear
    const received = smtp.to(admin.email);
    expect(received).toHaveLength(n);
    const rows = await a.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient: admin.email });
    expect(rows).toHaveLength(n);
    expect(new Set(received.map((m) => m.messageId))).toEqual(new Set(rows.map((r) => r.message_id)));
    expect(rows.every((r) => r.status === 'sent' && r.attempts === 1)).toBe(true);
    // Each instance's log agrees: n sends in all, none twice.
    const ids = new Set(rows.map((r) => r.message_id));
    const sentBy = (s: TestServer) =>
      s.logLines
        .map((l) => JSON.parse(l) as { msg: string; message_id?: string })
        .filter((l) => l.msg === 'mail sent' && ids.has(l.message_id ?? ''))
        .map((l) => l.message_id);
    const all = [...sentBy(a), ...sentBy(b)];
    expect(all).toHaveLength(n);
    expect(new Set(all).size).toBe(n);
    console.log(`split: a=${sentBy(a).length} b=${sentBy(b).length}`);
  });

  it('queues one expiry notice per token although both instances run the check', async () => {
    const admin = await makeAdmin(a.deps);
    const names = Array.from({ length: 12 }, (_, i) => `Expiring_${i}_${uniq('x')}`);
    const expiresAt = new Date(a.clock.now().getTime() + 30 * 86_400_000).toISOString();
    for (const name of names) {
      await generateToken(a.deps, admin, { name, services: ['jobs'], expires_at: expiresAt });
    }
    // All twelve enter their last week at the same moment: 28 days later, 2 days before they expire.
    const moved = 28 * 86_400_000;
    a.clock.advance(moved);
    try {
      await bothRun('expiry-notices');
      await bothRun('expiry-notices');
      await bothRun('deliver-mail');
      await bothRun('deliver-mail');
    } finally {
      a.clock.advance(-moved);
    }
    const expiring = () => smtp.to(admin.email).filter((m) => m.subject.includes('expires in'));
    expect(expiring().map((m) => m.subject).sort()).toEqual(names.map((n) => `System access token "${n}" expires in 2 days`).sort());
  });
});
