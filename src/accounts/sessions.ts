import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { z } from 'zod';
import { recordAudit } from '../audit/index.js';
import { affectedRows, isForeignKeyViolation, type AdminRow, type AdminSessionRow, type Db } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, RateLimitedError } from '../errors.js';
import { addressKey, emailKey, forgiveAttempt, giveBackAttempt, pruneLoginThrottle, registerAttempt } from './login-throttle.js';
import { PasswordQueueFullError } from './password-pool.js';
import { dummyPasswordHash, hashPassword, needsRehash, passwordCheckHasRoom, verifyPassword } from './passwords.js';
import * as q from './queries.js';

/**
 * Admin sessions: `sas_` + 32 random bytes (256 bits, base64url). Only the SHA-256 of the token is stored.
 * The CSRF token of a session is an HMAC of the session token: whoever can read it cannot derive the session
 * token from it, and whoever cannot read the session token (a cross-site page) cannot compute it.
 */
export const SESSION_TOKEN_PREFIX = 'sas_';
const sessionTokenPattern = /^sas_[A-Za-z0-9_-]{43}$/;

/** The signed-in administrator as a session carries them: id, address and organisation. */
export interface SessionAdmin {
  id: string;
  email: string;
  organisation: { id: string; name: string };
}

/** A live admin session, looked up on every request (so a removed administrator's sessions end at once). */
export interface Session {
  id: string;
  admin: SessionAdmin;
  expires_at: Date;
}

/** The answer of a sign-in or an accepted invitation: the session token (also set as a cookie), its expiry and the administrator. */
export interface SignedIn {
  token: string;
  csrf_token: string;
  expires_at: string;
  admin: SessionAdmin;
}

/** Body of POST /admin/api/login: `{email, password}`, strict (unknown fields are 400). */
export const signInBody = z
  .object({
    email: z.string({ error: 'must be a string' }).trim().min(1, 'is required').max(254, 'must be at most 254 characters'),
    password: z.string({ error: 'must be a string' }).min(1, 'is required').max(1024, 'must be at most 1024 characters'),
  })
  .strict();
export type SignInInput = z.infer<typeof signInBody>;

const hashToken = (token: string) => createHash('sha256').update(token, 'utf8').digest('base64url');

/** Whether `token` has a session token's format (`sas_` + 43 base64url characters): no database read for junk. */
export function isWellFormedSessionToken(token: string): boolean {
  return sessionTokenPattern.test(token);
}

/**
 * The CSRF token of a cookie session (docs/admin-api.md): HMAC-SHA-256 of a constant under the session token, base64url.
 * Derived, never stored; sent as `X-CSRF-Token` with cookie-authenticated changes.
 */
export function csrfTokenFor(sessionToken: string): string {
  return createHmac('sha256', sessionToken).update('sat admin csrf v1').digest('base64url');
}

/** Constant-time comparison of a presented CSRF token with the session's. */
export function checkCsrfToken(sessionToken: string, presented: string | undefined): boolean {
  if (!presented) return false;
  const a = Buffer.from(csrfTokenFor(sessionToken));
  const b = Buffer.from(presented);
  return a.length === b.length && timingSafeEqual(a, b);
}

const tooManySignIns = () => new RateLimitedError('Too many sign-ins at once. Try again in a moment.', 1);

const invalidCredentials = () => new AppError('invalid_credentials', 'The email or password is not correct.');

/**
 * POST /admin/api/login. A wrong email and a wrong password take the same path (a password check against a
 * dummy hash when the email is unknown) and give the same 401. The throttle counts the attempt before the
 * password is checked; past its limits the attempt waits, then is refused (RateLimitedError: 429 + Retry-After).
 */
