// SPEC Part 2 "Credential lifecycle" → "Secret rotation with overlap": rotate, retire, both live secrets at the token
// endpoint (fast path and oidc-provider's path), introspection and revocation, the grace period on the injected
// clock, per-secret last use, mails, audit, a leak report of the previous secret, and `sat token rotate`.
import { addAdmin } from '../../src/accounts/index.js';
import { call, signIn, type SignedIn } from '../support/admin-api.js';
import { runSat, runSatInProcess } from '../support/cli.js';
import { TestClock } from '../support/clock.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic, makeAdmin, uniq } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const HOUR = 3_600_000;

describe.each(testDatabases())('secret rotation with overlap on %s', (kind) => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  const clock = new TestClock();

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, TRUST_PROXY: 'true', MAX_ACTIVE_TOKENS: '100' }, { clock, jobs: 'manual' });
  });
  afterAll(async () => {
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  type Admin = Awaited<ReturnType<typeof makeAdmin>>;
  const session = (a: Admin) => signIn(server, a.email, a.password);
  const api = (s: SignedIn, method: string, path: string, json?: unknown) =>
    call(server, method, path, { token: s.token, headers: { 'x-csrf-token': s.csrf }, ...(json !== undefined ? { json } : {}) });

  async function generate(s: SignedIn, days = 30) {
    const expires_at = new Date(clock.now().getTime() + days * 86_400_000).toISOString();
    const r = await api(s, 'POST', '/tokens', { name: uniq('Rot'), expires_at, services: ['jobs'] });
    expect(r.status).toBe(201);
    return r.body as { id: string; client_id: string; client_secret: string; name: string };
  }

  /** POST /token; `provider` adds an unknown parameter, which is not the fast path's plain case: oidc-provider answers. */
  const exchange = (clientId: string, secret: string, provider = false) =>
    fetch(`${server.issuer}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
      body: provider ? 'grant_type=client_credentials&x=1' : 'grant_type=client_credentials',
    });
  const form = (path: string, params: Record<string, string>, clientId: string, secret: string) =>
    fetch(`${server.issuer}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
      body: new URLSearchParams(params).toString(),
    });
  const events = (tokenId: string, action: string) =>
    server.deps.db.knex('audit_events').where({ token_id: tokenId, action }).orderBy('created_at');

  it('rotates: a new secret for the same client ID, both work everywhere during the grace period, then only the new one', async () => {
    const admin = await makeAdmin(server.deps);
    const s = await session(admin);
    const t = await generate(s);
    const before = await api(s, 'GET', `/tokens/${t.id}`);
    expect(before.body.secrets).toHaveLength(1);
    expect(before.body.secrets[0]).toMatchObject({ expires_at: null, last_used_at: null, last4: t.client_secret.slice(-4) });
    const firstSecretId = before.body.secrets[0].id;

    const rotatedAt = clock.now().getTime();
    const r = await api(s, 'POST', `/tokens/${t.id}/rotate`, {});
    expect(r.status).toBe(200);
    expect(r.body.client_id).toBe(t.client_id);
    expect(r.body.client_secret).toMatch(/^sats_/);
    expect(r.body.client_secret).not.toBe(t.client_secret);
    const fresh = r.body.client_secret as string;
    // Newest first; the previous secret stops after the default 24 hours.
    expect(r.body.secrets).toHaveLength(2);
    expect(r.body.secrets[0]).toMatchObject({ expires_at: null, last4: fresh.slice(-4) });
    expect(r.body.secrets[1]).toMatchObject({ id: firstSecretId, last4: t.client_secret.slice(-4) });
    expect(Date.parse(r.body.secrets[1].expires_at) - rotatedAt).toBeGreaterThanOrEqual(24 * HOUR - 1_000);
    expect(Date.parse(r.body.secrets[1].expires_at) - rotatedAt).toBeLessThanOrEqual(24 * HOUR + 1_000);
    // Shown only there: not in GET, nor in the list.
    const got = await api(s, 'GET', `/tokens/${t.id}`);
    expect(got.text).not.toContain(fresh);
    expect(got.body.secrets).toEqual(r.body.secrets);

    // Both secrets: fast path and oidc-provider's path.
    for (const secret of [t.client_secret, fresh]) {
      for (const provider of [false, true]) {
        const res = await exchange(t.client_id, secret, provider);
        expect(res.status).toBe(200);
      }
    }
    // Introspection and revocation accept either secret as the caller's credentials.
    const access = ((await (await exchange(t.client_id, fresh)).json()) as { access_token: string }).access_token;
    const intro = await form('/token/introspection', { token: access }, t.client_id, t.client_secret);
    expect(intro.status).toBe(200);
    expect(((await intro.json()) as { active: boolean }).active).toBe(true);
    const rev = await form('/token/revocation', { token: access }, t.client_id, t.client_secret);
    expect(rev.status).toBe(200);
    const after = await form('/token/introspection', { token: access }, t.client_id, fresh);
    expect(((await after.json()) as { active: boolean }).active).toBe(false);

    // Last use per secret; the token's is the latest of its secrets'.
    clock.set(clock.now()).advance(HOUR);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(200);
    const oldUse = clock.now().getTime();
    clock.advance(HOUR);
    expect((await exchange(t.client_id, fresh)).status).toBe(200);
    const newUse = clock.now().getTime();
    await server.runJob('flush-last-used');
    const used = await api(await session(admin), 'GET', `/tokens/${t.id}`);
    expect(Date.parse(used.body.secrets[0].last_used_at)).toBe(newUse);
    expect(Date.parse(used.body.secrets[1].last_used_at)).toBe(oldUse);
    expect(Date.parse(used.body.last_used_at)).toBe(newUse);

    // Just before the end of the grace period the previous secret works; just after, it does not.
    clock.set(rotatedAt + 24 * HOUR - 5_000);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(200);
    clock.set(rotatedAt + 24 * HOUR + 1_000);
    for (const provider of [false, true]) {
      const res = await exchange(t.client_id, t.client_secret, provider);
      expect(res.status).toBe(401);
      expect(((await res.json()) as { error: string }).error).toBe('invalid_client');
    }
    expect((await form('/token/introspection', { token: 'x' }, t.client_id, t.client_secret)).status).toBe(401);
    expect((await exchange(t.client_id, fresh)).status).toBe(200);
    const s2 = await session(admin);
    const later = await api(s2, 'GET', `/tokens/${t.id}`);
    expect(later.body.secrets.map((x: { last4: string }) => x.last4)).toEqual([fresh.slice(-4)]);

    // The expiry is recorded once by the job, however often it runs.
    expect(await events(t.id, 'token.secret_expired')).toHaveLength(0);
    await server.runJob('secret-expiry');
    await server.runJob('secret-expiry');
    const expired = await events(t.id, 'token.secret_expired');
    expect(expired).toHaveLength(1);
    expect(expired[0]).toMatchObject({ actor_email: 'system', client_id: t.client_id });
    // The events name the secrets by id and last four characters (docs/rotation.md "Audit"), never more.
    expect(expired[0].details).toEqual({ secret_id: firstSecretId, secret_last4: t.client_secret.slice(-4) });
    const rotated = await events(t.id, 'token.secret_rotated');
    expect(rotated).toHaveLength(1);
    expect(rotated[0]).toMatchObject({ actor_email: admin.email, actor_id: admin.id });
    expect(rotated[0].details).toEqual({
      secret_id: r.body.secrets[0].id,
      secret_last4: fresh.slice(-4),
      previous_secret_id: firstSecretId,
      previous_secret_last4: t.client_secret.slice(-4),
      grace_period_hours: 24,
      previous_stops_at: r.body.secrets[1].expires_at,
    });
    const shown = await api(s2, 'GET', `/audit?token_id=${t.id}`);
    expect(JSON.stringify(shown.body)).not.toContain(fresh);
    expect(shown.body.items.find((e: { action: string }) => e.action === 'token.secret_rotated').details).toEqual(rotated[0].details);
    clock.resume();
  });

  it('grace period 0 stops the previous secret at once; validation of grace_period_hours', async () => {
    const admin = await makeAdmin(server.deps);
    const s = await session(admin);
    const t = await generate(s);
    for (const bad of [-1, 721, 1.5, '24', null]) {
      const r = await api(s, 'POST', `/tokens/${t.id}/rotate`, { grace_period_hours: bad });
      expect(r.status).toBe(400);
      expect(r.body.error).toBe('validation_failed');
    }
    expect((await api(s, 'POST', `/tokens/${t.id}/rotate`, { other: 1 })).status).toBe(400);
    const r = await api(s, 'POST', `/tokens/${t.id}/rotate`, { grace_period_hours: 0 });
    expect(r.status).toBe(200);
    expect(r.body.secrets).toHaveLength(1);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(401);
    expect((await exchange(t.client_id, r.body.client_secret)).status).toBe(200);
    // The replaced secret ended at once: recorded token.secret_expired (actor system) now, not by a later sweep,
    // listed after the rotation (newest first).
    const audit = await api(s, 'GET', '/audit?limit=2');
    expect(audit.body.items.map((e: { action: string }) => e.action)).toEqual(['token.secret_rotated', 'token.secret_expired']);
    expect(audit.body.items[1]).toMatchObject({ actor_email: 'system', token_id: t.id, client_id: t.client_id });
    await server.runJob('secret-expiry');
    expect(await events(t.id, 'token.secret_expired')).toHaveLength(1);
    // 720 is the most; with one live secret it can rotate again at once.
    const again = await api(s, 'POST', `/tokens/${t.id}/rotate`, { grace_period_hours: 720 });
    expect(again.status).toBe(200);
    expect(Date.parse(again.body.secrets[1].expires_at) - clock.now().getTime()).toBeGreaterThan(719 * HOUR);
  });

  it('lists no secret once the token has expired, and a grace period past the expiry as ending with the token', async () => {
    const admin = await makeAdmin(server.deps);
    const s = await session(admin);
    const t = await generate(s, 2);
    for (let i = 0; i < 2; i++) expect((await exchange(t.client_id, t.client_secret)).status).toBe(200);
    const r = await api(s, 'POST', `/tokens/${t.id}/rotate`, { grace_period_hours: 720 });
    expect(r.status).toBe(200);
    // The answer is the token resource as GET shows it (it said 0 access tokens in the last hour).
    expect(r.body.tokens_last_hour).toBe(2);
    expect(r.body).toEqual({ ...(await api(s, 'GET', `/tokens/${t.id}`)).body, client_secret: r.body.client_secret });
    // The previous secret cannot outlive its token: it is shown stopping when the token expires, and so say the
    // refusal of another rotation and the mail.
    expect(r.body.secrets[1].expires_at).toBe(r.body.expires_at);
    const again = await api(s, 'POST', `/tokens/${t.id}/rotate`, {});
    expect(again.status).toBe(409);
    expect(again.body.message).toContain(`the previous one stops at ${r.body.expires_at}`);
    await server.runJob('deliver-mail');
    await smtp.waitFor((all) => all.some((m) => m.subject.includes(t.name) && m.subject.includes('new client secret')));
    const rotatedMail = smtp.messages.find((m) => m.subject.includes(t.name) && m.subject.includes('new client secret'));
    const until = `${r.body.expires_at.slice(0, 10)} ${r.body.expires_at.slice(11, 16)} UTC`;
    expect(rotatedMail?.text).toContain(`The previous secret keeps working until ${until}, then stops.`);
    clock.set(Date.parse(r.body.expires_at) + 1_000);
    try {
      const expired = await api(await session(admin), 'GET', `/tokens/${t.id}`); // (the session made 2 days ago has ended)
      expect(expired.body.status).toBe('expired');
      expect(expired.body.secrets).toEqual([]); // SPEC: live secrets only; neither works any more
      expect((await exchange(t.client_id, r.body.client_secret)).status).toBe(401);
      expect((await exchange(t.client_id, t.client_secret)).status).toBe(401);
    } finally {
      clock.resume();
      clock.advance(-(clock.now().getTime() - Date.now()));
    }
  });

  it('at most two live secrets; retire stops one at once; the last live secret cannot be retired', async () => {
    const admin = await makeAdmin(server.deps);
    const s = await session(admin);
    const t = await generate(s);
    const r = await api(s, 'POST', `/tokens/${t.id}/rotate`, { grace_period_hours: 48 });
    const fresh = r.body.client_secret as string;
    const [newest, previous] = r.body.secrets as Array<{ id: string }>;
    const busy = await api(s, 'POST', `/tokens/${t.id}/rotate`, {});
    expect(busy.status).toBe(409);
    expect(busy.body.error).toBe('rotation_in_progress');
    expect((await exchange(t.client_id, fresh)).status).toBe(200); // the refused rotation changed nothing

    expect((await api(s, 'POST', `/tokens/${t.id}/secrets/${crypto.randomUUID()}/retire`)).status).toBe(404);
    expect((await api(s, 'POST', `/tokens/${t.id}/secrets/not-a-uuid/retire`)).status).toBe(404);
    // A UUID in capitals names the same secret, as it names the same token.
    const retired = await api(s, 'POST', `/tokens/${t.id}/secrets/${previous!.id.toUpperCase()}/retire`);
    expect(retired.status).toBe(200);
    expect(retired.body.id).toBe(t.id);
    expect(retired.body.secrets.map((x: { id: string }) => x.id)).toEqual([newest!.id]);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(401);
    expect((await exchange(t.client_id, fresh)).status).toBe(200);

    const last = await api(s, 'POST', `/tokens/${t.id}/secrets/${newest!.id}/retire`);
    expect(last.status).toBe(409);
    expect(last.body.error).toBe('last_secret');
    expect((await exchange(t.client_id, fresh)).status).toBe(200);
    const retiredEvents = await events(t.id, 'token.secret_retired');
    expect(retiredEvents.map((e) => e.details)).toEqual([{ secret_id: previous!.id, secret_last4: t.client_secret.slice(-4), rolled_back: false }]);

    // Retiring the newest secret during a grace period: the previous one becomes the only secret, for good.
    const r2 = await api(s, 'POST', `/tokens/${t.id}/rotate`, {});
    const back = await api(s, 'POST', `/tokens/${t.id}/secrets/${r2.body.secrets[0].id}/retire`);
    expect(back.status).toBe(200);
    expect((await events(t.id, 'token.secret_retired')).map((e) => e.details)[1]).toEqual({
      secret_id: r2.body.secrets[0].id,
      secret_last4: (r2.body.client_secret as string).slice(-4),
      rolled_back: true,
    });
    expect(back.body.secrets).toEqual([expect.objectContaining({ id: newest!.id, expires_at: null, last4: fresh.slice(-4) })]);
    expect((await exchange(t.client_id, r2.body.client_secret)).status).toBe(401);
    expect((await exchange(t.client_id, fresh)).status).toBe(200);

    // Another organisation's administrator sees no such token.
    const stranger = await session(await makeAdmin(server.deps));
    expect((await api(stranger, 'POST', `/tokens/${t.id}/rotate`, {})).status).toBe(404);
    expect((await api(stranger, 'POST', `/tokens/${t.id}/secrets/${newest!.id}/retire`)).status).toBe(404);
  });

  it('mails the creator and the rotating administrator: name, client ID, when the previous secret stops; never a secret', async () => {
    const creator = await makeAdmin(server.deps);
    const password = 'another-long-password';
    const other = await addAdmin(server.deps.db.knex, { org: creator.organisation_name, email: `${uniq('rotator')}@example.com`, password });
    const t = await generate(await session(creator));
    const rotator = await signIn(server, other.admin.email, password);
    const r = await api(rotator, 'POST', `/tokens/${t.id}/rotate`, { grace_period_hours: 6 });
    expect(r.status).toBe(200);
    const stops = r.body.secrets[1].expires_at as string;
    await server.runJob('deliver-mail');
    const about = (to: string) => smtp.to(to).filter((m) => m.subject.includes('new client secret'));
    await smtp.waitFor(() => about(creator.email).length === 1 && about(other.admin.email).length === 1);
    for (const to of [creator.email, other.admin.email]) {
      const [m] = about(to);
      expect(m!.subject).toContain(t.name);
      expect(m!.text).toContain(t.client_id);
      expect(m!.text).toContain(other.admin.email);
      expect(m!.text).toContain(stops.slice(0, 16).replace('T', ' '));
      expect(m!.raw).not.toContain(r.body.client_secret);
      expect(m!.raw).not.toContain(t.client_secret);
      expect(m!.raw).not.toContain(r.body.client_secret.slice(5, 30));
    }
  });

  it('a token made with sat and rotated with sat: the mail goes to every administrator of the organisation', async () => {
    const first = await makeAdmin(server.deps);
    const second = await addAdmin(server.deps.db.knex, { org: first.organisation_name, email: `${uniq('second')}@example.com`, password: 'another-long-password' });
    const expires = new Date(clock.now().getTime() + 30 * 86_400_000).toISOString().slice(0, 10);
    const made = await runSatInProcess(['token', 'create', '--org', first.organisation_name, '--name', uniq('cli-made'), '--expires', expires, '--services', 'jobs', '--json'], db.env);
    expect(made.code).toBe(0);
    const t = JSON.parse(made.stdout) as { id: string; name: string; client_id: string };
    const out = await runSatInProcess(['token', 'rotate', '--org', first.organisation_name, t.id, '--grace-hours', '2'], db.env);
    expect(out.code).toBe(0);
    await server.runJob('deliver-mail');
    const about = (to: string) => smtp.to(to).filter((m) => m.subject.includes('new client secret') && m.subject.includes(t.name));
    await smtp.waitFor(() => about(first.email).length === 1 && about(second.admin.email).length === 1);
    expect(about(first.email)[0]!.text).toContain('the command-line tool (sat)');
    expect(about(first.email)[0]!.text).toContain(t.client_id);
  });

  it('a leak report of the previous secret during the grace period revokes the whole token', async () => {
    const admin = await makeAdmin(server.deps);
    const s = await session(admin);
    const t = await generate(s);
    const r = await api(s, 'POST', `/tokens/${t.id}/rotate`, {});
    const res = await fetch(`${server.issuer}/credentials/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-forwarded-for': '192.0.2.77' },
      body: JSON.stringify({ credentials: [t.client_secret] }),
    });
    expect(res.status).toBeLessThan(300);
    expect((await exchange(t.client_id, r.body.client_secret)).status).toBe(401);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(401);
    expect((await api(s, 'GET', `/tokens/${t.id}`)).status).toBe(404);
    expect(await events(t.id, 'token.leaked')).toHaveLength(1);
  });

  it('`sat token rotate` prints the new secret, which works at once; `sat token retire` stops the previous one', async () => {
    const admin = await makeAdmin(server.deps);
    const t = await generate(await session(admin));
    // The rotation runs as a real `sat` process; the commands after it in this process (runSatInProcess).
    const out = await runSat(['token', 'rotate', '--org', admin.organisation_name, t.id, '--grace-hours', '72'], db.env); // the server's clock runs a day ahead of this process's (earlier test)
    expect(out.stderr).not.toMatch(/sat: /);
    expect(out.code).toBe(0);
    const secret = /client secret: (sats_\S+)/.exec(out.stdout)?.[1];
    expect(secret).toBeDefined();
    expect(out.stdout).toContain(t.client_id);
    expect((await exchange(t.client_id, secret!)).status).toBe(200);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(200);
    const bad = await runSatInProcess(['token', 'rotate', '--org', admin.organisation_name, t.id, '--grace-hours', 'x'], db.env);
    expect(bad.code).toBe(2);
    const busy = await runSatInProcess(['token', 'rotate', '--org', admin.organisation_name, t.id], db.env);
    expect(busy.code).toBe(1);
    expect(busy.stderr).toContain('two live secrets');
    const cliEvents = await events(t.id, 'token.secret_rotated');
    expect(cliEvents).toEqual([expect.objectContaining({ actor_email: 'cli', actor_id: null })]);

    // `sat token retire`: the previous secret, named by the ID the rotate output gave, stops at once.
    const previousId = /\(secret ID ([0-9a-f-]{36})\) works until/.exec(out.stdout)?.[1];
    expect(previousId).toBeDefined();
    expect(out.stdout).toContain(`sat token retire --org "${admin.organisation_name}" ${t.id} ${previousId}`);
    expect((await runSatInProcess(['token', 'retire', '--org', admin.organisation_name, t.id], db.env)).code).toBe(2);
    const retired = await runSatInProcess(['token', 'retire', '--org', admin.organisation_name, t.id, previousId!], db.env);
    expect([retired.code, retired.stderr.replace(/^oidc-provider WARNING.*\n/gm, '')]).toEqual([0, '']);
    expect(retired.stdout).toContain(`live secret …${secret!.slice(-4)}`);
    expect(retired.stdout).not.toContain(secret!);
    expect((await exchange(t.client_id, t.client_secret)).status).toBe(401);
    expect((await exchange(t.client_id, secret!)).status).toBe(200);
    expect(await events(t.id, 'token.secret_retired')).toEqual([expect.objectContaining({ actor_email: 'cli', actor_id: null })]);
    const again = await runSatInProcess(['token', 'retire', '--org', admin.organisation_name, t.id, previousId!], db.env);
    expect(again.code).toBe(1);
  }, 60_000);
});
