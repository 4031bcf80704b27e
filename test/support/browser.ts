// Chromium for console tests: Debian's /usr/bin/chromium driven by playwright-core (never a browser download),
// contexts that may reach only 127.0.0.1, and a watch that records what must never happen on the page.
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM = '/usr/bin/chromium';

export interface Watch {
  problems: string[];
  requests: string[];
}

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
    if (/content security policy|trusted ?type|refused to|csp violation|unhandled rejection/i.test(msg.text())) {
      w.problems.push(`console: ${msg.text()}`);
    }
  });
}

/**
 * A fresh browser context (own cookies) whose pages are watched and may reach nothing but 127.0.0.1.
 * `permissions`: browser permissions to grant (e.g. the clipboard for the copy buttons).
 */
export async function newWatchedContext(browser: Browser, w: Watch, options: { permissions?: string[] } = {}): Promise<BrowserContext> {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 860 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    ...(options.permissions ? { permissions: options.permissions } : {}),
  });
  await context.route('**/*', (route) => {
    const url = new URL(route.request().url());
    return url.hostname === '127.0.0.1' ? route.continue() : route.abort();
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
