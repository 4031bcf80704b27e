// The admin console in a real browser: Debian's Chromium driven by playwright-core against a real server on
// the embedded database. One journey, in order: sign in, generate, the secret once, list, search, errors at
// their fields, hostile names as text, paging, revoke, the limit, sign out. No request may leave 127.0.0.1.
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { packageRoot } from '../../src/config/index.js';
import { newWatchedContext, openConsole, signIn, until, type Watch } from '../support/browser.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { basic } from '../support/fixtures.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };
const XSS_NAME = '<img src=x onerror=alert(1)>';
const DAY_MS = 86_400_000;
const isoDay = (ms: number) => new Date(ms).toISOString().slice(0, 10);

// The few browser globals that page.evaluate callbacks touch. They run in the page, not in Node; the project's
// TypeScript lib has no DOM on purpose, so they are declared here, for this file only.
interface PageStorage {
  readonly length: number;
  key(index: number): string | null;
  getItem(key: string): string | null;
}
interface PageNode {
  id: string;
  value: string;
  hidden: boolean;
  textContent: string | null;
  getAttribute(name: string): string | null;
}
declare const document: {
  documentElement: { outerHTML: string; scrollWidth: number };
  body: { innerText: string };
  cookie: string;
  activeElement: PageNode | null;
  querySelectorAll(selector: string): ArrayLike<PageNode> & Iterable<PageNode>;
};
declare const window: { innerWidth: number };
declare const location: { href: string };
declare const history: { length: number };
declare const localStorage: PageStorage;
declare const sessionStorage: PageStorage;
declare const navigator: { clipboard: { readText(): Promise<string> } };

const text = (page: Page, selector: string) => page.locator(selector).innerText();

async function apiLogin(base: string): Promise<string> {
  const res = await fetch(`${base}/admin/api/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(ADMIN),
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { token: string }).token;
}

interface Generated {
  id: string;
  name: string;
  client_id: string;
  client_secret: string;
}

async function apiGenerate(base: string, bearer: string, name: string, services: string[], days = 60): Promise<Generated> {
  const res = await fetch(`${base}/admin/api/tokens`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
    body: JSON.stringify({ name, services, expires_at: isoDay(Date.now() + days * DAY_MS) }),
  });
  expect(res.status).toBe(201);
  return (await res.json()) as Generated;
}

async function exchange(base: string, clientId: string, secret: string): Promise<number> {
  const res = await fetch(`${base}/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(clientId, secret) },
    body: 'grant_type=client_credentials',
  });
  await res.arrayBuffer();
  return res.status;
}

/** Signs in to `server`'s console and waits until the token screen shows how many tokens are used. */
async function signInToTokens(page: Page, server: TestServer): Promise<void> {
  await signIn(page, server, ADMIN);
  await page.locator('#usage-text, #limit-reason').filter({ hasText: 'tokens used' }).first().waitFor();
}

/** Everything a page could still hold: markup, every field's live value, both storages, the URL. */
async function traces(page: Page): Promise<string> {
  return page.evaluate(() => {
    const values = [...document.querySelectorAll('input, textarea')].map((i) => i.value);
    const storage = (s: PageStorage) => [...Array(s.length).keys()].map((i) => `${s.key(i)}=${s.getItem(s.key(i)!)}`);
    return [
      document.documentElement.outerHTML,
      document.body.innerText,
      ...values,
      ...storage(localStorage),
      ...storage(sessionStorage),
      location.href,
      history.length.toString(),
    ].join('\n');
  });
}

