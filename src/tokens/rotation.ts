// Secret rotation with overlap (SPEC Part 2 "Credential lifecycle"): rotate, retire, and the end of grace periods.
import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { recordAudit } from '../audit/index.js';
import { affectedRows, isUuid, type Db, type TokenRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError } from '../errors.js';
import { queueSecretRotatedMail } from '../mail/index.js';
import { generateClientSecret, hashSecret } from './credentials.js';
import * as q from './queries.js';
import type { TokenResource } from './resource.js';
import { lockLiveToken, resourceOf, type Actor, type RequestMeta } from './service.js';

/** Body of POST /admin/api/tokens/{id}/rotate. */
export const rotateSecretBody = z
  .object({
    grace_period_hours: z
      .number({ error: 'must be a whole number of hours from 0 to 720' })
      .int('must be a whole number of hours from 0 to 720')
      .min(0, 'must be a whole number of hours from 0 to 720')
      .max(720, 'must be a whole number of hours from 0 to 720')
      .optional(),
  })
  .strict();
export type RotateSecretInput = z.infer<typeof rotateSecretBody>;

/** SPEC Part 2 "Secret rotation with overlap": the previous secret's grace period when none is given. */
export const DEFAULT_GRACE_PERIOD_HOURS = 24;

/** The answer of a rotation: the token resource and its new secret. */
export interface RotatedToken extends TokenResource {
  /** The new secret: returned once, here, and never stored in clear. */
  client_secret: string;
}

const notFound = () => new AppError('not_found', 'No such token.');

/**
 * 409 `conflict`: the token authenticates with private_key_jwt, so it has no secret to rotate or retire (SPEC Part 2
 * "private_key_jwt"); its public keys are replaced instead. The message gives the admin API's way (PATCH); `sat`
 * gives its own (commands.ts).
 */
export class NoSecretToRotate extends AppError {
  constructor() {
    super('conflict', 'This token authenticates with private_key_jwt: it has no secret. Replace its public keys with PATCH instead.');
    this.name = 'NoSecretToRotate';
  }
}

/**
 * The token row, locked for the rest of the transaction (lockLiveToken: 404 outside the actor's organisation, 409
 * conflict when expired); 409 NoSecretToRotate for a private_key_jwt token.
 */
async function lockToken(trx: Db, actor: Actor, id: string, now: Date): Promise<q.TokenWithCreator> {
  const row = await lockLiveToken(trx, actor, id, now);
  // SPEC Part 2 "private_key_jwt": secret rotation does not apply (409); the keys are replaced by PATCH instead.
  if (row.auth_method === 'private_key_jwt' || row.secret_hash === null) throw new NoSecretToRotate();
  return row;
}

const prevLive = (row: TokenRow, now: Date) =>
  !!row.prev_secret_hash && !!row.prev_secret_expires_at && row.prev_secret_expires_at.getTime() > now.getTime();

const CLEARED_PREVIOUS = {
  prev_secret_id: null,
  prev_secret_hash: null,
  prev_secret_created_at: null,
  prev_secret_expires_at: null,
  prev_secret_last_used_at: null,
  prev_secret_last4: null,
  prev_secret_leaked_at: null,
} as const;

/** The actor of `token.secret_expired`. */
const SYSTEM = { id: null, email: 'system' } as const;

/**
 * The audit event of a secret change. `details` names the secrets by id and last four characters, never more
 * (docs/rotation.md "Audit"): `token.secret_rotated` {secret_id, secret_last4, previous_secret_id,
 * previous_secret_last4, grace_period_hours, previous_stops_at}; `token.secret_retired` {secret_id, secret_last4,
 * rolled_back}; `token.secret_expired` {secret_id, secret_last4}.
 */
function audit(
  trx: Db,
  actor: { id: string | null; email: string },
  row: TokenRow,
  action: 'token.secret_rotated' | 'token.secret_retired' | 'token.secret_expired',
  now: Date,
  ip: string | null,
  details: Record<string, unknown>,
) {
  return recordAudit(trx, {
    organisation_id: row.organisation_id,
    actor_id: actor.id,
    actor_email: actor.email,
    action,
    token_id: row.id,
    token_name: row.name,
    client_id: row.client_id,
    ip,
    created_at: now,
    details,
  });
}

