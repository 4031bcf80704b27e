// docs/admin-api.md: inviting an address again "replaces the earlier link". Review finding: 4 invitations of one
// address at once, on two instances, all answered 201 and 4 mails were delivered, of which only one link worked, and
// not necessarily the newest mail's: a withdrawn invitation dropped its unsent mail, a replaced one did not. Now a
// replaced invitation drops its unsent mail in the same transaction, and invitations of one organisation are made one
// at a time, the last one made being the newest: the one mail that goes out holds the link that works.
import { runCommand } from '../../src/commands.js';
import type { MailOutboxRow } from '../../src/db/index.js';
import { call, signIn } from '../support/admin-api.js';
import { TestClock } from '../support/clock.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type ReceivedMail, type TestSmtp } from '../support/smtp.js';

let nextAddress = 1;
const freshIp = () => {
  const n = nextAddress++;
  return `10.78.${(n >> 8) & 255}.${n & 255}`;
};

describe.each(testDatabases())('re-invitations and their mail on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  /** The instances: two on PostgreSQL (behind one load balancer), one on the embedded database (one at a time). */
  let servers: TestServer[] = [];

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    // Jobs run when the test says: no mail leaves before the test has made every invitation.
    const options = { jobs: 'manual' as const, clock: new TestClock() };
    const env = { SMTP_URL: smtp.url, TRUST_PROXY: 'true' };
    servers = await Promise.all(Array.from({ length: kind === 'postgres' ? 2 : 1 }, () => startServer(db, env, options)));
  });
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
    await smtp?.close();
    await db?.drop();
  });

  const deliverAll = async () => {
    for (let round = 0; round < 3; round++) await Promise.all(servers.map((s) => s.runJob('deliver-mail')));
  };
  const invitationMails = (to: string) => smtp.to(to).filter((m) => m.subject.includes('invited'));
  const tokenIn = (mail: ReceivedMail) => {
    const m = /\/admin#\/invite\?token=([A-Za-z0-9_%-]+)/.exec(mail.text);
    expect(m).not.toBeNull();
    return decodeURIComponent(m![1]!);
  };
  const accept = (server: TestServer, token: string) =>
    call(server, 'POST', '/invitations/accept', { json: { token, password: 'a-good-password' }, headers: { 'x-forwarded-for': freshIp() } });

  it('drops the unsent mail of a replaced invitation: the one mail that goes out holds the link that works', async () => {
    const [server] = servers as [TestServer];
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password, freshIp());
    const email = `${uniq('hank')}@x.example`;
    const first = await call(server, 'POST', '/admins', { token, json: { email }, headers: { 'x-forwarded-for': freshIp() } });
    const second = await call(server, 'POST', '/admins', { token, json: { email }, headers: { 'x-forwarded-for': freshIp() } });
    expect([first.status, second.status]).toEqual([201, 201]);
    expect(await server.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient: email })).toHaveLength(1);
    await deliverAll();
    const mails = invitationMails(email);
    expect(mails).toHaveLength(1);
    expect((await accept(server, tokenIn(mails[0]!))).status).toBe(200);
  });

  (kind === 'postgres' ? it : it.skip)(
    'makes 4 invitations of one address at once on two instances one at a time: one mail, the newest, and its link works',
    async () => {
      const admin = await makeAdmin(servers[0]!.deps);
      const { token } = await signIn(servers[0]!, admin.email, admin.password, freshIp());
      const email = `${uniq('hank')}@x.example`;
      const answers = await Promise.all(
        Array.from({ length: 4 }, (_, i) =>
          call(servers[i % 2]!, 'POST', '/admins', { token, json: { email }, headers: { 'x-forwarded-for': freshIp() } }),
        ),
      );
      expect(answers.map((a) => a.status)).toEqual([201, 201, 201, 201]);
      const knex = servers[0]!.deps.db.knex;
      // One invitation left, the newest of the four made (each read its time after waiting for the one before).
      const live = await knex('admin_one_time_tokens').where({ email, purpose: 'invitation' }).whereNull('used_at');
      expect(live).toHaveLength(1);
      const invited = await knex('audit_events').where({ action: 'admin.invited', organisation_id: admin.organisation_id, subject_admin_email: email }).select('created_at');
      const times = invited.map((e: { created_at: Date }) => new Date(e.created_at).getTime());
      expect(times).toHaveLength(4);
      expect(new Date(live[0].created_at).getTime()).toBe(Math.max(...times));
      expect(answers.map((a) => a.body.id)).toContain(live[0].id);

      await deliverAll();
      const mails = invitationMails(email);
      expect(mails).toHaveLength(1);
      expect((await accept(servers[1]!, tokenIn(mails[0]!))).status).toBe(200);
    },
  );
});

