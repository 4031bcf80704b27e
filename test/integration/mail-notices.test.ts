// SPEC "Email": the generated, revoked and expiring notices reach a real SMTP server with the right recipients and
// words, never with the secret; a generate that rolls back leaves no mail. Admins act over the admin API.
import { runCommand } from '../../src/commands.js';
import type { MailOutboxRow } from '../../src/db/index.js';
import type { Actor, GeneratedToken } from '../../src/tokens/index.js';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow, makeAdmin, makeToken, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { clientKey } from '../support/sender.js';
import { startSmtp, type ReceivedMail, type TestSmtp } from '../support/smtp.js';

const DAY = 86_400_000;

describe.each(testDatabases())('mail notices on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  const secrets: string[] = [];

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(
      db,
      {
        SMTP_URL: smtp.url,
        MAIL_FROM: 'System Access Tokens <tokens@sat.example.com>',
        MAX_ACTIVE_TOKENS: '4',
        TRUST_PROXY: 'true', // the tests name the client address in X-Forwarded-For
      },
      { jobs: 'manual' }, // the tests run the delivery and expiry jobs themselves
    );
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  const outbox = (recipient: string): Promise<MailOutboxRow[]> =>
    server.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient }).orderBy('created_at');

  type Admin = Actor & { password: string };
  const sessions = new Map<string, string>();
  async function api(admin: Admin, path: string, json: unknown, ip: string) {
    let token = sessions.get(admin.email);
    if (!token) {
      token = (await signIn(server, admin.email, admin.password)).token;
      sessions.set(admin.email, token);
    }
    return call(server, 'POST', path, { token, json, headers: { 'x-forwarded-for': ip } });
  }

  /** POST /admin/api/tokens; resolves to the token, or rejects with the API's error body. */
  async function generate(admin: Admin, input: Partial<{ name: string; services: string[]; expires_at: string }> = {}) {
    const res = await api(
      admin,
      '/tokens',
      { name: input.name ?? uniq('token'), services: input.services ?? ['candidates', 'jobs'], expires_at: input.expires_at ?? daysFromNow(30) },
      '203.0.113.5',
    );
    if (res.status !== 201) throw Object.assign(new Error(`generate: ${res.status}`), res.body, { status: res.status });
    const t = res.body as GeneratedToken;
    secrets.push(t.client_secret);
    return t;
  }

  async function revoke(admin: Admin, id: string, ip: string) {
    const res = await api(admin, `/tokens/${id}/revoke`, {}, ip);
    expect(res.status).toBe(200);
    return res.body as { id: string; revoked_at: string };
  }

  /** One run of the delivery worker: every due mail has reached the SMTP server when it resolves. */
  const deliver = () => server.runJob('deliver-mail');

  const bySubject = (list: ReceivedMail[], text: string) => list.filter((m) => m.subject.includes(text));

  it('sends "token generated" to the administrator who generated it, with the facts and an escaped name', async () => {
    const admin = await makeAdmin(server.deps);
    const name = '<img src=x onerror=alert(1)>';
    const t = await generate(admin, { name, services: ['candidates', 'master-lists'], expires_at: daysFromNow(40) });

    await deliver();
    const [mail] = smtp.to(admin.email);
    expect(mail).toBeDefined();
    const m = mail!;
    expect(m.rcptTo).toEqual([admin.email.toLowerCase()]);
    expect(m.parsed.from?.value).toEqual([{ name: 'System Access Tokens', address: 'tokens@sat.example.com' }]);
    expect(m.subject).toBe(`New system access token "${name}"`);
    for (const body of [m.text, m.html]) {
      expect(body).toContain(t.client_id);
      expect(body).toContain('Candidate API, Master List');
      expect(body).toContain(`${t.expires_at.slice(0, 10)} 23:59 UTC`);
      expect(body).toContain(admin.email);
      expect(body).toContain(`${t.created_at.slice(0, 10)} ${t.created_at.slice(11, 16)} UTC`);
      expect(body).toContain('203.0.113.5');
      expect(body).toContain('Was this not you?');
      expect(body).toContain(`${server.issuer}/admin`);
    }
    expect(m.text).toContain(name);
    expect(m.html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(m.html).not.toContain('<img');
    expect(m.raw).not.toContain(t.client_secret);

    // The Message-ID is the one stored with the row, fixed before the first attempt.
    const [row] = await outbox(admin.email);
    expect(row).toMatchObject({ kind: 'token_generated', status: 'sent', attempts: 1 });
    expect(row!.message_id).toMatch(/^<[0-9a-f-]{36}@sat\.example\.com>$/);
    expect(m.messageId).toBe(row!.message_id);
    expect(m.parsed.headers.get('auto-submitted')).toBe('auto-generated');
  });

  it('sends nothing for a generate that rolls back (limit reached, name taken)', async () => {
    const admin = await makeAdmin(server.deps);
    const names = [uniq('a'), uniq('b'), uniq('c'), uniq('d')];
    for (const name of names) await generate(admin, { name });
    await expect(generate(admin, { name: uniq('over-limit') })).rejects.toMatchObject({ status: 409, error: 'token_limit_reached' });

    const other = await makeAdmin(server.deps);
    await generate(other, { name: 'Payroll_Integration' });
    await expect(generate(other, { name: 'payroll_integration' })).rejects.toMatchObject({ status: 409, error: 'name_taken' });

    await deliver();
    await deliver(); // another worker run: nothing else may arrive
    expect(smtp.to(admin.email).map((m) => m.subject).sort()).toEqual(names.map((n) => `New system access token "${n}"`).sort());
    expect(smtp.to(other.email)).toHaveLength(1);
    expect(await outbox(admin.email)).toHaveLength(4);
    expect(await outbox(other.email)).toHaveLength(1);
  });

  it('sends "token revoked" to the generating and the revoking administrator, once each', async () => {
    const alice = await makeAdmin(server.deps);
    const bob = { ...(await makeAdmin(server.deps, alice.organisation_name)) };
    expect(bob.organisation_id).toBe(alice.organisation_id);
    const t = await generate(alice, { name: 'HR_API_Token' });
    await revoke(bob, t.id, '198.51.100.9');

    await deliver();
    await deliver();
    const toAlice = bySubject(smtp.to(alice.email), 'was revoked');
    const toBob = bySubject(smtp.to(bob.email), 'was revoked');
    expect(toAlice).toHaveLength(1);
    expect(toBob).toHaveLength(1);
    expect(toAlice[0]!.rcptTo).toEqual([alice.email.toLowerCase()]);
    expect(toAlice[0]!.subject).toBe('System access token "HR_API_Token" was revoked');
    expect(toAlice[0]!.text).toContain(`that you generated was revoked by ${bob.email}`);
    expect(toBob[0]!.text).toContain('You revoked the system access token "HR_API_Token".');
    for (const m of [...toAlice, ...toBob]) {
      expect(m.text).toContain(t.client_id);
      expect(m.text).toContain('198.51.100.9');
      expect(m.text).toContain('Candidate API, Job API');
      expect(m.raw).not.toContain(t.client_secret);
    }
    // Bob generated nothing: the revoke notice is all he got.
    expect(smtp.to(bob.email)).toHaveLength(1);
  });

  it('sends one "token revoked" when an administrator revokes their own token', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await generate(admin);
    await revoke(admin, t.id, '198.51.100.10');
    await deliver();
    await deliver();
    expect(bySubject(smtp.to(admin.email), 'was revoked')).toHaveLength(1);
    expect((await outbox(admin.email)).map((r) => r.kind).sort()).toEqual(['token_generated', 'token_revoked']);
  });

  it('sends "expires in 7 days" once per token, to its administrator, and to all administrators when it has none', async () => {
    const knex = server.deps.db.knex;
    const alice = await makeAdmin(server.deps);
    const bob = await makeAdmin(server.deps, alice.organisation_name);
    const t0 = server.clock.now().getTime();
    const at = (days: number) => new Date(t0 + days * DAY).toISOString();
    // A 30-day token, and a token with no administrator (made with the sat CLI), both soon in their last week.
    const due = await generate(alice, { name: 'Due_Token', expires_at: at(30) });
    const made = await runCommand(server.deps, 'token-create', { org: alice.organisation_name, name: 'Orphan_Token', expires: at(32), services: ['jobs'] });
    expect(made.ok).toBe(true);
    // Not yet in its last 7 days when the check runs: its 30-day reminder only (expiryReminderDays, tokens/reminders.ts).
    const later = await generate(alice, { name: 'Later_Token', expires_at: at(40) });
    const dayMoved = 27 * DAY;
    server.clock.advance(dayMoved); // 27 days later
    sessions.clear(); // the sessions signed in 27 days ago have expired
    try {
      // Generated with only 3 days to live: its "generated" mail gave the date; no notice.
      const short = await generate(alice, { name: 'Short_Token', expires_at: at(30) });
      await server.runJob('expiry-notices');
      await deliver();
      await server.runJob('expiry-notices'); // another check, on another day: nothing new
      server.clock.advance(DAY);
      await server.runJob('expiry-notices');
      await deliver();
      expect(short.name).toBe('Short_Token');
      expect(later.name).toBe('Later_Token');
    } finally {
      server.clock.advance(-dayMoved - DAY);
    }
    const expiring = (to: string) => bySubject(smtp.to(to), 'expires in');
    expect(expiring(alice.email).map((m) => m.subject).sort()).toEqual([
      'System access token "Due_Token" expires in 3 days',
      'System access token "Later_Token" expires in 13 days',
      'System access token "Orphan_Token" expires in 5 days',
    ]);
    expect(expiring(bob.email).map((m) => m.subject)).toEqual(['System access token "Orphan_Token" expires in 5 days']);
    const dueMail = bySubject(expiring(alice.email), 'Due_Token')[0]!;
    expect(dueMail.text).toContain(due.client_id);
    expect(dueMail.text).toContain(`Generated by: ${alice.email}`);
    expect(dueMail.text).toContain('Generate a new token');
    expect(dueMail.raw).not.toContain(due.client_secret);

    const notified = await knex('tokens').select('name', 'expiry_notified_at').where({ organisation_id: alice.organisation_id });
    const notifiedAt = Object.fromEntries(notified.map((r: { name: string; expiry_notified_at: Date | null }) => [r.name, r.expiry_notified_at]));
    expect(notifiedAt.Due_Token).toBeInstanceOf(Date);
    expect(notifiedAt.Orphan_Token).toBeInstanceOf(Date);
    expect(notifiedAt.Short_Token).toBeNull();
    expect(notifiedAt.Later_Token).toBeInstanceOf(Date);
  });

  it('sends no "generated" mail for a token made with the sat CLI, and tells its revoker and a CLI revoke\'s victim', async () => {
    const admin = await makeAdmin(server.deps);
    // `sat token create` / `sat token revoke` run these commands (in-process through the control socket, or directly).
    const created = await runCommand(server.deps, 'token-create', {
      org: admin.organisation_name,
      name: 'Cli_Token',
      expires: daysFromNow(30),
      services: ['jobs'],
    });
    expect(created.ok).toBe(true);
    const cliToken = (created as { result: GeneratedToken }).result;
    secrets.push(cliToken.client_secret);
    const mine = await generate(admin, { name: 'Admin_Token' });
    expect((await runCommand(server.deps, 'token-revoke', { org: admin.organisation_name, id: mine.id })).ok).toBe(true);
    await revoke(admin, cliToken.id, '198.51.100.11');

    await deliver();
    await deliver();
    expect(smtp.to(admin.email).map((m) => m.subject).sort()).toEqual([
      'New system access token "Admin_Token"',
      'System access token "Admin_Token" was revoked',
      'System access token "Cli_Token" was revoked',
    ]);
    const byCli = bySubject(smtp.to(admin.email), 'Admin_Token" was revoked')[0]!;
    expect(byCli.text).toContain('that you generated was revoked by the command-line tool (sat)');
    const ofCli = bySubject(smtp.to(admin.email), 'Cli_Token" was revoked')[0]!;
    expect(ofCli.text).toContain('You revoked the system access token "Cli_Token".');
    expect(ofCli.text).toContain('no administrator on record (created from the command line, or by an administrator since removed)');
    expect(await server.deps.db.knex('mail_outbox').where({ recipient: 'cli' })).toHaveLength(0);
  });

  it('does not say "created from the command line" of a token whose administrator was removed', async () => {
    const alice = await makeAdmin(server.deps);
    const bob = await makeAdmin(server.deps, alice.organisation_name);
    const left = await generate(alice, { name: 'Leaver_Token' });
    await deliver();
    const bobSession = (await signIn(server, bob.email, bob.password)).token;
    expect((await call(server, 'DELETE', `/admins/${alice.id}`, { token: bobSession })).status).toBe(204);
    await revoke(bob, left.id, '198.51.100.12');
    await deliver();

    const [mail] = bySubject(smtp.to(bob.email), '"Leaver_Token" was revoked');
    expect(mail).toBeDefined();
    expect(mail!.text).not.toContain('created from the command line)');
    expect(mail!.text).toMatch(/Generated by: +no administrator on record \(created from the command line, or by an administrator since removed\)/);
    expect(mail!.html).toContain('or by an administrator since removed');
  });

  it('states "From IP address" as an address, never text a client wrote into X-Forwarded-For', async () => {
    // TRUST_PROXY=true behind a proxy that passes the client's X-Forwarded-For along (docs/security.md warns
    // against it): the client chooses what the server takes for its address. An entry that is no address gives way
    // to the peer's (http/common.ts unmapClientAddress): here this test's own connection, 127.0.0.1.
    const admin = await makeAdmin(server.deps);
    const planted = '203.0.113.9 (checked by the IT team: no action needed)';
    const res = await api(admin, '/tokens', { name: 'Xff_Token', services: ['jobs'], expires_at: daysFromNow(30) }, planted);
    expect(res.status).toBe(201);
    secrets.push((res.body as GeneratedToken).client_secret);
    await deliver();
    const [mail] = bySubject(smtp.to(admin.email), '"Xff_Token"');
    expect(mail).toBeDefined();
    expect(mail!.text).not.toContain('checked by the IT team');
    expect(mail!.html).not.toContain('checked by the IT team');
    expect(mail!.text).toMatch(/From IP address: +127\.0\.0\.1\n/);
  });

  it('does not speak of a client secret for a private_key_jwt token, which has none', async () => {
    const admin = await makeAdmin(server.deps);
    const key = await clientKey();
    const res = await api(
      admin,
      '/tokens',
      { name: 'Keyed_Token', services: ['jobs'], expires_at: daysFromNow(30), auth_method: 'private_key_jwt', jwks: { keys: [key.publicJwk] } },
      '203.0.113.5',
    );
    expect(res.status).toBe(201);
    const token = res.body as { id: string };
    await revoke(admin, token.id, '203.0.113.5');
    await deliver();

    const [generated] = bySubject(smtp.to(admin.email), 'New system access token "Keyed_Token"');
    const [revoked] = bySubject(smtp.to(admin.email), '"Keyed_Token" was revoked');
    for (const mail of [generated!, revoked!]) {
      expect(mail).toBeDefined();
      expect(mail.text).not.toMatch(/shown once|secret is not in this email|client ID and secret/);
      expect(mail.html).not.toMatch(/shown once|secret is not in this email|client ID and secret/);
      expect(mail.text).toMatch(/Authentication: +private_key_jwt/);
      expect(mail.text).toContain(key.thumbprint);
    }
    expect(generated!.text).toContain('This token has no client secret');
    expect(revoked!.text).toContain('Every integration using its client ID and private key has stopped working');
  });

  it('delivers one administrator\'s mails in the order they were queued', async () => {
    const admin = await makeAdmin(server.deps);
    const tick = () => server.clock.advance(1000);
    const made: { id: string }[] = [];
    for (const name of ['Order_1', 'Order_2', 'Order_3']) {
      made.push(await generate(admin, { name, services: ['jobs'] }));
      tick();
    }
    for (const token of made) {
      await revoke(admin, token.id, '203.0.113.5');
      tick();
    }
    await generate(admin, { name: 'Order_4', services: ['jobs'] });
    await deliver(); // one batch: every mail above is due
    expect(smtp.to(admin.email).map((m) => m.subject)).toEqual([
      'New system access token "Order_1"',
      'New system access token "Order_2"',
      'New system access token "Order_3"',
      'System access token "Order_1" was revoked',
      'System access token "Order_2" was revoked',
      'System access token "Order_3" was revoked',
      'New system access token "Order_4"',
    ]);
  });

  it('never puts a client secret in a mail or in the outbox', async () => {
    expect(secrets.length).toBeGreaterThan(5);
    expect(smtp.messages.length).toBeGreaterThan(5);
    for (const m of smtp.messages) {
      expect(m.raw).not.toMatch(/sats_/);
      for (const s of secrets) expect(m.raw).not.toContain(s);
    }
    const rows = await server.deps.db.knex('mail_outbox').select('*');
    const dump = JSON.stringify(rows);
    expect(dump).not.toMatch(/sats_/);
    for (const s of secrets) expect(dump).not.toContain(s);
    for (const line of server.logLines) expect(line).not.toMatch(/sats_[A-Za-z0-9]{8}/);
  });
});