export async function signIn(deps: Deps, input: SignInInput, meta: SessionMeta = {}): Promise<SignedIn> {
  const { config } = deps;
  const db = deps.db.knex;
  const ip = meta.ip ?? null;
  // Past the password-hashing queue, refuse before any database work: a storm of sign-ins then costs the
  // server (and the token endpoint beside it) almost nothing (SPEC Part 2 "Admin sign-in cannot starve").
  if (!passwordCheckHasRoom()) throw tooManySignIns();
  const keys = { email: emailKey(input.email), address: addressKey(ip) };
  // The address first: a blocked address is refused before its attempt touches the email's row, so it cannot
  // add a row per email it tries (SPEC Part 2 "Bounded state": a blocked address adds nothing).
  let verdict = await registerAttempt(db, [keys.address], deps.clock(), config.loginThrottle);
  if (verdict.retryAfterSeconds === undefined) {
    const byEmail = await registerAttempt(db, [keys.email], deps.clock(), config.loginThrottle);
    if (byEmail.retryAfterSeconds !== undefined) {
      // Refused for the account's lockout, no password checked: not a guess from this address, which gets the
      // attempt back (people retrying a locked account behind one office NAT do not use up its allowance, and a
      // new address's row is left at 0, the first to go when the table is over its cap).
      await giveBackAttempt(db, [keys.address]);
    }
    verdict = byEmail.retryAfterSeconds !== undefined ? byEmail : { delayMs: Math.max(verdict.delayMs, byEmail.delayMs) };
  }
  if (verdict.retryAfterSeconds !== undefined) {
    throw new RateLimitedError('Too many failed sign-in attempts. Try again later.', verdict.retryAfterSeconds);
  }
  if (verdict.delayMs > 0) await sleep(verdict.delayMs);
  try {
    return await checkAndOpenSession(deps, input, meta, keys);
  } catch (err) {
    // Only a wrong email or password counts against the throttle: an attempt the server could not finish (a
    // database outage, a full hashing queue) is given back, or a correct password would meet 429 for the rest of
    // the window once the database is back.
    if (!(err instanceof AppError && err.code === 'invalid_credentials')) {
      await giveBackAttempt(db, [keys.email, keys.address]).catch(() => undefined); // best effort: it may be down
    }
    throw err;
  }
}

/**
 * verifyPassword against `stored`, or against the dummy hash when there is none (an unknown address: the same work);
 * a full hashing queue is 429 (password checks run on a few threads with a short queue, SPEC Part 2: come back in a
 * moment).
 */
async function checkPassword(password: string, stored: string | undefined): Promise<boolean> {
  try {
    return await verifyPassword(password, stored ?? (await dummyPasswordHash()));
  } catch (err) {
    if (err instanceof PasswordQueueFullError) throw tooManySignIns();
    throw err;
  }
}

/** signIn after the throttle let the attempt through: the password check, then the session. */
async function checkAndOpenSession(deps: Deps, input: SignInInput, meta: SessionMeta, keys: { email: string; address: string }): Promise<SignedIn> {
  const { config } = deps;
  const db = deps.db.knex;
  const ip = meta.ip ?? null;
  const admin = await q.findAdminByEmail(db, input.email.trim());
  const ok = await checkPassword(input.password, admin?.password_hash);
  if (!admin || !ok) {
    if (admin) {
      await recordFailedSignIn(db, admin, ip, deps.clock(), config.loginThrottle.windowSeconds * 1000).catch((err: unknown) => {
        if (!isForeignKeyViolation(err)) throw err; // removed meanwhile: nobody's audit log to write to
      });
    }
    throw invalidCredentials();
  }
  const organisation = await q.findOrganisationById(db, admin.organisation_id);
  if (!organisation) throw invalidCredentials();
  // A hash of another cost (the setting changed since it was made) is made again at the current one, outside the
  // transaction (it takes a while); a full hashing queue only leaves it for the next sign-in.
  const rehashed = needsRehash(admin.password_hash) ? await hashPassword(input.password).catch(() => undefined) : undefined;

  const now = deps.clock();
  // The hash the password was checked against. The password was checked outside any transaction (it takes a while):
  // while it ran, the administrator may have been removed, or their password changed or reset, ending "every other
  // session" before this one exists (SPEC Part 2). So their row is locked (a change or removal in progress is waited
  // for) and the hash read again: a sign-in of an administrator who is gone is refused like any wrong password, and
  // a change that comes after this lock sees, and ends, this session. A hash that changed is checked again, outside
  // the transaction (no row lock or connection held while hashing), then the lock taken again: a password that is no
  // longer theirs is refused; the same one made again at the current cost by a sign-in a moment ago is not.
  let checked = admin.password_hash;
  for (let attempt = 1; ; attempt++) {
    const outcome = await db.transaction(async (trx) => {
      const current = await trx<AdminRow>('admins').select('password_hash').where({ id: admin.id }).forNoKeyUpdate().first();
      if (!current) throw invalidCredentials();
      if (current.password_hash !== checked) return { changed: current.password_hash, session: undefined };
      if (rehashed && checked === admin.password_hash) await trx('admins').where({ id: admin.id }).update({ password_hash: rehashed });
      const session = await createSession(trx, deps, admin, meta, now);
      await recordAudit(trx, {
        organisation_id: admin.organisation_id,
        actor_id: admin.id,
        actor_email: admin.email,
        action: 'admin.signed_in',
        ip,
        created_at: now,
      });
      await forgiveAttempt(trx, keys.email, keys.address);
      return { session };
    });
    if (outcome.session) return signedIn(outcome.session.token, outcome.session.expiresAt, admin, organisation);
    // Changed again and again while this sign-in ran: refused as a wrong password (the next attempt is fresh).
    const changed = outcome.changed!;
    if (attempt >= 3 || !(await checkPassword(input.password, changed))) throw invalidCredentials();
    checked = changed;
  }
}

