// `sat admin list|invite|remove|invitations|withdraw --org NAME` (README "Command line"): the admin API's rules from a
// script, with the server running (on the embedded database through its control socket, on PostgreSQL on the
// database itself).
import { call, signIn, tokenBody } from '../support/admin-api.js';
import { runSat, runSatInProcess, runSatWithInput, type CliResult } from '../support/cli.js';
import { createTestDb, describeEmbedded, describePostgres, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow, makeAdmin, makeToken, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

/** Several `sat` processes, each loading the code and opening the database or the socket. */
const SPAWNING_TEST_MS = 60_000;
// The first test runs `sat admin add` as a real process; the others run their commands in this process
// (runSatInProcess), on the same server and database.

describe.each(testDatabases())('sat admin list, invite, remove, invitations and withdraw on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, MAIL_POLL_INTERVAL_MS: '100' });
    env = { ...db.env, SMTP_URL: smtp.url, ISSUER: server.issuer };
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  const json = (out: CliResult) => {
    expect([out.code, out.stderr.replace(/^oidc-provider WARNING.*\n/gm, '')]).toEqual([0, '']);
    return JSON.parse(out.stdout) as Record<string, any>;
  };

  it('warns when a command that mails runs on PostgreSQL without ISSUER (its links would name localhost), and only then', async () => {
    const admin = await makeAdmin(server.deps);
    const { ISSUER: _issuer, ...noIssuer } = env;
    const invited = await runSatInProcess(['admin', 'invite', '--org', admin.organisation_name, '--email', `${uniq('no-issuer')}@example.com`], noIssuer);
    expect(invited.code).toBe(0);
    if (kind === 'postgres') {
      // Found by a reviewer: the mail linked to http://localhost:3000/admin while the server ran elsewhere, silently.
      expect(invited.stderr).toContain('warning: ISSUER is not set: the mail this command queues will link to http://localhost:3000');
    } else {
      expect(invited.stderr).not.toContain('ISSUER'); // run by the server, with the server's ISSUER
    }
    const listed = await runSatInProcess(['admin', 'list', '--org', admin.organisation_name], noIssuer); // no mail: no warning
    expect([listed.code, listed.stderr.includes('ISSUER')]).toEqual([0, false]);
    // A token made by `sat` has no creator and mails nobody (review: it warned about its mail's links all the same).
    const made = await runSatInProcess(['token', 'create', '--org', admin.organisation_name, '--name', uniq('no-mail'), '--expires', daysFromNow(3), '--services', 'jobs'], noIssuer);
    expect([made.code, made.stderr.includes('ISSUER')]).toEqual([0, false]);
    const withIssuer = await runSatInProcess(['admin', 'invite', '--org', admin.organisation_name, '--email', `${uniq('issuer')}@example.com`], env);
    expect([withIssuer.code, withIssuer.stderr.includes('ISSUER')]).toEqual([0, false]);
  });

  it('records admin.added by "cli" for `sat admin add` (noting a new organisation) and by "server" for the first start', async () => {
    const org = uniq('cli-added-org');
    const email = `${uniq('cli-added')}@example.com`;
    const password = 'a-long-cli-password';
    const created = json(await runSatWithInput(['admin', 'add', '--org', org, '--email', email, '--password-stdin', '--json'], env, `${password}\n`));
    const second = `${uniq('cli-added-second')}@example.com`;
    const added = json(await runSatWithInput(['admin', 'add', '--org', org, '--email', second, '--password-stdin', '--json'], env, `${password}\n`));
    expect([created.organisation.created, added.organisation.created]).toEqual([true, false]);

    const session = await signIn(server, email, password);
    const events = ((await call(server, 'GET', '/audit?limit=100', { token: session.token })).body.items as Array<Record<string, any>>).filter(
      (e) => e.action === 'admin.added',
    );
    expect(events).toEqual([
      expect.objectContaining({ actor_id: null, actor_email: 'cli', subject_admin: { id: added.admin.id, email: second }, details: null }),
      expect.objectContaining({
        actor_id: null,
        actor_email: 'cli',
        subject_admin: { id: created.admin.id, email },
        details: { organisation_created: true },
      }),
    ]);

    // startServer (test/support/server.ts) started on a database without administrators: ADMIN_EMAIL was added.
    const first = await signIn(server, 'first-admin@example.com', 'first-admin-password');
    const firstEvents = ((await call(server, 'GET', '/audit?limit=100', { token: first.token })).body.items as Array<Record<string, any>>).filter(
      (e) => e.action === 'admin.added',
    );
    expect(firstEvents).toEqual([
      expect.objectContaining({
        actor_id: null,
        actor_email: 'server',
        subject_admin: { id: expect.any(String), email: 'first-admin@example.com' },
      }),
    ]);
  }, SPAWNING_TEST_MS);

  it('lists, invites by mail (the link is never printed) and removes an administrator, with audit events by cli', async () => {
    const first = await makeAdmin(server.deps);
    const second = await makeAdmin(server.deps, first.organisation_name);
    const other = await makeAdmin(server.deps);
    const org = first.organisation_name;

    const listed = json(await runSatInProcess(['admin', 'list', '--org', org, '--json'], env));
    expect(listed.items.map((a: { email: string }) => a.email).sort()).toEqual([first.email, second.email].sort());
    expect(JSON.stringify(listed)).not.toContain(other.email);
    expect(JSON.stringify(listed)).not.toMatch(/password/i);

    const email = `${uniq('cli-invitee')}@example.com`;
    const invited = await runSatInProcess(['admin', 'invite', '--org', org, '--email', email], env);
    expect(invited.code).toBe(0);
    expect(invited.stdout).toContain(`Invited ${email}`);
    expect(invited.stdout).not.toMatch(/token=|sai_/); // the link itself is only in the mail
    // Where it leads, built from ISSUER (a shell without the server's ISSUER shows localhost:3000 here).
    expect(invited.stdout).toContain(`its link opens ${server.issuer}/admin and works once`);
    await smtp.waitFor(() => smtp.to(email).length >= 1);
    const mail = smtp.to(email)[0]!;
    expect(mail.subject).toContain(org);
    expect(mail.text).toContain('An operator of this server invited you');
    expect(mail.text).toMatch(/\/admin#\/invite\?token=/);

    // Inviting an administrator again, or of another organisation, is refused as by the API.
    const again = await runSatInProcess(['admin', 'invite', '--org', org, '--email', other.email.toUpperCase()], env);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already an administrator');

    const session = await signIn(server, second.email, second.password);
    const removed = await runSatInProcess(['admin', 'remove', '--org', org, '--email', second.email.toUpperCase()], env);
    expect(removed.code).toBe(0);
    expect(removed.stdout).toContain(`Removed administrator ${second.email}`);
    expect((await call(server, 'GET', '/me', { token: session.token })).status).toBe(401); // sessions end at once
    expect(json(await runSatInProcess(['admin', 'list', '--org', org, '--json'], env)).items.map((a: { email: string }) => a.email)).toEqual([first.email]);

    const mine = await signIn(server, first.email, first.password);
    const events = ((await call(server, 'GET', '/audit?limit=100', { token: mine.token })).body.items as Array<Record<string, any>>).filter(
      (e) => e.action === 'admin.invited' || e.action === 'admin.removed',
    );
    expect(events).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ action: 'admin.invited', actor_id: null, actor_email: 'cli', subject_admin: { id: null, email } }),
        expect.objectContaining({ action: 'admin.removed', actor_id: null, actor_email: 'cli', subject_admin: { id: second.id, email: second.email } }),
      ]),
    );
  }, SPAWNING_TEST_MS);

  it('lists the pending invitations and withdraws one by address: its link stops working, audit event by cli', async () => {
    const admin = await makeAdmin(server.deps);
    const other = await makeAdmin(server.deps);
    const org = admin.organisation_name;
    const session = await signIn(server, admin.email, admin.password);
    const typo = `${uniq('cli-typo')}@exmaple.com`;
    const kept = `${uniq('cli-kept')}@example.com`;
    const made = await call(server, 'POST', '/admins', { token: session.token, json: { email: typo } });
    expect(made.status).toBe(201);
    expect(json(await runSatInProcess(['admin', 'invite', '--org', org, '--email', kept, '--json'], env)).email).toBe(kept);
    const elsewhere = `${uniq('cli-elsewhere')}@example.com`;
    expect(json(await runSatInProcess(['admin', 'invite', '--org', other.organisation_name, '--email', elsewhere, '--json'], env)).email).toBe(elsewhere);

    const listed = json(await runSatInProcess(['admin', 'invitations', '--org', org, '--json'], env));
    expect(listed.items).toEqual([
      expect.objectContaining({ email: kept, invited_by: null }),
      expect.objectContaining({ id: made.body.id, email: typo, invited_by: { id: admin.id, email: admin.email } }),
    ]);
    const text = await runSatInProcess(['admin', 'invitations', '--org', org], env);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(`${made.body.id}  ${typo}  invited `);
    expect(text.stdout).toContain(`by ${admin.email}  expires ${made.body.expires_at}`);
    expect(text.stdout).toMatch(new RegExp(`${kept.replace(/[.]/g, '\\.')}  invited \\S+  by sat  expires `));
    expect(text.stdout).toMatch(/\n2 pending invitations\n$/);
    expect(text.stdout).not.toContain(elsewhere);

    await smtp.waitFor(() => smtp.to(typo).length >= 1);
    const link = /\/admin#\/invite\?token=([A-Za-z0-9_%-]+)/.exec(smtp.to(typo)[0]!.text)![1]!;
    const withdrawn = await runSatInProcess(['admin', 'withdraw', '--org', org, '--email', typo.toUpperCase()], env);
    expect([withdrawn.code, withdrawn.stdout]).toEqual([0, `Withdrew the invitation of ${typo} (${made.body.id}); its link no longer works\n`]);
    const accepted = await call(server, 'POST', '/invitations/accept', { json: { token: decodeURIComponent(link), password: 'typo-password-123' } });
    expect([accepted.status, accepted.body.error]).toEqual([400, 'validation_failed']);
    expect(json(await runSatInProcess(['admin', 'invitations', '--org', org, '--json'], env)).items.map((i: { email: string }) => i.email)).toEqual([kept]);

    // Nothing pending for the address (any more, or in this organisation): exit 1 with the reason.
    const again = await runSatInProcess(['admin', 'withdraw', '--org', org, '--email', typo], env);
    expect([again.code, again.stderr]).toEqual([1, `sat: No pending invitation for ${typo}.\n`]);
    const foreign = await runSatInProcess(['admin', 'withdraw', '--org', org, '--email', elsewhere], env);
    expect([foreign.code, foreign.stderr]).toEqual([1, `sat: No pending invitation for ${elsewhere}.\n`]);
    expect(json(await runSatInProcess(['admin', 'invitations', '--org', other.organisation_name, '--json'], env)).items).toEqual([
      expect.objectContaining({ email: elsewhere }),
    ]);
    const usage = await runSatInProcess(['admin', 'withdraw', '--org', org], env);
    expect([usage.code, usage.stderr]).toEqual([2, expect.stringContaining('admin withdraw needs --org and --email')]);
    const noOrg = await runSatInProcess(['admin', 'invitations'], env);
    expect([noOrg.code, noOrg.stderr]).toEqual([2, expect.stringContaining('admin invitations needs --org')]);

    const events = ((await call(server, 'GET', '/audit?limit=100', { token: session.token })).body.items as Array<Record<string, any>>).filter(
      (e) => e.action === 'admin.invitation_withdrawn',
    );
    expect(events).toEqual([expect.objectContaining({ actor_id: null, actor_email: 'cli', subject_admin: { id: null, email: typo } })]);
  }, SPAWNING_TEST_MS);

  it('refuses to remove the last administrator, another organisation’s, and answers usage errors', async () => {
    const only = await makeAdmin(server.deps);
    const other = await makeAdmin(server.deps);
    const last = await runSatInProcess(['admin', 'remove', '--org', only.organisation_name, '--email', only.email], env);
    expect(last.code).toBe(1);
    expect(last.stderr).toContain('at least one administrator');
    const elsewhere = await runSatInProcess(['admin', 'remove', '--org', only.organisation_name, '--email', other.email], env);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toContain('No such administrator');
    expect(await server.deps.db.knex('admins').whereIn('id', [only.id, other.id]).count({ n: '*' })).toEqual([{ n: 2 }]);

    // An administrator whose address an earlier release took (a label ending in '-', which a new address may not
    // have) is still found and removed by it.
    const legacy = await makeAdmin(server.deps, only.organisation_name);
    const address = `${uniq('old')}@foo-.example.com`;
    await server.deps.db.knex('admins').where({ id: legacy.id }).update({ email: address, email_key: address });
    const gone = await runSatInProcess(['admin', 'remove', '--org', only.organisation_name, '--email', address], env);
    expect([gone.code, gone.stderr]).toEqual([0, '']);
    expect(await server.deps.db.knex('admins').where({ id: legacy.id }).first()).toBeUndefined();

    const noOrg = await runSatInProcess(['admin', 'list', '--org', 'No Such Organisation'], env);
    expect(noOrg.code).toBe(1);
    expect(noOrg.stderr).toContain('no organisation named');
    const usage = await runSatInProcess(['admin', 'invite', '--org', only.organisation_name], env);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toContain('admin invite needs --org and --email');
  }, SPAWNING_TEST_MS);

  it('sat audit list prints the organisation’s events newest first, one token’s with --token, only its own organisation’s', async () => {
    const admin = await makeAdmin(server.deps);
    const other = await makeAdmin(server.deps);
    const session = await signIn(server, admin.email, admin.password);
    const made = await call(server, 'POST', '/tokens', { token: session.token, json: tokenBody({ name: 'audited' }) });
    expect(made.status).toBe(201);
    expect((await call(server, 'POST', `/tokens/${made.body.id}/revoke`, { token: session.token })).status).toBe(200);
    await makeToken(server.deps, other, { name: 'elsewhere' });

    const all = json(await runSatInProcess(['audit', 'list', '--org', admin.organisation_name, '--json'], env));
    expect(all.items.map((e: Record<string, any>) => e.action)).toEqual(['token.revoked', 'token.generated', 'admin.signed_in']);
    expect(all.items[0]).toEqual(expect.objectContaining({ actor_email: admin.email, token_id: made.body.id, client_id: made.body.client_id }));
    expect(all.more).toBe(false);
    expect(JSON.stringify(all)).not.toContain('elsewhere');

    const one = await runSatInProcess(['audit', 'list', '--org', admin.organisation_name, '--token', made.body.id, '--limit', '1'], env);
    expect(one.code).toBe(0);
    expect(one.stdout).toMatch(new RegExp(`^\\S+Z  token\\.revoked +  ${admin.email.replace(/[.]/g, '\\.')}  token "audited" ${made.body.client_id}  from \\S+\nMore events are older: raise --limit to see them\\.\n$`));
    expect(one.stdout).not.toContain(made.body.client_secret);

    // Another organisation's token has no events here; bad arguments are usage errors or refusals.
    const foreign = (await server.deps.db.knex('tokens').where({ name: 'elsewhere' }).first()) as { id: string };
    expect(json(await runSatInProcess(['audit', 'list', '--org', admin.organisation_name, '--token', foreign.id, '--json'], env)).items).toEqual([]);
    const badLimit = await runSatInProcess(['audit', 'list', '--org', admin.organisation_name, '--limit', 'lots'], env);
    expect([badLimit.code, badLimit.stderr]).toEqual([2, expect.stringContaining('--limit takes a whole number')]);
    const badToken = await runSatInProcess(['audit', 'list', '--org', admin.organisation_name, '--token', 'nope'], env);
    expect([badToken.code, badToken.stderr]).toEqual([1, expect.stringContaining('must be a token id')]);
  }, SPAWNING_TEST_MS);
});

