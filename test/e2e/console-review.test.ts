// Findings of a second black-box review of the console, each as an administrator meets it: a mailed link's page opened
// in a browser that is signed in, then left for the console ("Back to sign in" showed the sign-in form); a
// right-to-left token name read in two visual orders on one screen; the token list's page, filter and search and the
// audit log's page lost on reload, Back and in a copied link; and Profile's "Sign out all other sessions" acting
// without asking. Debian's Chromium through playwright-core, against a real server on each database of the run.
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { call, signIn as apiSignIn, tokenBody } from '../support/admin-api.js';
import { closeAll, newWatchedContext, openConsole, signIn, until, type Watch } from '../support/browser.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type TestSmtp } from '../support/smtp.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };

describe.each(testDatabases())('console review findings on %s (Chromium)', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let smtp: TestSmtp;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let w: Watch;
  let bearer: string;

  const api = (method: string, path: string, json?: unknown) => call(server, method, path, { token: bearer, json });
  const heading = (p: Page, name: string | RegExp) => p.getByRole('heading', { level: 1, name }).waitFor();

  beforeAll(async () => {
    db = await createTestDb(kind);
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, MAIL_POLL_INTERVAL_MS: '100' });
    bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
    ({ browser, context, page, watch: w } = await openConsole());
    await signIn(page, server, ADMIN);
  });

  afterAll(async () => {
    await closeAll(browser, server, db);
    await smtp?.close();
  });

  describe('a mailed link opened in a signed-in browser', () => {
    it('opens its own page, and "Back to sign in" finds the session: the console, not the sign-in form', async () => {
      for (const route of ['forgot', 'reset', 'invite']) {
        const p = await context.newPage();
        await p.goto(`${server.url}/admin#/${route}`);
        await p.reload(); // as a mailed link opened in a new tab: the page starts on the public route
        await heading(p, route === 'forgot' ? 'Reset your password' : route === 'reset' ? 'Choose a new password' : 'Accept your invitation');
        await p.getByRole('link', { name: 'Back to sign in' }).click();
        await heading(p, 'System Access Token');
        await p.getByText(/\d+ of 25 tokens used/).waitFor();
        expect(await p.locator('#account-email').innerText()).toBe(ADMIN.email);
        await p.close();
      }
      expect(w.problems).toEqual([]);
    });

    it('without a session cookie, "Back to sign in" shows the sign-in form and asks nothing', async () => {
      const fresh = await newWatchedContext(browser, w);
      const p = await fresh.newPage();
      const noise: string[] = [];
      p.on('response', (res) => res.status() >= 400 && noise.push(`${res.status()} ${res.url()}`));
      await p.goto(`${server.url}/admin#/forgot`);
      await heading(p, 'Reset your password');
      await p.getByRole('link', { name: 'Back to sign in' }).click();
      await heading(p, 'Sign in');
      expect(noise).toEqual([]);
      await fresh.close();
    });

    it("an invitation's link still works while another administrator is signed in there: accepting signs in as the invitee", async () => {
      const invitee = `invitee-${kind}@example.com`;
      expect((await api('POST', '/admins', { email: invitee })).status).toBe(201);
      await smtp.waitFor(() => smtp.to(invitee).some((m) => m.subject.includes('invited')));
      const mail = smtp.to(invitee).find((m) => m.subject.includes('invited'))!;
      const link = /(https?:\/\/\S+\/admin#\/invite\?token=[A-Za-z0-9_%-]+)/.exec(mail.text)![1]!;
      const p = await context.newPage();
      await p.goto(link);
      await heading(p, 'Accept your invitation'); // not the signed-in administrator's console
      const form = p.locator('#onetime-form');
      await form.getByLabel('New password', { exact: true }).fill('invitee-password-1');
      await form.getByLabel('Repeat the new password').fill('invitee-password-1');
      await form.getByRole('button', { name: 'Set password and sign in' }).click();
      await heading(p, 'System Access Token');
      expect(await p.locator('#account-email').innerText()).toBe(invitee);
      // The browser's cookie is the invitee's now: signed out, and the first page signed in again as ADMIN.
      await p.getByRole('button', { name: 'Account menu' }).click();
      await p.getByRole('menuitem', { name: 'Sign out' }).click();
      await heading(p, 'Sign in');
      await p.close();
      await signIn(page, server, ADMIN);
      expect(w.problems).toEqual([]);
    });
  });

  it('shows a right-to-left token name in one visual order everywhere: list, breadcrumb, heading, dialogs, audit log', async () => {
    const NAME = 'مرحبا_Token';
    const created = await api('POST', '/tokens', tokenBody({ name: NAME }));
    expect(created.status).toBe(201);
    /** Whether "Token" is drawn left of the Arabic word in the text node under `loc` that holds the name. */
    const order = (loc: Locator) =>
      loc.evaluate((root: any, name: string) => {
        const d = (globalThis as any).document;
        const walker = d.createTreeWalker(root, 4 /* NodeFilter.SHOW_TEXT */);
        for (let n = walker.nextNode(); n; n = walker.nextNode()) {
          const at = String(n.textContent).indexOf(name);
          if (at < 0) continue;
          const left = (from: number, to: number) => {
            const range = d.createRange();
            range.setStart(n, at + from);
            range.setEnd(n, at + to);
            return range.getBoundingClientRect().left as number;
          };
          const latin = name.indexOf('Token');
          return left(latin, latin + 5) < left(0, 5) ? 'Token first' : 'Arabic first';
        }
        return 'name not found';
      }, NAME);

    const seen: Record<string, string> = {};
    await page.goto(`${server.url}/admin#/token?id=${created.body.id}`);
    await page.getByRole('heading', { level: 1, name: NAME }).waitFor();
    seen.breadcrumb = await order(page.locator('#token-crumb'));
    seen.heading = await order(page.locator('#token-title'));
    await page.locator('#token-edit').click();
    await page.locator('#edit-dialog').waitFor();
    seen['edit dialog'] = await order(page.locator('#edit-title'));
    await page.keyboard.press('Escape');
    await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'System Access Token' }).click();
    const row = page.locator('#token-rows tr', { hasText: NAME });
    await row.waitFor();
    seen['list row'] = await order(row.locator('.col-name'));
    await row.getByRole('button', { name: `Revoke access for ${NAME}` }).click();
    seen['revoke dialog'] = await order(page.locator('#revoke-title'));
    await page.keyboard.press('Escape');
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit log' }).click();
    const event = page.locator('#audit-rows tr', { hasText: NAME }).first();
    await event.waitFor();
    seen['audit log'] = await order(event.locator('.col-token'));
    expect(seen).toEqual({
      breadcrumb: 'Token first',
      heading: 'Token first',
      'edit dialog': 'Token first',
      'list row': 'Token first',
      'revoke dialog': 'Token first',
      'audit log': 'Token first',
    });
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'System Access Token' }).click();
    await heading(page, 'System Access Token');
    expect(w.problems).toEqual([]);
  });

  it("keeps the token list's filter, search and page, and the audit log's page, in the address: reload, Back, a copied link", async () => {
    for (let i = 1; i <= 12; i++) expect((await api('POST', '/tokens', tokenBody({ name: `Route_HR_${String(i).padStart(2, '0')}` }))).status).toBe(201);
    for (let i = 1; i <= 6; i++) {
      const made = await api('POST', '/tokens', tokenBody({ name: `Route_tmp_${i}` }));
      expect((await api('POST', `/tokens/${made.body.id}/revoke`)).status).toBe(200);
    }
    const rows = (p: Page) => p.locator('#token-rows tr .token-name').allInnerTexts();
    const hash = (p: Page) => decodeURIComponent(new URL(p.url()).hash);
    const pageTwo = ['Route_HR_02', 'Route_HR_01'];

    await page.goto(`${server.url}/admin`);
    await page.reload(); // the tokens made through the API show
    await heading(page, 'System Access Token');
    await page.getByRole('button', { name: 'Active', exact: true }).click();
    await page.getByLabel('Search tokens by name or client ID').fill('Route_HR');
    await until(async () => hash(page), (h) => h === '#/?status=active&q=Route_HR', 'the search in the address');
    await until(() => rows(page), (r) => r.length === 10 && r.every((n) => n.startsWith('Route_HR_')), 'the first page of the search');
    await page.getByRole('button', { name: 'Next' }).click();
    await until(() => rows(page), (r) => JSON.stringify(r) === JSON.stringify(pageTwo), 'the second page');
    expect(hash(page)).toMatch(/^#\/\?status=active&q=Route_HR&cursor=[A-Za-z0-9_-]+$/);
    const listed = page.url();

    // A reload shows the same list: filter, search, page (and its number), and Previous still goes one page back.
    await page.reload();
    await until(() => rows(page), (r) => JSON.stringify(r) === JSON.stringify(pageTwo), 'the second page after a reload');
    expect(await page.getByLabel('Search tokens by name or client ID').inputValue()).toBe('Route_HR');
    expect(await page.getByRole('button', { name: 'Active', exact: true }).getAttribute('aria-pressed')).toBe('true');
    expect(await page.locator('#page-info').innerText()).toBe('Page 2');
    await page.getByRole('button', { name: 'Previous' }).click();
    await until(() => rows(page), (r) => r.length === 10 && r[0] === 'Route_HR_12', 'the first page by Previous');
    // Back and Forward move between the pages; a token's view and Back return to the page it was opened from.
    await page.goBack();
    await until(() => rows(page), (r) => JSON.stringify(r) === JSON.stringify(pageTwo), 'the second page by Back');
    await page.locator('#token-rows').getByRole('link', { name: 'Route_HR_01' }).click();
    await heading(page, 'Route_HR_01');
    await page.goBack();
    await until(() => rows(page), (r) => JSON.stringify(r) === JSON.stringify(pageTwo), 'the second page by Back from a token');
    // The breadcrumb of a token's view leads back to the list as it was left too.
    await page.locator('#token-rows').getByRole('link', { name: 'Route_HR_02' }).click();
    await heading(page, 'Route_HR_02');
    await page.getByRole('navigation', { name: 'Breadcrumb' }).getByRole('link', { name: 'System Access Token' }).click();
    await until(() => rows(page), (r) => JSON.stringify(r) === JSON.stringify(pageTwo), 'the second page by the breadcrumb');

    // A copied link opens the same list in another tab.
    const copy = await context.newPage();
    await copy.goto(listed);
    await until(() => rows(copy), (r) => JSON.stringify(r) === JSON.stringify(pageTwo), 'the second page from a copied link');
    expect(await copy.getByLabel('Search tokens by name or client ID').inputValue()).toBe('Route_HR');

    // Values the page cannot use fall back to the defaults, with no error: a status it does not know, a cursor that is
    // not one, a cursor this server did not issue, a search the API refuses (a NUL).
    for (const bad of ['#/?status=bogus&cursor=%21%21', '#/?cursor=bm90LWEtY3Vyc29y', '#/?q=%00']) {
      await copy.goto(`${server.url}/admin${bad}`);
      await copy.reload();
      await until(() => rows(copy), (r) => r.length === 10 && r[0] === 'Route_HR_12', `the first page of every token for ${bad}`);
      await until(async () => hash(copy), (h) => h === '#/', `the address of the defaults for ${bad}`);
      expect(await copy.locator('#list-error').isHidden()).toBe(true);
      expect(await copy.getByRole('button', { name: 'All', exact: true }).getAttribute('aria-pressed')).toBe('true');
      expect(await copy.getByLabel('Search tokens by name or client ID').inputValue()).toBe('');
    }

    // The audit log's page: Older, then a reload, Back, a copied link and a bad cursor.
    // Each event by what and which token (its "when" is relative, "7 seconds ago", and moves on).
    const events = (p: Page) =>
      p.locator('#audit-rows tr').evaluateAll((trs: any[]) => trs.map((tr) => `${tr.querySelector('.col-event')?.textContent} ${tr.querySelector('.col-token')?.textContent}`));
    await page.getByRole('navigation', { name: 'Console' }).getByRole('link', { name: 'Audit log' }).click();
    await heading(page, 'Audit log');
    const newest = await until(() => events(page), (e) => e.length === 20, 'the newest events');
    await page.getByRole('button', { name: 'Older' }).click();
    const older = await until(() => events(page), (e) => e.length > 0 && e[0] !== newest[0], 'the older events');
    expect(hash(page)).toMatch(/^#\/audit\?cursor=[A-Za-z0-9_-]+$/);
    const audited = page.url();
    await page.reload();
    await until(() => events(page), (e) => e[0] === older[0], 'the older events after a reload');
    expect(await page.locator('#audit-page-info').innerText()).toBe('Page 2');
    await page.goBack();
    await until(() => events(page), (e) => e[0] === newest[0], 'the newest events by Back');
    await copy.goto(audited);
    await until(() => events(copy), (e) => e[0] === older[0], 'the older events from a copied link');
    await copy.goto(`${server.url}/admin#/audit?cursor=bm90LWEtY3Vyc29y`);
    await copy.reload();
    await until(() => events(copy), (e) => e[0] === newest[0], 'the newest events for a foreign cursor');
    await until(async () => hash(copy), (h) => h === '#/audit', 'the address of the newest events');
    expect(await copy.locator('#audit-error').isHidden()).toBe(true);
    await copy.close();
    expect(w.problems).toEqual([]);
  }, 60_000); // 18 tokens made, two pages in two tabs, reloads and history walks: ~10 s alone, over 30 s under CI's load

  it('asks before "Sign out all other sessions": focus on Cancel, Escape changes nothing and gives the focus back', async () => {
    const others = [await apiSignIn(server, ADMIN.email, ADMIN.password), await apiSignIn(server, ADMIN.email, ADMIN.password)];
    const live = async () => Promise.all(others.map(async (o) => (await call(server, 'GET', '/me', { token: o.token })).status));
    const focused = () => page.evaluate(() => (globalThis as any).document.activeElement?.id as string);
    await page.goto(`${server.url}/admin#/profile`);
    await page.reload();
    await heading(page, 'Profile');
    const dialog = page.locator('#revoke-others-dialog');
    const button = page.getByRole('button', { name: 'Sign out all other sessions' });
    await until(() => button.isEnabled(), (on) => on, 'other sessions listed');

    await button.click();
    await dialog.waitFor({ state: 'visible', timeout: 5000 }); // before, the sessions ended at once, with no dialog
    expect(await dialog.getByRole('heading').innerText()).toBe('Sign out all other sessions?');
    expect(await dialog.locator('#revoke-others-text').innerText()).toMatch(/^\d+ other sessions are signed out at once/);
    expect(await focused()).toBe('revoke-others-cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect(await focused()).toBe('revoke-others');
    expect(await live()).toEqual([200, 200]);

    await button.click();
    await dialog.getByRole('button', { name: 'Sign out other sessions' }).click();
    await until(() => page.locator('#profile-flash').innerText(), (t) => /^Signed out \d+ other sessions\.$/.test(t), 'the notice');
    await dialog.waitFor({ state: 'hidden' });
    expect(await live()).toEqual([401, 401]);
    expect(await button.isDisabled()).toBe(true);
    bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token; // the test's own API session ended too
    expect(w.problems).toEqual([]);
  });
});
