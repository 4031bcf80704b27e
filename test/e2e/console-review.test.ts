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
});
