// SPEC Part 2 "Expiry reminders, expiring and dormant tokens" (the reminder sentences): mails at 30, 7 and 1 days
// before expiry (`expiryReminderDays`), one per threshold per token, the most urgent due one only, none for a
// threshold the token was created inside; to the creator, or every administrator when the creator is gone or was
// the CLI. On the injected clock with the `expiry-notices` job run by hand; two instances on PostgreSQL.
import { addAdmin, removeAdmin } from '../../src/accounts/index.js';
import { runCommand } from '../../src/commands.js';
import type { Deps } from '../../src/deps.js';
import { generateToken, type Actor } from '../../src/tokens/index.js';
import { TestClock } from '../support/clock.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const DAY = 86_400_000;

async function secondAdmin(deps: Deps, org: string): Promise<Actor> {
  const r = await addAdmin(deps.db.knex, { org, email: `${uniq('admin')}@example.com`, password: 'a-long-password-1' });
  return { id: r.admin.id, email: r.admin.email, organisation_id: r.organisation.id };
}

describe.each(testDatabases())('expiry reminders on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  const clock = new TestClock(Date.parse('2031-03-01T12:00:00Z'));

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, MAX_ACTIVE_TOKENS: '100' }, { clock, jobs: 'manual' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  const at = (days: number) => new Date(clock.now().getTime() + days * DAY).toISOString();
  const reminders = (to: string, name: string) => smtp.to(to).filter((m) => m.subject.includes(`"${name}" expires in`));
  async function check() {
    await server.runJob('expiry-notices');
    await server.runJob('expiry-notices'); // a second check at the same moment sends nothing new
    await server.runJob('deliver-mail');
  }

  it('sends 30, 7 and 1 day reminders once each, the most urgent only, none for a threshold created inside', async () => {
    const start = clock.now().getTime();
    const alice = await makeAdmin(server.deps);
    const bob = await secondAdmin(server.deps, alice.organisation_name);
    const gen = (name: string, days: number) => generateToken(server.deps, alice, { name, services: ['jobs'], expires_at: at(days) });
    await gen('Long', 40); // gets 30, 7, 1
    await gen('Skipped', 40); // its 30-day reminder is undone below, as if no check had run between 30 and 7 days
    try {
      clock.set(start + 10 * DAY + 1_000); // Long and Skipped: 30 days left (less a second)
      await server.runJob('expiry-notices');
      await server.runJob('deliver-mail');
      expect(reminders(alice.email, 'Long').map((m) => m.subject)).toEqual(['System access token "Long" expires in 30 days']);
      expect(reminders(bob.email, 'Long')).toHaveLength(0); // the creator only

      clock.set(start + 20 * DAY); // 20 days left: nothing new
      await check();
      expect(reminders(alice.email, 'Long')).toHaveLength(1);

      // Skipped: as if no check had run since it was made; at 5 days left both 30 and 7 are due: 7 only.
      await server.deps.db.knex('tokens').where({ name: 'Skipped', organisation_id: alice.organisation_id }).update({ expiry_reminded_days: null });
      clock.set(start + 35 * DAY);
      await check();
      expect(reminders(alice.email, 'Long').map((m) => m.subject)).toEqual([
        'System access token "Long" expires in 30 days',
        'System access token "Long" expires in 5 days',
      ]);
      expect(reminders(alice.email, 'Skipped').map((m) => m.subject)).toEqual([
        'System access token "Skipped" expires in 30 days',
        'System access token "Skipped" expires in 5 days',
      ]);

      clock.set(start + 39 * DAY + 12 * 3_600_000); // half a day left
      await check();
      expect(reminders(alice.email, 'Long').map((m) => m.subject).at(-1)).toBe('System access token "Long" expires in 1 day');
      expect(reminders(alice.email, 'Long')).toHaveLength(3);
      clock.set(start + 39 * DAY + 20 * 3_600_000);
      await check();
      expect(reminders(alice.email, 'Long')).toHaveLength(3);
      expect(smtp.to(bob.email)).toHaveLength(0);
    } finally {
      clock.set(start);
    }
  });

  it('a token created inside 30 days gets its 7- and 1-day reminders, not the 30-day one', async () => {
    const start = clock.now().getTime();
    const alice = await makeAdmin(server.deps);
    await generateToken(server.deps, alice, { name: 'Inside', services: ['jobs'], expires_at: at(20) });
    await generateToken(server.deps, alice, { name: 'Short', services: ['jobs'], expires_at: at(5) }); // inside 30 and 7
    try {
      await check();
      expect(reminders(alice.email, 'Inside')).toHaveLength(0);
      expect(reminders(alice.email, 'Short')).toHaveLength(0);
      clock.set(start + 14 * DAY);
      await check();
      expect(reminders(alice.email, 'Inside').map((m) => m.subject)).toEqual(['System access token "Inside" expires in 6 days']);
      clock.set(start + 4 * DAY + 13 * 3_600_000); // Short: 11 hours left
      await check();
      expect(reminders(alice.email, 'Short').map((m) => m.subject)).toEqual(['System access token "Short" expires in 1 day']);
    } finally {
      clock.set(start);
    }
  });

  it('goes to every administrator when the creator was the CLI or is gone', async () => {
    const start = clock.now().getTime();
    const alice = await makeAdmin(server.deps);
    const bob = await secondAdmin(server.deps, alice.organisation_name);
    const carol = await secondAdmin(server.deps, alice.organisation_name);
    const cli = await runCommand(server.deps, 'token-create', { org: alice.organisation_name, name: 'FromCli', expires: at(40), services: ['jobs'] });
    expect(cli.ok).toBe(true);
    await generateToken(server.deps, carol, { name: 'Orphan', services: ['jobs'], expires_at: at(40) });
    await removeAdmin(server.deps, { id: alice.id!, email: alice.email, organisation_id: alice.organisation_id }, carol.id!);
    try {
      clock.set(start + 12 * DAY);
      await check();
      for (const who of [alice.email, bob.email]) {
        expect(reminders(who, 'FromCli').map((m) => m.subject)).toEqual(['System access token "FromCli" expires in 28 days']);
        expect(reminders(who, 'Orphan').map((m) => m.subject)).toEqual(['System access token "Orphan" expires in 28 days']);
      }
      expect(smtp.to(carol.email).filter((m) => m.subject.includes('expires in'))).toHaveLength(0);
    } finally {
      clock.set(start);
    }
  });
});

