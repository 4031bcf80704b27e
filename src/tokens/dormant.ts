import { recordAudit } from '../audit/index.js';
import type { Deps } from '../deps.js';
import { queueTokenRevokedDormantMail } from '../mail/index.js';
import { listDormantRevocationPolicies } from '../policy/index.js';
import * as q from './queries.js';
import type { ClientRow } from './queries.js';
import { keyFacts } from './resource.js';

const DAY_MS = 86_400_000;
/** The shortest `revoke_dormant_after_days` a policy may set (policy/schemas.ts), less a day of margin. */
const QUIET_AFTER_MS = 29 * DAY_MS;

/**
 * At the token endpoint, after the client authenticated: a token whose last use (or creation) is older than any
 * policy's dormancy minus a day gets this use written at once, before it is served, instead of by the 5 s
 * bookkeeping job (tokens/usage.ts). Another instance's dormant-revocation job cannot see uses still in this
 * instance's memory, and used to revoke a token used there a moment ago (a monthly batch job's token, at its first
 * use in 30 days). The update and the job's conditional delete take the same row lock: either the delete sees
 * this use and leaves the token, or it ran first and this returns false (the token is gone: `invalid_client`).
 * Any other token (`last_used_at` recent) costs nothing: no database access.
 */
export async function recordUseOfQuietToken(deps: Pick<Deps, 'db' | 'clock'>, row: ClientRow): Promise<boolean> {
  if (!isQuietToken(row, deps.clock())) return true;
  return q.touchLastUsed(deps.db.knex, row.id, deps.clock());
}

/** Whether `row`'s last use (or creation) is old enough for recordUseOfQuietToken to write a use at once. */
export function isQuietToken(row: ClientRow, now: Date): boolean {
  const lastActive = row.last_used_at ?? row.created_at;
  return lastActive !== undefined && lastActive !== null && now.getTime() - lastActive.getTime() >= QUIET_AFTER_MS;
}

/**
 * SPEC "Organisation policy": revokes every active token that has not been used for its organisation's
 * `revoke_dormant_after_days` (counted from creation when never used). Each revocation is one transaction: the
 * conditional delete (which re-reads the policy and the token's last use), the audit event `token.revoked` with
 * actor `policy`, and the mail to the token's creator. Several instances may run this at once: the delete hands
 * each token to exactly one of them. Returns the number of tokens revoked. Time comes from `deps.clock`.
 */
export async function revokeDormantTokens(deps: Pick<Deps, 'config' | 'db' | 'clock'>): Promise<number> {
  const now = deps.clock();
  let revoked = 0;
  for (const policy of await listDormantRevocationPolicies(deps.db.knex)) {
    const cutoff = new Date(now.getTime() - policy.revoke_dormant_after_days * DAY_MS);
    for (const id of await q.listDormantTokenIds(deps.db.knex, policy.organisation_id, now, cutoff)) {
      const done = await deps.db.knex.transaction(async (trx) => {
        const row = await q.deleteTokenIfDormantByPolicy(trx, policy.organisation_id, id, now);
        if (!row) return false; // used meanwhile, policy changed, or another instance revoked it
        // Dated once the row is ours (the delete waited for any lock on it), not at the run's start: the event and
        // mail sort after whatever this token got meanwhile (an expiry reminder another job queued a moment earlier
        // would otherwise be delivered after the revocation notice).
        const at = new Date(Math.max(deps.clock().getTime(), now.getTime()));
        await recordAudit(trx, {
          organisation_id: row.organisation_id,
          actor_id: null,
          actor_email: 'policy',
          action: 'token.revoked',
          token_id: row.id,
          token_name: row.name,
          client_id: row.client_id,
          created_at: at,
          // The policy as the delete read it, which may be newer than the list this run started from.
          details: { reason: 'dormant', revoke_dormant_after_days: row.policy_days, last_used_at: row.last_used_at },
        });
        const creatorEmail = row.created_by ? ((await q.findAdminEmail(trx, row.created_by)) ?? null) : null;
        await queueTokenRevokedDormantMail(trx, deps, {
          organisationId: row.organisation_id,
          token: { name: row.name, client_id: row.client_id, services: row.services, expires_at: row.expires_at, ...keyFacts(row) },
          creatorEmail,
          days: row.policy_days,
          lastUsedAt: row.last_used_at,
          at,
        });
        return true;
      });
      if (done) revoked += 1;
    }
  }
  return revoked;
}
