// The console rotates a token's secret (grace period chosen in a dialog, the new secret shown once like generate)
// and retires the previous one. Debian's Chromium through playwright-core against a real server (embedded database).
import type { Browser, Page } from 'playwright-core';
import { signIn as apiSignIn } from '../support/admin-api.js';
import { closeAll, openConsole, signIn, until, type Watch } from '../support/browser.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { basic } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };
const NAME = 'Payroll_Rotation';

describeEmbedded('console: secret rotation (Chromium)', () => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let w: Watch;
  let token: { id: string; client_id: string; client_secret: string };

  const exchange = (secret: string) =>
    fetch(`${server.url}/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(token.client_id, secret) },
      body: 'grant_type=client_credentials',
    });

  beforeAll(async () => {
    db = await createTestDb('embedded');
    server = await startServer(db);
    const bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
    const res = await fetch(`${server.url}/admin/api/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ name: NAME, services: ['jobs'], expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10) }),
    });
    expect(res.status).toBe(201);
    token = (await res.json()) as typeof token;

    ({ browser, page, watch: w } = await openConsole());
  });

  afterAll(() => closeAll(browser, server, db));

  it('rotates with a chosen grace period, shows the new secret once, and retires the previous one', async () => {
    await signIn(page, server, ADMIN);

    const row = page.locator('#token-rows tr', { hasText: NAME });
    await row.getByRole('button', { name: `Rotate secret of ${NAME}` }).click();
    const dialog = page.locator('#rotate-dialog');
    await dialog.waitFor({ state: 'visible' });
    expect(await dialog.innerText()).toContain(token.client_id);
    await dialog.getByLabel('Previous secret keeps working for').selectOption('72');
    if (process.env.ROTATION_SHOTS) await page.screenshot({ path: '/tmp/rotation-dialog.png' });
    await dialog.getByRole('button', { name: 'Rotate secret' }).click();

    const panel = page.locator('#secret-panel');
    await panel.waitFor({ state: 'visible' });
    expect(await page.locator('#secret-title').innerText()).toBe(`New secret: ${NAME}`);
    expect(await page.locator('#secret-client-id').innerText()).toBe(token.client_id);
    const fresh = await page.locator('#secret-client-secret').innerText();
    expect(fresh).toMatch(/^sats_/);
    expect(fresh).not.toBe(token.client_secret);
    expect((await exchange(fresh)).status).toBe(200);
    expect((await exchange(token.client_secret)).status).toBe(200);

    // The row shows the previous secret (its last four characters) and when it stops: in 72 hours.
    const previous = row.locator('.previous-secret');
    await previous.waitFor();
    expect(await previous.innerText()).toContain(`••••${token.client_secret.slice(-4)}`);
    const stops = await previous.locator('time').getAttribute('datetime');
    expect(Math.abs(Date.parse(stops!) - Date.now() - 72 * 3_600_000)).toBeLessThan(120_000);

    if (process.env.ROTATION_SHOTS) await page.screenshot({ path: '/tmp/rotation-row.png', fullPage: true });
    await page.locator('#close-secret').click();
    expect(await page.locator('#secret-client-secret').innerText()).toBe('');

    // A second rotation while two secrets live is refused (409): the dialog says until when in words, not in ISO 8601.
    await row.getByRole('button', { name: `Rotate secret of ${NAME}` }).click();
    await dialog.getByRole('button', { name: 'Rotate secret' }).click();
    const refused = page.locator('#rotate-error');
    await refused.waitFor();
    expect(await refused.innerText()).toMatch(
      /^This token already has two live secrets; the previous one stops at \d{1,2} \w{3} \d{4}, \d\d:\d\d\. Retire one to rotate again\.$/,
    );
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });

    // Retire asks first, as every action that stops a credential does: Cancel changes nothing and gives the focus back.
    const retire = row.getByRole('button', { name: `Retire the previous secret of ${NAME}` });
    await retire.click();
    const ask = page.getByRole('dialog', { name: `Retire the previous secret ••••${token.client_secret.slice(-4)} of “${NAME}”?`, exact: true });
    await ask.waitFor();
    await ask.getByRole('button', { name: 'Cancel' }).click();
    await ask.waitFor({ state: 'hidden' });
    const focused = () => page.evaluate(() => (globalThis as any).document.activeElement?.getAttribute('aria-label') as string);
    await until(focused, (label) => label === `Retire the previous secret of ${NAME}`, 'focus back on Retire');
    expect((await exchange(token.client_secret)).status).toBe(200); // still works
    await retire.click();
    await ask.getByRole('button', { name: 'Retire secret' }).click();
    await previous.waitFor({ state: 'detached' });
    expect(await page.locator('#flash').innerText()).toContain('no longer works');
    // The Retire button went with the secret: focus is back at the top of the screen, not lost to the page's body.
    const focusedId = () => page.evaluate(() => (globalThis as any).document.activeElement?.id as string);
    await until(focusedId, (id) => id === 'open-generate', 'focus on + Generate a Token');
    expect((await exchange(token.client_secret)).status).toBe(401);
    expect((await exchange(fresh)).status).toBe(200);

    // The audit log says which secret each event was about (its last four characters) and when the previous stopped.
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit log' }).click();
    const event = (action: string) => page.locator(`#audit-rows tr[data-action="${action}"] td.col-details`).first();
    await event('token.secret_retired').waitFor();
    expect(await event('token.secret_retired').innerText()).toBe(`Secret ending in ${token.client_secret.slice(-4)}`);
    expect(await event('token.secret_rotated').innerText()).toMatch(
      new RegExp(`^New secret ending in ${fresh.slice(-4)}; previous one \\(ending in ${token.client_secret.slice(-4)}\\) stops \\d{1,2} \\w{3} \\d{4}, \\d\\d:\\d\\d$`),
    );
    expect(w.problems).toEqual([]);
  });

  it('shows a secret that arrives after the administrator left the screen (Rotate, Generate): it is the only copy', async () => {
    const nav = page.getByRole('navigation', { name: 'Console' });
    await nav.getByRole('link', { name: 'System Access Token' }).click();
    const row = page.locator('#token-rows tr', { hasText: NAME });
    // The answer is held back until the administrator has gone to the audit log.
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    await page.route('**/rotate', async (route) => {
      const response = await route.fetch();
      await held;
      await route.fulfill({ response });
    });
    try {
      await row.getByRole('button', { name: `Rotate secret of ${NAME}` }).click();
      const dialog = page.locator('#rotate-dialog');
      await dialog.getByLabel('Previous secret keeps working for').selectOption('0');
      await dialog.getByRole('button', { name: 'Rotate secret' }).click();
      // The dialog is modal while the request runs: the browser's Back leaves the screen (to the audit log).
      await page.goBack();
      await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      release();
      // Back on the list, the new secret on show: with a grace period of 0 it is the token's only working secret.
      const panel = page.locator('#secret-panel');
      await panel.waitFor({ state: 'visible' });
      await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
      const fresh = await page.locator('#secret-client-secret').innerText();
      expect((await exchange(fresh)).status).toBe(200);
      await page.locator('#close-secret').click();
    } finally {
      release();
      await page.unroute('**/rotate');
    }

    let releaseGenerate = () => {};
    const heldGenerate = new Promise<void>((resolve) => (releaseGenerate = resolve));
    await page.route('**/admin/api/tokens', async (route) => {
      if (route.request().method() !== 'POST') return route.continue();
      const response = await route.fetch();
      await heldGenerate;
      await route.fulfill({ response });
    });
    try {
      await page.getByRole('button', { name: '+ Generate a Token' }).click();
      await page.getByLabel('Token Name').fill('Left_While_Generating');
      await page.locator('#generate-panel').getByLabel(/Job API/).check();
      await page.getByRole('button', { name: 'Generate', exact: true }).click();
      await nav.getByRole('link', { name: 'Audit log' }).click();
      await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
      releaseGenerate();
      await page.locator('#secret-panel').waitFor({ state: 'visible' });
      expect(await page.locator('#secret-token-name').innerText()).toBe('Left_While_Generating');
      expect(await page.locator('#secret-client-secret').innerText()).toMatch(/^sats_/);
      await page.locator('#close-secret').click();
    } finally {
      releaseGenerate();
      await page.unroute('**/admin/api/tokens');
    }
    expect(w.problems).toEqual([]);
  });
});
