// A token's own view and its Edit dialog in Debian's Chromium (playwright-core), against a real server on each
// database of the run: opened from the list, it shows the allowlist, the hourly limit and its use, both secrets of
// a rotation with their last use, and that token's audit events only; Edit changes name, services, addresses and
// limit through PATCH (checked through the API), an invalid CIDR range shows at its field and changes nothing, and
// Retire, Rotate secret (the new secret shown once, in this view) and Revoke Access work from there.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { packageRoot } from '../../src/config/index.js';
import { addAdmin } from '../../src/accounts/index.js';
import { call, signIn as apiSignIn } from '../support/admin-api.js';
import { closeAll, openConsole, signIn, until, type Watch } from '../support/browser.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { basic } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };
const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describe.each(testDatabases())('console: a token’s view and Edit dialog on %s (Chromium)', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let bearer: string;
  let w: Watch;
  let token: { id: string; name: string; client_id: string; client_secret: string };
  let fresh: string;

  const api = (method: string, p: string, body?: unknown) => call(server, method, p, { token: bearer, json: body });
  const exchange = (secret: string) =>
    fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(token.client_id, secret) },
      body: 'grant_type=client_credentials',
    });

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
    const made = await api('POST', '/tokens', {
      name: 'Payroll_Integration',
      services: ['candidates', 'jobs'],
      expires_at: isoDay(Date.now() + 90 * DAY_MS),
      allowed_ips: ['127.0.0.1', '10.0.0.0/8'],
      max_tokens_per_hour: 50,
    });
    expect(made.status).toBe(201);
    token = made.body;
    expect((await api('POST', '/tokens', { name: 'Job_Board_Sync', services: ['jobs'], expires_at: isoDay(Date.now() + 30 * DAY_MS) })).status).toBe(201);
    // One access token with the first secret, a rotation with a day's overlap, one with the new secret.
    expect((await exchange(token.client_secret)).status).toBe(200);
    const rotated = await api('POST', `/tokens/${token.id}/rotate`, { grace_period_hours: 24 });
    expect(rotated.status).toBe(200);
    fresh = rotated.body.client_secret;
    expect((await exchange(fresh)).status).toBe(200);
    await server.runJob('flush-last-used');
    ({ browser, page, watch: w } = await openConsole());
  });

  afterAll(() => closeAll(browser, server, db));

  const dialog = () => page.locator('#edit-dialog');
  const outerToken = () => token;
  const fact = (term: string) => page.locator('.fact', { has: page.locator('dt', { hasText: new RegExp(`^${term}$`) }) }).locator('dd');

  it('opens from the list and shows the allowlist, the hourly limit, both secrets with their last use, and only this token’s events', async () => {
    await signIn(page, server, ADMIN);
    await page.locator('#token-rows tr').nth(1).waitFor();
    // The list's line for the previous secret says when it stops: a local date and time.
    const stops = page.locator('#token-rows tr', { hasText: 'Payroll_Integration' }).locator('.previous-secret time');
    const stopsAt = (await stops.getAttribute('datetime'))!;
    expect(await stops.innerText()).toBe(
      await page.evaluate((i) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(i)), stopsAt),
    );

    // A click on the row (here its Client ID cell) opens the view, as the name's link does.
    await page.locator('#token-rows tr', { hasText: 'Job_Board_Sync' }).locator('td.col-client').click();
    await page.getByRole('heading', { level: 1, name: 'Job_Board_Sync' }).waitFor();
    await page.getByRole('link', { name: 'System Access Token' }).last().click();
    await page.getByRole('link', { name: 'Payroll_Integration' }).click();
    await page.getByRole('heading', { level: 1, name: 'Payroll_Integration' }).waitFor();
    expect(new URL(page.url()).hash).toBe(`#/token?id=${token.id}`);

    expect(await fact('Client ID').innerText()).toBe(token.client_id);
    expect(await fact('Organisation').innerText()).not.toBe('');
    expect(await fact('Scopes').innerText()).toBe('candidates jobs');
    expect(await fact('Services').locator('.tag').allInnerTexts()).toEqual(['Candidate API', 'Job API']);
    expect(await fact('Client authentication').innerText()).toContain('client_secret_basic');
    expect(await fact('DPoP').innerText()).toBe('Not required');
    expect(await page.locator('#token-allowed-ips li').allInnerTexts()).toEqual(['127.0.0.1', '10.0.0.0/8']);
    expect(await page.locator('#token-hourly-limit').innerText()).toBe('50');
    expect(await page.locator('#token-last-hour').innerText()).toBe('2 of 50 access tokens');

    const secrets = page.locator('#token-secret-rows tr');
    expect(await secrets.count()).toBe(2);
    expect(await secrets.nth(0).locator('td.col-secret').innerText()).toMatch(new RegExp(`••••${fresh.slice(-4)}\\s+Current`));
    expect(await secrets.nth(1).locator('td.col-secret').innerText()).toMatch(new RegExp(`••••${token.client_secret.slice(-4)}\\s+Previous`));
    for (const i of [0, 1]) expect(await secrets.nth(i).locator('td.col-used').innerText()).not.toBe('Never');
    const until = await secrets.nth(1).locator('td.col-until time').getAttribute('datetime');
    expect(Math.abs(Date.parse(until!) - Date.now() - DAY_MS)).toBeLessThan(120_000);
    // When it stops, as a local date and time (not a day, nor only "tomorrow").
    const localDateTime = (iso: string) => page.evaluate((i) => new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' }).format(new Date(i)), iso);
    expect(await secrets.nth(1).locator('td.col-until time').innerText()).toBe(await localDateTime(until!));
    expect(await secrets.nth(1).getByRole('button', { name: 'Retire the previous secret of Payroll_Integration' }).isVisible()).toBe(true);

    const events = page.locator('#token-event-rows tr');
    await events.nth(1).waitFor();
    expect(await events.evaluateAll((rows) => rows.map((r) => r.getAttribute('data-action')))).toEqual(['token.secret_rotated', 'token.generated']);
    for (const action of ['Rotate secret', 'Revoke Access', 'Credentials', 'Edit']) {
      expect(await page.locator('#token-actions').getByRole('button', { name: action, exact: true }).isVisible()).toBe(true);
    }

    // UPDATE_SCREENSHOT=1 refreshes the docs' pictures (from the embedded run); other runs keep them in the temp dir.
    await page.mouse.move(0, 0);
    await page.screenshot({ path: path.join(shotDir(kind), 'console-token.png'), fullPage: true });
  });

  it('edits name, services, addresses and hourly limit through the dialog; the view and the API show the change', async () => {
    await page.locator('#token-actions').getByRole('button', { name: 'Edit', exact: true }).click();
    await dialog().waitFor({ state: 'visible' });
    expect(await dialog().getByLabel('Name', { exact: true }).inputValue()).toBe('Payroll_Integration');
    expect(await dialog().getByLabel('Allowed addresses').inputValue()).toBe('127.0.0.1\n10.0.0.0/8');
    expect(await dialog().getByLabel('Access tokens per hour (1 to 1,000,000)').inputValue()).toBe('50');
    await dialog().getByLabel('Name', { exact: true }).fill('Payroll_Integration_EU');
    await dialog().locator('#edit-service-list label', { hasText: 'Employee API' }).click();
    await dialog().locator('#edit-service-list label', { hasText: 'Job API' }).click();
    await dialog().getByLabel('Allowed addresses').fill('127.0.0.1\n10.0.0.0/8\n2001:db8::/32');
    await dialog().getByLabel('Access tokens per hour (1 to 1,000,000)').fill('120');
    await page.screenshot({ path: path.join(shotDir(kind), 'console-token-edit.png') });
    // Enter in a field saves, as in any form (the browser's own choice would be the first button: Cancel).
    await dialog().getByLabel('Access tokens per hour (1 to 1,000,000)').press('Enter');

    await page.locator('#token-flash', { hasText: 'Changes to “Payroll_Integration_EU” saved.' }).waitFor();
    // The name is isolated (<bdi>): a right-to-left name cannot reorder the sentence around it.
    expect(await page.locator('#token-flash bdi').allTextContents()).toEqual(['Payroll_Integration_EU']);
    expect(await dialog().isVisible()).toBe(false);
    const after = (await api('GET', `/tokens/${token.id}`)).body;
    expect(after).toMatchObject({
      name: 'Payroll_Integration_EU',
      services: ['candidates', 'employees'],
      allowed_ips: ['127.0.0.1', '10.0.0.0/8', '2001:db8::/32'],
      max_tokens_per_hour: 120,
    });
    await page.getByRole('heading', { level: 1, name: 'Payroll_Integration_EU' }).waitFor();
    expect(await page.locator('#token-allowed-ips li').allInnerTexts()).toEqual(['127.0.0.1', '10.0.0.0/8', '2001:db8::/32']);
    expect(await page.locator('#token-hourly-limit').innerText()).toBe('120');
    const changed = page.locator('#token-event-rows tr[data-action="token.updated"]');
    await changed.waitFor();
    expect(await changed.locator('.change').allInnerTexts()).toEqual(
      expect.arrayContaining(['name: Payroll_Integration → Payroll_Integration_EU', 'max_tokens_per_hour: 50 → 120']),
    );
  });

  it('shows an invalid CIDR range at its field and changes nothing', async () => {
    const before = (await api('GET', `/tokens/${token.id}`)).body;
    const opener = page.locator('#token-actions').getByRole('button', { name: 'Edit', exact: true });
    await opener.click();
    await dialog().waitFor({ state: 'visible' });
    await dialog().getByLabel('Name', { exact: true }).fill('Should_Not_Land');
    await dialog().getByLabel('Allowed addresses').fill('127.0.0.1\n10.0.0.300/8\nfoo');
    await dialog().getByRole('button', { name: 'Save changes' }).click();

    const error = page.locator('#edit-ips-error');
    await error.waitFor();
    expect(await error.innerText()).toMatch(/10\.0\.0\.300\/8.*must be an IPv4 or IPv6 address or CIDR range/);
    expect(await error.innerText()).toMatch(/“foo”: must be an IPv4 or IPv6 address or CIDR range/); // every bad entry named
    expect(await dialog().getByLabel('Allowed addresses').getAttribute('aria-invalid')).toBe('true');
    expect(await page.locator('#edit-name-error').isHidden()).toBe(true);
    expect(await dialog().isVisible()).toBe(true);
    expect((await api('GET', `/tokens/${token.id}`)).body).toEqual(before);

    await dialog().getByRole('button', { name: 'Cancel' }).click();
    await dialog().waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('token-edit');
    expect(await page.locator('#token-title').innerText()).toBe('Payroll_Integration_EU');
    expect((await api('GET', `/audit?token_id=${token.id}`)).body.items.filter((e: { action: string }) => e.action === 'token.updated')).toHaveLength(1);
  });

  it("offers in Edit no service the organisation's policy leaves out, and one the token has only to remove", async () => {
    const policy = (await api('GET', '/policy')).body;
    // Candidates (the token has it) and contacts (it has not) leave the policy.
    const allowed = ['employees', 'jobs', 'clients', 'master-lists'];
    expect((await api('PUT', '/policy', { ...policy, allowed_services: allowed })).status).toBe(200);
    try {
      await page.locator('#token-actions').getByRole('button', { name: 'Edit', exact: true }).click();
      await dialog().waitFor({ state: 'visible' });
      const item = (name: string) => dialog().locator('#edit-service-list li', { hasText: name });
      expect(await item('Contact API').locator('input').isDisabled()).toBe(true);
      expect(await item('Contact API').innerText()).toContain("Not allowed by your organisation's policy");
      expect(await item('Candidate API').locator('input').isDisabled()).toBe(false);
      expect(await item('Candidate API').locator('input').isChecked()).toBe(true);
      expect(await item('Candidate API').innerText()).toContain('it can only be removed');
      expect(await item('Job API').locator('input').isDisabled()).toBe(false);
      expect(await item('Job API').innerText()).not.toContain('policy');
      await dialog().getByRole('button', { name: 'Cancel' }).click();
      await dialog().waitFor({ state: 'hidden' });
    } finally {
      expect((await api('PUT', '/policy', policy)).status).toBe(200);
    }
    expect(w.problems).toEqual([]);
  });

  it('saves with Enter on a checkbox or switch in Edit and Credentials (it closed the dialog and dropped the edits)', async () => {
    // A token of its own: the tests after this one count this view's events.
    const mine = (await api('POST', '/tokens', { name: 'Enter_Saves', services: ['jobs'], expires_at: isoDay(Date.now() + 30 * DAY_MS) })).body as { id: string };
    const token = mine;
    await page.goto(`${server.url}/admin#/token?id=${token.id}`);
    await page.getByRole('heading', { level: 1, name: 'Enter_Saves' }).waitFor();
    const before = (await api('GET', `/tokens/${token.id}`)).body;
    await page.locator('#token-actions').getByRole('button', { name: 'Edit', exact: true }).click();
    await dialog().waitFor({ state: 'visible' });
    await dialog().getByLabel('Name', { exact: true }).fill(`${before.name}_Enter`);
    const box = dialog().locator('#edit-service-list input').first();
    await box.focus();
    await page.keyboard.press('Enter');
    await page.locator('#token-flash', { hasText: `Changes to “${before.name}_Enter” saved.` }).waitFor();
    expect((await api('GET', `/tokens/${token.id}`)).body.name).toBe(`${before.name}_Enter`);
    // Credentials: Space turns Require DPoP on, Enter saves it.
    await page.locator('#token-actions').getByRole('button', { name: 'Credentials', exact: true }).click();
    await page.locator('#credentials-dialog').waitFor({ state: 'visible' });
    await page.locator('#credentials-dpop').focus();
    await page.keyboard.press('Space');
    await page.keyboard.press('Enter');
    await until(async () => (await api('GET', `/tokens/${token.id}`)).body.require_dpop as boolean, (on) => on === true, 'require_dpop saved');
    expect((await api('POST', `/tokens/${token.id}/revoke`)).status).toBe(200);
  });

  it('says an hourly limit of 0 in plain words, names the screen in the window title and isolates a right-to-left name in the events', async () => {
    const token = (await api('POST', '/tokens', { name: 'Plain_Words', services: ['jobs'], expires_at: isoDay(Date.now() + 30 * DAY_MS) })).body as { id: string };
    await page.goto(`${server.url}/admin#/token?id=${token.id}`);
    await page.getByRole('heading', { level: 1, name: 'Plain_Words' }).waitFor();
    await until(() => page.title(), (t) => t.endsWith(' · System Access Token') && !t.startsWith('System Access Token'), 'the token in the title');
    // A closed dialog is not in the document: its labels name no field (Generate's "Allowed addresses" is one field).
    expect(await page.getByLabel('Allowed addresses').count()).toBe(0);
    await page.locator('#token-actions').getByRole('button', { name: 'Edit', exact: true }).click();
    await dialog().waitFor({ state: 'visible' });
    expect(await page.getByLabel('Allowed addresses').count()).toBe(1);
    await dialog().getByLabel('Limit access tokens per hour').check();
    await dialog().getByLabel('Access tokens per hour (1 to 1,000,000)').fill('0');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    const error = page.locator('#edit-hourly-error');
    await error.waitFor();
    expect(await error.innerText()).toBe('Enter a whole number from 1 to 1,000,000.');
    await dialog().getByRole('button', { name: 'Cancel' }).click();
    await dialog().waitFor({ state: 'hidden' });
    // A rename between a right-to-left and a left-to-right name: each value is isolated, so the line reads in order.
    const before = (await api('GET', `/tokens/${token.id}`)).body.name as string;
    expect((await api('PATCH', `/tokens/${token.id}`, { name: 'تكامل الرواتب' })).status).toBe(200);
    expect((await api('PATCH', `/tokens/${token.id}`, { name: before })).status).toBe(200);
    await page.reload();
    const change = page.locator('#token-event-rows .change', { hasText: `تكامل الرواتب → ${before}` });
    await change.waitFor();
    expect(await change.locator('bdi').allInnerTexts()).toEqual(['تكامل الرواتب', before]);
    // Following a top-bar link moves the focus into the new screen, and the title names it.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit log' }).focus();
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await until(() => page.title(), (t) => t === 'Audit log · System Access Token', 'the audit log in the title');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('main');
    expect(w.problems).toEqual([]);
    expect((await api('POST', `/tokens/${token.id}/revoke`)).status).toBe(200);
    // Back where the next tests start: the view of the file's token.
    const outer = outerToken();
    const main = (await api('GET', `/tokens/${outer.id}`)).body.name as string;
    await page.goto(`${server.url}/admin#/token?id=${outer.id}`);
    await page.getByRole('heading', { level: 1, name: main }).waitFor();
  });

  it('a Save in Credentials that changes nothing writes nothing; a change is recorded with what changed', async () => {
    const opener = page.locator('#token-actions').getByRole('button', { name: 'Credentials', exact: true });
    const credentials = page.locator('#credentials-dialog');
    const updates = async () =>
      ((await api('GET', `/audit?token_id=${token.id}`)).body.items as Array<{ action: string; details: unknown }>).filter((e) => e.action === 'token.updated');
    const before = await updates();
    await opener.click();
    await credentials.waitFor({ state: 'visible' });
    await credentials.locator('#credentials-save').click();
    await credentials.waitFor({ state: 'hidden' });
    expect(await updates()).toEqual(before);

    await opener.click();
    await credentials.waitFor({ state: 'visible' });
    await credentials.locator('#credentials-dpop').check();
    await credentials.locator('#credentials-save').click();
    await credentials.waitFor({ state: 'hidden' });
    await until(updates, (list) => list.length === before.length + 1, 'one token.updated more');
    expect((await updates())[0]!.details).toEqual({ changes: { require_dpop: { old: false, new: true } } });
    await page.locator('#token-event-rows tr[data-action="token.updated"] .change', { hasText: 'require_dpop: false → true' }).waitFor();
    expect((await api('PATCH', `/tokens/${token.id}`, { require_dpop: false })).status).toBe(200); // as it was, for the tests below
  });

  it('retires, rotates (the new secret shown once, in this view) and revokes from the token view', async () => {
    const secrets = page.locator('#token-secret-rows tr');
    await page.getByRole('button', { name: 'Retire the previous secret of Payroll_Integration_EU' }).click();
    await page.locator('#retire-dialog').getByRole('button', { name: 'Retire secret' }).click();
    await page.locator('#token-flash', { hasText: 'no longer works' }).waitFor();
    await secrets.nth(1).waitFor({ state: 'detached' });
    const focused = () => page.evaluate(() => (globalThis as any).document.activeElement?.id as string);
    await until(focused, (id) => id === 'token-edit', 'focus on Edit, not lost with the Retire button');
    expect((await exchange(token.client_secret)).status).toBe(401);

    await page.locator('#token-actions').getByRole('button', { name: 'Rotate secret', exact: true }).click();
    await page.locator('#rotate-dialog').getByRole('button', { name: 'Rotate secret' }).click();
    const panel = page.locator('#token-view #secret-panel');
    await panel.waitFor({ state: 'visible' });
    const newest = await page.locator('#secret-client-secret').innerText();
    expect(newest).toMatch(/^sats_/);
    expect((await exchange(newest)).status).toBe(200);
    await secrets.nth(1).waitFor();
    expect(await secrets.nth(0).locator('td.col-secret').innerText()).toContain(`••••${newest.slice(-4)}`);
    expect(await secrets.nth(1).locator('td.col-secret').innerText()).toContain(`••••${fresh.slice(-4)}`);
    await page.locator('#close-secret').click();
    expect(await page.locator('#secret-client-secret').innerText()).toBe('');
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('token-edit');

    await page.locator('#token-actions').getByRole('button', { name: 'Revoke Access', exact: true }).click();
    await page.locator('#revoke-dialog').getByRole('button', { name: 'Revoke Access' }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await page.locator('#flash', { hasText: 'Access revoked for “Payroll_Integration_EU”' }).waitFor();
    expect(await page.locator('#flash bdi').allTextContents()).toEqual(['Payroll_Integration_EU']);
    await page.locator('#token-rows tr', { hasText: 'Payroll_Integration_EU' }).waitFor({ state: 'detached' });
    expect(await page.locator('#tokens-view #secret-panel').isHidden()).toBe(true);
    // The button that revoked left with the token's view: the keyboard carries on from the list's main region.
    await until(focused, (id) => id === 'main', 'focus on the main region');
    expect((await api('GET', `/tokens/${token.id}`)).status).toBe(404);

    // Back to the revoked token's address: it says so; its events stay in the audit log.
    await page.goBack();
    await page.locator('#token-error', { hasText: 'revoked, or the link is wrong' }).waitFor();
    expect(await page.locator('#token-actions').isHidden()).toBe(true);
    expect((await api('GET', `/audit?token_id=${token.id}&limit=1`)).body.items[0].action).toBe('token.revoked');

    expect(w.problems).toEqual([]);
    expect(w.requests.filter((u) => new URL(u).hostname !== '127.0.0.1')).toEqual([]);
  });

  it('shows a date-time expiry with its time, counts the hour without a limit, and claims no creator it cannot know', async () => {
    const at = new Date(Date.now() + 3 * DAY_MS);
    at.setUTCHours(8, 0, 0, 0); // a date-time, not the end of a day
    // Made by a second administrator who is then removed: created_by null, as for a token made with `sat`.
    const me = (await api('GET', '/me')).body;
    const second = { email: `second-${Date.now()}@example.com`, password: 'second-admin-password' };
    const added = await addAdmin(server.deps.db.knex, { org: me.organisation.name, email: second.email, password: second.password });
    const secondBearer = (await apiSignIn(server, second.email, second.password)).token;
    const made = await call(server, 'POST', '/tokens', { token: secondBearer, json: { name: 'Timed_Export', services: ['jobs'], expires_at: at.toISOString() } });
    expect(made.status).toBe(201);
    expect((await api('DELETE', `/admins/${added.admin.id}`)).status).toBe(204);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(`${server.url}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(made.body.client_id, made.body.client_secret) },
        body: 'grant_type=client_credentials',
      });
      expect(res.status).toBe(200);
    }
    await server.runJob('flush-last-used');
    expect((await api('GET', `/tokens/${made.body.id}`)).body).toMatchObject({ created_by: null, max_tokens_per_hour: null, tokens_last_hour: 2 });

    await page.goto(`${server.url}/admin#/token?id=${made.body.id}`);
    await page.getByRole('heading', { level: 1, name: 'Timed_Export' }).waitFor();
    const localDateTime = await page.evaluate(
      (i) =>
        new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', hour: 'numeric', minute: '2-digit', timeZoneName: 'short' }).format(
          new Date(i),
        ),
      at.toISOString(),
    );
    expect(await fact('Expires').locator('time').innerText()).toBe(localDateTime);
    expect(await fact('Expires').innerText()).not.toContain('end of the day');
    expect(await page.locator('#token-hourly-limit').innerText()).toBe('No limit');
    expect(await page.locator('#token-last-hour').innerText()).toBe('2 access tokens');
    expect(await fact('Created').innerText()).toContain('no administrator on record');
    expect(await fact('Created').innerText()).not.toContain('CLI');

    // The list says the same; a token whose expiry was a date still ends with that day (UTC).
    await page.goto(`${server.url}/admin#/tokens`);
    const row = page.locator('#token-rows tr', { hasText: 'Timed_Export' });
    await row.waitFor();
    expect(await row.locator('td.col-created').innerText()).toContain('no administrator on record');
    expect(await row.locator('td.col-expires').innerText()).toBe(localDateTime);
    const dated = (await api('GET', '/tokens?q=Job_Board_Sync')).body.items[0];
    await page.goto(`${server.url}/admin#/token?id=${dated.id}`);
    await page.getByRole('heading', { level: 1, name: 'Job_Board_Sync' }).waitFor();
    const day = await page.evaluate((i) => new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' }).format(new Date(i)), dated.expires_at);
    expect(await fact('Expires').locator('time').innerText()).toBe(day);
    expect(await fact('Expires').innerText()).toContain('end of the day (UTC)');
    expect(await fact('Created').innerText()).toContain(`by ${ADMIN.email}`);
    expect(w.problems).toEqual([]);
  });

  it('says "Token not found" for a link cut short (#/token, #/token?id=), with no actions', async () => {
    for (const hash of ['#/token', '#/token?id=', '#/token?id=undefined']) {
      await page.goto(`${server.url}/admin#/tokens`);
      await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
      await page.goto(`${server.url}/admin${hash}`);
      await page.locator('#token-title', { hasText: 'Token not found' }).waitFor();
      expect({ hash, actions: await page.locator('#token-actions').isHidden(), details: await page.locator('#token-details').isHidden() }).toEqual({
        hash,
        actions: true,
        details: true,
      });
    }
    expect(w.problems).toEqual([]);
  });

  it('a token revoked in another window: Save in its Edit dialog says so and goes back to the list, changing nothing', async () => {
    const made = (await api('POST', '/tokens', { name: 'Revoked_Elsewhere', expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10), services: ['jobs'] })).body as { id: string };
    await page.goto(`${server.url}/admin#/token?id=${made.id}`);
    await page.getByRole('heading', { level: 1, name: 'Revoked_Elsewhere' }).waitFor();
    expect((await api('POST', `/tokens/${made.id}/revoke`)).status).toBe(200); // the other window
    await page.locator('#token-actions').getByRole('button', { name: 'Edit', exact: true }).click();
    await dialog().waitFor({ state: 'visible' });
    await dialog().getByLabel('Name', { exact: true }).fill('Revoked_Elsewhere_2');
    await dialog().getByRole('button', { name: 'Save changes' }).click();
    await page.locator('#flash', { hasText: '“Revoked_Elsewhere” no longer exists: it was revoked' }).waitFor();
    expect(await dialog().isVisible()).toBe(false);
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
  });

  it('keeps the keyboard focus when the last page of events is shown (token view and audit log), never on nothing', async () => {
    const made = (await api('POST', '/tokens', { name: 'Many_Events', expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10), services: ['jobs'] })).body as { id: string };
    for (let i = 1; i <= 11; i += 1) expect((await api('PATCH', `/tokens/${made.id}`, { max_tokens_per_hour: 100 + i })).status).toBe(200);
    await page.goto(`${server.url}/admin#/token?id=${made.id}`);
    await page.getByRole('heading', { level: 1, name: 'Many_Events' }).waitFor();
    await page.getByRole('button', { name: 'Show older events' }).focus();
    await page.keyboard.press('Enter');
    await until(() => page.locator('#token-event-rows tr').count(), (n) => n === 12, 'all twelve events');
    // The first event just added (the eleventh row) has the focus.
    await until(
      () => page.evaluate('document.activeElement === document.querySelectorAll("#token-event-rows tr")[10]') as Promise<boolean>,
      (focused) => focused,
      'the focus on the eleventh row',
    );

    // The audit log (20 a page): Older to its last page leaves the focus on Newer.
    // While its first page loads, the audit log shows none of the rows (nor the pager) an earlier visit left.
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    const hold = async (route: { continue(): Promise<void> }) => {
      await held;
      await route.continue();
    };
    await page.route('**/admin/api/audit?*', hold, { times: 1 });
    const answered = page.waitForResponse((res) => res.url().includes('/admin/api/audit?'));
    try {
      await page.goto(`${server.url}/admin#/audit`);
      await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      expect(await page.locator('#audit-rows tr').count()).toBe(0);
      expect(await page.locator('#audit-pager').isHidden()).toBe(true);
    } finally {
      release();
      await answered;
    }
    // The screen has opened (its first page loaded, the title set after it): the rows of an earlier visit are not it.
    await until(() => page.title(), (t) => t === 'Audit log · System Access Token', 'the audit log opened');
    await page.locator('#audit-rows tr').first().waitFor();
    await page.locator('#audit-next').focus();
    for (let i = 0; i < 40 && !(await page.locator('#audit-next').isDisabled()); i += 1) {
      // Each Enter shows the next page: wait for it (its first row changes) before reading the pager again.
      const firstRow = await page.locator('#audit-rows tr').first().innerText();
      await page.keyboard.press('Enter');
      await until(() => page.locator('#audit-rows tr').first().innerText(), (text) => text !== firstRow, 'the next page');
      await until(() => page.evaluate('document.activeElement ? document.activeElement.id : ""') as Promise<string>, (id) => id === 'audit-next' || id === 'audit-prev', 'a pager button focused');
    }
    expect(await page.locator('#audit-next').isDisabled()).toBe(true);
    expect(await page.evaluate('document.activeElement ? document.activeElement.id : ""')).toBe('audit-prev');
  });

  it('fits a phone’s width with a 64-character name that has no space to break at', async () => {
    const other = (await api('GET', '/tokens?q=Job_Board_Sync')).body.items[0];
    const long = `Job_Board_Sync_${'x'.repeat(64 - 'Job_Board_Sync_'.length)}`;
    expect((await api('PATCH', `/tokens/${other.id}`, { name: long })).status).toBe(200);
    await page.setViewportSize({ width: 390, height: 844 });
    await page.goto(`${server.url}/admin#/token?id=${other.id}`);
    await page.getByRole('heading', { level: 1, name: long }).waitFor();
    const scrollWidth = () => page.evaluate(() => (globalThis as any).document.documentElement.scrollWidth as number);
    expect(await scrollWidth()).toBeLessThanOrEqual(390); // the breadcrumb, title and top bar wrap instead
    // So do the titles of the dialogs that name the token.
    for (const [action, title] of [['Edit', '#edit-title'], ['Credentials', '#credentials-title'], ['Rotate secret', '#rotate-title'], ['Revoke Access', '#revoke-title']] as Array<[string, string]>) {
      await page.locator('#token-actions').getByRole('button', { name: action, exact: true }).click();
      const heading = page.locator(title);
      await heading.waitFor();
      expect(await heading.evaluate((h: any) => h.scrollWidth - h.clientWidth)).toBeLessThanOrEqual(0);
      await page.keyboard.press('Escape');
      await heading.waitFor({ state: 'hidden' });
    }
    await page.setViewportSize({ width: 1280, height: 860 });
  });
});

/** docs/ when UPDATE_SCREENSHOT is set (once, from the embedded run), else the temp dir. */
function shotDir(kind: string): string {
  const dir = process.env.UPDATE_SCREENSHOT && kind === 'embedded' ? path.join(packageRoot(), 'docs') : os.tmpdir();
  mkdirSync(dir, { recursive: true });
  return dir;
}
