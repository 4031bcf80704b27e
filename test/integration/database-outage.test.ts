// Issue 10 items 11 and 12: PostgreSQL stalled (a TCP proxy that stops forwarding) or stopped (the proxy closed):
// every request is answered within a bound, 503 with Retry-After in the OAuth shape at OAuth endpoints and the
// admin shape elsewhere, the outage is logged once (then summaries), and everything works again once it is back.
import net from 'node:net';
import pgModule from 'pg';
import { call, signIn } from '../support/admin-api.js';
import { createTestDb, onPostgresServer, testDatabases, type TestDb } from '../support/db.js';
import { emailKey } from '../../src/accounts/index.js';
import { issueOneTimeToken } from '../../src/accounts/one-time.js';
import { basic, makeAdmin, makeToken } from '../support/fixtures.js';
import { clientKey, dpopProof } from '../support/sender.js';
import { freePort, startServer, type TestServer } from '../support/server.js';

const pg = testDatabases().includes('postgres');
if (!pg) console.log('database-outage.test.ts: skipped, needs TEST_DATABASE_URL (PostgreSQL)');
const suite = pg ? describe : describe.skip;

suite('a stalled or stopped PostgreSQL', () => {
  let db: TestDb;
  let server: TestServer;
  let proxy: net.Server | undefined;
  let port: number;
  let stalled = false;
  const sockets = new Set<net.Socket>();
  const paused: Array<() => void> = [];

  const startProxy = (target: URL) =>
    new Promise<void>((resolve) => {
      proxy = net.createServer((client) => {
        const upstream = net.connect(Number(target.port || 5432), target.hostname);
        sockets.add(client).add(upstream);
        // While stalled, bytes are held back in both directions: connections stay open, nothing is answered.
        const forward = (from: net.Socket, to: net.Socket) =>
          from.on('data', (chunk) => {
            if (!stalled) to.write(chunk);
            else paused.push(() => to.write(chunk));
          });
        forward(client, upstream);
        forward(upstream, client);
        const drop = () => {
          client.destroy();
          upstream.destroy();
        };
        client.on('error', drop).on('close', drop);
        upstream.on('error', drop).on('close', drop);
      });
      proxy.listen(port, '127.0.0.1', () => resolve());
    });
  const stopProxy = () =>
    new Promise<void>((resolve) => {
      proxy!.close(() => resolve());
      for (const s of sockets) s.destroy();
      sockets.clear();
    });

  let clientAuth: string;
  let session: string;

  beforeAll(async () => {
    db = await createTestDb('postgres');
    port = await freePort();
    await startProxy(new URL(db.url!));
    const viaProxy = new URL(db.url!);
    viaProxy.hostname = '127.0.0.1';
    viaProxy.port = String(port);
    server = await startServer(db, { DATABASE_URL: viaProxy.toString(), DATABASE_TIMEOUT_SECONDS: '1' });
    const admin = await makeAdmin(server.deps);
    clientAuth = basic(...(await makeToken(server.deps, admin).then((t) => [t.client_id, t.client_secret] as const)));
    session = (await signIn(server, admin.email, admin.password)).token;
  });
  afterAll(async () => {
    stalled = false;
    await server?.close();
    proxy?.close();
    await db?.drop();
  });

  const tokenRequest = () =>
    fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { authorization: clientAuth, 'content-type': 'application/x-www-form-urlencoded' },
      body: 'grant_type=client_credentials',
    });

  async function expectOutageAnswers(boundMs: number) {
    const started = Date.now();
    const [token, list] = await Promise.all([tokenRequest(), call(server, 'GET', '/tokens', { token: session })]);
    expect(Date.now() - started).toBeLessThan(boundMs);
    expect(token.status).toBe(503);
    expect(token.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(await token.json()).toMatchObject({ error: 'temporarily_unavailable' });
    expect(list.status).toBe(503);
    expect(list.headers.get('retry-after')).toMatch(/^\d+$/);
    expect(list.body).toMatchObject({ error: 'service_unavailable' });
  }

  async function expectBack() {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const res = await tokenRequest();
      if (res.status === 200) break;
      if (Date.now() > deadline) throw new Error(`token endpoint still ${res.status} ${await res.text()} ${server.logLines.slice(-3).join("\n").slice(0, 3000)}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    expect((await call(server, 'GET', '/tokens', { token: session })).status).toBe(200);
  }

  it('answers 503 within a few seconds while the database is stalled, then 200 again', async () => {
    expect((await tokenRequest()).status).toBe(200);
    stalled = true;
    await expectOutageAnswers(8_000);
    stalled = false;
    for (const resume of paused.splice(0)) resume();
    await expectBack();
  });

  it('answers 503 while the database is stopped, logs the outage once for many requests, and recovers', async () => {
    await stopProxy();
    const before = server.logLines.length;
    await expectOutageAnswers(8_000);
    for (let i = 0; i < 10; i++) expect((await tokenRequest()).status).toBe(503);
    await server.runJob('reload-keys');
    const lines = server.logLines.slice(before);
    const errors = lines.filter((l) => /"level":"error"/.test(l));
    expect(errors.length).toBeLessThanOrEqual(1);
    expect(lines.join('\n')).not.toMatch(/"stack"/);
    await startProxy(new URL(db.url!));
    await expectBack();
  });

  it('answers 503 while PostgreSQL turns new connections away (a database closed to connections), and recovers', async () => {
    expect((await tokenRequest()).status).toBe(200);
    const name = new URL(db.url!).pathname.slice(1);
    // Maintenance: no new connections to this database, the open ones ended. Each reconnect is then refused by the
    // server with "database … is not currently accepting connections" (SQLSTATE 55000).
    await onPostgresServer(async (query) => {
      await query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS false`);
      await query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    });
    try {
      const before = server.logLines.length;
      await expectOutageAnswers(8_000);
      await server.runJob('reload-keys'); // every 2 s: the keys loaded before keep signing
      expect(server.logLines.slice(before).join('\n')).not.toMatch(/"stack"/);
    } finally {
      await onPostgresServer((query) => query(`ALTER DATABASE "${name}" ALLOW_CONNECTIONS true`));
    }
    await expectBack();
  });

  // Only a wrong password counts against the sign-in throttle: a correct one the database could not finish signing in
  // (here its audit event waits for a table lock past DATABASE_TIMEOUT_SECONDS) is given back; each such 503 used to
  // count as a failure, until the correct password met 429 for the rest of the window once the database was back.
  it('gives back a sign-in the database could not finish: 503, and the throttle counts nothing', async () => {
    const admin = await makeAdmin(server.deps);
    const key = emailKey(admin.email);
    const failures = async () =>
      Number((await server.deps.db.knex('login_throttle').where({ key }).first('failures'))?.failures ?? 0);
    const holder = new pgModule.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table audit_events in access exclusive mode');
      for (let i = 0; i < 3; i++) {
        const res = await call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password } });
        expect([res.status, res.body.error]).toEqual([503, 'service_unavailable']);
      }
      expect(await failures()).toBe(0);
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    const wrong = await call(server, 'POST', '/login', { json: { email: admin.email, password: 'not the password' } });
    expect(wrong.status).toBe(401);
    expect(await failures()).toBe(1); // a wrong password still counts
    expect((await call(server, 'POST', '/login', { json: { email: admin.email, password: admin.password } })).status).toBe(200);
  });

  // The same for the other password checks the throttle counts: changing one's password, confirming a reset link,
  // accepting an invitation. A good attempt the database could not finish is given back; a wrong one still counts.
  it('gives back a password change, a reset confirmation and an invitation acceptance the database could not finish', async () => {
    const admin = await makeAdmin(server.deps);
    const own = await signIn(server, admin.email, admin.password);
    const rows = async () =>
      Object.fromEntries(
        ((await server.deps.db.knex('login_throttle').where('failures', '>', 0).select('key', 'failures')) as Array<{ key: string; failures: number }>).map((r) => [
          r.key,
          Number(r.failures),
        ]),
      );
    const issue = (purpose: 'password_reset' | 'invitation', email: string, adminId: string | null) =>
      server.deps.db.knex.transaction((trx) =>
        issueOneTimeToken(trx, { purpose, organisationId: admin.organisation_id, adminId, email, createdBy: null, now: new Date() }),
      );
    const reset = await issue('password_reset', admin.email, admin.id);
    const invitation = await issue('invitation', `invited-${admin.id}@example.com`, null);
    const before = await rows();
    const holder = new pgModule.Client({ connectionString: db.url });
    await holder.connect();
    try {
      await holder.query('begin');
      await holder.query('lock table audit_events in access exclusive mode');
      const attempts = [
        call(server, 'POST', '/me/password', { token: own.token, json: { current_password: admin.password, new_password: 'a-new-password-1' } }),
        call(server, 'POST', '/password-reset/confirm', { json: { token: reset.token, new_password: 'a-new-password-2' } }),
        call(server, 'POST', '/invitations/accept', { json: { token: invitation.token, password: 'a-new-password-3' } }),
      ];
      for (const res of await Promise.all(attempts)) expect([res.status, res.body.error]).toEqual([503, 'service_unavailable']);
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    expect(await rows()).toEqual(before);
    // A wrong current password still counts, against the account and the address.
    const wrong = await call(server, 'POST', '/me/password', { token: own.token, json: { current_password: 'not the password', new_password: 'a-new-password-4' } });
    expect(wrong.status).toBe(400);
    expect((await rows())[emailKey(admin.email)]).toBe((before[emailKey(admin.email)] ?? 0) + 1);
  });

  // The provider path (a DPoP proof, a client assertion) claims one-time jtis in the replay table: stalled past
  // DATABASE_TIMEOUT_SECONDS it answered oidc-provider's own 500 "oops! something went wrong", with no Retry-After.
  it('answers 503 with Retry-After when the replay table stalls under a DPoP token request', async () => {
    const holder = new pgModule.Client({ connectionString: db.url });
    await holder.connect();
    const before = server.logLines.length;
    try {
      await holder.query('begin');
      await holder.query('lock table oauth_replay in access exclusive mode');
      const res = await fetch(`${server.issuer}/token`, {
        method: 'POST',
        headers: { authorization: clientAuth, 'content-type': 'application/x-www-form-urlencoded', dpop: await dpopProof(await clientKey(), `${server.issuer}/token`) },
        body: 'grant_type=client_credentials',
      });
      expect(res.status).toBe(503);
      expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
      expect(res.headers.get('cache-control')).toBe('no-store');
      expect(((await res.json()) as { error: string }).error).toBe('temporarily_unavailable');
    } finally {
      await holder.query('rollback');
      await holder.end();
    }
    expect(server.logLines.slice(before).join('\n')).not.toMatch(/"stack"|oauth_replay|oauth server error/);
    await expectBack();
  });

  // A failover onto a standby, or default_transaction_read_only: the database answers, but every change fails
  // (SQLSTATE 25006). Changes answer 503 with Retry-After as in an outage (they answered 500 with the statement and
  // a stack in the log), /readyz says so (it answered 200, so a load balancer kept sending requests here), and all
  // is well again once the database takes writes.
  it('answers 503 to changes and /readyz "read_only" while the database is read-only, with no SQL or stack logged', async () => {
    const name = new URL(db.url!).pathname.slice(1);
    await onPostgresServer(async (query) => {
      await query(`ALTER DATABASE "${name}" SET default_transaction_read_only = on`);
      await query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]);
    });
    try {
      const before = server.logLines.length;
      const deadline = Date.now() + 15_000;
      // (Right after the connections were ended the probe may also say "unreachable", until the pool reconnects.)
      let ready: [number, unknown];
      for (;;) {
        const res = await fetch(`${server.url}/readyz`);
        ready = [res.status, await res.json()];
        if ((ready[1] as { database?: string }).database === 'read_only' || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(ready).toEqual([503, { status: 'unavailable', database: 'read_only' }]);
      const generate = await call(server, 'POST', '/tokens', { token: session, json: { name: `read-only-${Date.now()}`, services: ['candidates'], expires_at: new Date(Date.now() + 86_400_000).toISOString() } });
      expect([generate.status, generate.body.error]).toEqual([503, 'service_unavailable']);
      expect(generate.headers.get('retry-after')).toMatch(/^\d+$/);
      const revocation = await fetch(`${server.url}/token/revocation`, {
        method: 'POST',
        headers: { authorization: clientAuth, 'content-type': 'application/x-www-form-urlencoded' },
        body: `token=${((await (await tokenRequest()).json()) as { access_token: string }).access_token}`,
      });
      expect(revocation.status).toBe(503);
      expect(((await revocation.json()) as { error: string }).error).toBe('temporarily_unavailable');
      const logged = server.logLines.slice(before).join('\n');
      expect(logged).not.toMatch(/"stack"|insert into|update "|delete from/i);
    } finally {
      await onPostgresServer((query) => query(`ALTER DATABASE "${name}" RESET default_transaction_read_only`));
      await onPostgresServer((query) =>
        query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [name]),
      );
    }
    await expectBack();
    expect((await fetch(`${server.url}/readyz`)).status).toBe(200);
  });
});