/** The previous secret of `row` as an audit event names it. */
const previousSecret = (row: TokenRow) => ({ secret_id: row.prev_secret_id ?? null, secret_last4: row.prev_secret_last4 ?? null });
/** The current secret of `row` as an audit event names it. */
const currentSecret = (row: TokenRow) => ({ secret_id: row.secret_id ?? null, secret_last4: row.secret_last4 ?? null });

/**
 * POST /admin/api/tokens/{id}/rotate: a new secret for the same client ID. The current secret becomes the previous
 * one and keeps working for `grace_period_hours` (default 24, 0 stops it at once). At most two live secrets:
 * 409 `rotation_in_progress` while a previous secret is still live. One transaction with the token row locked:
 * the change, the audit event `token.secret_rotated` and the mail to the creator and the rotating administrator.
 * A previous secret whose grace period ended but that the `secret-expiry` job has not yet swept is recorded
 * `token.secret_expired` here, so that event is never lost; with grace 0 the replaced secret is recorded
 * `token.secret_expired` at once. A leak report (`leaked_at`, notify mode) moves with the replaced secret: gone
 * with it at once for grace 0, at the end of the grace period otherwise (docs/leaked-secrets.md).
 */
export async function rotateSecret(deps: Deps, actor: Actor, id: string, input: RotateSecretInput, meta: RequestMeta = {}): Promise<RotatedToken> {
  const now = deps.clock();
  const graceHours = input.grace_period_hours ?? DEFAULT_GRACE_PERIOD_HOURS;
  const secret = generateClientSecret();
  const stopsAt = new Date(now.getTime() + graceHours * 3_600_000);
  const row = await deps.db.knex.transaction(async (trx) => {
    const token = await lockToken(trx, actor, id, now);
    if (prevLive(token, now)) {
      throw new AppError(
        'rotation_in_progress',
        `This token already has two live secrets; the previous one stops at ${earlier(token.prev_secret_expires_at!, token.expires_at).toISOString()}. Retire one to rotate again.`,
      );
    }
    if (token.prev_secret_hash) await audit(trx, SYSTEM, token, 'token.secret_expired', now, null, previousSecret(token));
    const keep = graceHours > 0;
    // Grace period 0: the current secret ends now, and is recorded as expired like one whose grace period ran out.
    // 1 ms before the rotation event, so the audit log (newest first) lists the rotation, then that expiry.
    if (!keep) await audit(trx, SYSTEM, token, 'token.secret_expired', new Date(now.getTime() - 1), null, currentSecret(token));
    const newSecretId = randomUUID();
    const previousStopsAt = keep ? earlier(stopsAt, token.expires_at) : now; // the token's expiry ends every secret
    const changes: Partial<TokenRow> = {
      secret_hash: hashSecret(secret),
      secret_id: newSecretId,
      secret_created_at: now,
      secret_last_used_at: null,
      secret_last4: secret.slice(-4),
      leaked_at: null, // the new secret was never reported; a report of the replaced one goes with it
      ...(keep
        ? {
            prev_secret_id: token.secret_id ?? randomUUID(),
            prev_secret_hash: token.secret_hash,
            prev_secret_created_at: token.secret_created_at ?? token.created_at,
            prev_secret_expires_at: stopsAt,
            prev_secret_last_used_at: token.secret_last_used_at ?? null,
            prev_secret_last4: token.secret_last4 ?? null,
            prev_secret_leaked_at: token.leaked_at ?? null,
          }
        : CLEARED_PREVIOUS),
    };
    const [updated] = (await trx('tokens').where({ id: token.id }).update(changes).returning('*')) as TokenRow[];
    await audit(trx, actor, token, 'token.secret_rotated', now, meta.ip ?? null, {
      secret_id: newSecretId,
      secret_last4: secret.slice(-4),
      previous_secret_id: updated!.prev_secret_id ?? token.secret_id ?? null,
      previous_secret_last4: token.secret_last4 ?? null,
      grace_period_hours: graceHours,
      previous_stops_at: previousStopsAt.toISOString(),
    });
    // MAIL: secret rotated — to the token's creator and the rotating administrator (SPEC); never the secret.
    await queueSecretRotatedMail(trx, deps, {
      organisationId: token.organisation_id,
      token: { name: token.name, client_id: token.client_id, services: token.services, expires_at: token.expires_at },
      generatedBy: token.creator_email,
      rotatedBy: actor.id ? actor.email : null,
      at: now,
      previousStopsAt,
      ip: meta.ip ?? null,
    });
    return { ...updated!, creator_email: token.creator_email };
  });
  return { ...(await resourceOf(deps, row, now)), client_secret: secret };
}

