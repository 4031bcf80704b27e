import type { Context, Middleware } from 'koa';
import { checkCsrfToken, findAdminById, resolveSession, type Session } from '../accounts/index.js';
import { isForeignKeyViolation } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import type { Actor } from '../tokens/index.js';
import { issuerPath } from '../config/index.js';

/**
 * The session cookie's name (HttpOnly, SameSite=Strict, Path: sessionCookiePath) the console signs in with, over
 * plain HTTP or under an ISSUER with a path; over HTTPS with an ISSUER at the root it is SECURE_SESSION_COOKIE.
 */
export const SESSION_COOKIE = 'sat_session';
/**
 * The session cookie's name when it is Secure with Path=/ (RFC 6265bis §4.1.3.2): the browser takes a `__Host-`
 * cookie only when set over HTTPS, with Path=/ and no Domain, so a sibling subdomain, a plain-HTTP origin or a
 * narrower Path can neither plant one nor shadow it (a planted session would sign the victim in as the attacker; a
 * junk one would lock them out). Another HTTPS application on the same host name still could: cookies ignore ports.
 */
export const SECURE_SESSION_COOKIE = '__Host-sat_session';
/** The header a cookie-authenticated unsafe request carries its session's CSRF token in (else 403 csrf_failed). */
export const CSRF_HEADER = 'X-CSRF-Token';

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface AdminState {
  session: Session;
  /** The session token as presented (for the CSRF token of /me). */
  sessionToken: string;
  via: 'bearer' | 'cookie';
  actor: Actor;
}

/** The state requireAdmin leaves for the route handlers. */
export function adminState(ctx: Context): AdminState {
  return ctx.state.admin as AdminState;
}

/** Secure when the request came over HTTPS (ctx.secure honours TRUST_PROXY) or the public issuer is https. */
function secureCookies(ctx: Context, deps: Deps): boolean {
  return ctx.secure || deps.config.issuer.startsWith('https:');
}

/**
 * The session cookie's Path: ISSUER's path (`https://host/sat` → `/sat`), where the browser reaches the console and
 * the admin API whether or not the proxy strips it, so other applications on the host never receive the session and
 * two deployments on one host (`/sat`, `/sat-staging`) keep theirs apart; `/` for an ISSUER without a path.
 */
export function sessionCookiePath(issuer: string): string {
  return issuerPath(issuer) || '/';
}

/** The session cookie's name for this request: SECURE_SESSION_COOKIE when it is Secure with Path=/, else SESSION_COOKIE. */
export function sessionCookieName(ctx: Context, deps: Deps): string {
  return secureCookies(ctx, deps) && sessionCookiePath(deps.config.issuer) === '/' ? SECURE_SESSION_COOKIE : SESSION_COOKIE;
}

/**
 * One Set-Cookie of a session cookie through koa's ctx.cookies: HttpOnly, SameSite=Strict, Secure over https.
 * `overwrite: false` adds it beside the response's other Set-Cookie lines of that name (each Path is its own cookie).
 */
function writeSessionCookie(ctx: Context, deps: Deps, name: string, value: string, expires: Date, path: string, overwrite: boolean): void {
  const secure = secureCookies(ctx, deps) || name === SECURE_SESSION_COOKIE;
  // An https ISSUER behind a proxy without TRUST_PROXY: the request looks like http, the cookie must still be Secure.
  if (secure) ctx.cookies.secure = true;
  ctx.cookies.set(name, value, { path, expires, httpOnly: true, sameSite: 'strict', secure, overwrite });
}

/**
 * The paths a session cookie may have been planted at by another site on the host, more specific than ours (the
 * browser sends those first): the console's and the admin API's, under ISSUER's path and at the root.
 */
function shadowingPaths(issuer: string): string[] {
  const base = issuerPath(issuer);
  return [...new Set([`${base}/admin`, `${base}/admin/`, `${base}/admin/api`, '/admin', '/admin/', '/admin/api'])];
}

/**
 * The values of every cookie named `name` the request carries, in the order sent (koa's ctx.cookies.get reads only
 * the first). Two or more: one was set with another Path or Domain, by an older version, another deployment on this
 * host name, or another site.
 */
function cookieValues(ctx: Context, name: string): string[] {
  return ctx
    .get('cookie')
    .split(';')
    .map((part) => part.trim())
    .filter((part) => part.startsWith(`${name}=`))
    .map((part) => part.slice(name.length + 1));
}

/** The most session cookies of one name a request is looked at with (each a session lookup). */
const MAX_SESSION_COOKIES = 4;

/**
 * The session of the request's session cookies: the one that is a live session. Junk, ended sessions and cookies of
 * other deployments do not count. Two live sessions (one planted by another site to sign the browser in as someone
 * else) cannot be told apart: `ambiguous`, and neither is used.
 */
async function cookieSession(ctx: Context, deps: Deps, name: string): Promise<{ token?: string; session?: Session; ambiguous: boolean; any: boolean }> {
  const values = cookieValues(ctx, name).filter((v) => v !== '');
  if (values.length <= 1) {
    const token = values[0];
    return { ...(token ? { token, session: await resolveSession(deps, token) } : {}), ambiguous: false, any: values.length > 0 };
  }
  const live: Array<{ token: string; session: Session }> = [];
  for (const token of [...new Set(values)].slice(0, MAX_SESSION_COOKIES)) {
    const session = await resolveSession(deps, token);
    if (session) live.push({ token, session });
  }
  if (live.length === 1) return { ...live[0]!, ambiguous: false, any: true };
  return { ambiguous: live.length > 1, any: true };
}

