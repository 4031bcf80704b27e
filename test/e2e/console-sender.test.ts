// The console's "Public key" and "Require DPoP" (docs/sender-constrained.md) in Debian's Chromium via playwright-core:
// generate with a pasted PEM public key (converted and validated by the server), the thumbprint instead of a
// secret, the credentials dialog replacing the key and switching DPoP, a private key refused at its field; the
// token's own view with the thumbprints, no secrets and no Rotate, and its Credentials button.
import { generateKeyPairSync } from 'node:crypto';
import { calculateJwkThumbprint, type JWK } from 'jose';
import type { Browser, Page } from 'playwright-core';
import { signIn as apiSignIn } from '../support/admin-api.js';
import { closeAll, openConsole, signIn, type Watch } from '../support/browser.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };

describe.each(testDatabases())('console: public-key tokens and Require DPoP on %s (Chromium)', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let bearer: string;
  let w: Watch;

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db);
    ({ browser, page, watch: w } = await openConsole({ viewport: { width: 1280, height: 900 } }));
    bearer = (await apiSignIn(server, ADMIN.email, ADMIN.password)).token;
  });
  afterAll(() => closeAll(browser, server, db));

  const apiToken = async (id: string) =>
    (await (await fetch(`${server.url}/admin/api/tokens/${id}`, { headers: { authorization: `Bearer ${bearer}` } })).json()) as Record<string, unknown>;

  it('generates with a pasted public key and Require DPoP, then replaces the key and switches DPoP off', async () => {
    await signIn(page, server, ADMIN);

    await page.locator('#open-generate').click();
    await page.getByLabel('Token Name').fill('Keyed_Integration');
    await page.locator('#service-list input[value="jobs"]').check();
    await page.getByRole('radio', { name: /^Public key/ }).check();
    // A private key pasted by mistake: refused by the server, the error at the field, nothing generated.
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    await page.locator('#public-key').fill(pair.privateKey.export({ format: 'pem', type: 'pkcs8' }) as string);
    await page.locator('#generate-submit').click();
    await page.locator('#public-key-error').filter({ hasText: /private key/ }).waitFor();
    expect(await page.locator('#public-key').getAttribute('aria-invalid')).toBe('true');

    await page.locator('#public-key').fill(pair.publicKey.export({ format: 'pem', type: 'spki' }) as string);
    await page.getByRole('switch', { name: /^Require DPoP/ }).check();
    await page.locator('#generate-submit').click();
    await page.locator('#secret-panel').waitFor({ state: 'visible' });
    const thumbprint = await calculateJwkThumbprint(pair.publicKey.export({ format: 'jwk' }) as JWK);
    expect(await page.locator('#secret-thumbprints').innerText()).toContain(thumbprint);
    expect(await page.locator('#secret-row').isHidden()).toBe(true);
    expect(await page.locator('#secret-client-secret').innerText()).toBe('');
    await page.locator('#close-secret').click();

    const row = page.locator('#token-rows tr', { hasText: 'Keyed_Integration' });
    await row.waitFor();
    expect(await row.innerText()).toMatch(/Public key[\s\S]*DPoP/);
    const id = (await row.getAttribute('data-token-id'))!;
    expect(await apiToken(id)).toMatchObject({ auth_method: 'private_key_jwt', jwk_thumbprints: [thumbprint], require_dpop: true });
    // No secret to rotate: the row offers Credentials and Revoke, not Rotate secret.
    await row.getByRole('button', { name: 'Revoke access for Keyed_Integration' }).waitFor();
    expect(await row.getByRole('button', { name: 'Rotate secret of Keyed_Integration' }).count()).toBe(0);

    // The credentials dialog: shows the thumbprint, replaces the key with a pasted JWK, switches DPoP off.
    await row.getByRole('button', { name: 'Credentials of Keyed_Integration' }).click();
    const dialog = page.locator('#credentials-dialog');
    await dialog.waitFor({ state: 'visible' });
    expect(await dialog.locator('#credentials-thumbprints').innerText()).toContain(thumbprint);
    expect(await dialog.locator('#credentials-dpop').isChecked()).toBe(true);
    await dialog.locator('#replace-key').fill('{"kty":"RSA","n":"AQAB","e":"AQAB"}');
    await dialog.locator('#credentials-save').click();
    // The key's problem under the key field, with the focus there (not in the dialog's general notice).
    await dialog.locator('#replace-key-error').filter({ hasText: /not accepted/ }).waitFor();
    expect(await dialog.locator('#credentials-error').isHidden()).toBe(true);
    expect(await page.evaluate(() => (globalThis as any).document.activeElement?.id)).toBe('replace-key');
    const next = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const nextJwk = next.publicKey.export({ format: 'jwk' }) as JWK;
    await dialog.locator('#replace-key').fill(JSON.stringify(nextJwk));
    await dialog.locator('#credentials-dpop').uncheck();
    await dialog.locator('#credentials-save').click();
    await dialog.waitFor({ state: 'hidden' });
    await page.locator('#flash').filter({ hasText: 'saved' }).waitFor();
    expect(await apiToken(id)).toMatchObject({ jwk_thumbprints: [await calculateJwkThumbprint(nextJwk)], require_dpop: false });
    expect(w.problems).toEqual([]);
  });

  it("the token's own view shows the key thumbprints, no secrets and no Rotate, and replaces the keys and switches DPoP", async () => {
    const fact = (term: string) => page.locator('.fact', { has: page.locator('dt', { hasText: new RegExp(`^${term}$`) }) }).locator('dd');
    await page.getByRole('link', { name: 'Keyed_Integration' }).click();
    await page.getByRole('heading', { level: 1, name: 'Keyed_Integration' }).waitFor();
    const id = new URLSearchParams(new URL(page.url()).hash.split('?')[1]).get('id')!;
    const before = (await apiToken(id)) as { jwk_thumbprints: string[] };
    expect(await fact('Client authentication').innerText()).toContain('private_key_jwt');
    expect(await fact('DPoP').innerText()).toBe('Not required');
    const thumbprints = page.locator('#token-thumbprints');
    await thumbprints.waitFor({ state: 'visible' });
    expect(await thumbprints.locator('li').allInnerTexts()).toEqual(before.jwk_thumbprints);
    expect(await page.locator('#token-secrets-wrap').isHidden()).toBe(true);
    expect(await page.locator('#token-actions').getByRole('button', { name: 'Rotate secret', exact: true }).isHidden()).toBe(true);

    // Credentials from this view: two keys (a key rotation's overlap) and DPoP on; the view shows both at once.
    const [oldKey, newKey] = [generateKeyPairSync('ec', { namedCurve: 'P-256' }), generateKeyPairSync('ec', { namedCurve: 'P-256' })];
    const jwk = (pair: typeof oldKey) => pair.publicKey.export({ format: 'jwk' }) as JWK;
    await page.locator('#token-actions').getByRole('button', { name: 'Credentials', exact: true }).click();
    const dialog = page.locator('#credentials-dialog');
    await dialog.waitFor({ state: 'visible' });
    expect(await dialog.locator('#credentials-thumbprints li').allInnerTexts()).toEqual(before.jwk_thumbprints);
    await dialog.locator('#replace-key').fill(JSON.stringify({ keys: [jwk(oldKey), jwk(newKey)] }));
    await dialog.locator('#credentials-dpop').check();
    await dialog.locator('#credentials-save').click();
    await dialog.waitFor({ state: 'hidden' });
    const both = [await calculateJwkThumbprint(jwk(oldKey)), await calculateJwkThumbprint(jwk(newKey))];
    await page.locator('#token-thumbprints li', { hasText: both[1]! }).waitFor();
    expect(await thumbprints.locator('li').allInnerTexts()).toEqual(both);
    expect(await fact('DPoP').innerText()).toContain('Required');
    expect(await apiToken(id)).toMatchObject({ jwk_thumbprints: both, require_dpop: true });
    const event = page.locator('#token-event-rows tr[data-action="token.updated"]');
    await event.first().waitFor();
    expect(w.problems).toEqual([]);
  });
});
