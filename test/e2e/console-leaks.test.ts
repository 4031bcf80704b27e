// The console shows leaked secrets: the token list counts tokens reported leaked and flags a kept one, and the
// audit log lists `token.leaked` with where the secret was found. Debian's Chromium through playwright-core,
// against a real server (on each database of the run) in notify mode with a test secret-scanning key.
import { generateKeyPairSync, randomBytes, sign } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Browser, Page } from 'playwright-core';
import { signIn as apiSignIn } from '../support/admin-api.js';
import { closeAll, openConsole, signIn, type Watch } from '../support/browser.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };
const LEAK_URL = 'https://github.com/octo/app/blob/4f2a/config/prod.env';

describe.each(testDatabases())('console: leaked secrets on %s (Chromium)', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let w: Watch;
  const kid = randomBytes(32).toString('hex');
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  const names = { kept: 'Kept_Leaky_Token', revoked: 'Reported_Token' };

  async function generate(bearer: string, name: string): Promise<{ id: string; client_secret: string }> {
    const res = await fetch(`${server.url}/admin/api/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${bearer}` },
      body: JSON.stringify({ name, services: ['jobs'], expires_at: new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10) }),
    });
    expect(res.status).toBe(201);
    return (await res.json()) as { id: string; client_secret: string };
  }

  beforeAll(async () => {
    db = await createTestDb(kind);
    const keysFile = path.join(db.dataDir, 'keys.json');
    writeFileSync(keysFile, JSON.stringify({ public_keys: [{ key_identifier: kid, key: publicKey.export({ type: 'spki', format: 'pem' }), is_current: true }] }));
    server = await startServer(db, { SECRET_SCANNING_KEYS_FILE: keysFile, SECRET_SCANNING_ACTION: 'notify' });

    const bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
    const kept = await generate(bearer, names.kept);
    const revoked = await generate(bearer, names.revoked);
    await generate(bearer, 'Untouched_Token');

    const body = JSON.stringify([{ token: kept.client_secret, type: 'sat_client_secret', url: LEAK_URL, source: 'commit' }]);
    const alert = await fetch(`${server.url}/secret-scanning/verify`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'github-public-key-identifier': kid,
        'github-public-key-signature': sign('sha256', Buffer.from(body), privateKey).toString('base64'),
      },
      body,
    });
    expect(alert.status).toBe(200);
    const report = await fetch(`${server.url}/credentials/revoke`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ credentials: [revoked.client_secret] }),
    });
    expect(report.status).toBe(202);

    ({ browser, page, watch: w } = await openConsole());
  });

  afterAll(() => closeAll(browser, server, db));

  it('counts leaked tokens on the token screen and flags the one kept alive', async () => {
    await signIn(page, server, ADMIN);
    const notice = page.locator('#leaked-notice');
    await notice.waitFor({ state: 'visible' });
    expect(await notice.innerText()).toContain('2 tokens were reported leaked in the last 30 days.');
    const keptRow = page.locator('#token-rows tr', { hasText: names.kept });
    expect(await keptRow.locator('.status.leaked').innerText()).toBe('Leaked');
    expect(await page.locator('#token-rows tr', { hasText: 'Untouched_Token' }).locator('.status.leaked').count()).toBe(0);
    expect(await page.locator('#token-rows tr', { hasText: names.revoked }).count()).toBe(0);
  });

  it('shows token.leaked in the audit log with where the secret was found and what was done', async () => {
    await page.getByRole('button', { name: 'See where in the audit log' }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    const leaked = page.locator('#audit-rows tr[data-action="token.leaked"]');
    await leaked.first().waitFor();
    expect(await leaked.count()).toBe(2);

    const fromScanning = leaked.filter({ hasText: names.kept });
    const link = fromScanning.getByRole('link', { name: LEAK_URL });
    expect(await link.getAttribute('href')).toBe(LEAK_URL);
    expect(await link.getAttribute('rel')).toBe('noopener noreferrer');
    const scanningText = await fromScanning.innerText();
    expect(scanningText).toContain('Secret leaked');
    expect(scanningText).toContain('Secret scanning');
    expect(scanningText).toContain('Source: commit');
    expect(scanningText).toContain('notify only');

    const fromPublic = await leaked.filter({ hasText: names.revoked }).innerText();
    expect(fromPublic).toContain('Public report');
    expect(fromPublic).toContain('no URL given');
    expect(fromPublic).toContain('token revoked');
    expect(await page.locator('#audit-rows tr[data-action="token.generated"]').count()).toBe(3);

    await page.getByRole('button', { name: '‹ System Access Token' }).click();
    await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
    await page.getByRole('button', { name: 'Audit log', exact: true }).click();
    await page.getByRole('heading', { level: 1, name: 'Audit log' }).waitFor();
    expect(w.problems).toEqual([]);
  });
});