/** Expires every session cookie a request may carry besides ours: the older name and Path, and shadowing Paths. */
function clearOtherSessionCookies(ctx: Context, deps: Deps): void {
  const ours = { name: sessionCookieName(ctx, deps), path: sessionCookiePath(deps.config.issuer) };
  const others = [{ name: SESSION_COOKIE, path: '/' }, ...shadowingPaths(deps.config.issuer).map((path) => ({ name: SESSION_COOKIE, path }))];
  for (const c of others) {
    if (c.name !== ours.name || c.path !== ours.path) writeSessionCookie(ctx, deps, c.name, '', new Date(0), c.path, false);
  }
}

/**
 * Expires with the session (its expires_at, from the server clock), not after a fixed Max-Age. A request that
 * carried session cookies at other Paths (planted to shadow this one) has those cleared with it.
 */
export function setSessionCookie(ctx: Context, deps: Deps, token: string, expiresAt: Date): void {
  writeSessionCookie(ctx, deps, sessionCookieName(ctx, deps), token, expiresAt, sessionCookiePath(deps.config.issuer), true);
  if (cookieValues(ctx, SESSION_COOKIE).length + cookieValues(ctx, SECURE_SESSION_COOKIE).length > 0) clearOtherSessionCookies(ctx, deps);
}

/**
 * Expires the session cookie (sign-out, a dead session), and every other one the browser may hold: the name and
 * Path=/ of older versions, and a cookie of that name another site on the host set at a more specific Path.
 */
export function clearSessionCookie(ctx: Context, deps: Deps): void {
  writeSessionCookie(ctx, deps, sessionCookieName(ctx, deps), '', new Date(0), sessionCookiePath(deps.config.issuer), true);
  clearOtherSessionCookies(ctx, deps);
}

function bearerToken(ctx: Context): string | undefined | null {
  const header = ctx.get('authorization');
  if (!header) return undefined;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null; // null: an Authorization header that is not a Bearer token
}

/**
 * Every admin call but login: the session from `Authorization: Bearer` (preferred when present) or from the
 * session cookie. A cookie-authenticated unsafe method must also carry `X-CSRF-Token` equal to the session's
 * CSRF token (403 csrf_failed otherwise), and a safe one that carries it must carry that one; Bearer requests cannot
 * be forged cross-site and need none.
 */
export function requireAdmin(deps: Deps): Middleware {
  return async (ctx, next) => {
    const bearer = bearerToken(ctx);
    const fromCookie = bearer === undefined ? await cookieSession(ctx, deps, sessionCookieName(ctx, deps)) : undefined;
    if (fromCookie?.ambiguous) {
      // Two live sessions in the session cookies (one planted at a narrower Path by another site on this host name,
      // to act as someone else): which is the administrator's cannot be told, so neither is used, and they go.
      clearSessionCookie(ctx, deps);
      throw new AppError('unauthorized', 'Two sessions arrived in the session cookies (one may have been set by another site): both are cleared; sign in again.');
    }
    const token = bearer ?? fromCookie?.token;
    const session = bearer ? await resolveSession(deps, bearer) : fromCookie?.session;
    if (!token || !session) {
      if (fromCookie?.any) clearSessionCookie(ctx, deps);
      throw new AppError('unauthorized', 'Sign in first: no valid session.');
    }
    const via = bearer ? 'bearer' : 'cookie';
    // A safe method needs none, but one that carries it is checked too: a page whose cookie now belongs to a session
    // begun in another tab (another administrator, maybe of another organisation) learns so on its next read,
    // instead of showing that session's data under its own name.
    const csrfSent = ctx.get(CSRF_HEADER) !== '';
    if (via === 'cookie' && (!SAFE_METHODS.has(ctx.method) || csrfSent) && !checkCsrfToken(token, ctx.get(CSRF_HEADER) || undefined)) {
      throw new AppError(
        'csrf_failed',
        ctx.get(CSRF_HEADER)
          ? `The ${CSRF_HEADER} header does not belong to this session: send the csrf_token of this session's sign-in.`
          : `A request authenticated by the session cookie must carry the ${CSRF_HEADER} header.`,
      );
    }
    const state: AdminState = {
      session,
      sessionToken: token,
      via,
      actor: { id: session.admin.id, email: session.admin.email, organisation_id: session.admin.organisation.id },
    };
    ctx.state.admin = state;
    try {
      await next();
    } catch (err) {
      // Removed while this call ran (PostgreSQL: the removal committed after the session check): as if their session
      // had ended first, which the removal does. Their write failed on a foreign key (a token's creator, an audit
      // event's actor), never a 500; or the call was refused for what the removal changed (409 last_admin for the
      // removal of the one administrator left besides them), which would tell them something they no longer may see.
      const refusedForState = err instanceof AppError && (err.status === 404 || err.status === 409); // not a 400 of the input
      if ((isForeignKeyViolation(err) || refusedForState) && !(await findAdminById(deps.db.knex, session.admin.id))) throw sessionEnded();
      throw err;
    }
  };
}

const sessionEnded = () => new AppError('unauthorized', 'Your session has ended: this administrator was removed.');