// The same warning where a command runs on the embedded database itself, no server holding it (diff review: it was
// given on PostgreSQL only, the one kind it was first seen on).
describeEmbedded('sat with no server on embedded and no ISSUER', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('embedded');
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('warns that the mail of an invitation will link to localhost; a command without mail does not', async () => {
    const added = await runSatInProcess(['admin', 'add', '--org', 'Serverless', '--email', 'first@serverless.example', '--password-stdin'], db.env, 'a-long-password-1\n');
    expect([added.code, added.stderr.includes('ISSUER')]).toEqual([0, false]);
    const invited = await runSatInProcess(['admin', 'invite', '--org', 'Serverless', '--email', 'second@serverless.example'], db.env);
    expect(invited.code).toBe(0);
    expect(invited.stderr).toContain('warning: ISSUER is not set: the mail this command queues will link to http://localhost:3000');
  });
});

// As on the embedded database, a `sat` command that reads or changes something does not create the server's tables in
// a database that has none (a wrong DATABASE_URL): it says so and exits 1; a first install's command still creates
// them (docs/operations.md).
describePostgres('sat on an empty PostgreSQL database', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('postgres', { empty: true });
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('refuses a read or a change, creating nothing; a first install command creates the tables', async () => {
    for (const args of [['token', 'list', '--org', 'Acme'], ['admin', 'list', '--org', 'Acme'], ['keys', 'list']]) {
      const res = await runSatInProcess(args, db.env);
      expect({ args, code: res.code, stderr: res.stderr }).toEqual({ args, code: 1, stderr: expect.stringMatching(/none of the server's tables.*DATABASE_URL/) });
    }
    // A PostgreSQL that cannot be reached (nothing listens on the port, a database that does not exist): the
    // database is named, not the embedded server's local socket, and no server log line ("answering 503") shows.
    const unreachable = { ...db.env, DATABASE_URL: 'postgres://postgres@127.0.0.1:1/sat_nowhere' };
    const elsewhere = new URL(db.url!);
    elsewhere.pathname = '/sat_no_such_database';
    const missing = { ...db.env, DATABASE_URL: elsewhere.toString() };
    for (const [env, cause] of [
      [unreachable, /ECONNREFUSED/],
      [missing, /database "sat_no_such_database" does not exist/],
    ] as const) {
      for (const args of [['token', 'list', '--org', 'Acme'], ['admin', 'add', '--org', 'Acme', '--email', 'x@example.com'], ['keys', 'list']]) {
        const res = await runSatInProcess(args, env);
        expect({ args, code: res.code }).toEqual({ args, code: 1 });
        expect(res.stderr).toMatch(/^sat: cannot use the database \(DATABASE_URL\): /);
        expect(res.stderr).toMatch(cause);
        expect(res.stderr).not.toMatch(/local socket|answering 503|"level"/);
      }
      // `sat serve` says the same (it said only "connect ECONNREFUSED 127.0.0.1:1"), and exits 1.
      const served = await runSat(['serve'], { ...env, PORT: '0', HOST: '127.0.0.1' });
      expect(served.code).toBe(1);
      expect(served.stderr).toMatch(/^sat: cannot use the database \(DATABASE_URL\): /m);
      expect(served.stderr).toMatch(cause);
    }
    const probe = await runSatInProcess(['migrate', '--json'], { ...db.env });
    expect(probe.code).toBe(0); // `sat migrate` creates them
    expect((await runSatInProcess(['admin', 'list', '--org', 'Acme'], db.env)).stderr).not.toMatch(/none of the server's tables/);
  });
});
