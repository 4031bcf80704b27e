import type { Context, Middleware } from 'koa';
import { checkCsrfToken, findAdminById, resolveSession, type Session } from '../accounts/index.js';
import { isForeignKeyViolation } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import type { Actor } from '../tokens/index.js';
import { issuerPath } from '../config/index.js';

/** The session cookie's name (HttpOnly, SameSite=Strict, Path: sessionCookiePath) the console signs in with. */
export const SESSION_COOKIE = 'sat_session';
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

/** The session cookie through koa's ctx.cookies: HttpOnly, SameSite=Strict, Path=ISSUER's path, Secure over https. */
function writeSessionCookie(ctx: Context, deps: Deps, value: string, expires: Date, path = sessionCookiePath(deps.config.issuer), overwrite = true): void {
  const secure = secureCookies(ctx, deps);
  // An https ISSUER behind a proxy without TRUST_PROXY: the request looks like http, the cookie must still be Secure.
  if (secure) ctx.cookies.secure = true;
  ctx.cookies.set(SESSION_COOKIE, value, { path, expires, httpOnly: true, sameSite: 'strict', secure, overwrite });
}

/** Expires with the session (its expires_at, from the server clock), not after a fixed Max-Age. */
export function setSessionCookie(ctx: Context, deps: Deps, token: string, expiresAt: Date): void {
  writeSessionCookie(ctx, deps, token, expiresAt);
}

/** Expires the session cookie (sign-out, a dead session), and also the one an older version set with Path=/. */
export function clearSessionCookie(ctx: Context, deps: Deps): void {
  writeSessionCookie(ctx, deps, '', new Date(0));
  // A cookie set before the Path followed ISSUER's path (Path=/) goes too.
  if (sessionCookiePath(deps.config.issuer) !== '/') writeSessionCookie(ctx, deps, '', new Date(0), '/', false);
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
 * CSRF token (403 csrf_failed otherwise); Bearer requests cannot be forged cross-site and need none.
 */
export function requireAdmin(deps: Deps): Middleware {
  return async (ctx, next) => {
    const bearer = bearerToken(ctx);
    const cookie = bearer === undefined ? ctx.cookies.get(SESSION_COOKIE) : undefined;
    const token = bearer ?? cookie;
    const session = token ? await resolveSession(deps, token) : undefined;
    if (!token || !session) {
      if (cookie) clearSessionCookie(ctx, deps);
      throw new AppError('unauthorized', 'Sign in first: no valid session.', undefined, { 'WWW-Authenticate': 'Bearer' });
    }
    const via = bearer ? 'bearer' : 'cookie';
    if (via === 'cookie' && !SAFE_METHODS.has(ctx.method) && !checkCsrfToken(token, ctx.get(CSRF_HEADER) || undefined)) {
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

const sessionEnded = () =>
  new AppError('unauthorized', 'Your session has ended: this administrator was removed.', undefined, { 'WWW-Authenticate': 'Bearer' });