describeEmbedded('admin console (Chromium)', () => {
  let db: TestDb;
  let limitDb: TestDb;
  let server: TestServer;
  let limitServer: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let bearer: string;
  let w: Watch;
  let payroll: { client_id: string; secret: string };
  let configDir: string;

  beforeAll(async () => {
    // The limit server refuses the third failed sign-in for one email at once (429 with Retry-After), with no waits.
    configDir = mkdtempSync(path.join(os.tmpdir(), 'sat-console-'));
    const configFile = path.join(configDir, 'config.json');
    writeFileSync(
      configFile,
      JSON.stringify({ loginThrottle: { windowSeconds: 900, delayAfterFailures: 100, delayMs: 0, blockAfterFailures: 2, perAddressFactor: 100 } }),
    );
    [db, limitDb] = await Promise.all([createTestDb('embedded'), createTestDb('embedded')]);
    [server, limitServer] = await Promise.all([
      startServer(db),
      startServer(limitDb, { MAX_ACTIVE_TOKENS: '2', CONFIG_FILE: configFile }),
    ]);
    ({ browser, context, page, watch: w } = await openConsole({ permissions: ['clipboard-read', 'clipboard-write'] }));
  });

  afterAll(async () => {
    await browser?.close();
    await Promise.all([server?.close(), limitServer?.close()]);
    await Promise.all([db?.drop(), limitDb?.drop()]);
    if (configDir) rmSync(configDir, { recursive: true, force: true });
  });

  it('serves the page with a strict Content-Security-Policy, and only its known files', async () => {
    for (const p of ['/admin', '/admin/']) {
      const res = await fetch(server.url + p);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toContain('text/html');
      expect(res.headers.get('cache-control')).toBe('no-store');
      const csp = res.headers.get('content-security-policy') ?? '';
      for (const directive of [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "frame-ancestors 'none'",
        "form-action 'self'",
        "base-uri 'none'",
        "object-src 'none'",
      ]) {
        expect(csp).toContain(directive);
      }
      expect(csp).not.toContain('unsafe-inline');
      expect(csp).not.toContain('unsafe-eval');
      const html = await res.text();
      expect(html).toContain('<meta name="sat-max-token-lifetime-days" content="366">');
      expect(html).not.toMatch(/<script(?![^>]*\bsrc=)[^>]*>/); // no inline script
      expect(html).not.toMatch(/<style|\sstyle=/); // no inline style
      expect(html).not.toMatch(/https?:\/\//); // nothing from elsewhere
    }
    const js = await fetch(`${server.url}/admin/assets/app.js`);
    expect(js.status).toBe(200);
    expect(js.headers.get('content-type')).toContain('javascript');
    expect(js.headers.get('cache-control')).toBe('no-cache');
    const etag = js.headers.get('etag');
    expect(etag).toBeTruthy();
    // (fetch adds Cache-Control: no-cache to a conditional request unless told otherwise; a browser sends max-age=0)
    const again = await fetch(`${server.url}/admin/assets/app.js`, {
      headers: { 'if-none-match': etag!, 'cache-control': 'max-age=0' },
    });
    expect(again.status).toBe(304);
    expect((await fetch(`${server.url}/admin/assets/app.css`)).headers.get('content-type')).toContain('text/css');
    // The screens are native ES modules imported by app.js, under the same headers.
    for (const module of ['api', 'dom', 'shell', 'menu', 'login', 'tokens', 'profile', 'admins', 'onetime']) {
      const res = await fetch(`${server.url}/admin/assets/js/${module}.js`);
      expect([module, res.status]).toEqual([module, 200]);
      expect(res.headers.get('content-type')).toContain('javascript');
      expect(res.headers.get('content-security-policy')).toContain("script-src 'self'");
    }

    for (const p of [
      '/admin/assets/index.html',
      '/admin/assets/routes.ts',
      '/admin/assets/..%2f..%2f..%2fpackage.json',
      '/admin/assets/%2e%2e/%2e%2e/package.json',
      '/admin/assets/',
      '/admin/assets/js/',
      '/admin/assets/js/app.css',
      '/admin/assets/js/..%2fapp.js',
      '/admin/assets/js/..%2f..%2froutes.ts',
      '/admin/index.html',
    ]) {
      const res = await fetch(server.url + p);
      expect([p, res.status]).toEqual([p, 404]);
      expect(await res.text()).not.toContain('"name": "system-access-token-server"');
    }
  });

  it('asks /me after a link followed from another site, which brings no SameSite=Strict cookie', async () => {
    const session = async (headers: Record<string, string>) =>
      /<meta name="sat-session" content="(\w+)">/.exec(await (await fetch(`${server.url}/admin`, { headers })).text())?.[1];
    expect(await session({})).toBe('none'); // no cookie, typed or bookmarked: the sign-in form at once
    expect(await session({ 'sec-fetch-site': 'none' })).toBe('none');
    expect(await session({ 'sec-fetch-site': 'same-origin' })).toBe('none');
    // A mail link opened in webmail: the browser may hold a session it did not send; /me (same-site) will bring it.
    expect(await session({ 'sec-fetch-site': 'cross-site' })).toBe('cookie');
  });

  it('signs in, refusing a wrong password with a message', async () => {
    await page.goto(`${server.url}/admin`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.locator('#signin-form').getByLabel('Email').fill(ADMIN.email);
    await page.locator('#signin-form').getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#signin-error').filter({ hasText: 'not right' }).waitFor();
    expect(await page.locator('#signin-form').getByLabel('Password').inputValue()).toBe('');
    expect(page.url()).toBe(`${server.url}/admin`); // nothing went into the URL

    await page.locator('#signin-form').getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    expect(await text(page, '#account-email')).toBe(ADMIN.email);
    expect(await text(page, '#account-org')).toBe('Default');
    await until(() => text(page, '#usage-text'), (t) => t === '0 of 25 tokens used', 'usage text');
    expect(await text(page, '#list-empty')).toContain('No tokens yet');
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === 'sat_session');
    expect(session?.httpOnly).toBe(true);
    expect(await page.evaluate(() => document.cookie)).not.toContain('sat_session');
  });

  it('generates a token with the service filter and shows its secret once', async () => {
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await page.getByLabel('Token Name').fill('Payroll_Integration');

    const expiry = page.getByLabel('Expiry Date');
    expect(await expiry.getAttribute('type')).toBe('date');
    expect(await expiry.getAttribute('min')).toBe(isoDay(Date.now()));
    expect(await expiry.getAttribute('max')).toBe(isoDay(Date.now() + 366 * DAY_MS));
    await expiry.fill(isoDay(Date.now() + 90 * DAY_MS));

    const boxes = page.locator('#service-list li');
    const visible = () => boxes.evaluateAll((items) => (items as unknown as PageNode[]).filter((i) => !i.hidden).map((i) => i.textContent?.trim()));
    expect(await visible()).toHaveLength(6);
    const filter = page.getByLabel('Search services');
    await filter.pressSequentially('job');
    expect(await visible()).toEqual([expect.stringContaining('Job API')]);
    await page.getByRole('checkbox', { name: /Job API/ }).check();
    await filter.fill('');
    await filter.pressSequentially('CAND');
    expect(await visible()).toEqual([expect.stringContaining('Candidate API')]);
    await page.getByRole('checkbox', { name: /Candidate API/ }).check();
    await filter.fill('nothing-like-this');
    expect(await visible()).toEqual([]);
    expect(await text(page, '#service-none')).toContain('No service matches');
    expect(await text(page, '#service-count')).toContain('2 selected'); // hidden choices stay chosen
    await filter.fill('');

    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const panel = page.locator('#secret-panel');
    await panel.waitFor();
    expect(await panel.innerText()).toMatch(/cannot be shown again/i);
    expect(await text(page, '#secret-token-name')).toBe('Payroll_Integration');
    const clientId = await text(page, '#secret-client-id');
    const secret = await text(page, '#secret-client-secret');
    expect(clientId).toMatch(/^sat_/);
    expect(secret).toMatch(/^sats_/);
    expect(await page.locator('#generate-panel').isHidden()).toBe(true);

    // The credentials shown are the real ones.
    expect(await exchange(server.url, clientId, secret)).toBe(200);
    payroll = { client_id: clientId, secret };

    await page.getByRole('button', { name: 'Copy client secret' }).click();
    await until(() => text(page, '#copy-status'), (t) => t.includes('copied'), 'copy status');
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(secret);
    await page.getByRole('button', { name: 'Copy client ID' }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(clientId);

    expect(await traces(page)).toContain(secret); // it is there while the panel is open...
    await page.getByRole('button', { name: /I have stored the secret/ }).click();
    expect(await panel.isHidden()).toBe(true);
    expect(await traces(page)).not.toContain(secret); // ...and nowhere once it is closed
    expect(page.url()).toBe(`${server.url}/admin`);

    // The new token is in the list, with everything the list shows.
    const row = page.locator('#token-rows tr', { hasText: 'Payroll_Integration' });
    await row.waitFor();
    const cells = await row.locator('td').allInnerTexts();
    expect(cells[0]).toBe('Payroll_Integration');
    expect(cells[1]).toBe(clientId);
    expect(cells[2]).toContain('Candidate API');
    expect(cells[2]).toContain('Job API');
    expect(cells[3]).toBe('Active');
    expect(cells[4]).toBe(
      new Intl.DateTimeFormat('en-GB', { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' }).format(
        new Date(Date.now() + 90 * DAY_MS),
      ),
    );
    expect(cells[5]).toBe('Never');
    expect(cells[6]).toContain(`by ${ADMIN.email}`);
    expect(await text(page, '#usage-text')).toBe('1 of 25 tokens used');
  });

  it('leaves no trace of the secret after a reload', async () => {
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await page.getByLabel('Token Name').fill('HR_API_Token');
    await page.getByRole('checkbox', { name: /Candidate API/ }).check();
    await page.getByRole('checkbox', { name: /Employee API/ }).check();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await page.locator('#secret-panel').waitFor();
    const secret = await text(page, '#secret-client-secret');
    expect(secret).toMatch(/^sats_/);

    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor(); // still signed in
    await page.locator('#token-rows tr', { hasText: 'HR_API_Token' }).waitFor();
    expect(await page.locator('#secret-panel').isHidden()).toBe(true);
    expect(await traces(page)).not.toContain(secret);
  });

  it('shows a few tokens on the token screen (screenshot at laptop and phone size)', async () => {
    bearer = await apiLogin(server.url);
    await apiGenerate(server.url, bearer, 'Job_Board_Sync', ['jobs', 'clients'], 180);
    await apiGenerate(server.url, bearer, 'Master_List_Export', ['master-lists'], 30);
    // Last use is recorded in batches: wait until the list reports the exchange made above.
    await until(
      async () => {
        const res = await fetch(`${server.url}/admin/api/tokens?q=Payroll`, { headers: { authorization: `Bearer ${bearer}` } });
        return ((await res.json()) as { items: { last_used_at: string | null }[] }).items[0]?.last_used_at ?? null;
      },
      (v) => v !== null,
      'last_used_at of Payroll_Integration',
      15_000,
    );
    await page.reload();
    await page.locator('#token-rows tr').nth(3).waitFor();
    const payrollRow = page.locator('#token-rows tr', { hasText: 'Payroll_Integration' });
    expect(await payrollRow.locator('td.col-used').innerText()).not.toBe('Never');
    expect(await text(page, '#usage-text')).toBe('4 of 25 tokens used');

    // UPDATE_SCREENSHOT=1 npm test refreshes the README's docs/console.png; other runs keep it in the temp dir.
    const docs = process.env.UPDATE_SCREENSHOT ? path.join(packageRoot(), 'docs') : os.tmpdir();
    mkdirSync(docs, { recursive: true });
    await page.mouse.move(0, 0);
    await page.setViewportSize({ width: 1280, height: 740 }); // a laptop screen, cropped to the content
    await page.screenshot({ path: path.join(docs, 'console.png') });

    // Revoke Access, the one that cannot be undone, comes last in a row, not between two harmless buttons.
    expect(await payrollRow.locator('td.col-actions button').allInnerTexts()).toEqual(['Credentials', 'Rotate secret', 'Revoke Access']);
    // Wrapped onto several lines in a narrow column, the buttons keep a gap between them (they touched).
    const boxes = await Promise.all((await payrollRow.locator('td.col-actions button').all()).map(async (b) => (await b.boundingBox())!));
    for (let i = 1; i < boxes.length; i++) {
      const [a, b] = [boxes[i - 1]!, boxes[i]!];
      const apart = b.y >= a.y + a.height + 4 || b.x >= a.x + a.width + 4 || a.x >= b.x + b.width + 4;
      expect(apart).toBe(true);
    }

    await page.setViewportSize({ width: 390, height: 844 });
    const hasHorizontalScroll = await page.evaluate(() => document.documentElement.scrollWidth > window.innerWidth);
    expect(hasHorizontalScroll).toBe(false);
    // The page's buttons stack inside the content column: none sticks out past its right edge.
    const column = (await page.locator('#tokens-view .list-card').boundingBox())!;
    const overhang: string[] = [];
    for (const button of await page.locator('#tokens-view .page-actions .button').all()) {
      const box = (await button.boundingBox())!;
      if (box.x < column.x - 0.5 || box.x + box.width > column.x + column.width + 0.5) overhang.push(await button.innerText());
    }
    expect(overhang).toEqual([]);
    await page.screenshot({ path: path.join(os.tmpdir(), 'sat-console-phone.png'), fullPage: true });
    await page.setViewportSize({ width: 1280, height: 860 });
  });

  it('searches by name and by client ID', async () => {
    const search = page.getByLabel('Search tokens by name or client ID');
    const names = () => page.locator('#token-rows tr td.col-name').allInnerTexts();
    await search.fill('board');
    await until(names, (n) => n.length === 1, 'search by name');
    expect(await names()).toEqual(['Job_Board_Sync']);

    await search.fill(payroll.client_id.slice(4, 16).toUpperCase());
    await until(names, (n) => n.length === 1 && n[0] === 'Payroll_Integration', 'search by client ID');

    await search.fill('no-such-token');
    await until(() => text(page, '#list-empty'), (t) => t.includes('No token matches'), 'no match message');
    expect(await page.locator('#token-table').isHidden()).toBe(true);

    // A client secret pasted to find its token: not searched, kept out of the address and the API's URLs, and what to
    // do with a leaked secret is said instead.
    const asked: string[] = [];
    const onRequest = (r: { url(): string }) => asked.push(r.url());
    page.on('request', onRequest);
    try {
      await search.fill(payroll.secret);
      await until(() => text(page, '#search-secret'), (t) => t.includes('That is a client secret'), 'secret notice');
      expect(page.url()).not.toContain('sats_');
      // The next search goes out (after the same pause a secret's would have taken), and it alone.
      await search.fill('board');
      await until(names, (n) => n.length === 1 && n[0] === 'Job_Board_Sync', 'search after the secret');
      expect(await page.locator('#search-secret').isHidden()).toBe(true);
      expect(page.url()).not.toContain('sats_');
      expect(asked.filter((u) => u.includes('sats_'))).toEqual([]);
    } finally {
      page.off('request', onRequest);
    }

    // A name that starts like a secret is searched for as any name.
    await search.fill('sats_nightly');
    await until(() => text(page, '#list-empty'), (t) => t.includes('No token matches'), 'a secret-like name searched');
    expect(await page.locator('#search-secret').isHidden()).toBe(true);

    await search.fill('');
    await until(names, (n) => n.length === 4, 'full list again');
  });

  it('shows validation errors at their fields: the page’s own and the API’s', async () => {
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await page.getByLabel('Token Name').fill('   ');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    expect(await text(page, '#token-name-error')).toMatch(/enter a name/i);
    expect(await text(page, '#services-error')).toMatch(/at least one service/i);
    expect(await page.getByLabel('Token Name').getAttribute('aria-invalid')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.id)).toBe('token-name');

    // A duplicate name (any case) passes the page's checks; the API answers 409 name_taken, shown at the name.
    await page.getByLabel('Token Name').fill('payroll_integration');
    await page.getByRole('checkbox', { name: /Contact API/ }).check();
    const answer = page.waitForResponse((r) => r.url().endsWith('/admin/api/tokens') && r.request().method() === 'POST');
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    const res = await answer;
    expect(res.status()).toBe(409);
    expect(((await res.json()) as { error: string }).error).toBe('name_taken');
    await page.locator('#token-name-error').waitFor();
    expect(await text(page, '#token-name-error')).not.toBe('');
    expect(await page.locator('#services-error').isHidden()).toBe(true);
    expect(await page.locator('#generate-error').isHidden()).toBe(true);
    expect(await page.locator('#secret-panel').isHidden()).toBe(true);

    // Cancel clears the form.
    await page.getByRole('button', { name: 'Cancel' }).click();
    expect(await page.locator('#generate-panel').isHidden()).toBe(true);
  });

  it('shows a hostile name as text and runs nothing', async () => {
    await page.getByRole('button', { name: '+ Generate a Token' }).click();
    await page.getByLabel('Token Name').fill(XSS_NAME);
    await page.getByRole('checkbox', { name: /Job API/ }).check();
    await page.getByRole('button', { name: 'Generate', exact: true }).click();
    await page.locator('#secret-panel').waitFor();
    expect(await text(page, '#secret-token-name')).toBe(XSS_NAME);
    await page.getByRole('button', { name: /I have stored the secret/ }).click();

    const row = page.locator('#token-rows tr', { hasText: XSS_NAME });
    await row.waitFor();
    expect(await row.locator('td.col-name').innerText()).toBe(XSS_NAME);
    await row.getByRole('button', { name: 'Revoke Access' }).click();
    expect(await text(page, '#revoke-name')).toBe(XSS_NAME);
    await page.keyboard.press('Escape');
    expect(await page.locator('#revoke-dialog').isVisible()).toBe(false);

    expect(await page.locator('img[src="x"]').count()).toBe(0);
    expect(await page.evaluate(() => document.querySelectorAll('#main img, dialog img').length)).toBe(0);
    expect(w.requests.filter((u) => /\/x$/.test(new URL(u).pathname))).toEqual([]);
    expect(w.problems).toEqual([]);
  });

  it('pages through a long list with next and previous', async () => {
    for (let i = 1; i <= 7; i += 1) {
      await apiGenerate(server.url, bearer, `Batch_Export_${String(i).padStart(2, '0')}`, ['employees']);
    }
    await page.reload();
    const names = () => page.locator('#token-rows tr td.col-name').allInnerTexts();
    await until(names, (n) => n.length === 10, 'first page of ten');
    const first = await names();
    expect(await page.getByRole('button', { name: 'Next ›' }).isEnabled()).toBe(true);
    expect(await page.getByRole('button', { name: '‹ Previous' }).isDisabled()).toBe(true);

    await page.getByRole('button', { name: 'Next ›' }).click();
    await until(names, (n) => n.length === 2, 'second page of two');
    const second = await names();
    expect(second.filter((n) => first.includes(n))).toEqual([]);
    expect(new Set([...first, ...second]).size).toBe(12);
    expect(await text(page, '#page-info')).toBe('Page 2');
    expect(await page.getByRole('button', { name: 'Next ›' }).isDisabled()).toBe(true);

    await page.getByRole('button', { name: '‹ Previous' }).click();
    await until(names, (n) => n.length === 10, 'back to the first page');
    expect(await names()).toEqual(first);
    expect(await text(page, '#usage-text')).toBe('12 of 25 tokens used');
  });

  it('revokes access after a confirmation that names the token', async () => {
    await page.getByLabel('Search tokens by name or client ID').fill('Payroll');
    const row = page.locator('#token-rows tr', { hasText: 'Payroll_Integration' });
    await until(() => page.locator('#token-rows tr').count(), (n) => n === 1, 'the Payroll row alone');

    // Cancel keeps it, and gives focus back to the button that opened the dialog.
    await row.getByRole('button', { name: 'Revoke Access' }).click();
    const dialog = page.locator('#revoke-dialog');
    await dialog.waitFor();
    const says = await dialog.innerText();
    expect(says).toContain('Payroll_Integration');
    expect(says).toContain(payroll.client_id);
    expect(says).toMatch(/every integration using this token .* stops working/i);
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(await dialog.isVisible()).toBe(false);
    expect(await page.evaluate(() => document.activeElement?.getAttribute('aria-label'))).toBe(
      'Revoke access for Payroll_Integration',
    );
    expect(await exchange(server.url, payroll.client_id, payroll.secret)).toBe(200);

    await row.getByRole('button', { name: 'Revoke Access' }).click();
    await dialog.getByRole('button', { name: 'Revoke Access' }).click();
    await until(() => text(page, '#flash'), (t) => t.includes('Access revoked for “Payroll_Integration”'), 'flash');
    expect(await dialog.isVisible()).toBe(false);
    await until(() => text(page, '#list-empty'), (t) => t.includes('No token matches'), 'row gone');
    expect(await text(page, '#usage-text')).toBe('11 of 25 tokens used');
    expect(await exchange(server.url, payroll.client_id, payroll.secret)).toBe(401);
    await page.getByLabel('Search tokens by name or client ID').fill('');
    await until(() => page.locator('#token-rows tr').count(), (n) => n === 10, 'the full list again');
  });

  it('explains the limit and disables Generate at it', async () => {
    // Its own browser context: cookies are per host, not per port, so the two servers' sessions must not share a jar.
    const limitContext = await newWatchedContext(browser, w, { permissions: ['clipboard-read', 'clipboard-write'] });
    const limitPage = await limitContext.newPage();
    await signInToTokens(limitPage, limitServer);
    const limitBearer = await apiLogin(limitServer.url);
    await apiGenerate(limitServer.url, limitBearer, 'First_Of_Two', ['jobs']);
    await limitPage.reload();
    await until(() => text(limitPage, '#usage-text'), (t) => t === '1 of 2 tokens used', 'usage 1 of 2');

    // The form is open with one slot left when another administrator takes it: the API's 409 is explained.
    await limitPage.getByRole('button', { name: '+ Generate a Token' }).click();
    await limitPage.getByLabel('Token Name').fill('Third_Of_Two');
    await limitPage.getByRole('checkbox', { name: /Job API/ }).check();
    await apiGenerate(limitServer.url, limitBearer, 'Second_Of_Two', ['jobs']);
    await limitPage.getByRole('button', { name: 'Generate', exact: true }).click();
    await until(() => text(limitPage, '#generate-error'), (t) => t.length > 0, 'limit error on the form');

    const reason = '2 of 2 tokens used — revoke one to generate another.';
    await until(() => text(limitPage, '#limit-reason'), (t) => t === reason, 'limit reason');
    expect(await limitPage.getByRole('button', { name: '+ Generate a Token' }).isDisabled()).toBe(true);
    expect(await limitPage.getByRole('button', { name: 'Generate', exact: true }).isDisabled()).toBe(true);
    expect(
      await limitPage.getByRole('button', { name: '+ Generate a Token' }).getAttribute('aria-describedby'),
    ).toBe('limit-reason');

    await limitPage.reload();
    await until(() => text(limitPage, '#limit-reason'), (t) => t === reason, 'limit reason after reload');
    expect(await limitPage.getByRole('button', { name: '+ Generate a Token' }).isDisabled()).toBe(true);

    // Revoking one frees a slot.
    await limitPage.locator('#token-rows tr', { hasText: 'First_Of_Two' }).getByRole('button', { name: 'Revoke Access' }).click();
    await limitPage.locator('#revoke-dialog').getByRole('button', { name: 'Revoke Access' }).click();
    await until(() => text(limitPage, '#usage-text'), (t) => t === '1 of 2 tokens used', 'usage after revoke');
    expect(await limitPage.locator('#limit-reason').isHidden()).toBe(true);
    expect(await limitPage.getByRole('button', { name: '+ Generate a Token' }).isEnabled()).toBe(true);
    await limitContext.close();
  });

  it('says how long to wait when sign-in is refused for too many failures (429 with Retry-After)', async () => {
    const throttled = await (await newWatchedContext(browser, w)).newPage();
    await throttled.goto(`${limitServer.url}/admin`);
    const form = throttled.locator('#signin-form');
    await form.getByLabel('Email').fill('nobody@example.com');
    for (const attempt of [1, 2, 3]) {
      await form.getByLabel('Password').fill(`wrong password ${attempt}`);
      const answer = throttled.waitForResponse((r) => r.url().endsWith('/admin/api/login'));
      await form.getByRole('button', { name: 'Sign in' }).click();
      expect((await answer).status()).toBe(attempt < 3 ? 401 : 429);
      await until(() => text(throttled, '#signin-submit'), (t) => t === 'Sign in', 'the form ready again');
    }
    // Retry-After is the rest of the 15-minute window: the page says so in words, not "try again later".
    expect(await text(throttled, '#signin-error')).toMatch(/^Too many failed sign-in attempts\. Try again in 1[45] minutes \(at \d\d:\d\d\)\.$/);
    await throttled.context().close();
  });

  it('keeps the audit log at its own address, and an ended session there leads to the sign-in form', async () => {
    // Failed sign-ins with this administrator's address (two more: one earlier test failed too): one event, counting them.
    for (let i = 0; i < 2; i += 1) {
      const res = await fetch(`${server.url}/admin/api/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email: ADMIN.email, password: 'not the password' }) });
      expect(res.status).toBe(401);
    }
    await page.locator('#main-nav').getByRole('link', { name: 'Audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    await until(() => text(page, '#audit-rows tr[data-action="admin.sign_in_failed"]'), (t) => /Sign-in failed[\s\S]*[2-9] attempts since/.test(t), 'the failed sign-ins row');
    expect(new URL(page.url()).hash).toBe('#/audit');
    expect(await page.locator('#nav-audit').getAttribute('aria-current')).toBe('page');
    await page.reload();
    await page.locator('#audit-rows tr').first().waitFor();
    expect(await page.getByRole('heading', { level: 1 }).innerText()).toBe('Audit log');

    // The session ends under the page (expired, or signed out elsewhere): going back to the tokens says so.
    await context.clearCookies();
    await page.getByRole('button', { name: '‹ System Access Token' }).click();
    await until(() => text(page, '#signin-error'), (t) => t.includes('Your session has ended'), 'the session-ended notice');
    expect(await page.locator('#signin-view').isVisible()).toBe(true);
    expect(await page.title()).toBe('Sign in · System Access Token');
    await signInToTokens(page, server);
  });

  it('signs out, and the session is over', async () => {
    await page.locator('#main-nav').getByRole('link', { name: 'Audit log' }).click();
    await until(() => page.title(), (t) => t === 'Audit log · System Access Token', 'the audit log in the title');
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await until(() => text(page, '#signin-error'), (t) => t.includes('signed out'), 'signed-out notice');
    expect(await page.title()).toBe('Sign in · System Access Token'); // nothing of the screen left, in the tab strip either
    expect(await page.locator('#tokens-view').isHidden()).toBe(true);
    expect(await page.locator('#token-rows tr').count()).toBe(0);
    const status = await page.evaluate(async () => (await fetch('/admin/api/me', { credentials: 'same-origin' })).status);
    expect(status).toBe(401);
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    expect(await page.locator('#tokens-view').isHidden()).toBe(true);
  });

  it('ran nothing it should not, and asked nothing of any host but the server', async () => {
    expect(w.problems).toEqual([]);
    expect(w.requests.length).toBeGreaterThan(10);
    const elsewhere = w.requests.filter((u) => new URL(u).hostname !== '127.0.0.1');
    expect(elsewhere).toEqual([]);
  });
});
