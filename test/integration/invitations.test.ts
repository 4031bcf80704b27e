// Pending invitations (docs/admin-api.md "Administrators"): GET /admin/api/invitations lists the organisation's
// invitations nobody has accepted that have not expired; DELETE /admin/api/invitations/{id} withdraws one, and its
// mailed link stops working at once. Over HTTP against a real server, on both databases, links read from real mail.
import { randomUUID } from 'node:crypto';
import { addAdmin, inviteAdmin } from '../../src/accounts/index.js';
import { call, signIn } from '../support/admin-api.js';
import { resetClock } from '../support/clock.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { makeAdmin, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const HOUR = 3600_000;

let nextAddress = 1;
/** A fresh client address per call, so the accept throttle of one test does not reach another. */
const freshIp = () => {
  const n = nextAddress++;
  return `10.77.${(n >> 8) & 255}.${n & 255}`;
};

describe.each(testDatabases())('pending invitations on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, MAIL_POLL_INTERVAL_MS: '100', TRUST_PROXY: 'true' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  type Admin = Awaited<ReturnType<typeof makeAdmin>>;
  const as = (token: string) => ({ token, headers: { 'x-forwarded-for': freshIp() } });
  const session = async (admin: Admin) => (await signIn(server, admin.email, admin.password, freshIp())).token;
  const address = (prefix: string) => `${uniq(prefix)}@example.com`;

  async function invite(token: string, email: string) {
    const res = await call(server, 'POST', '/admins', { ...as(token), json: { email } });
    expect(res.status).toBe(201);
    return res.body as { id: string; email: string; expires_at: string };
  }

  /** The invitation link's token from the `count`-th invitation mail to `to`. */
  async function linkTo(to: string, count = 1): Promise<string> {
    const pick = () => smtp.to(to).filter((m) => m.subject.includes('invited'));
    await smtp.waitFor(() => pick().length >= count);
    const m = /\/admin#\/invite\?token=([A-Za-z0-9_%-]+)/.exec(pick()[count - 1]!.text);
    expect(m).not.toBeNull();
    return decodeURIComponent(m![1]!);
  }

  const accept = (token: string, password = 'a-good-password') =>
    call(server, 'POST', '/invitations/accept', { json: { token, password }, headers: { 'x-forwarded-for': freshIp() } });

  const pending = async (token: string) => {
    const res = await call(server, 'GET', '/invitations', as(token));
    expect(res.status).toBe(200);
    return res.body.items as Array<Record<string, any>>;
  };

  it('lists the pending invitations only, newest first, with the id the invitation answered with and who sent it', async () => {
    const a = await makeAdmin(server.deps);
    const other = await makeAdmin(server.deps);
    const aToken = await session(a);
    const [expired, used, first, fromCli, second, elsewhere] = [
      address('expired'),
      address('used'),
      address('first'),
      address('cli'),
      address('second'),
      address('elsewhere'),
    ];
    // One made 72 h ago by the server's clock: expired now.
    server.clock.set(new Date(Date.now() - 72 * HOUR - 1000));
    try {
      await invite(aToken, expired);
    } finally {
      resetClock(server.clock);
    }
    await invite(aToken, used);
    expect((await accept(await linkTo(used))).status).toBe(200);
    const made = await invite(aToken, first);
    await inviteAdmin(server.deps, { id: null, email: 'cli', organisation_id: a.organisation_id }, { email: fromCli });
    const newest = await invite(aToken, second);
    await invite(await session(other), elsewhere);

    const items = await pending(aToken);
    expect(items.map((i) => i.email)).toEqual([second, fromCli, first]);
    expect(items[0]).toEqual({
      id: newest.id,
      email: second,
      created_at: expect.any(String),
      expires_at: newest.expires_at,
      invited_by: { id: a.id, email: a.email },
    });
    expect(Date.parse(items[0]!.expires_at) - Date.parse(items[0]!.created_at)).toBe(72 * HOUR);
    expect(items[1]).toMatchObject({ email: fromCli, invited_by: null });
    expect(items[2]).toMatchObject({ id: made.id, email: first });
    expect(JSON.stringify(items)).not.toMatch(/token|hash|sai_/);

    // An address that becomes an administrator another way (`sat admin add`) can no longer accept: not pending.
    await addAdmin(server.deps.db.knex, { org: a.organisation_name, email: fromCli.toUpperCase(), password: 'a-good-password' });
    expect((await pending(aToken)).map((i) => i.email)).toEqual([second, first]);

    // Another organisation sees its own only.
    expect((await pending(await session(other))).map((i) => i.email)).toEqual([elsewhere]);
    expect((await call(server, 'GET', '/invitations')).status).toBe(401);
    // No paging (every pending invitation is listed): a query parameter is refused, as at /admins.
    const paged = await call(server, 'GET', '/invitations?limit=1', as(aToken));
    expect([paged.status, paged.body.details]).toEqual([400, [{ path: 'limit', message: 'is not a known field' }]]);
  });

  it('withdraws an invitation: 204, its link answers as a used one, it leaves the list, an audit event names it', async () => {
    const a = await makeAdmin(server.deps);
    const aToken = await session(a);
    const email = address('typo');
    const kept = address('kept');
    const made = await invite(aToken, email);
    await invite(aToken, kept);
    const link = await linkTo(email);

    const res = await call(server, 'DELETE', `/invitations/${made.id}`, as(aToken));
    expect([res.status, res.text]).toEqual([204, '']);
    const refused = await accept(link);
    expect(refused.status).toBe(400);
    expect(refused.body).toMatchObject({ error: 'validation_failed', details: [{ path: 'token' }] });
    expect((await call(server, 'POST', '/login', { json: { email, password: 'a-good-password' }, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(401);
    expect((await pending(aToken)).map((i) => i.email)).toEqual([kept]);

    const again = await call(server, 'DELETE', `/invitations/${made.id}`, as(aToken));
    expect([again.status, again.body.error]).toEqual([404, 'not_found']);

    const events = ((await call(server, 'GET', '/audit?limit=100', as(aToken))).body.items as Array<Record<string, any>>).filter(
      (e) => e.action === 'admin.invitation_withdrawn',
    );
    expect(events).toEqual([
      expect.objectContaining({ actor_id: a.id, actor_email: a.email, subject_admin: { id: null, email }, token_id: null }),
    ]);

    // Inviting the address again after a withdrawal works as a first invitation.
    await invite(aToken, email);
    expect((await accept(await linkTo(email, 2))).status).toBe(200);
  });

  it('answers 404 not_found for another organisation’s, an unknown, a malformed, a used and an expired invitation', async () => {
    const a = await makeAdmin(server.deps);
    const stranger = await makeAdmin(server.deps);
    const aToken = await session(a);
    const strangerToken = await session(stranger);

    const theirs = await invite(aToken, address('theirs'));
    const used = address('used');
    const usedInvitation = await invite(aToken, used);
    expect((await accept(await linkTo(used))).status).toBe(200);
    server.clock.set(new Date(Date.now() - 72 * HOUR - 1000));
    let expired;
    try {
      expired = await invite(aToken, address('expired'));
    } finally {
      resetClock(server.clock);
    }

    for (const [what, id, token] of [
      ['another organisation’s', theirs.id, strangerToken],
      ['unknown', '6f1d2c9e-8b7a-4c3d-9e2f-1a0b9c8d7e6f', aToken],
      ['malformed', 'not-a-uuid', aToken],
      ['used', usedInvitation.id, aToken],
      ['expired', expired.id, aToken],
    ] as const) {
      const res = await call(server, 'DELETE', `/invitations/${encodeURIComponent(id)}`, as(token));
      expect({ what, status: res.status, error: res.body?.error, message: res.body?.message }).toEqual({
        what,
        status: 404,
        error: 'not_found',
        message: 'No such invitation.',
      });
    }
    // The stranger's attempt changed nothing: the invitation is still pending, and nothing was recorded anywhere.
    expect((await pending(aToken)).map((i) => i.id)).toEqual([theirs.id]);
    for (const token of [aToken, strangerToken]) {
      const events = ((await call(server, 'GET', '/audit?limit=100', as(token))).body.items as Array<{ action: string }>).filter(
        (e) => e.action === 'admin.invitation_withdrawn',
      );
      expect(events).toEqual([]);
    }
    expect((await call(server, 'DELETE', `/invitations/${theirs.id}`)).status).toBe(401);
  });

  it('lets exactly one of a withdrawal and an acceptance of the same invitation win when they come at once', async () => {
    const a = await makeAdmin(server.deps);
    const aToken = await session(a);
    const email = address('race');
    const made = await invite(aToken, email);
    const link = await linkTo(email);
    const [withdrawn, accepted] = await Promise.all([call(server, 'DELETE', `/invitations/${made.id}`, as(aToken)), accept(link)]);
    expect([[204, 400], [404, 200]]).toContainEqual([withdrawn.status, accepted.status]);
    const admins = ((await call(server, 'GET', '/admins', as(aToken))).body.items as Array<{ email: string }>).map((x) => x.email);
    expect(admins.includes(email)).toBe(accepted.status === 200);
    expect(await pending(aToken)).toEqual([]);
  });
});

// A withdrawn (or voided) invitation's mail that has not gone out yet never goes: the invitee would get a link that
// no longer works. Mail delivery runs only when the test says so here.
describe.each(testDatabases())('the mail of a withdrawn invitation on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url }, { jobs: 'manual' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  it('is dropped from the outbox with the withdrawal, and with the removal of the administrator who sent it', async () => {
    const a = await makeAdmin(server.deps);
    const { token } = await signIn(server, a.email, a.password, freshIp());
    const api = (method: string, path: string, json?: unknown) => call(server, method, path, { token, headers: { 'x-forwarded-for': freshIp() }, ...(json === undefined ? {} : { json }) });
    const typo = `${uniq('typo')}@example.com`;
    const kept = `${uniq('kept')}@example.com`;
    const made = (await api('POST', '/admins', { email: typo })).body as { id: string };
    expect((await api('POST', '/admins', { email: kept })).status).toBe(201);
    expect((await api('DELETE', `/invitations/${made.id}`)).status).toBe(204);

    // A second administrator (added directly) invites someone, and is removed before the mail goes.
    const b = await makeAdmin(server.deps, a.organisation_name);
    const bSession = await signIn(server, b.email, b.password, freshIp());
    const viaB = `${uniq('via-b')}@example.net`;
    expect((await call(server, 'POST', '/admins', { token: bSession.token, headers: { 'x-forwarded-for': freshIp() }, json: { email: viaB } })).status).toBe(201);
    expect((await api('DELETE', `/admins/${b.id}`)).status).toBe(204);

    await server.runJob('deliver-mail');
    await smtp.waitFor(() => smtp.to(kept).length === 1);
    expect(smtp.to(typo)).toEqual([]);
    expect(smtp.to(viaB)).toEqual([]);
    expect(await server.deps.db.knex('mail_outbox').whereIn('recipient', [typo, viaB])).toEqual([]);
  });

  it('held by a sender (it may be on its way) is marked withdrawn without its link, and a failed send is not tried again', async () => {
    const a = await makeAdmin(server.deps);
    const { token } = await signIn(server, a.email, a.password, freshIp());
    const invitee = `${uniq('held')}@example.com`;
    const made = await call(server, 'POST', '/admins', { token, headers: { 'x-forwarded-for': freshIp() }, json: { email: invitee } });
    expect(made.status).toBe(201);
    // A sender on another instance claimed it a moment ago (its lease runs a minute).
    const sender = randomUUID();
    await server.deps.db.knex('mail_outbox').where({ recipient: invitee }).update({ locked_by: sender, locked_until: new Date(Date.now() + 60_000) });
    expect((await call(server, 'DELETE', `/invitations/${made.body.id}`, { token, headers: { 'x-forwarded-for': freshIp() } })).status).toBe(204);
    const [row] = await server.deps.db.knex('mail_outbox').where({ recipient: invitee });
    expect(row).toMatchObject({ status: 'withdrawn', locked_by: sender });
    expect(row.text_body).not.toMatch(/sai_/);
    // That send failed and its claim was released: nothing goes out later with the dead link.
    await server.deps.db.knex('mail_outbox').where({ recipient: invitee }).update({ locked_by: null, locked_until: null });
    await server.runJob('deliver-mail');
    expect(smtp.to(invitee)).toEqual([]);
  });

  it("is dropped, and the other organisation's log says why, when the invitee accepts another organisation's invitation", async () => {
    const invitee = `${uniq('wanted')}@example.com`;
    const orgs = await Promise.all([makeAdmin(server.deps), makeAdmin(server.deps)]);
    const [a, b] = await Promise.all(orgs.map(async (admin) => ({ admin, token: (await signIn(server, admin.email, admin.password, freshIp())).token })));
    const api = (as: { token: string }, method: string, path: string, json?: unknown) =>
      call(server, method, path, { token: as.token, headers: { 'x-forwarded-for': freshIp() }, ...(json === undefined ? {} : { json }) });
    expect((await api(a!, 'POST', '/admins', { email: invitee })).status).toBe(201);
    expect((await api(b!, 'POST', '/admins', { email: invitee })).status).toBe(201);
    // B's link, read from its mail still in the outbox (delivery runs only when the test says so).
    const mails = (await server.deps.db.knex('mail_outbox').where({ recipient: invitee }).orderBy('created_at')) as Array<{ text_body: string }>;
    expect(mails).toHaveLength(2);
    const link = decodeURIComponent(/\/admin#\/invite\?token=([A-Za-z0-9_%-]+)/.exec(mails[1]!.text_body)![1]!);
    const accepted = await call(server, 'POST', '/invitations/accept', { json: { token: link, password: 'a-good-password' }, headers: { 'x-forwarded-for': freshIp() } });
    expect(accepted.status).toBe(200);

    await server.runJob('deliver-mail');
    await smtp.waitFor(() => smtp.to(invitee).length >= 1);
    expect(smtp.to(invitee)).toHaveLength(1); // B's; A's link no longer works, so its mail never went
    expect(await server.deps.db.knex('mail_outbox').where({ recipient: invitee })).toHaveLength(1);
    expect((await api(a!, 'GET', '/invitations')).body.items).toEqual([]);
    const events = (await api(a!, 'GET', '/audit?limit=5')).body.items as Array<Record<string, unknown>>;
    expect(events[0]).toMatchObject({
      action: 'admin.invitation_withdrawn',
      actor_id: null,
      actor_email: 'server',
      subject_admin: { id: null, email: invitee },
      details: { reason: 'the address became an administrator of another organisation' },
    });
    // B's log has the acceptance, not a withdrawal.
    const bEvents = (await api(b!, 'GET', '/audit?limit=5')).body.items as Array<{ action: string }>;
    expect(bEvents.map((e) => e.action)).not.toContain('admin.invitation_withdrawn');
  });
});