/** The earlier of two instants: a secret's grace period never outlasts its token (docs/rotation.md). */
const earlier = (a: Date, b: Date): Date => (a.getTime() <= b.getTime() ? a : b);


/**
 * POST /admin/api/tokens/{id}/secrets/{secret_id}/retire: that secret stops at once (audit `token.secret_retired`).
 * Retiring the only live secret is 409 `last_secret`. Retiring the newest secret while the previous one is still in
 * its grace period rolls the rotation back: the previous secret becomes the token's only secret again and lives as
 * long as the token (otherwise the token would silently lose its last secret when the grace period ends).
 * A leak report of the retired secret goes with it; one of the secret kept stays.
 */
export async function retireSecret(deps: Deps, actor: Actor, id: string, secretId: string, meta: RequestMeta = {}): Promise<TokenResource> {
  const now = deps.clock();
  if (!isUuid(secretId)) throw new AppError('not_found', 'No such secret.');
  secretId = secretId.toLowerCase(); // a UUID in either case names the same secret (RFC 9562 §4), as token ids do
  const row = await deps.db.knex.transaction(async (trx) => {
    const token = await lockToken(trx, actor, id, now);
    const live = prevLive(token, now);
    let changes: Partial<TokenRow>;
    let retired: { secret_id: string | null; secret_last4: string | null };
    if (live && token.prev_secret_id === secretId) {
      changes = { ...CLEARED_PREVIOUS };
      retired = previousSecret(token);
    } else if (token.secret_id === secretId) {
      if (!live) throw new AppError('last_secret', 'This is the token\'s only live secret. Revoke the token instead, or rotate first.');
      changes = {
        secret_hash: token.prev_secret_hash!,
        secret_id: token.prev_secret_id!,
        secret_created_at: token.prev_secret_created_at ?? null,
        secret_last_used_at: token.prev_secret_last_used_at ?? null,
        secret_last4: token.prev_secret_last4 ?? null,
        leaked_at: token.prev_secret_leaked_at ?? null,
        ...CLEARED_PREVIOUS,
      };
      retired = currentSecret(token);
    } else {
      throw new AppError('not_found', 'No such secret.');
    }
    const [updated] = (await trx('tokens').where({ id: token.id }).update(changes).returning('*')) as TokenRow[];
    // rolled_back: the newest secret was retired, and the previous one is the token's only secret again.
    await audit(trx, actor, token, 'token.secret_retired', now, meta.ip ?? null, { ...retired, rolled_back: retired.secret_id === token.secret_id });
    return { ...updated!, creator_email: token.creator_email };
  });
  return resourceOf(deps, row, now);
}

const EXPIRY_BATCH = 100;

/**
 * The `secret-expiry` job: previous secrets whose grace period ended are cleared and recorded
 * `token.secret_expired` (actor `system`) in the same transaction, rows locked with SKIP LOCKED, so each expiry is
 * recorded once whichever instance runs the job. (Authentication already ignores an expired previous secret; this
 * is bookkeeping.) Returns the number of secrets expired.
 */
export async function expirePreviousSecrets(deps: Pick<Deps, 'db' | 'clock'>): Promise<number> {
  let total = 0;
  for (;;) {
    const now = deps.clock();
    const n = await deps.db.knex.transaction(async (trx) => {
      const rows = (await trx('tokens')
        .select('*')
        .whereNotNull('prev_secret_expires_at')
        .andWhere('prev_secret_expires_at', '<=', now)
        .limit(EXPIRY_BATCH)
        .forUpdate()
        .skipLocked()) as TokenRow[];
      for (const row of rows) {
        const cleared = affectedRows(await trx('tokens').where({ id: row.id }).update(CLEARED_PREVIOUS));
        if (cleared > 0) await audit(trx, SYSTEM, row, 'token.secret_expired', now, null, previousSecret(row));
      }
      return rows.length;
    });
    total += n;
    if (n < EXPIRY_BATCH) return total;
  }
}
