import { randomUUID } from 'node:crypto';
import { countLeakedTokens, recordAudit } from '../audit/index.js';
import { decodeCursor, encodeCursor, isUniqueViolation, isUuid } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, validationFailed } from '../errors.js';
import { queueTokenGeneratedMail, queueTokenRevokedMail } from '../mail/index.js';
import { generateClientId, generateClientSecret, hashSecret } from './credentials.js';
import { resolveExpiry } from './expiry.js';
import * as q from './queries.js';
import { toTokenResource, type TokenResource } from './resource.js';
import type { GenerateTokenInput, ListTokensInput } from './schemas.js';

/**
 * Who acts: an administrator of one organisation, or the `sat` CLI acting for an organisation
 * (`id: null`, `email: 'cli'`: the token gets `created_by: null`, the audit log says "cli").
 */
export interface Actor {
  id: string | null;
  email: string;
  organisation_id: string;
}

/** Facts about the request, for the audit log and the notices (null/absent from the CLI). */
export interface RequestMeta {
  ip?: string | null;
}

export interface GeneratedToken extends TokenResource {
  /** Returned once, here, and never stored in clear. */
  client_secret: string;
}

export interface TokenPage {
  items: TokenResource[];
  next_cursor: string | null;
  active_count: number;
  max_active: number;
  /** Distinct tokens reported leaked (audit `token.leaked`, revoked or kept alive) in the last LEAKED_COUNT_DAYS days. */
  leaked_count: number;
}

export interface RevokedToken {
  id: string;
  name: string;
  client_id: string;
  revoked_at: string;
}

export const DEFAULT_PAGE_SIZE = 20;
/** The window of the token list's `leaked_count`. */
export const LEAKED_COUNT_DAYS = 30;

function checkServices(deps: Pick<Deps, 'config'>, services: string[]): string[] {
  const known = new Set(deps.config.services.map((s) => s.id));
  const unknown = services.filter((s) => !known.has(s));
  if (unknown.length > 0) throw validationFailed('services', `unknown service: ${unknown.join(', ')}`);
  // Catalogue order, no duplicates.
  return deps.config.services.map((s) => s.id).filter((id) => services.includes(id));
}

const notFound = () => new AppError('not_found', 'No such token.');

/**
 * SPEC "Admin API", POST /admin/api/tokens: validates against config and time, then in one transaction
 * locks the organisation, enforces the active-token limit and name uniqueness, inserts the token and
 * records the audit event.
 */
export async function generateToken(
  deps: Deps,
  actor: Actor,
  input: GenerateTokenInput,
  meta: RequestMeta = {},
): Promise<GeneratedToken> {
  const now = deps.clock();
  const services = checkServices(deps, input.services);
  const expiresAt = resolveExpiry(input.expires_at, now, deps.config.maxTokenLifetimeDays);
  const clientSecret = generateClientSecret();
  const secretHash = hashSecret(clientSecret);

  try {
    const row = await deps.db.knex.transaction(async (trx) => {
      if (!(await q.lockOrganisation(trx, actor.organisation_id))) throw new AppError('not_found', 'organisation not found');
      const active = await q.countActiveTokens(trx, actor.organisation_id, now);
      if (active >= deps.config.maxActiveTokens) {
        throw new AppError(
          'token_limit_reached',
          `This organisation already has ${active} active tokens, the most it may have (${deps.config.maxActiveTokens}). Revoke one to generate another.`,
        );
      }
      const inserted = await q.insertToken(trx, {
        id: randomUUID(),
        organisation_id: actor.organisation_id,
        name: input.name,
        client_id: generateClientId(),
        secret_hash: secretHash,
        secret_id: randomUUID(),
        secret_created_at: now,
        secret_last4: clientSecret.slice(-4),
        services,
        expires_at: expiresAt,
        created_at: now,
        created_by: actor.id,
      });
      await recordAudit(trx, {
        organisation_id: actor.organisation_id,
        actor_id: actor.id,
        actor_email: actor.email,
        action: 'token.generated',
        token_id: inserted.id,
        token_name: inserted.name,
        client_id: inserted.client_id,
        ip: meta.ip ?? null,
        created_at: now,
      });
      // MAIL: token generated — queued in this transaction (SPEC "Email"); no mail for a CLI actor (no address).
      await queueTokenGeneratedMail(trx, deps, {
        token: toTokenResource(inserted, now),
        generatedBy: { id: actor.id, email: actor.id ? actor.email : null },
        at: now,
        ip: meta.ip ?? null,
      });
      return inserted;
    });
    return { ...toTokenResource({ ...row, creator_email: actor.id ? actor.email : null }, now), client_secret: clientSecret };
  } catch (err) {
    if (isUniqueViolation(err, 'tokens_org_name_uq')) {
      throw new AppError('name_taken', `A token named "${input.name}" already exists in this organisation.`, [
        { path: 'name', message: 'already used by another token of this organisation' },
      ]);
    }
    throw err;
  }
}

