// Findings of a black-box pass over the console, each as an administrator meets it: the sign-in form's requests, the
// one-time secret when the administrator moves to another screen and comes back, a dialog left open on Back, a
// Retire the API refuses because the token changed in another window, generating with network and rate limits, a
// policy change in the audit log, a screen whose catalogue could not be loaded, passwords typed before a failed
// request, the last administrator's removal refused, and a session that ends (signed out elsewhere, expired) while
// the page is left idle. Debian's Chromium through playwright-core, against a real server on each database of the
// run.
import type { Browser, Page } from 'playwright-core';
import { call, signIn as apiSignIn, tokenBody } from '../support/admin-api.js';
import { closeAll, newWatchedContext, openConsole, signIn, until, type Watch } from '../support/browser.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };

describe.each(testDatabases())('console black-box findings on %s (Chromium)', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let smtp: TestSmtp;
  let browser: Browser;
  let page: Page;
  let w: Watch;
  let bearer: string;

  const api = (method: string, path: string, json?: unknown) => call(server, method, path, { token: bearer, json });
  const html = () => page.content();

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, MAIL_POLL_INTERVAL_MS: '100' });
    bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
    ({ browser, page, watch: w } = await openConsole());
    await signIn(page, server, ADMIN);
  });

  afterAll(async () => {
    await closeAll(browser, server, db);
    await smtp?.close();
  });

  /** Generates a token through the form on `p`; returns the secret on show. */
  const generateOn = async (p: Page, name: string): Promise<string> => {
    await p.getByRole('button', { name: '+ Generate a Token' }).click();
    await p.getByLabel('Token Name').fill(name);
    await p.locator('#generate-panel').getByLabel(/Job API/).check();
    await p.getByRole('button', { name: 'Generate', exact: true }).click();
    await p.locator('#secret-panel').waitFor({ state: 'visible' });
    return p.locator('#secret-client-secret').innerText();
  };

  it('shows the sign-in form with no failed request and no console error, at first and after signing out', async () => {
    const context = await newWatchedContext(browser, w);
    const fresh = await context.newPage();
    const noise: string[] = [];
    fresh.on('response', (res) => res.status() >= 400 && noise.push(`${res.status()} ${res.url()}`));
    fresh.on('requestfailed', (req) => noise.push(`failed ${req.url()}`));
    fresh.on('console', (msg) => msg.type() === 'error' && noise.push(`console: ${msg.text()}`));
    await fresh.goto(`${server.url}/admin`);
    await fresh.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await fresh.locator('#signin-email').fill(ADMIN.email);
    await fresh.locator('#signin-password').fill(ADMIN.password);
    await fresh.getByRole('button', { name: 'Sign in', exact: true }).click();
    // The list's request must be answered before the reload: a reload aborts a request in flight ("failed").
    const listed = () => fresh.getByText(/\d+ of 25 tokens used/).waitFor();
    await fresh.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await listed();
    await fresh.reload(); // signed in: the page asks /me and opens the console
    await fresh.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await listed();
    await fresh.getByRole('button', { name: 'Account menu' }).click();
    await fresh.getByRole('menuitem', { name: 'Sign out' }).click();
    await fresh.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await fresh.reload();
    await fresh.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    await fresh.locator('#signin-email').waitFor();
    expect(noise).toEqual([]);
    await context.close();
    expect(w.problems).toEqual([]);
  });

  it('drops the one-time secret when the administrator leaves its screen: Back does not bring it again', async () => {
    const generate = (name: string) => generateOn(page, name);

    // To the audit log by the top bar, then the browser's Back.
    const first = await generate('Leave_By_Nav');
    expect(first).toMatch(/^sats_/);
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    expect(await html()).not.toContain(first);
    await page.goBack();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await page.locator('#token-rows tr', { hasText: 'Leave_By_Nav' }).waitFor();
    expect(await page.locator('#secret-panel').isHidden()).toBe(true);
    expect(await html()).not.toContain(first);

    // To a token's view (a click on its row), then the breadcrumb back to the list.
    const second = await generate('Leave_By_Row');
    await page.locator('#token-rows tr', { hasText: 'Leave_By_Row' }).locator('td.col-services').click();
    await page.getByRole('heading', { level: 1, name: 'Leave_By_Row' }).waitFor();
    expect(await html()).not.toContain(second);
    await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'System Access Token' }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await page.locator('#token-rows tr', { hasText: 'Leave_By_Row' }).waitFor();
    expect(await page.locator('#secret-panel').isHidden()).toBe(true);
    expect(await html()).not.toContain(second);
    expect(w.problems).toEqual([]);
  });

  it('generates a token named with 30 emoji (10 of them ZWJ sequences) as typed: the field cuts nothing short', async () => {
    // 30 characters as a reader (and the API) counts them (10 × woman ZWJ laptop, 20 × 😀), 50 code points, 80 UTF-16
    // units: an input's maxlength="64" counted the units and silently kept 37.
    const name = `${'👩\u200d💻'.repeat(10)}${'😀'.repeat(20)}`;
    await generateOn(page, name);
    await page.locator('#close-secret').click();
    const listed = (await call(server, 'GET', '/tokens?q=😀', { token: bearer })).body.items as Array<{ name: string }>;
    expect(listed.map((t) => t.name)).toEqual([name]);
    // 65 characters are refused at the field by the page, not cut.
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await page.getByLabel('Token Name').fill(`${name}${'x'.repeat(35)}`);
    expect(await page.getByLabel('Token Name').inputValue()).toBe(`${name}${'x'.repeat(35)}`);
    await page.locator('#generate-panel').getByLabel(/Job API/).check();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await until(() => page.locator('#token-name-error').innerText(), (t) => t.includes('at most 64 characters'), 'the length refused at the field');
    await page.locator('#generate-cancel').click();
    expect(w.problems).toEqual([]);
  });

  it("closes a token's dialog when the administrator goes Back to the list while it is open", async () => {
    const made = await api('POST', '/tokens', tokenBody({ name: 'Dialog_Left_Open', services: ['jobs'] }));
    await page.goto(`${server.url}/admin#/token?id=${made.body.id}`);
    await page.getByRole('heading', { level: 1, name: 'Dialog_Left_Open' }).waitFor();
    for (const [button, dialog] of [
      ['Edit', '#edit-dialog'],
      ['Revoke Access', '#revoke-dialog'],
    ] as const) {
      await page.locator('#token-actions').getByRole('button', { name: button, exact: true }).click();
      await page.locator(dialog).waitFor({ state: 'visible' });
      await page.goBack();
      await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
      await page.locator(dialog).waitFor({ state: 'hidden' });
      await page.goForward();
      await page.getByRole('heading', { level: 1, name: 'Dialog_Left_Open' }).waitFor();
    }
    expect((await api('GET', `/tokens/${made.body.id}`)).status).toBe(200);
    expect(w.problems).toEqual([]);
  });

  it('shows a refused Retire as an error, not as a success, and the secrets as they now are', async () => {
    const made = await api('POST', '/tokens', tokenBody({ name: 'Retire_Refused', services: ['jobs'] }));
    expect(made.status).toBe(201);
    const rotated = await api('POST', `/tokens/${made.body.id}/rotate`, { grace_period_hours: 24 });
    expect(rotated.status).toBe(200);
    const [current] = rotated.body.secrets as { id: string }[];

    await page.goto(`${server.url}/admin#/token?id=${made.body.id}`);
    await page.getByRole('heading', { level: 1, name: 'Retire_Refused' }).waitFor();
    const rows = page.locator('#token-secret-rows tr');
    await rows.nth(1).waitFor();

    // Meanwhile, in another window, the current secret is retired: the previous one is now the only live secret.
    expect((await api('POST', `/tokens/${made.body.id}/secrets/${current!.id}/retire`)).status).toBe(200);
    await page.getByRole('button', { name: 'Retire the previous secret of Retire_Refused' }).click();
    await page.locator('#retire-dialog').getByRole('button', { name: 'Retire secret' }).click();
    await page.locator('#retire-dialog').waitFor({ state: 'hidden' }); // refused: the dialog closes, the view says why
    const alert = page.locator('#token-view').getByRole('alert').filter({ hasText: 'only live secret' });
    await alert.waitFor();
    expect(await alert.innerText()).toBe("This is the token's only live secret. Revoke the token instead, or rotate first.");
    expect(await page.locator('#token-flash').isHidden()).toBe(true);
    await rows.nth(1).waitFor({ state: 'detached' }); // read again: one live secret, no Retire
    // Focus moves once the view is drawn again (a moment after the row goes): waited for, up to 5 s.
    await page.waitForFunction(() => (globalThis as any).document.activeElement?.id === 'token-edit', undefined, { timeout: 5_000 });

    // On the list: the previous secret of another rotation stopped elsewhere before the click (404).
    const other = await api('POST', '/tokens', tokenBody({ name: 'Retire_Gone', services: ['jobs'] }));
    const again = await api('POST', `/tokens/${other.body.id}/rotate`, { grace_period_hours: 24 });
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'System Access Token' }).click();
    const row = page.locator('#token-rows tr', { hasText: 'Retire_Gone' });
    await row.locator('.previous-secret').waitFor();
    expect((await api('POST', `/tokens/${other.body.id}/secrets/${again.body.secrets[1].id}/retire`)).status).toBe(200);
    await row.getByRole('button', { name: 'Retire the previous secret of Retire_Gone' }).click();
    await page.locator('#retire-dialog').getByRole('button', { name: 'Retire secret' }).click();
    const gone = page.locator('#tokens-view').getByRole('alert').filter({ hasText: 'had already stopped' });
    await gone.waitFor();
    expect(await page.locator('#flash').isHidden()).toBe(true);
    await row.locator('.previous-secret').waitFor({ state: 'detached' });
    expect(w.problems).toEqual([]);
  });

  it("generates a token with an address allowlist and an hourly limit (SPEC: generate takes both), the API's errors at their fields", async () => {
    const policy = (await api('GET', '/policy')).body;
    expect((await api('PUT', '/policy', { ...policy, default_max_tokens_per_hour: 600 })).status).toBe(200);
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'System Access Token' }).click();
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    const form = page.locator('#generate-form');
    const hourly = form.getByLabel('Access tokens per hour (1 to 1,000,000)');
    await until(() => hourly.inputValue(), (v) => v === '600', "the policy's default hourly limit");
    expect(await form.getByLabel('Limit access tokens per hour').isChecked()).toBe(true);
    await form.getByLabel('Token Name').fill('Fenced_Token');
    await form.getByLabel(/Job API/).check();
    await form.getByLabel('Allowed addresses').fill('203.0.113.0/24\n10.0.0.300');
    await hourly.fill('0');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const ipsError = page.locator('#token-ips-error');
    await ipsError.waitFor();
    expect(await ipsError.innerText()).toMatch(/^“10\.0\.0\.300”: must be an IPv4 or IPv6 address or CIDR range/);
    expect(await form.getByLabel('Token Name').inputValue()).toBe('Fenced_Token'); // what was typed stays
    expect(await form.getByLabel('Allowed addresses').inputValue()).toBe('203.0.113.0/24\n10.0.0.300');

    await form.getByLabel('Allowed addresses').fill('203.0.113.0/24\n2001:db8::/32');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const hourlyError = page.locator('#token-hourly-error');
    await hourlyError.waitFor();
    // In the page's words (docs/console.md), not the API's "must be null or …".
    expect(await hourlyError.innerText()).toBe('Enter a whole number from 1 to 1,000,000.');
    await hourly.fill('120');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await page.locator('#secret-panel').waitFor({ state: 'visible' });
    const clientId = await page.locator('#secret-client-id').innerText();
    await page.locator('#close-secret').click();

    const listed = await api('GET', `/tokens?q=${clientId}`);
    expect(listed.body.items[0]).toMatchObject({ name: 'Fenced_Token', allowed_ips: ['203.0.113.0/24', '2001:db8::/32'], max_tokens_per_hour: 120 });
    // Unticked, the limit is none, whatever the policy's default.
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await form.getByLabel('Token Name').fill('Unlimited_Token');
    await form.getByLabel(/Job API/).check();
    await until(() => hourly.inputValue(), (v) => v === '600', "the policy's default hourly limit");
    await form.getByLabel('Limit access tokens per hour').uncheck();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await page.locator('#secret-panel').waitFor({ state: 'visible' });
    await page.locator('#close-secret').click();
    const unlimited = await api('GET', '/tokens?q=Unlimited_Token');
    expect(unlimited.body.items[0]).toMatchObject({ allowed_ips: [], max_tokens_per_hour: null });
    expect(w.problems).toEqual([]);
  });

  it('shows in the audit log what a policy change changed (the API gives the old and new policy)', async () => {
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit log' }).click();
    const row = page.locator('#audit-rows tr[data-action="policy.updated"]').first();
    await row.waitFor();
    expect(await row.locator('td.col-details').innerText()).toBe('default_max_tokens_per_hour: none → 600');
    expect(w.problems).toEqual([]);
  });

  it("says a policy refusal in the page's words and offers what the policy allows now (it changed after the form opened)", async () => {
    const before = (await api('GET', '/policy')).body;
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'System Access Token' }).click();
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    const form = page.locator('#generate-form');
    await form.getByLabel('Token Name').fill('Policy_Changed');
    await form.getByLabel(/Job API/).check();
    await form.locator('#token-expiry').fill(new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10));
    // Meanwhile, in another window: 30 days at most, and no Job API.
    const others = before.allowed_services.filter((id: string) => id !== 'jobs');
    expect((await api('PUT', '/policy', { ...before, max_lifetime_days: 30, allowed_services: others })).status).toBe(200);
    try {
      await page.getByRole('button', { name: 'Generate', exact: true }).click();
      const expiryError = page.locator('#token-expiry-error');
      await expiryError.waitFor();
      expect(await expiryError.innerText()).toBe("Choose a date at most 30 days ahead (your organisation's policy).");
      expect(await page.locator('#services-error').innerText()).toBe("Not allowed by your organisation's policy: Job API.");
      // The form read the policy again: Job API can no longer be ticked, the latest date is 30 days ahead.
      await until(() => form.getByLabel(/Job API/).isDisabled(), (disabled) => disabled, 'Job API disabled');
      expect(await form.locator('#token-expiry').getAttribute('max')).toBe(new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10));
      // The date stays as typed: the message under it is about that date.
      expect(await form.locator('#token-expiry').inputValue()).toBe(new Date(Date.now() + 60 * 86_400_000).toISOString().slice(0, 10));
    } finally {
      expect((await api('PUT', '/policy', before)).status).toBe(200);
      await page.keyboard.press('Escape');
    }
    expect(w.problems).toEqual([]);
  });

  it('opens the token screen with a message when the catalogue cannot be loaded, instead of staying where it was', async () => {
    expect((await api('POST', '/tokens', tokenBody({ name: 'Catalogue_Down', services: ['jobs'] }))).status).toBe(201);
    await page.goto(`${server.url}/admin#/audit`);
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await page.route('**/admin/api/services', (route) => route.abort());
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'System Access Token' }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    const alert = page.locator('#tokens-view').getByRole('alert').filter({ hasText: 'services could not be loaded' });
    await alert.waitFor();
    expect(await alert.innerText()).toBe('The services could not be loaded. The server could not be reached. Check your connection and try again.');
    await page.locator('#token-rows tr', { hasText: 'Catalogue_Down' }).waitFor(); // the tokens are listed all the same
    await page.unroute('**/admin/api/services');
    expect(w.problems).toEqual([]);
  });

  it('keeps the passwords typed when a request fails for another reason than them (no answer from the server)', async () => {
    const invitee = 'invitee@example.com';
    expect((await api('POST', '/admins', { email: invitee })).status).toBe(201);
    await smtp.waitFor(() => smtp.to(invitee).length > 0);
    const link = /(https?:\/\/\S+\/admin#\/invite\?token=[A-Za-z0-9_%-]+)/.exec(smtp.to(invitee)[0]!.text)?.[1];
    expect(link).toBeDefined();
    const context = await newWatchedContext(browser, w);
    const other = await context.newPage();
    await other.goto(link!);
    await other.getByRole('heading', { level: 1, name: 'Accept your invitation' }).waitFor();

    // The invitation: the server does not answer the first time.
    const password = 'invitee-password-1';
    await other.route('**/admin/api/invitations/accept', (route) => route.abort());
    await other.getByLabel('New password', { exact: true }).fill(password);
    await other.getByLabel('Repeat the new password').fill(password);
    await other.getByRole('button', { name: 'Set password and sign in' }).click();
    await other.locator('#onetime-error', { hasText: 'could not be reached' }).waitFor();
    expect(await other.getByLabel('New password', { exact: true }).inputValue()).toBe(password);
    expect(await other.getByLabel('Repeat the new password').inputValue()).toBe(password);
    await other.unroute('**/admin/api/invitations/accept');
    await other.getByRole('button', { name: 'Set password and sign in' }).click();
    await other.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();

    // Change password on the Profile page: the same.
    await other.goto(`${server.url}/admin#/profile`);
    await other.getByRole('heading', { level: 1, name: 'Profile' }).waitFor();
    await other.route('**/admin/api/me/password', (route) => route.abort());
    const form = other.locator('#password-form');
    await form.getByLabel('Current password').fill(password);
    await form.getByLabel('New password', { exact: true }).fill('invitee-password-2');
    await form.getByLabel('Repeat the new password').fill('invitee-password-2');
    await form.getByRole('button', { name: 'Change password' }).click();
    await other.locator('#password-error', { hasText: 'could not be reached' }).waitFor();
    expect(await form.getByLabel('Current password').inputValue()).toBe(password);
    await other.unroute('**/admin/api/me/password');
    await form.getByRole('button', { name: 'Change password' }).click();
    await other.locator('#profile-flash', { hasText: 'Your password was changed' }).waitFor();
    await context.close();
    expect(w.problems).toEqual([]);
  });

  it('says why the last administrator cannot be removed (409 last_admin) and shows the list as it now is', async () => {
    await page.goto(`${server.url}/admin#/admins`);
    await page.getByRole('heading', { level: 1, name: 'Administrators' }).waitFor();
    const rows = page.locator('#admin-rows tr');
    await rows.nth(1).waitFor();
    const others = (await api('GET', '/admins')).body.items.filter((a: { email: string }) => a.email !== ADMIN.email);
    expect(others.length).toBeGreaterThan(0);
    // Meanwhile, in another window, every other administrator is removed.
    for (const other of others) expect((await api('DELETE', `/admins/${other.id}`)).status).toBe(204);
    await page.getByRole('button', { name: `Remove ${ADMIN.email}` }).click();
    // Removing oneself is said in so many words.
    expect(await page.locator('#remove-admin-title').innerText()).toBe(`Remove your own account (${ADMIN.email})?`);
    expect(await page.locator('#remove-admin-text').innerText()).toMatch(/^You are signed out at once/);
    await page.locator('#remove-admin-dialog').getByRole('button', { name: 'Remove administrator' }).click();
    const alert = page.locator('#remove-admin-dialog').getByRole('alert');
    await alert.waitFor();
    expect(await alert.innerText()).toBe('An organisation keeps at least one administrator: invite another one first.');
    await rows.nth(1).waitFor({ state: 'detached' });
    await page.keyboard.press('Escape');
    expect(await rows.first().innerText()).toContain('The last administrator stays');
    expect(w.problems).toEqual([]);
  });

  // The page's clock is Playwright's (page.clock), the server's the test's: neither test waits for real time to pass.
  it('sends a page left idle to sign-in with a message once its session was ended elsewhere, when its tab is shown again', async () => {
    const context = await newWatchedContext(browser, w);
    const idle = await context.newPage();
    await idle.clock.install();
    await signIn(idle, server, ADMIN);
    await idle.locator('#token-rows tr').first().waitFor();
    // From another window the administrator signs out every other session (here: the API's session does it).
    expect((await api('POST', '/me/sessions/revoke-others')).status).toBe(200);
    await idle.clock.fastForward(60_000);
    // The administrator comes back to the tab (the browser tells the page it is visible again).
    await idle.evaluate(() => (globalThis as any).document.dispatchEvent(new Event('visibilitychange')));
    await idle.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await idle.locator('#signin-error').innerText()).toBe('Your session has ended. Sign in again to continue.');
    expect(await idle.locator('#token-rows tr').count()).toBe(0);
    await context.close();
    expect(w.problems).toEqual([]);
  });

  it('sends a page left idle to sign-in with a message when its session expires, and a secret on show goes with it', async () => {
    const context = await newWatchedContext(browser, w);
    const idle = await context.newPage();
    await idle.clock.install();
    await signIn(idle, server, ADMIN);
    const secret = await generateOn(idle, 'Shown_At_Expiry');
    const me = (await idle.evaluate(async () => (await fetch('/admin/api/me')).json())) as { expires_at: string };
    const ttlMs = Date.parse(me.expires_at) - server.clock.now().getTime();
    expect(ttlMs).toBeGreaterThan(60_000);

    server.clock.advance(ttlMs + 1_000);
    await idle.clock.fastForward(ttlMs + 2_000);
    await idle.getByRole('heading', { level: 1, name: 'Sign in' }).waitFor();
    expect(await idle.locator('#signin-error').innerText()).toBe('Your session has ended. Sign in again to continue.');
    expect(await idle.content()).not.toContain(secret);
    await context.close();
    expect(w.problems).toEqual([]);
  });
});
