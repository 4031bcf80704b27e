import { randomUUID } from 'node:crypto';
import { countLeakedTokens, recordAudit } from '../audit/index.js';
import { decodeCursor, encodeCursor, isUniqueViolation, isUuid, lockOrganisation, type Db, type TokenRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { AppError, Problems, validationFailed, type ErrorDetail } from '../errors.js';
import { queueTokenGeneratedMail, queueTokenRevokedMail } from '../mail/index.js';
import { findEffectivePolicy, policyViolation, type Policy } from '../policy/index.js';
import { dayCount, tokenNameKey } from '../text.js';
import { generateClientId, generateClientSecret, hashSecret } from './credentials.js';
import { parseExpiry, resolveExpiry, withinLifetime } from './expiry.js';
import * as q from './queries.js';
import { rowJwks, toTokenResource, type LifecycleRules, type TokenResource } from './resource.js';
import { jwkThumbprint, parsePublicJwks, publicKeyFromText, type PublicJwks } from './jwks.js';
import { countTokensLastHour } from './limits.js';
import type { GenerateTokenInput, ListTokensInput, UpdateTokenCredentialsInput, UpdateTokenInput } from './schemas.js';

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
/** Where an admin request came from, for the audit log: the client address (TRUST_PROXY aware). */
export interface RequestMeta {
  ip?: string | null;
}

/** A generated client-secret token: the resource and its secret, shown only here (SPEC rule 3). */
export interface GeneratedToken extends TokenResource {
  /** Returned once, here, and never stored in clear. */
  client_secret: string;
}

/** A generated `private_key_jwt` token: no secret exists (SPEC Part 2). */
export type GeneratedKeyToken = TokenResource & { client_secret?: undefined };

/** A page of GET /admin/api/tokens: items newest first, the next page's cursor, and the organisation's counts. */
export interface TokenPage {
  items: TokenResource[];
  next_cursor: string | null;
  active_count: number;
  max_active: number;
  /** Distinct tokens reported leaked (audit `token.leaked`, revoked or kept alive) in the last LEAKED_COUNT_DAYS days. */
  leaked_count: number;
}

/** The answer of POST /admin/api/tokens/{id}/revoke: which token, and when (ISO 8601). */
export interface RevokedToken {
  id: string;
  name: string;
  client_id: string;
  revoked_at: string;
}

/** Items per page of the token list when `limit` is not given. */
export const DEFAULT_PAGE_SIZE = 20;
/** The window of the token list's `leaked_count`. */
export const LEAKED_COUNT_DAYS = 30;

/** The catalogue services of `services`, in catalogue order without duplicates; any other is a problem. */
function catalogueServices(deps: Pick<Deps, 'config'>, services: string[], problems: Problems): string[] {
  const known = new Set(deps.config.services.map((s) => s.id));
  const unknown = services.filter((s) => !known.has(s));
  if (unknown.length > 0) problems.add('services', `unknown service: ${unknown.join(', ')}`);
  return deps.config.services.map((s) => s.id).filter((id) => services.includes(id));
}

function checkServices(deps: Pick<Deps, 'config'>, services: string[]): string[] {
  const problems = new Problems();
  const known = catalogueServices(deps, services, problems);
  problems.throwIfAny();
  return known;
}

const notFound = () => new AppError('not_found', 'No such token.');

/**
 * The actor's token `id`, with its creator's address, locked (`FOR UPDATE`) for the rest of the transaction: what
 * every change of a token (PATCH, rotate, retire) reads before it checks and writes. Errors: 404 not_found for a
 * malformed or unknown id, a revoked token or another organisation's; 409 conflict for an expired token (it can no
 * longer be used, so changing it means nothing).
 */
export async function lockLiveToken(trx: Db, actor: Actor, id: string, now: Date): Promise<q.TokenWithCreator> {
  if (!isUuid(id)) throw notFound();
  const row = await q.lockTokenById(trx, actor.organisation_id, id);
  if (!row) throw notFound();
  if (row.expires_at.getTime() <= now.getTime()) throw new AppError('conflict', 'This token has expired: it can no longer be used or changed.');
  return row;
}

/** The day counts behind a resource's `expiring` and `dormant`. */
export function lifecycleRules(deps: Pick<Deps, 'config'>): LifecycleRules {
  return { expiringSoonDays: deps.config.expiringSoonDays, dormantAfterDays: deps.config.dormantAfterDays };
}

/** SPEC "Organisation policy": services outside allowed_services are refused, naming the policy. */
function checkPolicyServices(policy: Policy, services: string[], problems?: Problems): void {
  const outside = services.filter((s) => !policy.allowed_services.includes(s));
  if (outside.length === 0) return;
  const err = policyViolation('services', `not in the allowed_services of this organisation: ${outside.join(', ')}`);
  if (!problems) throw err;
  problems.addError(err);
}

/** The fields of a request whose own shape check failed (given, but absent from the validated input). */
type FailedFields = ReadonlySet<string>;

/** What generate's rules make of the fields that pass them. */
interface CheckedGenerate {
  services?: string[];
  expiresAt?: Date;
  authMethod: 'client_secret' | 'private_key_jwt';
  jwks: PublicJwks | null;
}

/**
 * Generate's rules that need config and the clock, each problem recorded in `problems`: services in the catalogue,
 * `expires_at` well-formed, in the future and within the server's maximum lifetime, public keys that fit
 * `auth_method`. Checks the fields `input` has; a rule that also needs a field in `failed` is left out.
 */
function checkGenerateFields(deps: Pick<Deps, 'config'>, input: Partial<GenerateTokenInput>, now: Date, problems: Problems, failed: FailedFields = new Set()): CheckedGenerate {
  const services = input.services === undefined ? undefined : catalogueServices(deps, input.services, problems);
  const expiry = input.expires_at;
  const expiresAt = expiry === undefined ? undefined : problems.collect(() => resolveExpiry(expiry, now, deps.config.maxTokenLifetimeDays));
  // SPEC Part 2: a private_key_jwt token carries 1 to 3 public keys and gets no secret; a client_secret token no keys.
  const authMethod = input.auth_method ?? 'client_secret';
  const before = problems.size;
  const keys = problems.collect(() => keysOf(input));
  let jwks: PublicJwks | null = null;
  if (problems.size === before && !['auth_method', 'jwks', 'public_key'].some((f) => failed.has(f))) {
    if (authMethod === 'client_secret' && keys !== undefined) {
      problems.add('jwks', 'only a token with auth_method "private_key_jwt" takes public keys');
    } else if (authMethod === 'private_key_jwt' && keys === undefined) {
      problems.add('jwks', 'auth_method "private_key_jwt" needs the public keys: {"keys": [...]}');
    } else if (authMethod === 'private_key_jwt') jwks = keys!;
  }
  return { services, expiresAt, authMethod, jwks };
}

/** Generate's rules of the organisation policy (SPEC "Organisation policy"): `max_lifetime_days`, `allowed_services`. */
function checkGeneratePolicy(policy: Policy, input: Partial<GenerateTokenInput>, checked: CheckedGenerate, now: Date, problems: Problems): void {
  if (checked.expiresAt !== undefined && !withinLifetime(parseExpiry(input.expires_at!)!, now, policy.max_lifetime_days)) {
    // A date is compared by calendar day: valid through its end, it may be the day the maximum reaches (docs/lifecycle.md).
    problems.addError(policyViolation('expires_at', `must be at most ${dayCount(policy.max_lifetime_days)} ahead (max_lifetime_days)`));
  }
  if (checked.services !== undefined) checkPolicyServices(policy, checked.services, problems);
}

/**
 * The rule problems of a POST /admin/api/tokens body whose shape is wrong: `input` holds the fields that passed
 * their shape, `failed` names those that did not. With the shape problems they make the one 400 of the request.
 */
export async function generateTokenProblems(deps: Deps, actor: Actor, input: Partial<GenerateTokenInput>, failed: FailedFields): Promise<ErrorDetail[]> {
  const now = deps.clock();
  const problems = new Problems();
  const checked = checkGenerateFields(deps, input, now, problems, failed);
  checkGeneratePolicy(await findEffectivePolicy(deps.db.knex, actor.organisation_id, deps.config), input, checked, now, problems);
  return problems.details;
}

/** 409 name_taken for `name`; `existing`, when known, is how the token that holds it spells it (case, form). */
const nameTaken = (name: string, existing = name) =>
  new AppError(
    'name_taken',
    existing === name
      ? `A token named "${name}" already exists in this organisation.`
      : `A token named "${existing}" already exists in this organisation: "${name}" is the same name (names are compared ignoring case and Unicode form).`,
    [
      {
        path: 'name',
        message:
          existing === name
            ? 'already used by another token of this organisation'
            : `already used: it counts as the same name as the token "${existing}" (case and look-alike spellings are ignored)`,
      },
    ],
  );

/** The public keys of a request: `jwks` (a JWK Set) or `public_key` (pasted JWK or PEM text), never both. */
function keysOf(input: { jwks?: unknown; public_key?: string | undefined }): PublicJwks | undefined {
  if (input.jwks !== undefined && input.public_key !== undefined) throw validationFailed('public_key', 'send jwks or public_key, not both');
  if (input.public_key !== undefined) return { keys: publicKeyFromText(input.public_key) };
  return input.jwks === undefined ? undefined : parsePublicJwks(input.jwks);
}

/**
 * SPEC "Admin API", POST /admin/api/tokens: validates against config, time and (under the organisation lock) the
 * policy, every problem in one 400 `validation_failed`; then, in the same transaction, enforces the active-token limit and name uniqueness (by tokenNameKey: names that display
 * alike or differ only in case are one name), inserts the token and records the audit event.
 */
export async function generateToken(
  deps: Deps,
  actor: Actor,
  input: GenerateTokenInput & { auth_method?: 'client_secret' | undefined },
  meta?: RequestMeta,
): Promise<GeneratedToken>;
export async function generateToken(deps: Deps, actor: Actor, input: GenerateTokenInput, meta?: RequestMeta): Promise<GeneratedToken | GeneratedKeyToken>;
export async function generateToken(
  deps: Deps,
  actor: Actor,
  input: GenerateTokenInput,
  meta: RequestMeta = {},
): Promise<GeneratedToken | GeneratedKeyToken> {
  const now = deps.clock();
  const problems = new Problems();
  const checked = checkGenerateFields(deps, input, now, problems);
  const { authMethod, jwks } = checked;
  const clientSecret = authMethod === 'client_secret' ? generateClientSecret() : undefined;
  const secretHash = clientSecret === undefined ? null : hashSecret(clientSecret);

  try {
    const row = await deps.db.knex.transaction(async (trx) => {
      if (!(await lockOrganisation(trx, actor.organisation_id))) throw new AppError('not_found', 'organisation not found');
      // The policy is read under the organisation lock: PUT /policy takes the same lock.
      const policy = await findEffectivePolicy(trx, actor.organisation_id, deps.config);
      checkGeneratePolicy(policy, input, checked, now, problems);
      problems.throwIfAny(); // every problem of the request at once
      const services = checked.services!;
      const expiresAt = checked.expiresAt!;
      const active = await q.countActiveTokens(trx, actor.organisation_id, now);
      if (active >= deps.config.maxActiveTokens) {
        throw new AppError(
          'token_limit_reached',
          `This organisation already has ${active} active tokens, the most it may have (${deps.config.maxActiveTokens}). Revoke one to generate another.`,
        );
      }
      const alike = await q.tokenNamedAlike(trx, actor.organisation_id, tokenNameKey(input.name));
      if (alike !== undefined) throw nameTaken(input.name, alike);
      const inserted = await q.insertToken(trx, {
        id: randomUUID(),
        organisation_id: actor.organisation_id,
        name: input.name,
        client_id: generateClientId(),
        secret_hash: secretHash,
        secret_id: randomUUID(),
        secret_created_at: now,
        secret_last4: clientSecret === undefined ? null : clientSecret.slice(-4),
        services,
        expires_at: expiresAt,
        created_at: now,
        created_by: actor.id,
        allowed_ips: input.allowed_ips ?? [],
        max_tokens_per_hour: input.max_tokens_per_hour === undefined ? policy.default_max_tokens_per_hour : input.max_tokens_per_hour,
        auth_method: authMethod,
        jwks,
        require_dpop: input.require_dpop ?? false,
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
    const resource = toTokenResource({ ...row, creator_email: actor.id ? actor.email : null }, now, lifecycleRules(deps));
    return clientSecret === undefined ? (resource as GeneratedKeyToken) : { ...resource, client_secret: clientSecret };
  } catch (err) {
    if (isUniqueViolation(err, 'tokens_org_name_uq')) throw nameTaken(input.name);
    throw err;
  }
}

/**
 * One token of the actor's organisation as the admin API shows it (GET /admin/api/tokens/{id}, via resourceOf).
 * Throws AppError 404 not_found for an id that is not a UUID, unknown, or in another organisation.
 */
export async function getToken(deps: Deps, actor: Actor, id: string): Promise<TokenResource> {
  if (!isUuid(id)) throw notFound();
  const row = await q.findTokenById(deps.db.knex, actor.organisation_id, id);
  if (!row) throw notFound();
  return resourceOf(deps, row, deps.clock());
}

/**
 * One token row as the admin API shows it (GET, and the answers of the calls that change it): with
 * `tokens_last_hour` and the configured lifecycle rules (`expiring`, `dormant`).
 */
export async function resourceOf(deps: Deps, row: TokenRow & { creator_email?: string | null }, now: Date): Promise<TokenResource> {
  const counts = await countTokensLastHour(deps.db.knex, [row.id], now);
  return toTokenResource({ ...row, tokens_last_hour: counts.get(row.id) ?? 0 }, now, lifecycleRules(deps));
}

/**
 * Records `token.updated` for `row` as changed by `actor`: `details` maps each changed field to `{old, new}` (the
 * audit log's `details.changes`, SPEC "Audit"). Shared by the lifecycle and the credential changes of PATCH.
 */
async function auditTokenUpdated(trx: Db, actor: Actor, row: TokenRow, meta: RequestMeta, now: Date, details: Record<string, unknown>): Promise<void> {
  await recordAudit(trx, {
    organisation_id: actor.organisation_id,
    actor_id: actor.id,
    actor_email: actor.email,
    action: 'token.updated',
    token_id: row.id,
    token_name: row.name,
    client_id: row.client_id,
    ip: meta.ip ?? null,
    created_at: now,
    details: { changes: details },
  });
}

/** The same JWKs in the same order, whatever the order of their members (a jsonb column sorts them). */
function sameKeys(a: readonly object[], b: readonly object[]): boolean {
  const canonical = (keys: readonly object[]) => JSON.stringify(keys.map((k) => Object.entries(k).sort(([x], [y]) => (x < y ? -1 : x > y ? 1 : 0))));
  return canonical(a) === canonical(b);
}

/**
 * The sender-constraint part of PATCH /admin/api/tokens/{id} (SPEC Part 2 "Sender-constrained and secretless
 * tokens"), inside the caller's transaction: `jwks` replaces every public key of a `private_key_jwt` token (validated
 * as on generate; for a rotation, register old and new key together, then the new one alone); `require_dpop` turns
 * the DPoP requirement on or off. The next token request sees the change (the row is read on each). Errors: 404
 * not_found (other organisation or unknown id), 409 conflict (expired), 400 validation_failed (`jwks` on a
 * client-secret token). Returns the row as it is after the change. What changes is
 * written and recorded as `token.updated` with `details.changes` (as the other fields' edits): `require_dpop` old →
 * new, and for new public keys `jwk_thumbprints` old → new (RFC 7638, never the keys). Nothing changes (the same
 * keys, the same `require_dpop`): no write, no event.
 */
async function changeTokenCredentials(
  trx: Db,
  actor: Actor,
  id: string,
  input: UpdateTokenCredentialsInput,
  now: Date,
  meta: RequestMeta,
): Promise<q.TokenWithCreator> {
  const jwks = keysOf(input);
  const before = await lockLiveToken(trx, actor, id, now);
  if (jwks !== undefined && before.auth_method !== 'private_key_jwt') {
    throw validationFailed('jwks', 'this token authenticates with a client secret: it has no public keys to replace');
  }
  const details: Record<string, { old: unknown; new: unknown }> = {};
  const newKeys = jwks !== undefined && sameKeys(rowJwks(before), jwks.keys) ? undefined : jwks;
  if (newKeys) details.jwk_thumbprints = { old: rowJwks(before).map(jwkThumbprint), new: newKeys.keys.map(jwkThumbprint) };
  const newDpop = input.require_dpop !== undefined && input.require_dpop !== before.require_dpop ? input.require_dpop : undefined;
  if (newDpop !== undefined) details.require_dpop = { old: before.require_dpop, new: newDpop };
  if (Object.keys(details).length === 0) return before; // nothing changes: no write, no audit event
  await q.updateTokenCredentials(trx, actor.organisation_id, id, { jwks: newKeys, require_dpop: newDpop });
  const row = await q.findTokenById(trx, actor.organisation_id, id);
  if (!row) throw notFound();
  await auditTokenUpdated(trx, actor, row, meta, now, details);
  return row;
}

/**
 * PATCH /admin/api/tokens/{id} (SPEC Part 2): the lifecycle fields (name, services, allowed_ips,
 * max_tokens_per_hour, as updateToken) and the credential fields (`jwks`/`public_key`, `require_dpop`, as
 * updateTokenCredentials), all in one transaction: either every field given is applied, or none (a bad CIDR does
 * not leave a changed `require_dpop` behind). Each part that changes something records its `token.updated` event.
 * Returns the token as it is after the change. Errors: those of either (404, 409, 400 validation_failed).
 */
export async function patchToken(deps: Deps, actor: Actor, id: string, input: UpdateTokenInput, meta: RequestMeta = {}): Promise<TokenResource> {
  const { jwks, public_key, require_dpop, ...lifecycle } = input;
  const credentials: UpdateTokenCredentialsInput = {
    ...(jwks !== undefined ? { jwks } : {}),
    ...(public_key !== undefined ? { public_key } : {}),
    ...(require_dpop !== undefined ? { require_dpop } : {}),
  };
  const changesCredentials = Object.keys(credentials).length > 0;
  const changesLifecycle = Object.values(lifecycle).some((v) => v !== undefined);
  if (!changesCredentials && !changesLifecycle) throw validationFailed('body', 'give at least one field to change');
  if (!isUuid(id)) throw notFound();
  const now = deps.clock();
  try {
    const row = await deps.db.knex.transaction(async (trx) => {
      if (!(await lockOrganisation(trx, actor.organisation_id))) throw notFound();
      // Every problem of the request at once, before anything changes (the policy read under the lock, as on generate).
      const problems = new Problems();
      const services = await checkPatchRules(trx, deps, actor, id, input, problems);
      problems.throwIfAny();
      let changed: TokenRow | undefined;
      if (changesLifecycle) changed = await changeTokenLifecycle(trx, deps, actor, id, lifecycle, services, now, meta);
      if (changesCredentials) changed = await changeTokenCredentials(trx, actor, id, credentials, now, meta);
      return changed!;
    });
    return await decorate(deps, row, now);
  } catch (err) {
    if (lifecycle.name !== undefined && isUniqueViolation(err, 'tokens_org_name_uq')) throw nameTaken(lifecycle.name);
    throw err;
  }
}

/**
 * PATCH's rules that need config, the policy or the token, each problem recorded in `problems`: services in the
 * catalogue and in the policy's allowed_services, public keys that parse (`jwks` or `public_key`, not both) and a
 * token that takes them (`private_key_jwt`). Checks the fields `input` has; the catalogue services, when given.
 */
async function checkPatchRules(db: Db, deps: Deps, actor: Actor, id: string, input: Partial<UpdateTokenInput>, problems: Problems): Promise<string[] | undefined> {
  const services = input.services === undefined ? undefined : catalogueServices(deps, input.services, problems);
  if (services !== undefined) checkPolicyServices(await findEffectivePolicy(db, actor.organisation_id, deps.config), services, problems);
  const before = problems.size;
  const keys = problems.collect(() => keysOf(input));
  if (keys !== undefined && problems.size === before && isUuid(id)) {
    const token = await q.findTokenById(db, actor.organisation_id, id);
    if (token && token.auth_method !== 'private_key_jwt') {
      problems.add('jwks', 'this token authenticates with a client secret: it has no public keys to replace');
    }
  }
  return services;
}

/**
 * The rule problems of a PATCH /admin/api/tokens/{id} body whose shape is wrong: `input` holds the fields that
 * passed their shape. With the shape problems they make the one 400 of the request.
 */
export async function patchTokenProblems(deps: Deps, actor: Actor, id: string, input: Partial<UpdateTokenInput>): Promise<ErrorDetail[]> {
  const problems = new Problems();
  await checkPatchRules(deps.db.knex, deps, actor, id, input, problems);
  return problems.details;
}

/** A changed row as the API shows it: with its creator's email and `tokens_last_hour`. */
async function decorate(deps: Deps, row: TokenRow, now: Date): Promise<TokenResource> {
  const creatorEmail = row.created_by ? ((await q.findAdminEmail(deps.db.knex, row.created_by)) ?? null) : null;
  return resourceOf(deps, { ...row, creator_email: creatorEmail }, now);
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
    q.listTokenRows(db, actor.organisation_id, { q: input.q || undefined, status: input.status, after, limit, now, rules: lifecycleRules(deps) }),
    q.countActiveTokens(db, actor.organisation_id, now),
    countLeakedTokens(db, actor.organisation_id, new Date(now.getTime() - LEAKED_COUNT_DAYS * 86_400_000)),
  ]);
  const items = rows.slice(0, limit);
  const last = items[items.length - 1];
  const counts = await countTokensLastHour(db, items.map((r) => r.id), now);
  return {
    items: items.map((r) => toTokenResource({ ...r, tokens_last_hour: counts.get(r.id) ?? 0 }, now, lifecycleRules(deps))),
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

/**
 * The lifecycle part of PATCH /admin/api/tokens/{id} (SPEC "Network and rate limits per token"), inside the caller's
 * transaction: changes name, services (already checked against the catalogue), allowed_ips and max_tokens_per_hour,
 * with the audit event `token.updated` (the changed fields' old and new values). Services obey the organisation
 * policy. The client is read on every token request, so the next access token carries the new services; access
 * tokens already issued keep theirs. Errors: 404 for an unknown, revoked or other organisation's token; 409 conflict
 * for an expired one; 409 name_taken; 400 validation_failed.
 */
async function changeTokenLifecycle(
  trx: Db,
  deps: Deps,
  actor: Actor,
  id: string,
  input: UpdateTokenInput,
  services: string[] | undefined,
  now: Date,
  meta: RequestMeta,
): Promise<TokenRow> {
  if (!(await lockOrganisation(trx, actor.organisation_id))) throw notFound();
  const current = await lockLiveToken(trx, actor, id, now);
  if (services !== undefined) checkPolicyServices(await findEffectivePolicy(trx, actor.organisation_id, deps.config), services);

  const wanted: q.TokenChanges = {
    ...(input.name !== undefined ? { name: input.name } : {}),
    ...(services !== undefined ? { services } : {}),
    ...(input.allowed_ips !== undefined ? { allowed_ips: input.allowed_ips } : {}),
    ...(input.max_tokens_per_hour !== undefined ? { max_tokens_per_hour: input.max_tokens_per_hour } : {}),
  };
  const changes: q.TokenChanges = {};
  const details: Record<string, { old: unknown; new: unknown }> = {};
  for (const [key, value] of Object.entries(wanted) as Array<[keyof q.TokenChanges, unknown]>) {
    const old = current[key] ?? (key === 'allowed_ips' ? [] : null);
    if (JSON.stringify(old) === JSON.stringify(value)) continue;
    (changes as Record<string, unknown>)[key] = value;
    details[key] = { old, new: value };
  }
  if (Object.keys(changes).length === 0) return current; // nothing changes: no write, no audit event
  // Under the organisation lock, as on generate; the token's own key does not count (a change of case is a rename).
  const alike = changes.name === undefined ? undefined : await q.tokenNamedAlike(trx, actor.organisation_id, tokenNameKey(changes.name), id);
  if (alike !== undefined) {
    throw nameTaken(changes.name!, alike);
  }
  const updated = await q.updateTokenRow(trx, actor.organisation_id, id, changes);
  if (!updated) throw notFound();
  await auditTokenUpdated(trx, actor, updated, meta, now, details);
  return updated;
}
