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
});
