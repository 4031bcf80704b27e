import { randomUUID } from 'node:crypto';
import { isUniqueViolation } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, validationFailed } from '../errors.js';
import { generateClientId, generateClientSecret, hashSecret } from './credentials.js';
import { resolveExpiry } from './expiry.js';
import * as q from './queries.js';
import { toTokenResource, type TokenResource } from './resource.js';
import type { GenerateTokenInput } from './schemas.js';

/** Who acts: an administrator of one organisation. */
export interface Actor {
  id: string;
  email: string;
  organisation_id: string;
}

export interface GeneratedToken extends TokenResource {
  /** Returned once, here, and never stored in clear. */
  client_secret: string;
}

function checkServices(deps: Pick<Deps, 'config'>, services: string[]): string[] {
  const known = new Set(deps.config.services.map((s) => s.id));
  const unknown = services.filter((s) => !known.has(s));
  if (unknown.length > 0) throw validationFailed('services', `unknown service: ${unknown.join(', ')}`);
  // Catalogue order, no duplicates.
  return deps.config.services.map((s) => s.id).filter((id) => services.includes(id));
}

/**
 * SPEC "Admin API", POST /admin/api/tokens: validates against config and time, then in one transaction
 * locks the organisation, enforces the active-token limit and name uniqueness, and inserts the token.
 */
export async function generateToken(deps: Deps, actor: Actor, input: GenerateTokenInput): Promise<GeneratedToken> {
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
      return q.insertToken(trx, {
        id: randomUUID(),
        organisation_id: actor.organisation_id,
        name: input.name,
        client_id: generateClientId(),
        secret_hash: secretHash,
        services,
        expires_at: expiresAt,
        created_at: now,
        created_by: actor.id,
      });
    });
    return { ...toTokenResource({ ...row, creator_email: actor.email }, now), client_secret: clientSecret };
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
  const row = await q.findTokenById(deps.db.knex, actor.organisation_id, id);
  if (!row) throw new AppError('not_found', 'No such token.');
  return toTokenResource(row, deps.clock());
}
