import { recordAudit } from '../audit/index.js';
import type { Config } from '../config/index.js';
import { lockOrganisation, type Db, type OrganisationPolicyRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, type ErrorDetail } from '../errors.js';
import { dayCount } from '../text.js';
import type { PolicyInput } from './schemas.js';

/** The policy document of GET and PUT /admin/api/policy (SPEC "Organisation policy"). */
export interface Policy {
  max_lifetime_days: number;
  allowed_services: string[];
  revoke_dormant_after_days: number | null;
  default_max_tokens_per_hour: number | null;
}

/** Who changes a policy: an administrator, or the `sat` CLI (`id: null`, `email: 'cli'`). */
export interface PolicyActor {
  id: string | null;
  email: string;
  organisation_id: string;
}

type PolicyConfig = Pick<Config, 'maxTokenLifetimeDays' | 'services'>;

/**
 * The policy in force: the stored one, or the defaults (server maximum lifetime, every service, no automatic
 * revocation, no default hourly limit). A stored lifetime above a since-lowered server maximum is capped by it,
 * and services since removed from the catalogue are left out.
 */
export function effectivePolicy(row: OrganisationPolicyRow | undefined, config: PolicyConfig): Policy {
  const catalogue = config.services.map((s) => s.id);
  if (!row) {
    return { max_lifetime_days: config.maxTokenLifetimeDays, allowed_services: catalogue, revoke_dormant_after_days: null, default_max_tokens_per_hour: null };
  }
  return {
    max_lifetime_days: Math.min(row.max_lifetime_days, config.maxTokenLifetimeDays),
    allowed_services: catalogue.filter((id) => row.allowed_services.includes(id)),
    revoke_dormant_after_days: row.revoke_dormant_after_days,
    default_max_tokens_per_hour: row.default_max_tokens_per_hour,
  };
}

function findPolicyRow(db: Db, organisationId: string): Promise<OrganisationPolicyRow | undefined> {
  return db<OrganisationPolicyRow>('organisation_policies').where({ organisation_id: organisationId }).first() as Promise<
    OrganisationPolicyRow | undefined
  >;
}

/** The organisation's policy in force; call it inside the transaction that acts on it. */
export async function findEffectivePolicy(db: Db, organisationId: string, config: PolicyConfig): Promise<Policy> {
  return effectivePolicy(await findPolicyRow(db, organisationId), config);
}

/** 400 validation_failed for a value the organisation policy forbids; the message and detail name the policy. */
export function policyViolation(path: string, message: string): AppError {
  const details: ErrorDetail[] = [{ path, message: `${message} (organisation policy)` }];
  return new AppError('validation_failed', "The request breaks the organisation's policy.", details);
}

/** GET /admin/api/policy. */
export async function getPolicy(deps: Pick<Deps, 'config' | 'db'>, actor: PolicyActor): Promise<Policy> {
  return findEffectivePolicy(deps.db.knex, actor.organisation_id, deps.config);
}

/** Whether two policy documents say the same (`allowed_services` of both in catalogue order). */
function samePolicy(a: Policy, b: Policy): boolean {
  return (
    a.max_lifetime_days === b.max_lifetime_days &&
    a.revoke_dormant_after_days === b.revoke_dormant_after_days &&
    a.default_max_tokens_per_hour === b.default_max_tokens_per_hour &&
    a.allowed_services.length === b.allowed_services.length &&
    a.allowed_services.every((id, i) => b.allowed_services[i] === id)
  );
}

/**
 * The rules of a PUT /admin/api/policy document that need config, one detail per problem: max_lifetime_days above
 * the server's maximum lifetime, services not in the catalogue. Checks the fields given (all of them, or those of a
 * body whose other fields failed their shape).
 */
export function policyProblems(config: PolicyConfig, input: Partial<PolicyInput>): ErrorDetail[] {
  const details: ErrorDetail[] = [];
  const max = config.maxTokenLifetimeDays;
  if (input.max_lifetime_days !== undefined && input.max_lifetime_days > max) {
    details.push({ path: 'max_lifetime_days', message: `must be at most ${dayCount(max)} (the server's maximum lifetime)` });
  }
  const catalogue = config.services.map((s) => s.id);
  const unknown = (input.allowed_services ?? []).filter((s) => !catalogue.includes(s));
  if (unknown.length > 0) details.push({ path: 'allowed_services', message: `unknown service: ${unknown.join(', ')}` });
  return details;
}

/**
 * PUT /admin/api/policy: replaces the whole document. In one transaction with the organisation row locked (so a
 * generate of the same organisation sees the old or the new policy, never half of it): upsert, then the audit
 * event `policy.updated` with the old and new documents. A document equal to the policy in force (what GET
 * answers) writes nothing and records no event, as a PATCH of a token that changes nothing. Tokens that already
 * exist are not changed; the new limits apply to the next generate or update. Every problem of the document is
 * one 400 `validation_failed` (policyProblems).
 */
export async function updatePolicy(
  deps: Pick<Deps, 'config' | 'db' | 'clock'>,
  actor: PolicyActor,
  input: PolicyInput,
  meta: { ip?: string | null } = {},
): Promise<Policy> {
  const problems = policyProblems(deps.config, input);
  if (problems.length > 0) throw new AppError('validation_failed', 'The request is not valid.', problems);
  const catalogue = deps.config.services.map((s) => s.id);
  const next: Policy = {
    max_lifetime_days: input.max_lifetime_days,
    allowed_services: catalogue.filter((id) => input.allowed_services.includes(id)), // catalogue order, no duplicates
    revoke_dormant_after_days: input.revoke_dormant_after_days,
    default_max_tokens_per_hour: input.default_max_tokens_per_hour,
  };
  const now = deps.clock();
  await deps.db.knex.transaction(async (trx) => {
    if (!(await lockOrganisation(trx, actor.organisation_id))) throw new AppError('not_found', 'organisation not found');
    const previous = effectivePolicy(await findPolicyRow(trx, actor.organisation_id), deps.config);
    if (samePolicy(previous, next)) return; // no change: no write, no event (docs/lifecycle.md)
    await trx<OrganisationPolicyRow>('organisation_policies')
      .insert({ organisation_id: actor.organisation_id, ...next, updated_at: now, updated_by: actor.id })
      .onConflict('organisation_id')
      .merge();
    await recordAudit(trx, {
      organisation_id: actor.organisation_id,
      actor_id: actor.id,
      actor_email: actor.email,
      action: 'policy.updated',
      ip: meta.ip ?? null,
      created_at: now,
      details: { old: previous, new: next },
    });
  });
  return next;
}

/** Organisations whose policy revokes dormant tokens, for the revocation job. */
export async function listDormantRevocationPolicies(db: Db): Promise<Array<{ organisation_id: string; revoke_dormant_after_days: number }>> {
  return (await db('organisation_policies')
    .select('organisation_id', 'revoke_dormant_after_days')
    .whereNotNull('revoke_dormant_after_days')) as Array<{ organisation_id: string; revoke_dormant_after_days: number }>;
}
