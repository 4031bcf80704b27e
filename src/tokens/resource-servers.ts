import { randomUUID } from 'node:crypto';
import { z } from 'zod';
import { isUniqueViolation, isUuid, type ResourceServerRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, validationFailed } from '../errors.js';
import { containsClientSecret, generateClientId, generateClientSecret, hashSecret } from './credentials.js';
import * as q from './queries.js';
import {
  characterCount,
  firstHiddenCharacter,
  hasVisibleCharacter,
  longestCharacter,
  MAX_CODE_POINTS_PER_CHARACTER,
  NAME_MAX_CODE_POINTS,
  tokenNameKey,
} from '../text.js';

/**
 * Resource servers of the platform (SPEC Part 2 "OAuth conformance"): the services of the catalogue are run by the
 * platform, so their credentials belong to no organisation. They authenticate like a token's client (same formats)
 * and may call introspection for every organisation's tokens, and nothing else (no grant, no revocation).
 */
export interface ResourceServerResource {
  id: string;
  name: string;
  client_id: string;
  created_at: string;
}

export interface AddedResourceServer extends ResourceServerResource {
  /** Returned once, here, and never stored in clear. */
  client_secret: string;
}

/**
 * A resource server's name: 1 to 100 characters after trimming, text that displays as written (SPEC Part 2, as for
 * token and organisation names): no control, format, bidirectional, private-use or unassigned characters, which
 * `sat resource-server add|list` would otherwise print raw to a terminal.
 */
export const resourceServerName = z
  .string()
  .trim()
  .min(1, 'a name is required')
  .superRefine((s, ctx) => {
    // Counted as token names are (src/tokens/schemas.ts): characters as a reader sees them, a bound on code points
    // in all and in one character.
    if (characterCount(s, 100) > 100) return void ctx.addIssue({ code: 'custom', message: 'at most 100 characters' });
    if ([...s].length > NAME_MAX_CODE_POINTS) return void ctx.addIssue({ code: 'custom', message: `at most ${NAME_MAX_CODE_POINTS} code points` });
    if (longestCharacter(s) > MAX_CODE_POINTS_PER_CHARACTER) {
      return void ctx.addIssue({ code: 'custom', message: `no more than ${MAX_CODE_POINTS_PER_CHARACTER} code points stacked into one character` });
    }
    if (containsClientSecret(s)) return void ctx.addIssue({ code: 'custom', message: 'no client secret (names are printed and logged)' });
    const hidden = firstHiddenCharacter(s);
    if (hidden !== undefined) {
      ctx.addIssue({ code: 'custom', message: `no invisible, control, format, bidirectional, private-use or unassigned characters (${hidden})` });
    } else if (s.length > 0 && !hasVisibleCharacter(s)) ctx.addIssue({ code: 'custom', message: 'at least one visible character' });
  });

const toResource = (row: ResourceServerRow): ResourceServerResource => ({
  id: row.id,
  name: row.name,
  client_id: row.client_id,
  created_at: row.created_at.toISOString(),
});

/** Creates resource-server credentials; `name_taken` when another one has the name (compared as token names are). */
export async function addResourceServer(deps: Deps, name: string): Promise<AddedResourceServer> {
  const parsed = resourceServerName.safeParse(name);
  if (!parsed.success) throw validationFailed('name', parsed.error.issues[0]?.message ?? 'invalid name');
  // Names that display alike are one name, as for tokens (NFKC and full case folding: `Ｃandidate API`, `STRAẞE`).
  // The unique index below catches the same name in another case at once; resource servers are few and added by an
  // operator, so the look-alike check reads them all.
  const key = tokenNameKey(parsed.data);
  const clash = (await q.listResourceServerRows(deps.db.knex)).find((r) => tokenNameKey(r.name) === key);
  if (clash) throw new AppError('name_taken', `A resource server named "${clash.name}" exists.`);
  const clientSecret = generateClientSecret();
  try {
    const row = await q.insertResourceServer(deps.db.knex, {
      id: randomUUID(),
      name: parsed.data,
      client_id: generateClientId(),
      secret_hash: hashSecret(clientSecret),
      created_at: deps.clock(),
    });
    deps.log.info('resource server added', { id: row.id, name: row.name, client_id: row.client_id });
    return { ...toResource(row), client_secret: clientSecret };
  } catch (err) {
    if (isUniqueViolation(err, 'resource_servers_name_uq')) throw new AppError('name_taken', `A resource server named "${parsed.data}" exists.`);
    throw err;
  }
}

/** Every resource server (id, name, client ID, creation; never a secret), oldest first: `sat resource-server list`. */
export async function listResourceServers(deps: Deps): Promise<ResourceServerResource[]> {
  return (await q.listResourceServerRows(deps.db.knex)).map(toResource);
}

/** Deletes the credentials: the next introspection call with them is 401 invalid_client. `not_found` otherwise. */
export async function revokeResourceServer(deps: Deps, id: string): Promise<ResourceServerResource & { revoked_at: string }> {
  const row = isUuid(id) ? await q.deleteResourceServer(deps.db.knex, id) : undefined;
  if (!row) throw new AppError('not_found', 'No such resource server.');
  deps.log.info('resource server revoked', { id: row.id, name: row.name, client_id: row.client_id });
  return { ...toResource(row), revoked_at: deps.clock().toISOString() };
}