/** How long `admin.sign_in_failed` events are kept (pruneSessions): what anyone who knows an address can add. */
export const FAILED_SIGN_IN_RETENTION_MS = 90 * 86_400_000;

/**
 * The audit trail of failed sign-ins to a known address, bounded (SPEC Part 2 "Bounded state from unauthenticated
 * traffic": anyone who knows an administrator's address can fail to sign in): the failures of one administrator
 * within `windowMs` (the throttle's window, counted from the first) are one `admin.sign_in_failed` event, whose
 * details count them, `{attempts, first_at}`, and such events go after FAILED_SIGN_IN_RETENTION_MS. The event's
 * time and `ip` are the latest failure's.
 */
async function recordFailedSignIn(db: Db, admin: AdminRow, ip: string | null, now: Date, windowMs: number): Promise<void> {
  const recent = (await db('audit_events')
    .select('id')
    .where({ organisation_id: admin.organisation_id, action: 'admin.sign_in_failed', actor_id: admin.id })
    .andWhere('created_at', '>', new Date(now.getTime() - windowMs))
    .andWhereRaw("coalesce((details->>'first_at')::timestamptz, created_at) > ?", [new Date(now.getTime() - windowMs)])
    .orderBy('created_at', 'desc')
    .first()) as { id: string } | undefined;
  if (recent) {
    // The event moves to the latest failure (its time and address), so the log reads in order around sign-ins. The
    // count is incremented in the statement itself: failures at the same moment (two instances) each count.
    await db('audit_events')
      .where({ id: recent.id })
      .update({
        created_at: now,
        ip,
        details: db.raw(
          "jsonb_build_object('attempts', coalesce((details->>'attempts')::int, 1) + 1, 'first_at', coalesce(details->>'first_at', ?::text))",
          [now.toISOString()],
        ),
      });
    return;
  }
  await recordAudit(db, {
    organisation_id: admin.organisation_id,
    actor_id: admin.id,
    actor_email: admin.email,
    action: 'admin.sign_in_failed',
    ip,
    created_at: now,
    details: { attempts: 1, first_at: now.toISOString() },
  });
}

/** Where a sign-in came from: the client address and the User-Agent header (kept to show in the session list). */
export interface SessionMeta {
  ip?: string | null;
  userAgent?: string | null;
}

const MAX_USER_AGENT = 512;

/**
 * A new session for `admin` (inside the caller's transaction): `sas_` + 256 random bits, only its SHA-256 stored.
 * Used by sign-in and by accepting an invitation ("200 and a session, as login").
 */
