// The console's account pages in Chromium against a real server and a real SMTP server: the account menu, Profile
// (change password, sessions with revoke), Administrators (list, invite, remove, withdraw a pending invitation), and
// the pages reached from the mailed links (accept an invitation, reset a password), each link read from the received
// mail and opened.
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { call, signIn as apiSignIn } from '../support/admin-api.js';
import { newWatchedContext, openConsole, signIn, signInHere, until, type Watch } from '../support/browser.js';
import { describeEmbedded, createTestDb, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';
import { startSmtp, type ReceivedMail, type TestSmtp } from '../support/smtp.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };
const COLLEAGUE = 'colleague@example.com';
const TYPO = 'colleague@exmaple.com';

const text = (page: Page, selector: string) => page.locator(selector).innerText();
/** The id of the focused element. */
const activeId = (page: Page) => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id);

function linkIn(mail: ReceivedMail, page: 'invite' | 'reset'): string {
  const m = new RegExp(`(https?://\\S+/admin#/${page}\\?token=[A-Za-z0-9_%-]+)`).exec(mail.text);
  if (!m) throw new Error(`no ${page} link in: ${mail.text}`);
  return m[1]!;
}

describeEmbedded('admin console: account, profile, administrators, mailed links (Chromium)', () => {
  let db: TestDb;
  let smtp: TestSmtp;
  let server: TestServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let password = ADMIN.password;
  let w: Watch;

  async function mail(to: string, subject: string, count = 1): Promise<ReceivedMail> {
    const pick = () => smtp.to(to).filter((m) => m.subject.includes(subject));
    await smtp.waitFor(() => pick().length >= count);
    return pick()[count - 1]!;
  }

  beforeAll(async () => {
    db = await createTestDb('embedded');
    smtp = await startSmtp();
    server = await startServer(db, { SMTP_URL: smtp.url, MAIL_POLL_INTERVAL_MS: '100' });
    ({ browser, context, page, watch: w } = await openConsole());
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await smtp?.close();
    await db?.drop();
  });

  it('shows the account menu with the initials: Profile and Sign out', async () => {
    await signIn(page, server, { email: ADMIN.email, password });
    const button = page.getByRole('button', { name: 'Account menu' });
    expect(await text(page, '#account-initials')).toBe('FA');
    expect(await button.getAttribute('aria-expanded')).toBe('false');
    await button.click();
    expect(await button.getAttribute('aria-expanded')).toBe('true');
    const items = page.getByRole('menuitem');
    expect(await items.allInnerTexts()).toEqual(['Profile', 'Sign out']);
    await page.keyboard.press('Escape');
    expect(await page.locator('#account-menu').isHidden()).toBe(true);
    expect(await page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id)).toBe(
      'account-button',
    );
  });

  it('Profile: lists the sessions and signs another one out', async () => {
    const other = await apiSignIn(server, ADMIN.email, password);
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Profile' }).click();
    await page.getByRole('heading', { level: 1, name: 'Profile' }).waitFor();
    expect(page.url()).toBe(`${server.url}/admin#/profile`);
    expect(await text(page, '#profile-email')).toBe(ADMIN.email);
    const rows = page.locator('#session-rows tr');
    await until(() => rows.count(), (n) => n === 2, 'two sessions');
    expect(await page.locator('#session-rows tr', { hasText: 'This session' }).count()).toBe(1);
    expect(await page.locator('#session-rows tr', { hasText: 'Chrome' }).count()).toBeGreaterThanOrEqual(1);

    const rowButton = page.locator('#session-rows tr', { hasNotText: 'This session' }).getByRole('button', { name: /Sign out the session/ });
    const dialog = page.locator('#revoke-session-dialog');
    const focused = () => page.evaluate(() => (globalThis as any).document.activeElement?.id as string);
    // It asks first (focus on Cancel); Escape changes nothing and gives the focus back to the row's button.
    await rowButton.click();
    await dialog.waitFor({ state: 'visible', timeout: 5000 }); // before, the session ended at once, with no dialog
    expect(await dialog.getByRole('heading').innerText()).toBe('Sign out this session?');
    expect(await dialog.locator('#revoke-session-text').innerText()).toMatch(/ from .+ is signed out at once and must sign in again\. This session stays signed in\.$/);
    expect(await focused()).toBe('revoke-session-cancel');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'hidden' });
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.getAttribute('aria-label') as string)).toMatch(/^Sign out the session/);
    expect((await call(server, 'GET', '/me', { token: other.token })).status).toBe(200);

    await rowButton.click();
    await dialog.getByRole('button', { name: 'Sign out', exact: true }).click();
    await until(() => rows.count(), (n) => n === 1, 'one session left');
    await dialog.waitFor({ state: 'hidden' });
    expect(await text(page, '#profile-flash')).toContain('was signed out');
    expect((await call(server, 'GET', '/me', { token: other.token })).status).toBe(401);
  });

  it('Profile: signs out every other session at once', async () => {
    const others = [await apiSignIn(server, ADMIN.email, password), await apiSignIn(server, ADMIN.email, password)];
    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Profile' }).waitFor();
    const rows = page.locator('#session-rows tr');
    await until(() => rows.count(), (n) => n === 3, 'three sessions');
    await page.getByRole('button', { name: 'Sign out all other sessions' }).click();
    await page.locator('#revoke-others-dialog').getByRole('button', { name: 'Sign out other sessions' }).click();
    await until(() => text(page, '#profile-flash'), (t) => t === 'Signed out 2 other sessions.', 'revoked notice');
    await until(() => rows.count(), (n) => n === 1, 'this session only');
    expect(await rows.innerText()).toContain('This session');
    expect(await page.getByRole('button', { name: 'Sign out all other sessions' }).isDisabled()).toBe(true);
    for (const other of others) expect((await call(server, 'GET', '/me', { token: other.token })).status).toBe(401);
    expect((await call(server, 'GET', '/me', { token: (await apiSignIn(server, ADMIN.email, password)).token })).status).toBe(200);
  });

  it('Profile: changes the password, with the errors at their fields', async () => {
    const form = page.locator('#password-form');
    await form.getByLabel('Current password').fill('not-my-password');
    await form.getByLabel('New password', { exact: true }).fill('short');
    await form.getByLabel('Repeat the new password').fill('short');
    await form.getByRole('button', { name: 'Change password' }).click();
    expect(await text(page, '#new-password-error')).toBe('Use at least 12 characters.');
    // Longer than 256: said so (the field used to cut it silently, and then the two fields differed).
    await form.getByLabel('New password', { exact: true }).fill('p'.repeat(300));
    await form.getByLabel('Repeat the new password').fill('p'.repeat(300));
    await form.getByRole('button', { name: 'Change password' }).click();
    expect(await text(page, '#new-password-error')).toBe('Use at most 256 characters.');

    await form.getByLabel('New password', { exact: true }).fill('a-brand-new-password');
    await form.getByLabel('Repeat the new password').fill('a-brand-new-passwor');
    await form.getByRole('button', { name: 'Change password' }).click();
    expect(await text(page, '#confirm-password-error')).toBe('The two passwords are not the same.');

    await form.getByLabel('Repeat the new password').fill('a-brand-new-password');
    await form.getByRole('button', { name: 'Change password' }).click();
    await until(() => text(page, '#current-password-error'), (t) => t === 'Is not correct.', 'current password error');
    expect(await form.getByLabel('Current password').getAttribute('aria-invalid')).toBe('true');

    await form.getByLabel('Current password').fill(password);
    await form.getByRole('button', { name: 'Change password' }).click();
    await until(() => text(page, '#profile-flash'), (t) => t.includes('password was changed'), 'changed notice');
    password = 'a-brand-new-password';
    expect(await form.getByLabel('Current password').inputValue()).toBe('');
    expect(await form.getByLabel('New password', { exact: true }).inputValue()).toBe('');
    const notice = await mail(ADMIN.email, 'password was changed');
    expect(notice.text).toContain(ADMIN.email);
    expect((await call(server, 'POST', '/login', { json: { email: ADMIN.email, password } })).status).toBe(200);
  });

  it('Administrators: lists, invites (refusing an existing administrator), and the invitee accepts from the mail', async () => {
    await page.getByRole('link', { name: 'Administrators' }).click();
    await page.getByRole('heading', { level: 1, name: 'Administrators' }).waitFor();
    expect(await page.getByRole('link', { name: 'Administrators' }).getAttribute('aria-current')).toBe('page');
    const rows = page.locator('#admin-rows tr');
    await until(() => rows.count(), (n) => n === 1, 'one administrator');
    expect(await rows.first().innerText()).toContain('You');

    const invite = page.locator('#invite-form');
    const typed = `f${ADMIN.email.slice(1).toUpperCase()}`; // the same address in other case, starting in lower case
    await invite.getByLabel('Email').fill(typed);
    await invite.getByRole('button', { name: 'Send invitation' }).click();
    await until(() => text(page, '#invite-email-error'), (t) => t.includes('already an administrator'), 'admin_exists at the field');
    expect(await text(page, '#invite-email-error')).toContain(typed); // as typed: not capitalised as a sentence

    await invite.getByLabel('Email').fill(COLLEAGUE);
    await invite.getByRole('button', { name: 'Send invitation' }).click();
    await until(() => text(page, '#admins-flash'), (t) => t.includes(`Invitation sent to ${COLLEAGUE}`), 'invitation sent');
    expect(await invite.getByLabel('Email').inputValue()).toBe('');
    // The button was disabled while the request ran, which drops its focus: focus is back in the form, not on the body.
    const focused = () => page.evaluate(() => (globalThis as unknown as { document: { activeElement: { id: string } } }).document.activeElement.id);
    await until(focused, (id) => id === 'invite-email', 'focus on the Email field for the next invitation');

    const link = linkIn(await mail(COLLEAGUE, 'invited'), 'invite');
    const invitee = await newWatchedContext(browser, w);
    const p2 = await invitee.newPage();
    await p2.goto(link);
    await p2.getByRole('heading', { level: 1, name: 'Accept your invitation' }).waitFor();
    // The token left the address bar at once.
    expect(p2.url()).toBe(`${server.url}/admin#/invite`);
    const form = p2.locator('#onetime-form');
    await form.getByLabel('New password', { exact: true }).fill('colleague-password');
    await form.getByLabel('Repeat the new password').fill('colleague-password');
    await form.getByRole('button', { name: 'Set password and sign in' }).click();
    await p2.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    expect(await text(p2, '#account-email')).toBe(COLLEAGUE);
    expect(p2.url()).toBe(`${server.url}/admin#/`);

    // The link works once.
    const p3 = await invitee.newPage();
    await p3.goto(link);
    const form3 = p3.locator('#onetime-form');
    await form3.getByLabel('New password', { exact: true }).fill('another-password');
    await form3.getByLabel('Repeat the new password').fill('another-password');
    await form3.getByRole('button', { name: 'Set password and sign in' }).click();
    await until(() => text(p3, '#onetime-error'), (t) => t.includes('no longer works'), 'used link refused');
    await p3.close();

    await page.reload();
    await page.getByRole('heading', { level: 1, name: 'Administrators' }).waitFor();
    await until(() => rows.count(), (n) => n === 2, 'two administrators');

    // Remove the colleague: a confirmation that names them; they are signed out at once.
    await page.locator('#admin-rows tr', { hasText: COLLEAGUE }).getByRole('button', { name: `Remove ${COLLEAGUE}` }).click();
    expect(await text(page, '#remove-admin-title')).toContain(COLLEAGUE);
    await page.locator('#remove-admin-dialog').getByRole('button', { name: 'Remove administrator' }).click();
    await until(() => text(page, '#admins-flash'), (t) => t.includes('was removed'), 'removed notice');
    await until(() => rows.count(), (n) => n === 1, 'one administrator again');
    expect(await page.locator('#admin-rows tr').innerText()).toContain('The last administrator stays');

    await p2.getByRole('link', { name: 'Administrators' }).click();
    await until(() => text(p2, '#signin-error'), (t) => t.includes('session has ended'), 'the removed colleague is signed out');
    await invitee.close();
  });

  it('Administrators: lists the pending invitations and withdraws one, with the keyboard, after a confirmation', async () => {
    const rows = page.locator('#invitation-rows tr');
    await until(() => text(page, '#invitations-empty'), (t) => t.includes('No invitation is waiting'), 'no pending invitation');
    expect(await page.locator('#invitations-wrap').isHidden()).toBe(true);

    // Refreshed after inviting: the new invitation is listed at once, with who sent it and when its link expires.
    await page.locator('#invite-form').getByLabel('Email').fill(TYPO);
    await page.locator('#invite-form').getByRole('button', { name: 'Send invitation' }).click();
    await until(() => text(page, '#admins-flash'), (t) => t.includes(`Invitation sent to ${TYPO}`), 'invitation sent');
    await until(() => rows.count(), (n) => n === 1, 'one pending invitation');
    expect(await page.locator('#invitations-empty').isHidden()).toBe(true);
    const row = rows.first();
    expect(await row.locator('td[data-label="Email"]').innerText()).toBe(TYPO);
    expect(await row.locator('td[data-label="Invited by"]').innerText()).toContain(ADMIN.email);
    const pending = (await call(server, 'GET', '/invitations', { token: (await apiSignIn(server, ADMIN.email, password)).token })).body.items;
    expect(await row.locator('td[data-label="Link expires"] time').getAttribute('datetime')).toBe(pending[0].expires_at);
    const link = linkIn(await mail(TYPO, 'invited'), 'invite');

    // Keyboard only: Enter opens the confirmation on Cancel, Escape closes it and gives the focus back to the button.
    const withdraw = row.getByRole('button', { name: `Withdraw the invitation to ${TYPO}` });
    await withdraw.focus();
    await page.keyboard.press('Enter');
    const dialog = page.locator('#withdraw-invitation-dialog');
    await until(() => dialog.isVisible(), (v) => v, 'the confirmation');
    expect(await text(page, '#withdraw-invitation-title')).toBe(`Withdraw the invitation to ${TYPO}?`);
    expect(await activeId(page)).toBe('withdraw-invitation-cancel');
    await page.keyboard.press('Escape');
    await until(() => dialog.isVisible(), (v) => !v, 'the confirmation closed');
    expect(await withdraw.evaluate((b) => b === (globalThis as unknown as { document: { activeElement: unknown } }).document.activeElement)).toBe(true);
    expect(await rows.count()).toBe(1);

    await page.keyboard.press('Enter');
    await until(() => dialog.isVisible(), (v) => v, 'the confirmation again');
    await page.keyboard.press('Tab');
    expect(await activeId(page)).toBe('withdraw-invitation-confirm');
    await page.keyboard.press('Enter');
    await until(() => text(page, '#admins-flash'), (t) => t.includes(`The invitation to ${TYPO} was withdrawn`), 'withdrawn notice');
    await until(() => rows.count(), (n) => n === 0, 'no pending invitation left');
    expect(await page.locator('#invitations-empty').isVisible()).toBe(true);
    await until(() => activeId(page), (id) => id === 'invite-email', 'focus on the Email field, ready for the right address');

    // The mailed link no longer works.
    const token = decodeURIComponent(new URL(link).hash.split('token=')[1] ?? '');
    const accepted = await call(server, 'POST', '/invitations/accept', { json: { token, password: 'typo-password-123' } });
    expect([accepted.status, accepted.body.error]).toEqual([400, 'validation_failed']);

    // Inviting a pending address again replaces its invitation: the notice says the earlier link stopped working.
    const invite = async () => {
      await page.locator('#invite-form').getByLabel('Email').fill(TYPO);
      await page.locator('#invite-form').getByRole('button', { name: 'Send invitation' }).click();
    };
    await invite();
    await until(() => rows.count(), (n) => n === 1, 'pending again');
    expect(await text(page, '#admins-flash')).toBe(`Invitation sent to ${TYPO}. The link in it works once, for 72 hours.`);
    await invite();
    await until(
      () => text(page, '#admins-flash'),
      (t) => t === `Invitation sent to ${TYPO}. The link in it works once, for 72 hours. The link of the earlier invitation no longer works.`,
      'the notice of a replaced invitation',
    );
    await row.getByRole('button', { name: `Withdraw the invitation to ${TYPO}` }).click();
    await page.locator('#withdraw-invitation-dialog').getByRole('button', { name: /Withdraw/ }).click();
    await until(() => rows.count(), (n) => n === 0, 'withdrawn again');
  });

  it('says so when a sign-out fails, and stays signed in (the session is still live on the server)', async () => {
    await page.route('**/admin/api/logout', (route) =>
      route.fulfill({ status: 503, contentType: 'application/json', body: JSON.stringify({ error: 'unavailable', message: 'The database is unavailable. Try again later.' }) }),
    );
    try {
      await page.getByRole('button', { name: 'Account menu' }).click();
      await page.getByRole('menuitem', { name: 'Sign out' }).click();
      await until(() => text(page, '#signout-error'), (t) => t.includes('Sign-out did not complete, so you are still signed in'), 'the failure shown');
      expect(await page.locator('#signin-view').isHidden()).toBe(true);
      expect(await page.locator('#account').isVisible()).toBe(true);
      // The menu closed with its Sign out item: the focus is on the menu's button, not lost.
      expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('account-button');
    } finally {
      await page.unroute('**/admin/api/logout');
    }
    expect((await page.evaluate(() => fetch('/admin/api/me', { credentials: 'same-origin' }).then((r) => r.status)))).toBe(200);
  });

  it('ends its session when another tab signs this browser in again (its CSRF token fits the old session only)', async () => {
    // Another tab of this browser signs in: the session cookie is replaced under this page.
    const status = await page.evaluate(
      async ([email, pw]) =>
        (await fetch('/admin/api/login', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email, password: pw }), credentials: 'same-origin' })).status,
      [ADMIN.email, password] as const,
    );
    expect(status).toBe(200);
    // An action of this page (a POST with its CSRF token): inviting someone, on the Administrators page it shows.
    await page.locator('#invite-form').getByLabel('Email').fill('csrf-probe@example.com');
    await page.getByRole('button', { name: 'Send invitation' }).click();
    await until(() => text(page, '#signin-error'), (t) => t.includes('signed in again in another tab'), 'the session-over notice, not a CSRF message');
    // The other tab's session is this browser's now: the console opens with it (at the token list, as the next test expects).
    await page.goto(`${server.url}/admin`);
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
  });

  it('resets a forgotten password from the sign-in page through the mailed link', async () => {
    await page.getByRole('button', { name: 'Account menu' }).click();
    await page.getByRole('menuitem', { name: 'Sign out' }).click();
    await until(() => text(page, '#signin-error'), (t) => t.includes('signed out'), 'signed out');
    expect(await page.locator('#signout-error').isHidden()).toBe(true);
    expect((await page.evaluate(() => fetch('/admin/api/me', { credentials: 'same-origin' }).then((r) => r.status)))).toBe(401);

    await page.getByRole('link', { name: 'Forgot your password?' }).click();
    await page.getByRole('heading', { level: 1, name: 'Reset your password' }).waitFor();
    await page.locator('#forgot-form').getByLabel('Email').fill(ADMIN.email);
    await page.getByRole('button', { name: 'Send the link' }).click();
    await until(() => text(page, '#forgot-done'), (t) => t.includes('is on its way'), 'request accepted');

    const resetMail = await mail(ADMIN.email, 'Reset your');
    const link = linkIn(resetMail, 'reset');
    // The HTML part's link opens the page too: the mail shown in a tab of its own, its link clicked.
    const mailTab = await context.newPage();
    await mailTab.setContent(resetMail.html);
    await mailTab.getByRole('link', { name: link }).click();
    await mailTab.getByRole('heading', { level: 1, name: 'Choose a new password' }).waitFor();
    expect(mailTab.url()).toBe(`${server.url}/admin#/reset`);
    await mailTab.close();
    await page.goto(link);
    await page.getByRole('heading', { level: 1, name: 'Choose a new password' }).waitFor();
    expect(page.url()).toBe(`${server.url}/admin#/reset`);
    const form = page.locator('#onetime-form');
    await form.getByLabel('New password', { exact: true }).fill('eleven-char');
    await form.getByLabel('Repeat the new password').fill('eleven-char');
    await form.getByRole('button', { name: 'Set new password' }).click();
    expect(await text(page, '#onetime-password-error')).toBe('Use at least 12 characters.');
    await form.getByLabel('New password', { exact: true }).fill('reset-by-mail-password');
    await form.getByLabel('Repeat the new password').fill('reset-by-mail-password');
    await form.getByRole('button', { name: 'Set new password' }).click();
    await until(() => text(page, '#signin-error'), (t) => t.includes('Sign in with the new password'), 'back at sign-in');
    password = 'reset-by-mail-password';
    await signInHere(page, { email: ADMIN.email, password });
    expect(page.url()).toBe(`${server.url}/admin#/`);
  });

  it('shows each of these actions in the audit log, naming the administrator it was about', async () => {
    await page.getByRole('button', { name: 'Audit log', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    const row = (action: string) => page.locator(`#audit-rows tr[data-action="${action}"]`);
    await until(() => row('admin.password_reset').count(), (n) => n === 1, 'the reset in the audit log');
    const expected: Array<[string, string, string]> = [
      ['admin.invited', 'Administrator invited', `About ${COLLEAGUE}`],
      ['admin.invitation_withdrawn', 'Invitation withdrawn', `About ${TYPO}`],
      ['admin.added', 'Administrator added', `About ${COLLEAGUE}`],
      ['admin.removed', 'Administrator removed', `About ${COLLEAGUE}`],
      ['admin.password_changed', 'Password changed', `About ${ADMIN.email}`],
      ['admin.password_reset', 'Password reset', `About ${ADMIN.email}`],
      ['admin.session_revoked', 'Session ended', `About ${ADMIN.email}`],
    ];
    for (const [action, label, about] of expected) {
      const texts = await row(action).allInnerTexts();
      expect({ action, labelled: texts.length > 0 && texts.every((t) => t.includes(label)), about: texts.some((t) => t.includes(about)) }).toEqual({
        action,
        labelled: true,
        about: true,
      });
    }
    // Who did it: the inviter removed the colleague; the colleague added themselves by accepting.
    expect(await row('admin.removed').innerText()).toContain(ADMIN.email);
    expect(await row('admin.added').filter({ hasText: `About ${COLLEAGUE}` }).locator('td[data-label="By"]').innerText()).toBe(COLLEAGUE);
  });

  it('ran nothing it should not, and asked nothing of any host but the server', async () => {
    expect(w.problems).toEqual([]);
    expect(w.requests.filter((u) => new URL(u).hostname !== '127.0.0.1')).toEqual([]);
  });
});