const pg = testDatabases().filter((k) => k === 'postgres');
(pg.length ? describe.each(pg) : describe.skip.each(['postgres' as const]))('expiry reminders from two instances on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let a: TestServer;
  let b: TestServer;
  const clock = new TestClock(Date.parse('2031-06-01T12:00:00Z'));

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    const env = { SMTP_URL: smtp.url, MAX_ACTIVE_TOKENS: '200' };
    [a, b] = await Promise.all([startServer(db, env, { clock, jobs: 'manual' }), startServer(db, env, { clock, jobs: 'manual' })]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await smtp?.close();
    await db?.drop();
  });

  const both = (job: string) => Promise.all([a.runJob(job), b.runJob(job), a.runJob(job), b.runJob(job)]);

  it('sends exactly one mail per threshold per token', async () => {
    const start = clock.now().getTime();
    const admin = await makeAdmin(a.deps);
    const n = 60; // more than one batch of the job (BATCH = 50 in src/tokens/reminders.ts)
    for (let i = 0; i < n; i += 1) {
      await generateToken(i % 2 ? a.deps : b.deps, admin, { name: `T${i}`, services: ['jobs'], expires_at: new Date(start + 40 * DAY).toISOString() });
    }
    for (const [day, threshold] of [[10.5, 30], [33.5, 7], [39.5, 1]] as const) {
      clock.set(start + day * DAY);
      await both('expiry-notices');
      const rows = await a.deps.db.knex('mail_outbox').where({ recipient: admin.email, kind: 'token_expiring' });
      expect(rows).toHaveLength(n * [30, 7, 1].indexOf(threshold) + n);
    }
    for (let round = 0; round < 10 && smtp.to(admin.email).filter((m) => m.subject.includes('expires in')).length < 3 * n; round += 1) {
      await both('deliver-mail');
    }
    const mails = smtp.to(admin.email).filter((m) => m.subject.includes('expires in'));
    expect(mails).toHaveLength(3 * n);
    expect(new Set(mails.map((m) => m.subject)).size).toBe(3 * n);
  }, 120_000);
});

// SPEC "Email": "the expiry check runs at least hourly", also for an instance restarted more often than that (a
// reviewer restarted one every few minutes and no reminder ever went out: the job first ran a whole interval after
// each start). The schedule serve() gives its jobs, as in production (the other tests run jobs by hand).
describe('when the lifecycle jobs first run after a start', () => {
  it('expiry reminders 30 to 60 s after it, dormant revocation 10 to 20 minutes after it (live clients seen first)', async () => {
    const db = await createTestDb(testDatabases()[0]!);
    const server = await startServer(db, {}, { jobs: 'manual', soonAfterStart: true });
    try {
      const { schedule } = server.jobs;
      expect(schedule.get('expiry-notices')!.intervalMs).toBe(600_000);
      expect(schedule.get('expiry-notices')!.firstRunMs).toBeGreaterThanOrEqual(30_000);
      expect(schedule.get('expiry-notices')!.firstRunMs).toBeLessThan(60_000);
      expect(schedule.get('revoke-dormant')!.intervalMs).toBe(3_600_000);
      expect(schedule.get('revoke-dormant')!.firstRunMs).toBeGreaterThanOrEqual(600_000);
      expect(schedule.get('revoke-dormant')!.firstRunMs).toBeLessThan(1_200_000);
      // The housekeeping that already ran soon after a start still does.
      for (const name of ['rotate-keys', 'prune-keys', 'prune-sent-mail']) expect({ name, soon: schedule.get(name)!.firstRunMs < 60_000 }).toEqual({ name, soon: true });
    } finally {
      await server.close();
      await db.drop();
    }
  });
});