export async function createSession(
  trx: Db,
  deps: Pick<Deps, 'config'>,
  admin: { id: string },
  meta: SessionMeta,
  now: Date,
): Promise<{ id: string; token: string; expiresAt: Date }> {
  const token = SESSION_TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const expiresAt = new Date(now.getTime() + deps.config.adminSessionTtlSeconds * 1000);
  const id = randomUUID();
  await trx<AdminSessionRow>('admin_sessions').insert({
    id,
    token_hash: hashToken(token),
    admin_id: admin.id,
    created_at: now,
    last_seen_at: now,
    expires_at: expiresAt,
    ip: meta.ip ?? null,
    user_agent: meta.userAgent ? meta.userAgent.slice(0, MAX_USER_AGENT) : null,
  });
  await trx('admins').where({ id: admin.id }).update({ last_sign_in_at: now });
  return { id, token, expiresAt };
}

/** The body of a sign-in answer (login, accepted invitation). */
export function signedIn(
  token: string,
  expiresAt: Date,
  admin: { id: string; email: string },
  organisation: { id: string; name: string },
): SignedIn {
  return {
    token,
    csrf_token: csrfTokenFor(token),
    expires_at: expiresAt.toISOString(),
    admin: { id: admin.id, email: admin.email, organisation: { id: organisation.id, name: organisation.name } },
  };
}

/** last_seen_at is written at most this often per session: one small write a minute, not one per request. */
const LAST_SEEN_RESOLUTION_MS = 60_000;

/** The live session of a token, or undefined (malformed, unknown, expired). One indexed read. */
export async function resolveSession(deps: Deps, token: string): Promise<Session | undefined> {
  if (!isWellFormedSessionToken(token)) return undefined;
  const row = (await deps.db
    .knex('admin_sessions as s')
    .join('admins as a', 'a.id', 's.admin_id')
    .join('organisations as o', 'o.id', 'a.organisation_id')
    .select(
      's.id',
      's.expires_at',
      's.last_seen_at',
      'a.id as admin_id',
      'a.email',
      'o.id as organisation_id',
      'o.name as organisation_name',
    )
    .where('s.token_hash', hashToken(token))
    .andWhere('s.expires_at', '>', deps.clock())
    .first()) as
    | {
        id: string;
        expires_at: Date;
        last_seen_at: Date | null;
        admin_id: string;
        email: string;
        organisation_id: string;
        organisation_name: string;
      }
    | undefined;
  if (!row) return undefined;
  const now = deps.clock();
  if (!row.last_seen_at || now.getTime() - new Date(row.last_seen_at).getTime() >= LAST_SEEN_RESOLUTION_MS) {
    await deps.db.knex('admin_sessions').where({ id: row.id }).update({ last_seen_at: now });
  }
  return {
    id: row.id,
    expires_at: row.expires_at,
    admin: { id: row.admin_id, email: row.email, organisation: { id: row.organisation_id, name: row.organisation_name } },
  };
}

/** POST /admin/api/logout: the session row goes, with an audit record. */
export async function signOut(deps: Deps, session: Session, meta: { ip?: string | null } = {}): Promise<void> {
  await deps.db.knex.transaction(async (trx) => {
    const deleted = affectedRows(await trx('admin_sessions').where({ id: session.id }).delete());
    if (deleted === 0) return;
    await recordAudit(trx, {
      organisation_id: session.admin.organisation.id,
      actor_id: session.admin.id,
      actor_email: session.admin.email,
      action: 'admin.signed_out',
      ip: meta.ip ?? null,
      created_at: deps.clock(),
    });
  });
}

/** Housekeeping: expired sessions, finished throttle windows, expired or used invitations and reset links. */
export async function pruneSessions(deps: Pick<Deps, 'db' | 'config' | 'clock'>): Promise<number> {
  const now = deps.clock();
  const db: Db = deps.db.knex;
  const sessions = affectedRows(await db('admin_sessions').where('expires_at', '<=', now).delete());
  const throttle = await pruneLoginThrottle(db, now, deps.config.loginThrottle);
  const oneTime = affectedRows(
    await db('admin_one_time_tokens').where('expires_at', '<=', now).orWhereNotNull('used_at').delete(),
  );
  const failedSignIns = affectedRows(
    await db('audit_events')
      .where({ action: 'admin.sign_in_failed' })
      .andWhere('created_at', '<=', new Date(now.getTime() - FAILED_SIGN_IN_RETENTION_MS))
      .delete(),
  );
  return sessions + throttle + oneTime + failedSignIns;
}
