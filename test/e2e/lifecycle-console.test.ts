// The console's credential-lifecycle screens in Debian's Chromium (playwright-core) against a real server on the
// embedded database: the expiring and dormant badges, the one-click status filters, and the Policy page (load,
// field errors from the API, save, and the policy enforced on the generate form). No request leaves 127.0.0.1.
import { mkdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { packageRoot } from '../../src/config/index.js';
import { call, signIn as apiSignIn } from '../support/admin-api.js';
import { closeAll, openConsole, signIn, type Watch } from '../support/browser.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { setTokenTimes } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };
const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

describeEmbedded('console: expiring, dormant and policy (Chromium)', () => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let bearer: string;
  let w: Watch;

  const api = (method: string, p: string, body?: unknown) => call(server, method, p, { token: bearer, json: body });

  beforeAll(async () => {
    db = await createTestDb('embedded');
    server = await startServer(db);
    bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
    ({ browser, page, watch: w } = await openConsole());
  });

  afterAll(() => closeAll(browser, server, db));

  const rowNames = () => page.locator('#token-rows .token-name').allInnerTexts();

  it('shows expiring and dormant badges and filters by them in one click', async () => {
    const make = async (name: string, days: number) =>
      (await api('POST', '/tokens', { name, services: ['candidates', 'jobs'], expires_at: isoDay(Date.now() + days * DAY_MS) })).body;
    await make('Fresh', 60);
    await make('Soon', 3);
    const idle = await make('Idle', 60);
    await setTokenTimes(server.deps, idle.id, { created_at: new Date(Date.now() - 120 * DAY_MS) });

    await signIn(page, server, ADMIN);
    await page.locator('#token-rows tr').nth(2).waitFor();

    const row = (name: string) => page.locator('#token-rows tr').filter({ has: page.locator('.token-name', { hasText: new RegExp(`^${name}$`) }) });
    expect(await row('Soon').locator('.badge').allInnerTexts()).toEqual(['Expiring soon']);
    expect(await row('Idle').locator('.badge').allInnerTexts()).toEqual(['Dormant']);
    expect(await row('Fresh').locator('.badge').count()).toBe(0);

    await page.getByRole('button', { name: 'Dormant (unused 90+ days)' }).click();
    await page.waitForFunction(() => (globalThis as any).document.querySelectorAll('#token-rows tr').length === 1);
    expect(await rowNames()).toEqual(['Idle']);
    expect(await page.getByRole('button', { name: 'Dormant (unused 90+ days)' }).getAttribute('aria-pressed')).toBe('true');

    await page.getByRole('button', { name: 'Expiring soon' }).click();
    await page.locator('#token-rows .token-name', { hasText: 'Soon' }).waitFor();
    expect(await rowNames()).toEqual(['Soon']);

    await page.getByRole('button', { name: 'Expired' }).click();
    await page.locator('#list-empty', { hasText: 'No expired tokens.' }).waitFor();

    await page.getByRole('button', { name: 'All', exact: true }).click();
    await page.locator('#token-rows tr').nth(2).waitFor();
    expect((await rowNames()).sort()).toEqual(['Fresh', 'Idle', 'Soon']);
  });

  it('edits the policy on the Policy page, shows the API errors at their fields, and the generate form obeys it', async () => {
    await page.getByRole('link', { name: 'Policy', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Token policy' }).waitFor();
    expect(await page.getByRole('link', { name: 'Policy', exact: true }).getAttribute('aria-current')).toBe('page');
    // The form is filled (and editable) once the policy has loaded; the heading shows before that.
    await page.locator('#policy-form:not([aria-busy]):not([inert])').waitFor();
    expect(await page.getByLabel('Maximum lifetime (days)').inputValue()).toBe('366');
    expect(await page.locator('#policy-service-list input:checked').count()).toBe(6);
    expect(await page.getByLabel('Revoke after this many days without use (30 to 365)').isDisabled()).toBe(true);

    await page.getByLabel('Maximum lifetime (days)').fill('30');
    await page.locator('#policy-service-list label', { hasText: 'Employee API' }).click();
    await page.getByLabel('Revoke tokens that nobody uses').check();
    await page.getByLabel('Revoke after this many days without use (30 to 365)').fill('10');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.locator('#policy-dormant-error').waitFor();
    expect(await page.locator('#policy-dormant-error').innerText()).toMatch(/from 30 to 365/);
    expect((await api('GET', '/policy')).body.max_lifetime_days).toBe(366); // nothing saved

    await page.getByLabel('Revoke after this many days without use (30 to 365)').fill('45');
    await page.getByRole('button', { name: 'Save policy' }).click();
    await page.locator('#policy-flash', { hasText: 'Policy saved' }).waitFor();
    // Disabled while saving, the button lost the focus; it gets it back rather than leaving it on the page's body.
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('policy-submit');
    expect(await page.locator('#policy-dormant-error').isHidden()).toBe(true);
    expect((await api('GET', '/policy')).body).toEqual({
      max_lifetime_days: 30,
      allowed_services: ['candidates', 'jobs', 'clients', 'contacts', 'master-lists'],
      revoke_dormant_after_days: 45,
      default_max_tokens_per_hour: null,
    });

    // UPDATE_SCREENSHOT=1 keeps a picture of the Policy page for the docs; other runs leave it in the temp dir.
    const dir = process.env.UPDATE_SCREENSHOT ? path.join(packageRoot(), 'docs') : os.tmpdir();
    mkdirSync(dir, { recursive: true });
    await page.screenshot({ path: path.join(dir, 'console-policy.png'), fullPage: true });

    // Back on the token screen, the generate form follows the policy: the date picker ends 30 days ahead and starts
    // within it, a service the policy leaves out cannot be chosen and says why, and the defaults are accepted.
    await page.getByRole('link', { name: 'System Access Token', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await page.getByRole('button', { name: 'Expired', exact: true }).click(); // a filter the new token does not match
    await page.locator('#list-empty', { hasText: 'No expired tokens' }).waitFor();
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await page.getByLabel('Token Name').waitFor();
    const expiry = page.getByLabel('Expiry Date');
    expect(await expiry.getAttribute('max')).toBe(isoDay(Date.now() + 30 * DAY_MS));
    expect(await expiry.inputValue()).toBe(isoDay(Date.now() + 30 * DAY_MS));
    expect(await page.locator('#token-expiry-hint').innerText()).toContain("30 days ahead, your organisation's policy");
    const employees = page.getByRole('checkbox', { name: /Employee API/ });
    expect(await employees.isDisabled()).toBe(true);
    expect(await page.locator('#service-list li', { hasText: 'Employee API' }).innerText()).toContain("Not allowed by your organisation's policy");
    expect(await page.getByRole('checkbox', { name: /Job API/ }).isEnabled()).toBe(true);
    await page.getByLabel('Token Name').fill('Within_Policy');
    await page.getByRole('checkbox', { name: /Job API/ }).check();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await page.locator('#secret-panel').waitFor({ state: 'visible' });
    const made = (await api('GET', '/tokens?q=Within_Policy')).body.items;
    expect(made.map((t: { services: string[] }) => t.services)).toEqual([['jobs']]);
    // The list drops the filter so that the new token shows.
    await page.locator('#token-rows tr', { hasText: 'Within_Policy' }).waitFor();
    expect(await page.getByRole('button', { name: 'All', exact: true }).getAttribute('aria-pressed')).toBe('true');
    await page.locator('#close-secret').click();

    expect(w.problems).toEqual([]);
    expect(w.refused).toEqual([]);
  });
});
