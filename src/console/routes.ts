// The admin console: one static page (src/console/page/) served at /admin with a strict Content-Security-Policy.
// It is an API client of /admin/api and imports nothing from the domain; the server-side values it needs (the
// maximum token lifetime for the date picker, the day counts of the badges, the ISSUER's path) are read from
// deps.config and written into <meta> tags.
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import Router from '@koa/router';
import type { Context } from 'koa';
import { issuerPath, packageRoot } from '../config/index.js';
import type { Deps } from '../deps.js';

/**
 * No inline script or style, nothing from another origin, no framing, no <base>, forms post only here,
 * and Trusted Types with no policy: the page cannot assign a string to innerHTML even by mistake.
 */
export const CONSOLE_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "frame-ancestors 'none'",
  "form-action 'self'",
  "base-uri 'none'",
  "require-trusted-types-for 'script'",
  "trusted-types 'none'",
].join('; ');

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

const JS = 'text/javascript; charset=utf-8';

/**
 * The only files served: a fixed list read once at start, so no request path ever reaches the file system.
 * app.js is the entry module; the screens and shared helpers are the native ES modules in js/ (every *.js
 * there, listed once at start).
 */
const ASSETS: Record<string, string> = {
  'app.js': JS,
  'app.css': 'text/css; charset=utf-8',
  'icon.svg': 'image/svg+xml',
};

/** Every asset name (relative to the page directory, "js/…" for modules) → its content type. */
function assetList(dir: string): Record<string, string> {
  const modules = readdirSync(path.join(dir, 'js'))
    .filter((name) => /^[a-z][a-z0-9-]*\.js$/.test(name))
    .map((name) => [`js/${name}`, JS] as const);
  return { ...ASSETS, ...Object.fromEntries(modules) };
}

function pageDir(): string {
  // tsc does not copy static files: they are served from the package's src/ in a checkout and in the image.
  return path.join(packageRoot(), 'src', 'console', 'page');
}

function asset(body: Buffer, type: string): Asset {
  return { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` };
}

function consoleHeaders(ctx: Context): void {
  ctx.set('Content-Security-Policy', CONSOLE_CSP);
  ctx.set('Cross-Origin-Opener-Policy', 'same-origin');
  ctx.set('Cross-Origin-Resource-Policy', 'same-origin');
  ctx.set('Permissions-Policy', 'camera=(), microphone=(), geolocation=(), payment=()');
}

const HTML_ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/**
 * The path of ISSUER without its trailing `/` ('' at the root): the page's assets and API calls are addressed under
 * it, so that behind a proxy forwarding only ISSUER's path (README "Settings") the console still reaches the server;
 * without a proxy the server answers under that path too (src/http/common.ts).
 */
export function consoleBasePath(issuer: string): string {
  return issuerPath(issuer);
}

/**
 * GET /admin, /admin/ (the page), /admin/assets/{app.js,app.css,icon.svg} and /admin/assets/js/{module}.js.
 * `sessionCookie`: the admin API's session cookie name for a request (given by the composition root: the console
 * imports no other edge); the page tells whether the request carried it.
 */
export function consoleRouter(deps: Deps, sessionCookie: (ctx: Context) => string): Router {
  const dir = pageDir();
  const basePath = consoleBasePath(deps.config.issuer).replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]!);
  const html = readFileSync(path.join(dir, 'index.html'), 'utf8')
    .replaceAll('{{BASE_PATH}}', basePath)
    .replaceAll('{{MAX_TOKEN_LIFETIME_DAYS}}', String(Math.trunc(deps.config.maxTokenLifetimeDays)))
    .replaceAll('{{EXPIRING_SOON_DAYS}}', String(Math.trunc(deps.config.expiringSoonDays)))
    .replaceAll('{{DORMANT_AFTER_DAYS}}', String(Math.trunc(deps.config.dormantAfterDays)));
  // `sat-session`: "none" when the request carries no session cookie (never signed in, signed out, or a session the
  // API found ended: each clears the cookie), so the page shows the sign-in form without asking /me for a 401;
  // "cookie" otherwise (and for a navigation from another site, which carries no SameSite=Strict cookie), and /me
  // says whether that session is still alive.
  const page = asset(Buffer.from(html.replaceAll('{{SESSION}}', 'cookie'), 'utf8'), 'text/html; charset=utf-8');
  const signedOutPage = asset(Buffer.from(html.replaceAll('{{SESSION}}', 'none'), 'utf8'), 'text/html; charset=utf-8');
  const assets = new Map(
    Object.entries(assetList(dir)).map(([name, type]) => [name, asset(readFileSync(path.join(dir, name)), type)]),
  );

  const prefix = consoleBasePath(deps.config.issuer);
  const router = new Router({ sensitive: true, strict: true }); // exact paths: /admin and /admin/ are both listed
  const servePage = (ctx: Context) => {
    consoleHeaders(ctx);
    // The page itself is tiny and holds the secret panel while it is open: never cache it, keep it out of
    // the back/forward cache.
    ctx.set('Cache-Control', 'no-store');
    // Under an ISSUER with a path the cookie's Path is that path: a page asked for at the root (an instance reached
    // directly, or through a proxy that strips the prefix) may not see it, so /me decides there.
    const cookieSeen = prefix === '' || ctx.originalUrl === prefix || ctx.originalUrl.startsWith(`${prefix}/`);
    // A link followed from another site (a mail read in webmail, a chat, a wiki) brings no SameSite=Strict cookie,
    // though the browser holds one: /me decides there too (the page's own request for it carries the cookie).
    const crossSite = ctx.get('Sec-Fetch-Site') === 'cross-site';
    const shown = !cookieSeen || crossSite || ctx.cookies.get(sessionCookie(ctx)) ? page : signedOutPage;
    ctx.type = shown.type;
    ctx.body = shown.body;
  };
  router.get('/admin', servePage);
  router.get('/admin/', servePage);
  const serveAsset = (name: string, ctx: Context, next: () => Promise<unknown>) => {
    const file = assets.get(name);
    if (!file) return next();
    consoleHeaders(ctx);
    // Revalidate on every load (cheap 304 by ETag): a new release is picked up at once, no stale script.
    ctx.set('Cache-Control', 'no-cache');
    ctx.set('ETag', file.etag);
    ctx.status = 200;
    if (ctx.fresh) {
      ctx.status = 304;
      return;
    }
    ctx.type = file.type;
    ctx.body = file.body;
  };
  router.get('/admin/assets/:name', (ctx, next) => serveAsset(ctx.params.name ?? '', ctx, next));
  router.get('/admin/assets/js/:name', (ctx, next) => serveAsset(`js/${ctx.params.name ?? ''}`, ctx, next));
  return router;
}
