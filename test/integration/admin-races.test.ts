// SPEC Part 2 "Administrators": a password change or reset ends every other session, a removal ends the removed
// administrator's sessions at once; and no call answers 500 (SPEC "Admin API", docs/admin-api.md "At the same
// time"). Found by a black-box tester on PostgreSQL: a sign-in with the old password whose check was running when
// the password changed made a session that survived the change; a sign-in, a generate or a PUT /policy by an
// administrator whose removal committed meanwhile answered 500 (a foreign key to the removed row). Here a second
// connection plays the change or removal, holding its transaction open until the call waits on it, then commits:
// the interleaving of the race, on every run. PostgreSQL only: the embedded engine runs one transaction at a time.
import pg from 'pg';
import { hashPassword } from '../../src/accounts/index.js';
import { issueOneTimeToken } from '../../src/accounts/one-time.js';
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { createTestDb, describePostgres, lockWaits, type TestDb } from '../support/db.js';
import { makeAdmin } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

describePostgres('admin calls racing a password change or a removal, on postgres', () => {
  let db: TestDb;
  let server: TestServer;

  beforeAll(async () => {
    db = await createTestDb('postgres');
    server = await startServer(db);
  });
  afterAll(async () => {
    await server?.close();
    await db?.drop();
  });

  /**
   * Runs `change` (statements of one transaction) on its own connection, starts `request`, waits until one of the
   * server's statements waits for a lock, commits the change, and returns what the request answered.
   */
  async function whileChanging<T>(
    change: (query: (sql: string, params?: unknown[]) => Promise<unknown>) => Promise<void>,
    request: () => Promise<T>,
    /** More of the change, run once the request waits on it (before the commit). */
    thenChange?: (query: (sql: string, params?: unknown[]) => Promise<unknown>) => Promise<void>,
  ): Promise<T> {
    const holder = new pg.Client({ connectionString: db.url });
    const observer = new pg.Client({ connectionString: db.url });
    await Promise.all([holder.connect(), observer.connect()]);
    try {
      await holder.query('begin');
      await change((sql, params) => holder.query(sql, params as unknown[]));
      const answer = request();
      for (const deadline = Date.now() + 10_000; ; ) {
        if ((await lockWaits(observer)) > 0) break;
        if (Date.now() > deadline) throw new Error('the request never waited on the change');
        await new Promise((r) => setTimeout(r, 10));
      }
      await thenChange?.((sql, params) => holder.query(sql, params as unknown[]));
      await holder.query('commit');
      return await answer;
    } finally {
      await holder.end();
      await observer.end();
    }
  }

  const sessionsOf = async (adminId: string) => Number((await server.deps.db.knex('admin_sessions').where({ admin_id: adminId }).count({ n: '*' }))[0]!.n);

  it('a sign-in with the old password whose check was running when the password changed: 401, and no session survives', async () => {
    const admin = await makeAdmin(server.deps);
    const newHash = await hashPassword('a new password 123');
    const answer = await whileChanging(
      async (query) => {
        // What POST /admin/api/me/password (and a reset) does: the new hash, then every session ends.
        await query('update admins set password_hash = $1 where id = $2', [newHash, admin.id]);
        await query('delete from admin_sessions where admin_id = $1', [admin.id]);
      },
      () => call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password } }),
    );
    expect([answer.status, answer.body.error]).toEqual([401, 'invalid_credentials']);
    expect(await sessionsOf(admin.id!)).toBe(0);
    // The new password works; the old one is refused as before.
    expect((await call(server, 'POST', '/login', { json: { email: admin.email, password: 'a new password 123' } })).status).toBe(200);
  });

  it('a sign-in of an administrator whose removal commits meanwhile: 401 invalid_credentials, not 500', async () => {
    const admin = await makeAdmin(server.deps);
    const answer = await whileChanging(
      (query) => query('delete from admins where id = $1', [admin.id]).then(() => undefined),
      () => call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password } }),
    );
    expect([answer.status, answer.body.error]).toEqual([401, 'invalid_credentials']);
    expect(await sessionsOf(admin.id!)).toBe(0);
  });

  it.each([
    ['generate a token', 'POST', '/tokens', () => tokenBody()],
    ['PUT /policy', 'PUT', '/policy', () => ({ max_lifetime_days: 30, allowed_services: ['jobs'], revoke_dormant_after_days: null, default_max_tokens_per_hour: null })],
    ['invite an administrator', 'POST', '/admins', () => ({ email: `invited-${Date.now()}@example.com` })],
  ])('%s by an administrator whose removal commits meanwhile: 401, not 500, nothing written', async (_label, method, path, body) => {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const before = await server.deps.db.knex('audit_events').where({ organisation_id: admin.organisation_id }).count({ n: '*' });
    const answer = await whileChanging(
      async (query) => {
        // What DELETE /admin/api/admins/{id} does: the organisation locked, then the row (and its sessions) gone.
        await query('select id from organisations where id = $1 for no key update', [admin.organisation_id]);
        await query('delete from admins where id = $1', [admin.id]);
      },
      () => call(server, method, path, { token, json: body() }),
    );
    expect([answer.status, answer.body.error]).toEqual([401, 'unauthorized']);
    expect(await server.deps.db.knex('audit_events').where({ organisation_id: admin.organisation_id }).count({ n: '*' })).toEqual(before);
    expect(server.logLines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });

  it('a password change whose check was running when a reset committed: 400, the given password is no longer current; the reset stands', async () => {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const resetHash = await hashPassword('the owner reset this 1');
    const answer = await whileChanging(
      async (query) => {
        // What POST /admin/api/password-reset/confirm does: the new hash, then every session ends.
        await query('update admins set password_hash = $1 where id = $2', [resetHash, admin.id]);
        await query('delete from admin_sessions where admin_id = $1', [admin.id]);
      },
      () => call(server, 'POST', '/me/password', { token, json: { current_password: admin.password, new_password: 'the other party 123' } }),
    );
    // Before: 204, and the change's password silently replaced the reset's (found on two instances on PostgreSQL).
    expect([answer.status, answer.body.error, answer.body.details?.[0]?.path]).toEqual([400, 'validation_failed', 'current_password']);
    expect((await call(server, 'POST', '/login', { json: { email: admin.email, password: 'the owner reset this 1' } })).status).toBe(200);
    expect((await call(server, 'POST', '/login', { json: { email: admin.email, password: 'the other party 123' } })).status).toBe(401);
    expect(server.logLines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });

  it('a reset confirmed while a password change is committing: no deadlock, no 500; the link is void and the change stands', async () => {
    const admin = await makeAdmin(server.deps);
    const { token: link } = await server.deps.db.knex.transaction((trx) =>
      issueOneTimeToken(trx, { purpose: 'password_reset', organisationId: admin.organisation_id!, adminId: admin.id!, email: admin.email, createdBy: null, now: new Date() }),
    );
    const changedHash = await hashPassword('changed meanwhile 123');
    const answer = await whileChanging(
      // What POST /admin/api/me/password does, in its order: the admins row first ...
      (query) => query('update admins set password_hash = $1 where id = $2', [changedHash, admin.id]).then(() => undefined),
      () => call(server, 'POST', '/password-reset/confirm', { json: { token: link, new_password: 'reset while changing 1' } }),
      // ... then, once the confirmation waits on it, the outstanding reset links void. Before, the confirmation held
      // the link's row by now and waited for the admins row: a deadlock, and one of the two failed with 500.
      (query) => query("delete from admin_one_time_tokens where admin_id = $1 and purpose = 'password_reset' and used_at is null", [admin.id]).then(() => undefined),
    );
    expect([answer.status, answer.body.error, answer.body.details?.[0]?.path]).toEqual([400, 'validation_failed', 'token']);
    expect((await call(server, 'POST', '/login', { json: { email: admin.email, password: 'changed meanwhile 123' } })).status).toBe(200);
    expect(server.logLines.filter((l) => l.includes('"level":"error"'))).toEqual([]);
  });

  /**
   * Holds what a reset request holds while it writes its new link (the FOR KEY SHARE lock on the administrator's row
   * that inserting a row pointing at it takes), runs `request`, and returns its answer, failing as soon as one of
   * the server's statements waits on that lock instead (the lock order that deadlocked with the request).
   */
  async function besideKeyShare<T>(adminId: string, request: () => Promise<T>): Promise<T> {
    const holder = new pg.Client({ connectionString: db.url });
    const observer = new pg.Client({ connectionString: db.url });
    await Promise.all([holder.connect(), observer.connect()]);
    try {
      await holder.query('begin');
      await holder.query('select id from admins where id = $1 for key share', [adminId]);
      let settled = false;
      const answer = request().finally(() => (settled = true));
      while (!settled) {
        if ((await lockWaits(observer)) > 0) throw new Error('the call waited on the reset request: the lock that deadlocked with it');
        await new Promise((r) => setTimeout(r, 10));
      }
      return await answer;
    } finally {
      await holder.query('rollback').catch(() => undefined);
      await holder.end();
      await observer.end();
    }
  }

  it('a password change or a reset confirmation while a reset request writes its link: neither waits for it (reviewer: deadlock)', async () => {
    const admin = await makeAdmin(server.deps);
    const { token } = await signIn(server, admin.email, admin.password);
    const changed = await besideKeyShare(admin.id!, () =>
      call(server, 'POST', '/me/password', { token, json: { current_password: admin.password, new_password: 'beside a request 1' } }),
    );
    expect(changed.status).toBe(204);
    const { token: link } = await server.deps.db.knex.transaction((trx) =>
      issueOneTimeToken(trx, { purpose: 'password_reset', organisationId: admin.organisation_id!, adminId: admin.id!, email: admin.email, createdBy: null, now: new Date() }),
    );
    const confirmed = await besideKeyShare(admin.id!, () => call(server, 'POST', '/password-reset/confirm', { json: { token: link, new_password: 'beside a request 2' } }));
    expect(confirmed.status).toBe(204);
    expect((await call(server, 'POST', '/login', { json: { email: admin.email, password: 'beside a request 2' } })).status).toBe(200);
  });
});
