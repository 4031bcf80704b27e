// The console under an ISSUER with a path (README "Settings": with `https://host/sat` every endpoint is served under
// it, so a proxy may forward /sat/… as is; "The admin console": open ISSUER + /admin). Behind a proxy that forwards
// only /sat/…, the page's styles, scripts and API calls must stay under /sat: they used to go to /admin/… at the
// root, so the page loaded bare and the sign-in never reached the server.
import type { Browser, Page } from 'playwright-core';
import { closeAll, newWatchedContext, openConsole, signInHere, type Watch } from '../support/browser.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { startServer, type TestServer } from '../support/server.js';

const ADMIN = { email: 'first-admin@example.com', password: 'first-admin-password' };

describe.each(testDatabases())('console under an ISSUER path on %s (Chromium)', (kind) => {
  let db: TestDb;
  let server: TestServer;
  let browser: Browser;
  let page: Page;
  let w: Watch;
  /** What the proxy refused: every request outside /sat/. */
  const outside: string[] = [];

  beforeAll(async () => {
    db = await createTestDb(kind);
    server = await startServer(db, { ISSUER: 'http://sat-path.example.test/sat' });
    const opened = await openConsole();
    ({ browser, page, watch: w } = opened);
    // Registered after the watch's route, so it runs first: the proxy forwards /sat/… only.
    await opened.context.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (url.pathname.startsWith('/sat/')) return route.fallback();
      outside.push(url.pathname);
      return route.abort();
    });
  });

  afterAll(() => closeAll(browser, server, db));

  it('loads, signs in and lists tokens with every request under the path', async () => {
    await page.goto(`${server.url}/sat/admin`);
    expect(outside).toEqual([]); // the page's styles and scripts (goto waits for them)
    await signInHere(page, ADMIN);
    await page.getByText(/\d+ of 25 tokens used/).waitFor();
    expect(outside).toEqual([]);
    const paths = w.requests.map((u) => new URL(u).pathname);
    expect(paths).toEqual(expect.arrayContaining(['/sat/admin/assets/app.js', '/sat/admin/assets/app.css', '/sat/admin/api/login']));
    // The session cookie is the path's, not the whole host's: other applications there never receive it.
    const cookies = await page.context().cookies();
    expect(cookies.filter((c) => c.name === 'sat_session').map((c) => c.path)).toEqual(['/sat']);
    // A reload opens the console signed in: the cookie comes back under /sat.
    await page.reload();
    await page.getByText(/\d+ of 25 tokens used/).waitFor();
    expect(w.problems).toEqual([]);
  });

  it('keeps the session across a reload when the console is opened at the root (an instance reached directly)', async () => {
    const direct = await newWatchedContext(browser, w); // no proxy here: every path reaches the server
    try {
      const p = await direct.newPage();
      await p.goto(`${server.url}/admin`);
      await signInHere(p, ADMIN);
      await p.getByText(/\d+ of 25 tokens used/).waitFor();
      await p.reload(); // the cookie (Path=/sat) is not sent for /admin: the page asks /me, which gets it
      await p.getByText(/\d+ of 25 tokens used/).waitFor();
    } finally {
      await direct.close();
    }
    expect(w.problems).toEqual([]);
  });
});