export async function getToken(deps: Deps, actor: Actor, id: string): Promise<TokenResource> {
  if (!isUuid(id)) throw notFound();
  const row = await q.findTokenById(deps.db.knex, actor.organisation_id, id);
  if (!row) throw notFound();
  return toTokenResource(row, deps.clock());
}

/**
 * GET /admin/api/tokens: newest first, keyset-paged. The cursor names the last item seen, so a page never
 * repeats or skips a token that existed throughout, whatever is generated or revoked between pages.
 */
export async function listTokens(deps: Deps, actor: Actor, input: ListTokensInput = {}): Promise<TokenPage> {
  const now = deps.clock();
  const limit = input.limit ?? DEFAULT_PAGE_SIZE;
  const after = input.cursor === undefined ? undefined : decodeCursor(input.cursor);
  if (input.cursor !== undefined && !after) throw validationFailed('cursor', 'is not a cursor from a previous page');
  const db = deps.db.knex;
  const [rows, active, leaked] = await Promise.all([
    q.listTokenRows(db, actor.organisation_id, { q: input.q || undefined, status: input.status, after, limit, now }),
    q.countActiveTokens(db, actor.organisation_id, now),
    countLeakedTokens(db, actor.organisation_id, new Date(now.getTime() - LEAKED_COUNT_DAYS * 86_400_000)),
  ]);
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  return {
    items: items.map((r) => toTokenResource(r, now)),
    next_cursor: rows.length > limit && last ? encodeCursor({ at: last.cursor_at, id: last.id }) : null,
    active_count: active,
    max_active: deps.config.maxActiveTokens,
    leaked_count: leaked,
  };
}

/**
 * POST /admin/api/tokens/{id}/revoke (SPEC rule 6): deletes the client in one transaction with its audit record.
 * From the commit on, the token endpoint answers invalid_client on every instance (the client is read on each
 * request) and introspection reports the client's access tokens inactive.
 */
export async function revokeToken(deps: Deps, actor: Actor, id: string, meta: RequestMeta = {}): Promise<RevokedToken> {
  if (!isUuid(id)) throw notFound();
  const now = deps.clock();
  return deps.db.knex.transaction(async (trx) => {
    const row = await q.deleteToken(trx, actor.organisation_id, id);
    if (!row) throw notFound();
    const creatorEmail = row.created_by ? ((await q.findAdminEmail(trx, row.created_by)) ?? null) : null;
    await recordAudit(trx, {
      organisation_id: actor.organisation_id,
      actor_id: actor.id,
      actor_email: actor.email,
      action: 'token.revoked',
      token_id: row.id,
      token_name: row.name,
      client_id: row.client_id,
      ip: meta.ip ?? null,
      created_at: now,
    });
    // MAIL: token revoked — to the generating and the revoking administrator, one copy each (SPEC "Email").
    await queueTokenRevokedMail(trx, deps, {
      token: toTokenResource(row, now),
      generatedBy: creatorEmail ? { id: row.created_by, email: creatorEmail } : null,
      revokedBy: { id: actor.id, email: actor.id ? actor.email : null },
      at: now,
      ip: meta.ip ?? null,
    });
    return { id: row.id, name: row.name, client_id: row.client_id, revoked_at: now.toISOString() };
  });
}

/** SPEC "Email": the former single notice's threshold; now one of `expiryReminderDays` (tokens/reminders.ts). */
export const EXPIRY_NOTICE_DAYS = 7;
