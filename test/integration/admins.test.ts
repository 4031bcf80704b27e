// SPEC Part 2 "Administrators", sentence by sentence, over HTTP against a real server, on both databases, with mail
// through a real SMTP server: invitation and reset links are read from the received mail and followed.
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { hashPassword, requestPasswordReset } from '../../src/accounts/index.js';
import type { MailOutboxRow } from '../../src/db/index.js';
import { call, signIn } from '../support/admin-api.js';
import { runSat, runSatInProcess } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type ReceivedMail, type TestSmtp } from '../support/smtp.js';

let nextAddress = 1;
/** A fresh client address per use, so one test's throttle counts do not leak into another. */
const freshIp = () => {
  const n = nextAddress++;
  return `10.${(n >> 16) & 255}.${(n >> 8) & 255}.${n & 255}`;
};

const HOUR = 3600_000;

describe.each(testDatabases())('administrators on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-conf-'));
    const configFile = path.join(dir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({ loginThrottle: { windowSeconds: 900, delayAfterFailures: 5, delayMs: 10, blockAfterFailures: 10, perAddressFactor: 1 } }),
    );
    server = await startServer(db, {
      SMTP_URL: smtp.url,
      MAIL_FROM: 'System Access Tokens <tokens@sat.example.com>',
      MAIL_POLL_INTERVAL_MS: '100',
      TRUST_PROXY: 'true',
      CONFIG_FILE: configFile,
    });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  type Admin = Awaited<ReturnType<typeof makeAdmin>>;
  const as = (token: string, ip = freshIp()) => ({ token, headers: { 'x-forwarded-for': ip, 'user-agent': 'admins-test/1.0' } });
  const login = (email: string, password: string, ip = freshIp()) =>
    call(server, 'POST', '/login', { json: { email, password }, headers: { 'x-forwarded-for': ip, 'user-agent': 'admins-test/1.0' } });
  const session = async (admin: { email: string; password: string }) => (await signIn(server, admin.email, admin.password)).token;

  /** The one mail to `to` whose subject contains `subject`, once it arrived. */
  async function mailTo(to: string, subject: string, count = 1): Promise<ReceivedMail> {
    const pick = () => smtp.to(to).filter((m) => m.subject.includes(subject));
    await smtp.waitFor(() => pick().length >= count);
    return pick()[count - 1]!;
  }

  /** Follows the link in a mail: the console URL, its fragment page and the token in it. */
  function linkIn(mail: ReceivedMail, page: 'invite' | 'reset'): { url: URL; token: string } {
    const m = new RegExp(`(https?://\\S+/admin#/${page}\\?token=[A-Za-z0-9_%-]+)`).exec(mail.text);
    expect(m).not.toBeNull();
    const url = new URL(m![1]!);
    expect(url.origin + url.pathname).toBe(`${server.issuer}/admin`);
    const token = new URLSearchParams(url.hash.slice(url.hash.indexOf('?') + 1)).get('token') ?? '';
    expect(token.length).toBeGreaterThan(40);
    // And the HTML part carries the same link, as a link.
    expect(mail.html).toContain(`<a href="${m![1]!}"`);
    return { url, token };
  }

  async function audit(token: string, action: string) {
    const res = await call(server, 'GET', '/audit?limit=100', as(token));
    expect(res.status).toBe(200);
    return (res.body.items as Array<Record<string, any>>).filter((e) => e.action === action);
  }

  async function invite(inviter: Admin, email: string) {
    const token = await session(inviter);
    const res = await call(server, 'POST', '/admins', { ...as(token), json: { email } });
    return { res, token };
  }

  it('lists the organisation’s administrators and nobody else’s', async () => {
    const a = await makeAdmin(server.deps);
    const other = await makeAdmin(server.deps);
    const token = await session(a);
    const res = await call(server, 'GET', '/admins', as(token));
    expect(res.status).toBe(200);
    expect(res.body.items).toEqual([
      { id: a.id, email: a.email, created_at: expect.any(String), last_sign_in_at: expect.any(String) },
    ]);
    expect(JSON.stringify(res.body)).not.toContain(other.email);
    expect(Date.now() - Date.parse(res.body.items[0].last_sign_in_at)).toBeLessThan(60_000);
    expect((await call(server, 'GET', '/admins')).status).toBe(401);
  });

  it('invites by mail with a one-time link valid 72 h; accepting sets the password and signs in, as login', async () => {
    const inviter = await makeAdmin(server.deps);
    const email = `${uniq('invitee')}@example.com`;
    const { res, token: inviterToken } = await invite(inviter, email);
    expect(res.status).toBe(201);
    expect(res.body.email).toBe(email);

    const mail = await mailTo(email, 'invited');
    expect(mail.subject).toContain(inviter.organisation_name);
    expect(mail.text).toContain(inviter.email);
    const { token } = linkIn(mail, 'invite');

    // Stored only as a hash: the token appears nowhere in the database (the delivered mail's body is scrubbed too).
    const rows = await server.deps.db.knex('admin_one_time_tokens').select('*');
    expect(JSON.stringify(rows)).not.toContain(token);
    // The mail reached the SMTP server before the worker marked its row sent: wait for that (bounded).
    let outbox: MailOutboxRow[] = [];
    for (const deadline = Date.now() + 10_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 25))) {
      outbox = await server.deps.db.knex<MailOutboxRow>('mail_outbox').where({ recipient: email, status: 'sent' });
      if (outbox.length > 0) break;
    }
    expect(outbox.length).toBe(1);
    expect(outbox[0]!.text_body + outbox[0]!.html_body).not.toContain(token);

    // Not listed before accepting.
    const before = await call(server, 'GET', '/admins', as(inviterToken));
    expect(before.body.items.map((a: { email: string }) => a.email)).toEqual([inviter.email]);

    // Too short a password is refused and does not use up the link.
    const short = await call(server, 'POST', '/invitations/accept', { json: { token, password: 'elevenchars' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(short.status).toBe(400);
    expect(short.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'password' }] });

    const password = 'twelve-chars';
    const accepted = await call(server, 'POST', '/invitations/accept', {
      json: { token, password },
      headers: { 'x-forwarded-for': freshIp(), 'user-agent': 'invitee-browser/2' },
    });
    expect(accepted.status).toBe(200);
    expect(accepted.body.token).toMatch(/^sas_/);
    expect(accepted.body.csrf_token).toEqual(expect.any(String));
    expect(accepted.body.admin).toMatchObject({
      email,
      organisation: { id: inviter.organisation_id, name: inviter.organisation_name },
    });
    expect(accepted.headers.get('set-cookie')).toContain(`sat_session=${accepted.body.token}`);
    const me = await call(server, 'GET', '/me', as(accepted.body.token));
    expect(me.status).toBe(200);
    expect(me.body.admin.email).toBe(email);
    // The new administrator signs in with the chosen password.
    expect((await login(email, password)).status).toBe(200);

    // Single use.
    const again = await call(server, 'POST', '/invitations/accept', { json: { token, password: 'another-password' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(again.status).toBe(400);
    expect(again.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'token' }] });

    const after = await call(server, 'GET', '/admins', as(inviterToken));
    expect(after.body.items.map((a: { email: string }) => a.email)).toEqual([inviter.email, email]);
    expect(after.body.items[1].last_sign_in_at).toEqual(expect.any(String));

    const invited = await audit(inviterToken, 'admin.invited');
    expect(invited).toEqual([
      expect.objectContaining({ actor_id: inviter.id, actor_email: inviter.email, subject_admin: { id: null, email } }),
    ]);
    const added = await audit(inviterToken, 'admin.added');
    expect(added).toEqual([expect.objectContaining({ actor_email: email, subject_admin: { id: accepted.body.admin.id, email } })]);
  });

  // The server's clock (TestClock) decides: a link made at T works at T + 72 h − 1 s and not at T + 72 h.
  it('keeps an invitation link valid for 72 hours by the server clock, and a newer invitation replaces an older one', async () => {
    const inviter = await makeAdmin(server.deps);
    const late = `${uniq('late')}@example.com`;
    const inTime = `${uniq('intime')}@example.com`;
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    server.clock.set(at);
    try {
      const made = await invite(inviter, late);
      expect(made.res.status).toBe(201);
      expect(made.res.body.expires_at).toBe(new Date(at.getTime() + 72 * HOUR).toISOString());
      const first = linkIn(await mailTo(late, 'invited', 1), 'invite').token;
      expect((await invite(inviter, late)).res.status).toBe(201);
      const second = linkIn(await mailTo(late, 'invited', 2), 'invite').token;
      const replaced = await call(server, 'POST', '/invitations/accept', { json: { token: first, password: 'a-good-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(replaced.status).toBe(400);
      expect((await invite(inviter, inTime)).res.status).toBe(201);
      const good = linkIn(await mailTo(inTime, 'invited'), 'invite').token;

      server.clock.advance(72 * HOUR - 1000);
      const accepted = await call(server, 'POST', '/invitations/accept', { json: { token: good, password: 'a-good-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(accepted.status).toBe(200);

      server.clock.advance(1000);
      const expired = await call(server, 'POST', '/invitations/accept', { json: { token: second, password: 'a-good-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(expired.status).toBe(400);
      expect(expired.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'token' }] });
      expect((await login(late, 'a-good-password')).status).toBe(401);
    } finally {
      server.clock.resume();
    }
  });

  it('lets an invitation link be used once when two use it at the same moment', async () => {
    const inviter = await makeAdmin(server.deps);
    const email = `${uniq('twice')}@example.com`;
    expect((await invite(inviter, email)).res.status).toBe(201);
    const { token } = linkIn(await mailTo(email, 'invited'), 'invite');
    const answers = await Promise.all(
      ['first-password-1', 'second-password-2'].map((password) =>
        call(server, 'POST', '/invitations/accept', { json: { token, password }, headers: { 'x-forwarded-for': freshIp() } }),
      ),
    );
    expect(answers.map((r) => r.status).sort()).toEqual([200, 400]);
    const winner = answers.findIndex((r) => r.status === 200);
    expect(answers[1 - winner]!.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'token' }] });
    expect(await server.deps.db.knex('admins').where({ email })).toHaveLength(1);
    expect((await login(email, ['first-password-1', 'second-password-2'][winner]!)).status).toBe(200);
  });

  it('answers 409 admin_exists for an address that is an administrator anywhere, however it is spelt', async () => {
    const inviter = await makeAdmin(server.deps);
    const elsewhere = await makeAdmin(server.deps); // another organisation
    for (const email of [elsewhere.email, elsewhere.email.toUpperCase(), inviter.email]) {
      const { res } = await invite(inviter, email);
      expect([email, res.status, res.body.error]).toEqual([email, 409, 'admin_exists']);
    }
    // Full-width letters are the same identity after NFKC.
    const fullWidth = elsewhere.email.replace('a', '\uff41');
    expect((await invite(inviter, fullWidth)).res.body.error).toBe('admin_exists');

    for (const wrong of ['not an address', 'a..b@example.com', 'a@localhost']) {
      const bad = await invite(inviter, wrong);
      expect([wrong, bad.res.status]).toEqual([wrong, 400]);
      expect(bad.res.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'email', message: 'must be an email address' }] });
    }
    // Addresses RFC 5322 allows and mail systems deliver (an & or / in the local part) are taken.
    for (const local of ['a&b', 'a/b=c', "o'brien+x"]) {
      const address = `${local}.${uniq('x')}@example.com`;
      const { res } = await invite(inviter, address);
      expect([address, res.status]).toEqual([address, 201]);
    }
  });

  it('removes an administrator: 204, their sessions end at once; never the last one; another organisation’s is 404', async () => {
    const a = await makeAdmin(server.deps);
    const email = `${uniq('colleague')}@example.com`;
    const { token: aToken } = await invite(a, email);
    const { token: link } = linkIn(await mailTo(email, 'invited'), 'invite');
    const b = await call(server, 'POST', '/invitations/accept', { json: { token: link, password: 'colleague-password' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(b.status).toBe(200);
    const bId = b.body.admin.id as string;
    const bToken = b.body.token as string;
    expect((await call(server, 'GET', '/me', as(bToken))).status).toBe(200);

    // Another organisation's administrator cannot see or remove them.
    const stranger = await makeAdmin(server.deps);
    const strangerToken = await session(stranger);
    expect((await call(server, 'DELETE', `/admins/${bId}`, as(strangerToken))).status).toBe(404);
    expect((await call(server, 'DELETE', '/admins/not-a-uuid', as(strangerToken))).status).toBe(404);
    expect((await call(server, 'DELETE', `/admins/${a.id}`, as(strangerToken))).status).toBe(404);
    expect((await call(server, 'GET', '/me', as(bToken))).status).toBe(200);

    const removed = await call(server, 'DELETE', `/admins/${bId}`, as(aToken));
    expect(removed.status).toBe(204);
    expect((await call(server, 'GET', '/me', as(bToken))).status).toBe(401);
    expect((await login(email, 'colleague-password')).status).toBe(401);
    expect((await call(server, 'DELETE', `/admins/${bId}`, as(aToken))).status).toBe(404);
    const list = await call(server, 'GET', '/admins', as(aToken));
    expect(list.body.items.map((x: { id: string }) => x.id)).toEqual([a.id]);
    expect(await audit(aToken, 'admin.removed')).toEqual([
      expect.objectContaining({ actor_id: a.id, subject_admin: { id: bId, email } }),
    ]);
    // Another organisation's audit log shows none of it.
    for (const action of ['admin.invited', 'admin.added', 'admin.removed']) expect([action, await audit(strangerToken, action)]).toEqual([action, []]);
    expect((await call(server, 'GET', '/admins', as(strangerToken))).body.items.map((x: { id: string }) => x.id)).toEqual([stranger.id]);

    // The last administrator stays.
    const last = await call(server, 'DELETE', `/admins/${a.id}`, as(aToken));
    expect(last.status).toBe(409);
    expect(last.body.error).toBe('last_admin');
    expect((await call(server, 'GET', '/me', as(aToken))).status).toBe(200);
  });

  it('lets an administrator remove themselves while another remains: their own session ends with them', async () => {
    const a = await makeAdmin(server.deps);
    const email = `${uniq('leaver')}@example.com`;
    const { token: aToken } = await invite(a, email);
    const { token: link } = linkIn(await mailTo(email, 'invited'), 'invite');
    const b = await call(server, 'POST', '/invitations/accept', { json: { token: link, password: 'leaver-password-1' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(b.status).toBe(200);
    const removed = await call(server, 'DELETE', `/admins/${b.body.admin.id}`, as(b.body.token));
    expect(removed.status).toBe(204);
    expect((await call(server, 'GET', '/me', as(b.body.token))).status).toBe(401);
    const list = await call(server, 'GET', '/admins', as(aToken));
    expect(list.body.items.map((x: { id: string }) => x.id)).toEqual([a.id]);
    // The actor's id went with them; the audit event keeps their address.
    expect(await audit(aToken, 'admin.removed')).toEqual([
      expect.objectContaining({ actor_id: null, actor_email: email, subject_admin: { id: b.body.admin.id, email } }),
    ]);
  });

  it('voids the invitations a removed administrator sent and nobody accepted yet: no way back in through them', async () => {
    const a = await makeAdmin(server.deps);
    const leaverEmail = `${uniq('leaver')}@example.com`;
    const { token: aToken } = await invite(a, leaverEmail);
    const { token: link } = linkIn(await mailTo(leaverEmail, 'invited'), 'invite');
    const leaver = await call(server, 'POST', '/invitations/accept', { json: { token: link, password: 'leaver-password-1' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(leaver.status).toBe(200);
    // Before being offboarded, the leaver invites a private address; a colleague's invitation is left alone.
    const privateEmail = `${uniq('private')}@example.net`;
    expect((await call(server, 'POST', '/admins', { ...as(leaver.body.token), json: { email: privateEmail } })).status).toBe(201);
    const colleagueEmail = `${uniq('colleague')}@example.com`;
    expect((await call(server, 'POST', '/admins', { ...as(aToken), json: { email: colleagueEmail } })).status).toBe(201);
    const { token: privateLink } = linkIn(await mailTo(privateEmail, 'invited'), 'invite');
    const { token: colleagueLink } = linkIn(await mailTo(colleagueEmail, 'invited'), 'invite');
    expect((await call(server, 'DELETE', `/admins/${leaver.body.admin.id}`, as(aToken))).status).toBe(204);

    const back = await call(server, 'POST', '/invitations/accept', { json: { token: privateLink, password: 'leaver-password-2' }, headers: { 'x-forwarded-for': freshIp() } });
    expect([back.status, back.body.error]).toEqual([400, 'validation_failed']);
    const colleague = await call(server, 'POST', '/invitations/accept', { json: { token: colleagueLink, password: 'colleague-password' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(colleague.status).toBe(200);
    const list = await call(server, 'GET', '/admins', as(aToken));
    expect(list.body.items.map((x: { email: string }) => x.email).sort()).toEqual([a.email, colleagueEmail].sort());
    // The audit log says what went with them.
    expect(await audit(aToken, 'admin.removed')).toEqual([
      expect.objectContaining({ subject_admin: { id: leaver.body.admin.id, email: leaverEmail }, details: { invitations_voided: [privateEmail] } }),
    ]);
  });

  it('two administrators removing each other at once leave one', async () => {
    const a = await makeAdmin(server.deps);
    const email = `${uniq('pair')}@example.com`;
    const { token: aToken } = await invite(a, email);
    const { token: link } = linkIn(await mailTo(email, 'invited'), 'invite');
    const b = await call(server, 'POST', '/invitations/accept', { json: { token: link, password: 'pair-password-1' }, headers: { 'x-forwarded-for': freshIp() } });
    const [r1, r2] = await Promise.all([
      call(server, 'DELETE', `/admins/${b.body.admin.id}`, as(aToken)),
      call(server, 'DELETE', `/admins/${a.id}`, as(b.body.token)),
    ]);
    // One wins; the other finds either its own session gone (401) or itself the last administrator (409).
    const statuses = [r1.status, r2.status];
    expect(statuses.filter((s) => s === 204)).toHaveLength(1);
    expect(statuses.filter((s) => s !== 204).every((s) => s === 401 || s === 409)).toBe(true);
    const left = await server.deps.db.knex('admins').where({ organisation_id: a.organisation_id });
    expect(left.length).toBe(1);
  });

  it('changes the password: 204, every other session ends, a mail says so; wrong or too short is 400', async () => {
    const a = await makeAdmin(server.deps);
    const current = await session(a);
    const other = await session(a);
    const wrong = await call(server, 'POST', '/me/password', { ...as(current), json: { current_password: 'not-it-at-all', new_password: 'a-new-password-1' } });
    expect(wrong.status).toBe(400);
    expect(wrong.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'current_password' }] });
    const short = await call(server, 'POST', '/me/password', { ...as(current), json: { current_password: a.password, new_password: 'short' } });
    expect(short.status).toBe(400);
    expect(short.body.details).toEqual([{ path: 'new_password', message: 'must be at least 12 characters' }]);
    const long = await call(server, 'POST', '/me/password', { ...as(current), json: { current_password: a.password, new_password: 'x'.repeat(257) } });
    expect(long.status).toBe(400);
    // Counted in the NFC form that is hashed: six e + U+0301 (12 code points as sent) are six characters, é×6.
    const decomposed = await call(server, 'POST', '/me/password', { ...as(current), json: { current_password: a.password, new_password: 'e\u0301'.repeat(6) } });
    expect(decomposed.status).toBe(400);
    expect(decomposed.body.details).toEqual([{ path: 'new_password', message: 'must be at least 12 characters' }]);
    // ...and 256 of them (512 code points as sent) are 256 characters, within the rule.
    const accents = await call(server, 'POST', '/me/password', { ...as(current), json: { current_password: a.password, new_password: 'e\u0301'.repeat(256) } });
    expect(accents.status).toBe(204);
    expect((await login(a.email, '\u00e9'.repeat(256))).status).toBe(200); // the composed spelling signs in too

    const ok = await call(server, 'POST', '/me/password', { ...as(current), json: { current_password: '\u00e9'.repeat(256), new_password: 'x'.repeat(256) } });
    expect(ok.status).toBe(204);
    expect((await call(server, 'GET', '/me', as(current))).status).toBe(200);
    expect((await call(server, 'GET', '/me', as(other))).status).toBe(401);
    expect((await login(a.email, a.password)).status).toBe(401);
    expect((await login(a.email, 'x'.repeat(256))).status).toBe(200);

    const mail = await mailTo(a.email, 'password was changed');
    expect(mail.text).toContain(a.email);
    expect(mail.text).not.toContain('x'.repeat(20));
    const changed = expect.objectContaining({ actor_id: a.id, subject_admin: { id: a.id, email: a.email } });
    expect(await audit(current, 'admin.password_changed')).toEqual([changed, changed]); // to é×256, then to x×256
  });

  it('keeps an existing shorter password working until it is changed', async () => {
    const a = await makeAdmin(server.deps);
    await server.deps.db.knex('admins').where({ id: a.id }).update({ password_hash: await hashPassword('eight-ch') });
    const res = await login(a.email, 'eight-ch');
    expect(res.status).toBe(200);
    const change = await call(server, 'POST', '/me/password', { ...as(res.body.token), json: { current_password: 'eight-ch', new_password: 'twelve-chars' } });
    expect(change.status).toBe(204);
  });

  it('lists the administrator’s own sessions, revokes one, and revokes all others', async () => {
    const a = await makeAdmin(server.deps);
    const ipA = freshIp();
    const first = (await login(a.email, a.password, ipA)).body.token as string;
    const second = (await login(a.email, a.password)).body.token as string;
    const third = (await login(a.email, a.password)).body.token as string;
    const b = await makeAdmin(server.deps);
    const bToken = await session(b);

    const res = await call(server, 'GET', '/me/sessions', as(third));
    expect(res.status).toBe(200);
    expect(res.body.items).toHaveLength(3);
    for (const item of res.body.items) {
      expect(Object.keys(item).sort()).toEqual(['created_at', 'current', 'id', 'ip', 'last_seen_at', 'user_agent']);
      expect(item.user_agent).toBe('admins-test/1.0');
    }
    expect(res.body.items.filter((s: { current: boolean }) => s.current)).toHaveLength(1);
    expect(res.body.items.some((s: { ip: string }) => s.ip === ipA)).toBe(true);
    expect(JSON.stringify(res.body)).not.toContain(first);

    const firstId = res.body.items.find((s: { ip: string }) => s.ip === ipA).id as string;
    // Another administrator's session, or nonsense: 404.
    const bSessions = await call(server, 'GET', '/me/sessions', as(bToken));
    const bSessionId = bSessions.body.items[0].id as string;
    expect((await call(server, 'POST', `/me/sessions/${bSessionId}/revoke`, as(third))).status).toBe(404);
    expect((await call(server, 'POST', '/me/sessions/x/revoke', as(third))).status).toBe(404);
    expect((await call(server, 'GET', '/me', as(bToken))).status).toBe(200);

    expect((await call(server, 'POST', `/me/sessions/${firstId}/revoke`, as(third))).status).toBe(204);
    expect((await call(server, 'GET', '/me', as(first))).status).toBe(401);
    expect((await call(server, 'GET', '/me', as(second))).status).toBe(200);

    // A session that has expired is not one revoke-others ends (the list does not show it): not counted.
    const ids = async () => new Set<string>((await call(server, 'GET', '/me/sessions', as(third))).body.items.map((s: { id: string }) => s.id));
    const before = await ids();
    await login(a.email, a.password);
    const fourthId = [...(await ids())].find((id) => !before.has(id));
    expect(fourthId).toBeDefined();
    await server.deps.db.knex('admin_sessions').where({ id: fourthId }).update({ expires_at: new Date(Date.now() - 1000) });
    expect((await call(server, 'POST', `/me/sessions/${fourthId}/revoke`, as(third))).status).toBe(404); // nor one by one
    const others = await call(server, 'POST', '/me/sessions/revoke-others', as(third));
    expect(others.status).toBe(200);
    expect(others.body).toEqual({ revoked: 1 });
    expect((await call(server, 'GET', '/me', as(second))).status).toBe(401);
    expect((await call(server, 'GET', '/me', as(third))).status).toBe(200);
    const after = await call(server, 'GET', '/me/sessions', as(third));
    expect(after.body.items).toEqual([expect.objectContaining({ current: true })]);
    expect((await audit(third, 'admin.session_revoked')).length).toBe(2);
  });

  it('resets a password by mail: 202 whatever the address, a one-time link valid 1 h, every session ends', async () => {
    const a = await makeAdmin(server.deps);
    const sessionToken = await session(a);
    const unknown = `${uniq('nobody')}@example.com`;
    const r1 = await call(server, 'POST', '/password-reset', { json: { email: unknown }, headers: { 'x-forwarded-for': freshIp() } });
    const r2 = await call(server, 'POST', '/password-reset', { json: { email: a.email.toUpperCase() }, headers: { 'x-forwarded-for': freshIp() } });
    expect(r1.status).toBe(202);
    expect(r2.status).toBe(202);
    expect(r1.body).toEqual(r2.body);

    const mail = await mailTo(a.email, 'Reset your');
    const { token } = linkIn(mail, 'reset');
    const row = await server.deps.db.knex('admin_one_time_tokens').where({ admin_id: a.id, purpose: 'password_reset' }).first();
    const ttl = new Date(row.expires_at).getTime() - new Date(row.created_at).getTime();
    expect(ttl).toBe(HOUR);
    expect(JSON.stringify(row)).not.toContain(token);
    // The unknown address got nothing, and nothing was stored for it.
    expect(await server.deps.db.knex('mail_outbox').where({ recipient: unknown })).toEqual([]);
    expect(await server.deps.db.knex('admin_one_time_tokens').where({ email: unknown })).toEqual([]);

    const short = await call(server, 'POST', '/password-reset/confirm', { json: { token, new_password: 'short' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(short.status).toBe(400);
    const done = await call(server, 'POST', '/password-reset/confirm', { json: { token, new_password: 'reset-password-1' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(done.status).toBe(204);
    expect((await call(server, 'GET', '/me', as(sessionToken))).status).toBe(401);
    expect((await login(a.email, a.password)).status).toBe(401);
    const fresh = await login(a.email, 'reset-password-1');
    expect(fresh.status).toBe(200);
    const reused = await call(server, 'POST', '/password-reset/confirm', { json: { token, new_password: 'reset-password-2' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(reused.status).toBe(400);
    expect(await audit(fresh.body.token, 'admin.password_reset')).toEqual([
      expect.objectContaining({ actor_id: a.id, subject_admin: { id: a.id, email: a.email } }),
    ]);
    await mailTo(a.email, 'password was changed');
  });

  // Same time for a known and an unknown address: the answer does not wait for the look-up or the mail. Proved
  // without a clock: while the one-time token table is locked (PostgreSQL: another connection holds the lock), a
  // known address still gets its 202; the mail follows once the lock is released.
  (kind === 'postgres' ? it : it.skip)('answers a reset request before doing the work that differs between addresses', async () => {
    const a = await makeAdmin(server.deps);
    const trx = await server.deps.db.knex.transaction();
    try {
      await trx.raw('lock table admin_one_time_tokens in access exclusive mode');
      const res = await call(server, 'POST', '/password-reset', { json: { email: a.email }, headers: { 'x-forwarded-for': freshIp() } });
      expect(res.status).toBe(202);
      expect(smtp.to(a.email)).toEqual([]);
    } finally {
      await trx.commit();
    }
    await mailTo(a.email, 'Reset your');
  });

  // The same decision on either database, without a lock: when requestPasswordReset lets the 202 go, the look-up
  // and the mail of a known address are still to come (its `done` has not settled), exactly as for an unknown one.
  it('lets the 202 go before the work that differs between a known and an unknown address, on either database', async () => {
    const a = await makeAdmin(server.deps);
    const unknown = `${uniq('nobody')}@example.com`;
    // Promise.race reacts to an already settled promise first, in the order given: `p` wins only if it has settled.
    const pending = Symbol('pending');
    const settledNow = async (p: Promise<void>) => ((await Promise.race([p, Promise.resolve(pending)])) === pending ? 'pending' : 'settled');
    const known = await requestPasswordReset(server.deps, { email: a.email }, { ip: freshIp() });
    expect(await settledNow(known.done)).toBe('pending');
    const nobody = await requestPasswordReset(server.deps, { email: unknown }, { ip: freshIp() });
    expect(await settledNow(nobody.done)).toBe('pending');
    await Promise.all([known.done, nobody.done]);
    expect(await server.deps.db.knex('admin_one_time_tokens').where({ admin_id: a.id })).toHaveLength(1);
    expect(await server.deps.db.knex('mail_outbox').where({ recipient: unknown })).toEqual([]);
    await mailTo(a.email, 'Reset your');
  });

  // The server's clock decides: a reset link made at T works at T + 1 h − 1 s and not at T + 1 h.
  it('keeps a reset link valid for one hour by the server clock', async () => {
    const inTime = await makeAdmin(server.deps);
    const late = await makeAdmin(server.deps);
    const at = new Date(Math.floor(Date.now() / 1000) * 1000);
    server.clock.set(at);
    try {
      for (const a of [inTime, late]) {
        const res = await call(server, 'POST', '/password-reset', { json: { email: a.email }, headers: { 'x-forwarded-for': freshIp() } });
        expect(res.status).toBe(202);
      }
      const good = linkIn(await mailTo(inTime.email, 'Reset your'), 'reset').token;
      const gone = linkIn(await mailTo(late.email, 'Reset your'), 'reset').token;
      expect((await mailTo(late.email, 'Reset your')).text).toContain(new Date(at.getTime() + HOUR).toISOString().slice(0, 16).replace('T', ' '));

      server.clock.advance(HOUR - 1000);
      const done = await call(server, 'POST', '/password-reset/confirm', { json: { token: good, new_password: 'in-time-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(done.status).toBe(204);
      expect((await login(inTime.email, 'in-time-password')).status).toBe(200);

      server.clock.advance(1000);
      const res = await call(server, 'POST', '/password-reset/confirm', { json: { token: gone, new_password: 'too-late-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'token' }] });
      expect((await login(late.email, late.password)).status).toBe(200);
    } finally {
      server.clock.resume();
    }
  });

  it('removes used and expired links in the housekeeping job and keeps the live ones', async () => {
    const [used, expired, live] = [await makeAdmin(server.deps), await makeAdmin(server.deps), await makeAdmin(server.deps)];
    const ask = (email: string) => call(server, 'POST', '/password-reset', { json: { email }, headers: { 'x-forwarded-for': freshIp() } });
    const rows = async () =>
      (await server.deps.db.knex('admin_one_time_tokens').whereIn('admin_id', [used.id, expired.id, live.id])).map((r: { admin_id: string }) => r.admin_id).sort();
    server.clock.set(new Date(Math.floor(Date.now() / 1000) * 1000));
    try {
      expect((await ask(used.email)).status).toBe(202);
      expect((await ask(expired.email)).status).toBe(202);
      const token = linkIn(await mailTo(used.email, 'Reset your'), 'reset').token;
      await mailTo(expired.email, 'Reset your');
      const done = await call(server, 'POST', '/password-reset/confirm', { json: { token, new_password: 'used-link-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(done.status).toBe(204);
      server.clock.advance(HOUR);
      expect((await ask(live.email)).status).toBe(202);
      await mailTo(live.email, 'Reset your');
      expect(await rows()).toEqual([used.id, expired.id, live.id].sort());
      await server.runJob('prune-expired');
      expect(await rows()).toEqual([live.id]);
    } finally {
      server.clock.resume();
    }
  });

  /** sat_password_resets_throttled_total as /metrics shows it. */
  const resetsNotSent = async () =>
    Number(/^sat_password_resets_throttled_total (\d+)$/m.exec(await (await fetch(`${server.url}/metrics`)).text())?.[1] ?? 0);

  // Review finding: 12 reset requests in frank's name from another address answered 202, and then frank's own
  // sign-in with the right password was 429 for 15 minutes. Reset requests have their own limits now.
  it('leaves the sign-in of an administrator alone however many resets are asked in their name, and mails them at most 3 an hour', async () => {
    const frank = await makeAdmin(server.deps);
    const [own, flood] = [freshIp(), freshIp()];
    const start = Math.floor(Date.now() / 1000) * 1000;
    server.clock.set(new Date(start));
    try {
      expect((await login(frank.email, frank.password, own)).status).toBe(200);
      const before = await resetsNotSent();
      const answers: Array<[number, unknown]> = [];
      const outbox = () => server.deps.db.knex('mail_outbox').where({ recipient: frank.email, kind: 'password_reset' }).orderBy('created_at');
      // Every request ends queued (a mail) or counted as not sent; it finishes after its 202.
      const handled = async () => (await resetsNotSent()) - before + (await outbox()).length;
      for (let i = 0; i < 12; i++) {
        // A millisecond apart, each finished before the next, so the outbox's created_at orders the mails as they
        // were queued (the clock is frozen).
        server.clock.set(new Date(start + i));
        const res = await call(server, 'POST', '/password-reset', { json: { email: frank.email }, headers: { 'x-forwarded-for': flood } });
        answers.push([res.status, res.body]);
        for (let tries = 0; (await handled()) < i + 1; tries++) {
          expect(tries).toBeLessThan(400);
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      // 202 always, and always the same answer.
      expect(new Set(answers.map((a) => JSON.stringify(a))).size).toBe(1);
      expect(answers[0]![0]).toBe(202);
      expect((await login(frank.email, frank.password, own)).status).toBe(200);
      // Ten pass the address's limit (passwordReset.perAddress), three of those are mailed (mailsPerEmail), the
      // rest do nothing: nine counted, none logged. Wait for the counter, so that every request has finished.
      for (let tries = 0; (await resetsNotSent()) - before < 9; tries++) {
        expect(tries).toBeLessThan(400);
        await new Promise((r) => setTimeout(r, 25));
      }
      expect((await resetsNotSent()) - before).toBe(9);
      // Three reset mails queued; each newer one withdrew an older one not sent yet (its link no longer works), so
      // the mails that arrive end with the one whose link works. All three count toward the hour's three.
      expect(await outbox()).toHaveLength(3);
      await server.runJob('deliver-mail');
      // (The server's own delivery job runs too: wait until no mail is left pending.)
      for (let tries = 0; (await outbox()).some((r: { status: string }) => r.status === 'pending'); tries++) {
        expect(tries).toBeLessThan(400);
        await new Promise((r) => setTimeout(r, 25));
      }
      const statuses = (await outbox()).map((r: { status: string }) => r.status);
      expect(statuses.at(-1)).toBe('sent');
      expect(statuses.every((st: string) => st === 'sent' || st === 'withdrawn')).toBe(true);
      const delivered = statuses.filter((st: string) => st === 'sent').length;
      await mailTo(frank.email, 'Reset your', delivered);
      expect(server.logLines.filter((l) => l.includes(frank.email))).toEqual([]);
      // An hour after the first three, a request is mailed again, and its link works.
      server.clock.advance(HOUR);
      expect((await call(server, 'POST', '/password-reset', { json: { email: frank.email }, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(202);
      const { token } = linkIn(await mailTo(frank.email, 'Reset your', delivered + 1), 'reset');
      const done = await call(server, 'POST', '/password-reset/confirm', { json: { token, new_password: 'fourth-link-password' }, headers: { 'x-forwarded-for': freshIp() } });
      expect(done.status).toBe(204);
    } finally {
      server.clock.resume();
    }
  });

  it('limits reset requests per client address without touching that address’s sign-in allowance', async () => {
    const a = await makeAdmin(server.deps);
    const ip = freshIp();
    // passwordReset.perAddress (10 by default) requests per window from one address, for any addresses at all.
    for (let i = 0; i < 10; i++) {
      const res = await call(server, 'POST', '/password-reset', { json: { email: `${uniq('nobody')}@example.com` }, headers: { 'x-forwarded-for': ip } });
      expect(res.status).toBe(202);
    }
    // The eleventh is still 202 and does nothing at all: decided before the answer, so no mail can follow it.
    const before = await resetsNotSent();
    expect((await call(server, 'POST', '/password-reset', { json: { email: a.email }, headers: { 'x-forwarded-for': ip } })).status).toBe(202);
    expect((await resetsNotSent()) - before).toBe(1);
    // From another address the same request is mailed: the one mail the administrator gets.
    expect((await call(server, 'POST', '/password-reset', { json: { email: a.email }, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(202);
    await mailTo(a.email, 'Reset your');
    expect(smtp.to(a.email).filter((m) => m.subject.includes('Reset your'))).toHaveLength(1);
    // The requests counted on a key of their own (a throttle row, pruned and capped with the others), not on the
    // address's or any email's sign-in key: signing in from that address works (its allowance is 10 in this file).
    const keys = (await server.deps.db.knex('login_throttle').where('key', 'like', `%${ip}`)).map((r: { key: string }) => r.key);
    expect(keys).toEqual([`reset:ip:${ip}`]);
    expect((await login(a.email, a.password, ip)).status).toBe(200);
  });

  it('counts guessed links against the sign-in throttle of the address', async () => {
    const ip = freshIp();
    const a = await makeAdmin(server.deps);
    for (let i = 0; i < 10; i++) {
      const res = await call(server, 'POST', i % 2 ? '/invitations/accept' : '/password-reset/confirm', {
        json: i % 2 ? { token: `sai_guess${i}`, password: 'guessing-password' } : { token: `sar_guess${i}`, new_password: 'guessing-password' },
        headers: { 'x-forwarded-for': ip },
      });
      expect(res.status).toBe(400);
    }
    const blocked = await call(server, 'POST', '/invitations/accept', { json: { token: 'sai_guess', password: 'guessing-password' }, headers: { 'x-forwarded-for': ip } });
    expect(blocked.status).toBe(429);
    expect(blocked.headers.get('retry-after')).toMatch(/^\d+$/);
    // The same bucket as sign-in: the right password from that address waits too.
    expect((await login(a.email, a.password, ip)).status).toBe(429);
    expect((await login(a.email, a.password)).status).toBe(200);
  });

  it('sat admin reset-password --email sets a new password, ends every session and mails the owner', async () => {
    const a = await makeAdmin(server.deps);
    const before = await session(a);
    const env = { ...db.env, SMTP_URL: smtp.url, ISSUER: server.issuer };
    // The first reset runs as a real `sat` process; the commands after it in this process (runSatInProcess).
    const out = await runSat(['admin', 'reset-password', '--email', a.email.toUpperCase()], env);
    expect([out.code, out.stderr.replace(/^oidc-provider WARNING.*\n/gm, '')]).toEqual([0, '']);
    const password = /New password \(shown once, keep it safe\): (\S+)/.exec(out.stdout)?.[1];
    expect(password).toBeDefined();
    expect(out.stdout).toContain('ended 1 session');
    expect((await call(server, 'GET', '/me', as(before))).status).toBe(401);
    expect((await login(a.email, a.password)).status).toBe(401);
    const after = await login(a.email, password!);
    expect(after.status).toBe(200);
    await mailTo(a.email, 'password was changed');
    expect(await audit(after.body.token, 'admin.password_reset')).toEqual([
      expect.objectContaining({ actor_id: null, actor_email: 'cli', subject_admin: { id: a.id, email: a.email } }),
    ]);

    const missing = await runSatInProcess(['admin', 'reset-password', '--email', 'nobody-at-all@example.com'], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain('no administrator');
    const onArgv = await runSatInProcess(['admin', 'reset-password', '--email', a.email, '--password', 'on-the-command-line'], env);
    expect(onArgv.code).toBe(2);

    // A chosen password comes only from standard input, with the same rule as everywhere.
    const tooShort = await runSatInProcess(['admin', 'reset-password', '--email', a.email, '--password-stdin'], env, 'short\n');
    expect(tooShort.code).toBe(1);
    expect(tooShort.stderr).toContain('at least 12 characters');
    const chosen = await runSatInProcess(['admin', 'reset-password', '--email', a.email, '--password-stdin'], env, 'chosen-on-stdin-1\n');
    expect(chosen.code).toBe(0);
    expect(chosen.stdout).not.toContain('chosen-on-stdin-1');
    expect(chosen.stdout).not.toContain('New password');
    expect((await call(server, 'GET', '/me', as(after.body.token))).status).toBe(401);
    expect((await login(a.email, 'chosen-on-stdin-1')).status).toBe(200);
  });
});
