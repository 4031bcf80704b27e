// Chromium for console tests: Debian's /usr/bin/chromium driven by playwright-core (never a browser download),
// contexts that may reach only 127.0.0.1, and a watch that records what must never happen on the page.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import type { TestDb } from './db.js';
import type { TestServer } from './server.js';

export const CHROMIUM = '/usr/bin/chromium';

export interface Watch {
  /** What must never happen: dialogs (alert), page errors, CSP / Trusted Types violations, unhandled rejections. */
  problems: string[];
  /** Every URL the watched pages asked for. */
  requests: string[];
  /** Every URL the context refused because its host was not 127.0.0.1. */
  refused: string[];
}

/** How a watched context differs from the default one (1280×860, en-GB, UTC, no permissions). */
export interface ContextOptions {
  /** Browser permissions to grant (e.g. the clipboard for the copy buttons). */
  permissions?: string[];
  /** The window's size; default 1280×860. */
  viewport?: { width: number; height: number };
}

/** Chromium, one watched context and its first page: where a console test starts. */
export interface BrowserConsole {
  browser: Browser;
  context: BrowserContext;
  page: Page;
  /** Shared by every page of `context`; pass it to newWatchedContext for further contexts. */
  watch: Watch;
}

/** A signed-in administrator's credentials, as typed into the sign-in form. */
export interface Credentials {
  email: string;
  password: string;
}

/** Debian's Chromium (CHROMIUM), headless; fails at once, naming the package, when it is not installed. */
export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's Chromium (apt-get install -y chromium); no browser is downloaded`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
}

/** Records every request, and anything that must never happen: dialogs (alert), page errors, CSP violations. */
export function watch(page: Page, w: Watch): void {
  page.on('request', (req) => w.requests.push(req.url()));
  page.on('dialog', (dialog) => {
    w.problems.push(`dialog ${dialog.type()}: ${dialog.message()}`);
    void dialog.dismiss();
  });
  page.on('pageerror', (err) => w.problems.push(`page error: ${err.message}`));
  page.on('console', (msg) => {
    // (A failed load, such as a 400 a test provokes or the 401 of an ended session, is not a problem.)
    if (/content security policy|trusted ?type|refused to|csp violation|uncaught|unhandled/i.test(msg.text())) {
      w.problems.push(`console: ${msg.text()}`);
    }
  });
}

/** A fresh browser context (own cookies) whose pages are watched by `w` and may reach nothing but 127.0.0.1. */
export async function newWatchedContext(browser: Browser, w: Watch, options: ContextOptions = {}): Promise<BrowserContext> {
  const context = await browser.newContext({
    viewport: options.viewport ?? { width: 1280, height: 860 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    ...(options.permissions ? { permissions: options.permissions } : {}),
  });
  // A wait that never ends fails with Playwright's error naming the locator and what it waited for, before the
  // test's own timeout (which would say only that the test ran out of time).
  context.setDefaultTimeout(20_000);
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    if (url.hostname === '127.0.0.1') return route.continue();
    w.refused.push(url.href);
    return route.abort();
  });
  await context.addInitScript(() => {
    const g = globalThis as unknown as {
      addEventListener(type: string, fn: (e: { violatedDirective?: string; blockedURI?: string; reason?: unknown }) => void): void;
      console: { error(...args: unknown[]): void };
    };
    g.addEventListener('securitypolicyviolation', (e) => g.console.error(`CSP violation: ${e.violatedDirective} ${e.blockedURI}`));
    g.addEventListener('unhandledrejection', (e) => g.console.error(`unhandled rejection: ${String(e.reason)}`));
  });
  context.on('page', (page) => watch(page, w));
  return context;
}

/** Launches Chromium and opens one watched context (see newWatchedContext) with a page, sharing a new Watch. */
export async function openConsole(options: ContextOptions = {}): Promise<BrowserConsole> {
  const browser = await launchChromium();
  const w: Watch = { problems: [], requests: [], refused: [] };
  const context = await newWatchedContext(browser, w, options);
  return { browser, context, page: await context.newPage(), watch: w };
}

/** Signs in through the form on show (the sign-in screen) and waits for the token screen. */
export async function signInHere(page: Page, admin: Credentials): Promise<void> {
  const form = page.locator('#signin-form');
  await form.getByLabel('Email').fill(admin.email);
  await form.getByLabel('Password').fill(admin.password);
  await page.getByRole('button', { name: 'Sign in', exact: true }).click();
  await page.getByRole('heading', { level: 1, name: 'System Access Token' }).waitFor();
}

/** Opens `server`'s console at /admin and signs in (signInHere). */
export async function signIn(page: Page, server: { url: string }, admin: Credentials): Promise<void> {
  await page.goto(`${server.url}/admin`);
  await signInHere(page, admin);
}

/** A console test's afterAll: closes Chromium, then the server, then drops its database; skips what never opened. */
export async function closeAll(browser: Browser | undefined, server: TestServer | undefined, db: TestDb | undefined): Promise<void> {
  await browser?.close();
  await server?.close();
  await db?.drop();
}

/** Polls `read` until `ok` holds; fails with the last value seen. */
export async function until<T>(read: () => Promise<T>, ok: (value: T) => boolean, what: string, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  let last: T = await read();
  while (!ok(last)) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}; last value: ${JSON.stringify(last)}`);
    await new Promise((r) => setTimeout(r, 100));
    last = await read();
  }
  return last;
}
