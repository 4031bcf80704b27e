// The console as a user (or a test, or a screen reader) finds its fields: by their visible labels. Only the screen
// on show is in the document, so "Email" at sign-in names one field, not also the hidden "Forgot your password?"
// and "Invite an administrator" fields; "Password" at sign-in is not also the hidden profile and invitation fields.
import type { Browser, Page } from 'playwright-core';
import { closeAll, openConsole, type Watch } from '../support/browser.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };

describeEmbedded('admin console: a label names one field of the screen on show (Chromium)', () => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let w: Watch;

  beforeAll(async () => {
    db = await createTestDb('embedded');
    server = await startServer(db);
    ({ browser, page, watch: w } = await openConsole());
  });

  afterAll(() => closeAll(browser, server, db));

  it('signs in, invites, opens Profile and signs out using page-wide labels', async () => {
    await page.goto(`${server.url}/admin`);
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    expect(await page.getByLabel('Email').count()).toBe(1);
    expect(await page.getByLabel('Password').count()).toBe(1);
    await page.getByLabel('Email').fill(ADMIN.email);
    await page.getByLabel('Password').fill(ADMIN.password);
    await page.getByRole('button', { name: 'Sign in', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    expect(await page.getByLabel('Email').count()).toBe(0);

    await page.getByRole('link', { name: 'Administrators' }).click();
    await page.getByRole('heading', { level: 1, name: 'Administrators' }).waitFor();
    expect(await page.getByLabel('Email').count()).toBe(1);
    await page.getByLabel('Email').fill('labelled@example.com');
    await page.getByRole('button', { name: 'Send invitation' }).click();
    await page.getByText('Invitation sent to labelled@example.com').waitFor();

    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Profile' }).click();
    await page.getByRole('heading', { level: 1, name: 'Profile' }).waitFor();
    expect(await page.getByLabel('Current password').count()).toBe(1);
    expect(await page.getByLabel('New password', { exact: true }).count()).toBe(1);
    expect(await page.getByLabel('Email').count()).toBe(0);

    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await page.getByRole('button', { name: 'Sign in', exact: true }).waitFor();
    expect(await page.getByLabel('Email').count()).toBe(1);
    expect(await page.getByLabel('Password').count()).toBe(1);

    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByRole('button', { name: 'Send the link' }).waitFor();
    expect(await page.getByLabel('Email').count()).toBe(1);
    expect(w.problems).toEqual([]);
  });
});