// Review finding: after a mail backlog (SMTP down a moment), three reset requests' mails arrived newest first and the
// last one to arrive held a link a newer request had replaced. A replaced reset link's mail that has not gone out is
// withdrawn (never sent); it still counts toward the three reset mails an hour.
describe.each(testDatabases())('password-reset mails of replaced links on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, TRUST_PROXY: 'true' }, { jobs: 'manual', clock: new TestClock() });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  it('sends only the newest of three queued reset mails, whose link works; the withdrawn ones still count', async () => {
    const admin = await makeAdmin(server.deps);
    const outbox = () => server.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient: admin.email, kind: 'password_reset' }).orderBy('created_at');
    for (let i = 0; i < 3; i++) {
      const res = await call(server, 'POST', '/password-reset', { json: { email: admin.email }, headers: { 'x-forwarded-for': freshIp() } });
      expect(res.status).toBe(202);
      for (let tries = 0; (await outbox()).length < i + 1; tries++) {
        expect(tries).toBeLessThan(400); // the link is made after the answer
        await new Promise((r) => setTimeout(r, 25));
      }
      server.clock.advance(1_000);
    }
    const rows = await outbox();
    expect(rows.map((r) => r.status)).toEqual(['withdrawn', 'withdrawn', 'pending']);
    expect(rows.slice(0, 2).every((r) => !r.text_body.includes('token='))).toBe(true); // no link left in them
    await server.runJob('deliver-mail');
    const mails = smtp.to(admin.email).filter((m) => m.subject.includes('Reset your'));
    expect(mails).toHaveLength(1);
    const token = decodeURIComponent(/\/admin#\/reset\?token=([A-Za-z0-9_%-]+)/.exec(mails[0]!.text)![1]!);
    const done = await call(server, 'POST', '/password-reset/confirm', { json: { token, new_password: 'a-new-good-password' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(done.status).toBe(204);
    // The hour's three are used up: a fourth request mails nothing (it counts itself as not sent).
    const notSent = async () =>
      Number(/^sat_password_resets_throttled_total (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);
    const before = await notSent();
    expect((await call(server, 'POST', '/password-reset', { json: { email: admin.email }, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(202);
    for (let tries = 0; (await notSent()) === before; tries++) {
      expect(tries).toBeLessThan(400);
      await new Promise((r) => setTimeout(r, 25));
    }
    expect((await outbox()).length).toBe(3);
  });

  it('withdraws an unsent reset mail when the password is changed, reset from the command line, or its administrator removed', async () => {
    const resetMails = (to: string) => server.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient: to, kind: 'password_reset' });
    const ask = async (to: string) => {
      expect((await call(server, 'POST', '/password-reset', { json: { email: to }, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(202);
      for (let tries = 0; (await resetMails(to)).length === 0; tries++) {
        expect(tries).toBeLessThan(400);
        await new Promise((r) => setTimeout(r, 25));
      }
    };
    // Changed with the current password (POST /me/password).
    const a = await makeAdmin(server.deps);
    await ask(a.email);
    const session = await signIn(server, a.email, a.password, freshIp());
    const changed = await call(server, 'POST', '/me/password', {
      token: session.token,
      json: { current_password: a.password, new_password: 'a-changed-password' },
      headers: { 'x-forwarded-for': freshIp() },
    });
    expect(changed.status).toBe(204);
    expect((await resetMails(a.email)).map((r) => r.status)).toEqual(['withdrawn']);
    // Reset from the command line (the same code as `sat admin reset-password`).
    const b = await makeAdmin(server.deps);
    await ask(b.email);
    expect((await runCommand(server.deps, 'admin-reset-password', { email: b.email, password: 'a-cli-set-password' })).ok).toBe(true);
    expect((await resetMails(b.email)).map((r) => r.status)).toEqual(['withdrawn']);
    // Removed by another administrator of the organisation.
    const c = await makeAdmin(server.deps, b.organisation_name);
    await ask(c.email);
    const bSession = await signIn(server, b.email, 'a-cli-set-password', freshIp());
    expect((await call(server, 'DELETE', `/admins/${c.id}`, { token: bSession.token, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(204);
    expect((await resetMails(c.email)).map((r) => r.status)).toEqual(['withdrawn']);
    await server.runJob('deliver-mail');
    for (const who of [a, b, c]) expect(smtp.to(who.email).filter((m) => m.subject.includes('Reset your'))).toEqual([]);
  });
});
