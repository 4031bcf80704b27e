// The audit log: who generated or revoked which token, who signed in, when and from which address.
import { randomUUID } from 'node:crypto';
import { cursorTimeSql, decodeCursor, encodeCursor, type AuditEventRow, type Db } from '../db/index.js';
import { validationFailed } from '../errors.js';

export type AuditAction =
  | 'token.generated'
  | 'token.revoked'
  | 'token.leaked'
  | 'token.updated'
  | 'token.denied_address'
  | 'policy.updated'
  | 'token.secret_rotated'
  | 'token.secret_retired'
  | 'token.secret_expired'
  | 'admin.signed_in'
  | 'admin.sign_in_failed'
  | 'admin.signed_out'
  | 'admin.invited'
  | 'admin.invitation_withdrawn'
  | 'admin.added'
  | 'admin.removed'
  | 'admin.password_changed'
  | 'admin.password_reset'
  | 'admin.session_revoked';

export interface AuditEventInput {
  organisation_id: string;
  /** null for the `sat` CLI (actor_email 'cli'). */
  actor_id: string | null;
  actor_email: string;
  action: AuditAction;
  token_id?: string | null;
  token_name?: string | null;
  client_id?: string | null;
  ip?: string | null;
  created_at?: Date;
  /** Facts of the event as JSON, e.g. `{old, new}` of a policy or the changed fields of a token. */
  details?: Record<string, unknown> | null;
  /** The administrator an admin.* event is about (the invitee, the removed administrator, …). */
  subject_admin?: { id: string | null; email: string } | null;
  /** `token.leaked` only. */
  leak?: LeakFacts | null;
}

/** Where a leaked secret was found (`url`, null when not known), who reported it, and what the server did. */
export interface LeakFacts {
  url: string | null;
  /** The alert's `source` (`content`, `commit`, `npm`, ...) or `public report`. */
  source: string;
  action: 'revoked' | 'notified';
}

/** The audit event of the admin API (GET /admin/api/audit). */
export interface AuditEventResource {
  id: string;
  action: string;
  actor_id: string | null;
  actor_email: string;
  token_id: string | null;
  token_name: string | null;
  client_id: string | null;
  ip: string | null;
  created_at: string;
  /** Facts of the event (old and new values of a change), or null. */
  details: Record<string, unknown> | null;
  /** The administrator an admin.* event is about; absent on token and sign-in events. */
  subject_admin?: { id: string | null; email: string };
  /** `token.leaked` events: where the secret was found and what the server did; null for other events. */
  leak: LeakFacts | null;
}

export interface AuditPage {
  items: AuditEventResource[];
  next_cursor: string | null;
}

/**
 * Writes one event; call it with the transaction of the change it records, so both commit or neither. Its
 * `created_at` (the caller's clock, read when the request began) is moved just past the organisation's latest event
 * when that is later: concurrent changes of one token or policy wait for each other's row lock, and the one that
 * waited records its event after the other's, so the log (newest first by created_at) shows them in the order they
 * took effect (docs/admin-api.md "Concurrent calls").
 */
export async function recordAudit(trx: Db, event: AuditEventInput): Promise<void> {
  const createdAt = event.created_at
    ? trx.raw(
        `greatest(?::timestamptz, (select max(created_at) + interval '1 microsecond' from audit_events where organisation_id = ?))`,
        [event.created_at, event.organisation_id],
      )
    : undefined;
  await trx<AuditEventRow>('audit_events').insert({
    id: randomUUID(),
    organisation_id: event.organisation_id,
    actor_id: event.actor_id,
    actor_email: event.actor_email,
    action: event.action,
    token_id: event.token_id ?? null,
    token_name: event.token_name ?? null,
    client_id: event.client_id ?? null,
    ip: event.ip ?? null,
    ...(event.subject_admin
      ? { subject_admin_id: event.subject_admin.id, subject_admin_email: event.subject_admin.email }
      : {}),
    ...(event.leak ? { leak_url: event.leak.url, leak_source: event.leak.source, leak_action: event.leak.action } : {}),
    ...(createdAt ? { created_at: createdAt as unknown as Date } : {}),
    ...(event.details ? { details: JSON.stringify(event.details) as unknown as Record<string, unknown> } : {}),
  });
}

/** jsonb arrives parsed from PostgreSQL and the embedded engine alike; a text column (if another change made one) as a string. */
function parseDetails(value: unknown): Record<string, unknown> | null {
  if (value === null || value === undefined) return null;
  if (typeof value === 'string') {
    try {
      return JSON.parse(value) as Record<string, unknown>;
    } catch {
      return null;
    }
  }
  return value as Record<string, unknown>;
}

function toAuditResource(row: AuditEventRow): AuditEventResource {
  return {
    id: row.id,
    action: row.action,
    actor_id: row.actor_id,
    actor_email: row.actor_email,
    token_id: row.token_id,
    token_name: row.token_name,
    client_id: row.client_id,
    ip: row.ip,
    created_at: row.created_at.toISOString(),
    details: parseDetails(row.details),
    ...(row.subject_admin_email ? { subject_admin: { id: row.subject_admin_id ?? null, email: row.subject_admin_email } } : {}),
    leak:
      row.leak_source && row.leak_action
        ? { url: row.leak_url ?? null, source: row.leak_source, action: row.leak_action as LeakFacts['action'] }
        : null,
  };
}

/**
 * One organisation's events, newest first, keyset-paged on the (organisation_id, created_at, id) index. `tokenId`
 * (a UUID, checked by the caller) keeps only that token's events, revoked tokens' included: still within the
 * organisation, so another organisation's token id gives an empty page.
 */
export async function listAudit(
  db: Db,
  organisationId: string,
  page: { limit: number; cursor?: string | undefined; tokenId?: string | undefined },
): Promise<AuditPage> {
  const key = page.cursor === undefined ? undefined : decodeCursor(page.cursor);
  if (page.cursor !== undefined && !key) throw validationFailed('cursor', 'is not a cursor from a previous page');
  const query = db('audit_events as e')
    .select('e.*', db.raw(`${cursorTimeSql('e.created_at')} as cursor_at`))
    .where('e.organisation_id', organisationId)
    .orderBy([
      { column: 'e.created_at', order: 'desc' },
      { column: 'e.id', order: 'desc' },
    ])
    .limit(page.limit + 1);
  if (page.tokenId !== undefined) query.andWhere('e.token_id', page.tokenId);
  if (key) query.andWhereRaw('(e.created_at, e.id) < (?::timestamptz, ?::uuid)', [key.at, key.id]);
  const rows = (await query) as Array<AuditEventRow & { cursor_at: string }>;
  const items = rows.slice(0, page.limit);
  const last = items[items.length - 1];
  return {
    items: items.map(toAuditResource),
    next_cursor: rows.length > page.limit && last ? encodeCursor({ at: last.cursor_at, id: last.id }) : null,
  };
}

/**
 * How many distinct tokens of the organisation were reported leaked (`token.leaked`) since `since`: revoked ones
 * and ones kept alive alike. Reads only those events (partial index audit_events_leaked_idx).
 */
export async function countLeakedTokens(db: Db, organisationId: string, since: Date): Promise<number> {
  const row = await db('audit_events')
    .where({ organisation_id: organisationId, action: 'token.leaked' })
    .andWhere('created_at', '>=', since)
    .countDistinct<{ count: number | string }>({ count: 'token_id' })
    .first();
  return Number(row?.count ?? 0);
}
