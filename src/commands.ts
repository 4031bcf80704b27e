// Operations the `sat` tool runs, either in its own process or, while a server holds the embedded database,
// inside that server through the control socket. One table, so both paths behave the same.
import { z } from 'zod';
import {
  addAdmin,
  addAdminInput,
  cliResetPasswordArgs,
  findOrganisationByName,
  inviteAdmin,
  existingAdminEmail,
  inviteAdminBody,
  listAdmins,
  listInvitations,
  removeAdminByEmail,
  resetPasswordFromCli,
  withdrawInvitationByEmail,
} from './accounts/index.js';
import { listAudit, type AuditEventResource } from './audit/index.js';
import type { ControlResponse } from './control/index.js';
import {
  BackupTargetError,
  DatabaseNewerError,
  MigrationLockTimeoutError,
  MIGRATION_WAIT_MESSAGE,
  LATEST_MIGRATION,
  backupEmbedded,
  isDatabaseUnavailable,
  isUuid,
  migrateLatest,
  migrationStatus,
} from './db/index.js';
import type { Deps } from './deps.js';
import { AppError } from './errors.js';
import { validateWithRules } from './http/validate.js';
import { issuerUrl, parseKeyEncryptionKey } from './config/index.js';
import {
  allSealedUnder,
  dataDirKeyFile,
  dataDirKeyId,
  KeyEncryptionError,
  KeyRing,
  kekId,
  keyRetentionMs,
  listSigningKeys,
  loadPublicKeySet,
  openKeyRingForStoredKeys,
  removeSigningKey,
  sealPlaintextKeys,
  replaceDataDirKey,
  rewrapSigningKeys,
  retirementTimes,
  rotateSigningKey,
  signingKeySchedule,
  SigningKeyRemovalError,
} from './keys/index.js';
import { getPolicy, policyBody, policyProblems, updatePolicy } from './policy/index.js';
import {
  addResourceServer,
  generateToken,
  generateTokenBody,
  generateTokenProblems,
  getToken,
  listResourceServers,
  listTokens,
  listTokensQuery,
  patchToken,
  patchTokenProblems,
  revokeResourceServer,
  revokeToken,
  updateTokenBody,
  retireSecret,
  rotateSecret,
  rotateSecretBody,
  NoSecretToRotate,
  type Actor,
  type TokenResource,
  publicKeyFromText,
} from './tokens/index.js';

type Command = (deps: Deps, args: Record<string, unknown>) => Promise<unknown>;

/** The most events `sat audit list --limit` prints. */
export const AUDIT_LIST_MAX = 10_000;
const rotateArgs = z.object({ now: z.boolean().default(false), drop_unreadable: z.boolean().default(false) }).strict();
const removeKeyArgs = z.object({ kid: z.string().min(1, 'a key id (kid) is required').max(200) }).strict();
const rewrapArgs = z.object({ newKey: z.string().min(1, 'the new key-encryption key is required') }).strict();

const orgArg = z.string().trim().min(1, 'organisation name is required');
const tokenCreateArgs = z
  .object({
    org: orgArg,
    name: z.unknown(),
    expires: z.unknown(),
    services: z.unknown(),
    allowed_ips: z.unknown().optional(),
    max_tokens_per_hour: z.unknown().optional(),
    jwks: z.string().optional(),
    require_dpop: z.boolean().optional(),
  })
  .strict();
const tokenListArgs = z.object({ org: orgArg, status: z.unknown().optional(), search: z.unknown().optional() }).strict();
/**
 * A TOKEN_ID of `sat token show|update|revoke|rotate|retire`: a malformed one is refused as such, the same for every
 * command (the admin API answers 404 for it, as for an unknown one).
 */
const tokenIdArg = z.string().refine(isUuid, 'must be a token id (a UUID)');
const tokenShowArgs = z.object({ org: orgArg, id: tokenIdArg }).strict();
const tokenUpdateArgs = z.object({ org: orgArg, id: tokenIdArg, changes: z.record(z.string(), z.unknown()) }).strict();
const adminListArgs = z.object({ org: orgArg }).strict();
const adminEmailArgs = z.object({ org: orgArg, email: z.unknown() }).strict();
const policyShowArgs = z.object({ org: orgArg }).strict();
/** `sat policy set`: the options given replace those fields; the others keep their current values. */
const policySetArgs = z.object({ org: orgArg, changes: z.record(z.string(), z.unknown()) }).strict();
const tokenRevokeArgs = z.object({ org: orgArg, id: tokenIdArg }).strict();
const tokenRetireArgs = z.object({ org: orgArg, id: tokenIdArg, secretId: z.string() }).strict();
const tokenRotateArgs = z.object({ org: orgArg, id: tokenIdArg, graceHours: z.unknown().optional() }).strict();
const resourceServerAddArgs = z.object({ name: z.string() }).strict();
const resourceServerRevokeArgs = z.object({ id: z.string() }).strict();
const auditListArgs = z
  .object({
    org: orgArg,
    token: z.string().refine(isUuid, 'must be a token id (a UUID)').optional(),
    limit: z.number().int().min(1, 'must be from 1 to 10000').max(AUDIT_LIST_MAX, 'must be from 1 to 10000').default(50),
  })
  .strict();
const backupArgs = z.object({ file: z.string().refine((f) => f.startsWith('/'), 'must be an absolute path') }).strict();

/** The `sat` CLI acts for an organisation without an administrator: tokens get created_by null, the audit log says "cli". */
async function cliActor(deps: Deps, org: string): Promise<Actor> {
  const organisation = await findOrganisationByName(deps.db.knex, org);
  if (!organisation) throw new AppError('not_found', `no organisation named "${org}"`);
  return { id: null, email: 'cli', organisation_id: organisation.id };
}

/**
 * The `sat` operations by name, each `(deps, args) → result`: run in the CLI's own process or inside the running
 * server through the control socket (runCommand), so both paths behave the same. Arguments are checked with zod.
 */
export const commands: Record<string, Command> = {
  // Asked by `sat` before it hands a command to a running server (the control socket): the newest migration this
  // server knows. A `sat` of another version refuses to go through it (src/cli/run.ts); a server from before this
  // command answers unknown_command, which says the same.
  'server-version': async () => ({ latest_migration: LATEST_MIGRATION }),
  // `sat admin add`: audit event admin.added by "cli" (with organisation_created when it made the organisation).
  'admin-add': (deps, args) => addAdmin(deps.db.knex, addAdminInput.parse(args), 'cli'),
  'admin-reset-password': (deps, args) => resetPasswordFromCli(deps, cliResetPasswordArgs.parse(args)),
  // `sat admin list|invite|remove --org NAME`: the admin API's rules (last_admin, admin_exists, the invitation mail),
  // audit events by "cli".
  'admin-list': async (deps, args) => listAdmins(deps, await cliActor(deps, adminListArgs.parse(args).org)),
  'admin-invite': async (deps, args) => {
    const { org, email } = adminEmailArgs.parse(args);
    const invited = await inviteAdmin(deps, await cliActor(deps, org), inviteAdminBody.parse({ email }));
    // Where the mailed link leads: built from this process's ISSUER (on PostgreSQL the shell's own environment), so
    // the operator sees it when the shell lacks the server's ISSUER.
    return { ...invited, console_url: issuerUrl(deps.config.issuer, '/admin') };
  },
  'admin-remove': async (deps, args) => {
    const { org, email } = adminEmailArgs.parse(args);
    const actor = await cliActor(deps, org);
    const { email: address } = existingAdminEmail.parse({ email }); // as stored: an existing address is found
    return removeAdminByEmail(deps, actor, address);
  },
  // `sat admin invitations|withdraw --org NAME`: GET /admin/api/invitations, and DELETE of the one pending for an
  // address (404-style not_found when there is none), audit event by "cli".
  'admin-invitations': async (deps, args) => listInvitations(deps, await cliActor(deps, adminListArgs.parse(args).org)),
  'admin-withdraw': async (deps, args) => {
    const { org, email } = adminEmailArgs.parse(args);
    const actor = await cliActor(deps, org);
    const { email: address } = existingAdminEmail.parse({ email }); // as stored: an existing address is found
    return withdrawInvitationByEmail(deps, actor, address);
  },
  // SPEC "Signing keys encrypted at rest": plaintext keys are encrypted by a migration when a key-encryption key is
  // configured, so `sat migrate` seals them as the server's start does (nothing in clear: no key is resolved).
  migrate: async (deps) => {
    const applied = await migrateLatest(deps.db.knex, { onWait: (heldBy) => deps.log.warn(MIGRATION_WAIT_MESSAGE, { held_by: heldBy }) });
    const plaintext = await deps.db.knex('signing_keys').whereNotNull('private_jwk').first('kid');
    let sealed = 0;
    try {
      if (plaintext) sealed = await sealPlaintextKeys(deps.db.knex, await openKeyRingForStoredKeys(deps.db.knex, deps.config, deps.db.kind, deps.log));
    } catch (err) {
      if (!(err instanceof KeyEncryptionError)) throw err; // no key configured: migrating needs none, `serve` says so
    }
    return { newly_applied: applied, ...(await migrationStatus(deps.db.knex)), ...(sealed ? { sealed_keys: sealed } : {}) };
  },
  // SPEC "Signing-key rotation never fails a verifier": published at once, signing KEY_PUBLISH_AHEAD_SECONDS later;
  // --now (the emergency exception) signs at once and drops keys still pending (of any algorithm), which would
  // otherwise take over from it; --now --drop-unreadable also deletes every key the configured key-encryption key
  // cannot open, whatever the reason (a lost key, a damaged row). The new key's algorithm is this process's SIGNING_ALG. The running server reloads right
  // after (main.ts).
  'keys-rotate': async (deps, args) => {
    const { now, drop_unreadable } = rotateArgs.parse(args);
    if (drop_unreadable && !now) throw new AppError('validation_failed', '--drop-unreadable goes with --now only (the way back from a lost key-encryption key)');
    // A lost key's recovery may make DATA_DIR's key afresh; anything else must not (it would open no stored key).
    const ring = await openKeyRingForStoredKeys(deps.db.knex, deps.config, deps.db.kind, deps.log, { mayGenerate: drop_unreadable });
    const ahead = now ? 0 : deps.config.keyPublishAheadSeconds;
    const { kid, signsFrom, dropped, unreadable } = await rotateSigningKey(deps.db.knex, ring, deps.config.signingAlg, deps.clock(), ahead, {
      dropUnreadable: drop_unreadable,
    });
    return {
      kid,
      alg: deps.config.signingAlg,
      signs_from: signsFrom.toISOString(),
      dropped_pending: dropped,
      ...(drop_unreadable ? { dropped_unreadable: unreadable } : {}),
    };
  },
  // A leaked signing key, after `keys rotate --now`: out of every JWKS and refused by introspection at once
  // (docs/keys.md "A leaked signing key"). Never the key that signs now. The running server reloads right after.
  'keys-remove': async (deps, args) => {
    const { kid } = removeKeyArgs.parse(args);
    try {
      return await removeSigningKey(deps.db.knex, kid, deps.clock());
    } catch (err) {
      if (err instanceof SigningKeyRemovalError) throw new AppError(err.reason === 'not_found' ? 'not_found' : 'conflict', err.message);
      throw err;
    }
  },
  // Seals every signing key under a new key-encryption key, in one transaction (docs/keys.md).
  'keys-rewrap': async (deps, args) => {
    const { newKey } = rewrapArgs.parse(args);
    const problems: string[] = [];
    const next = parseKeyEncryptionKey(newKey, 'the new key-encryption key', problems);
    if (!next) throw new AppError('validation_failed', problems.join('; '));
    // Already sealed under it (the same command run twice, with the old key still configured or the new one): done,
    // but for the generated key file in DATA_DIR, which a rewrap stopped after its commit (a full disk, a kill) left
    // holding the old key, so that no start could open the keys: replaced now.
    if (await allSealedUnder(deps.db.knex, kekId(next))) {
      const file = deps.db.kind === 'embedded' && deps.config.keyEncryptionKey === undefined ? dataDirKeyFile(deps.config.dataDir) : undefined;
      if (file && dataDirKeyId(file) !== kekId(next)) {
        replaceDataDirKey(file, next);
        return { rewrapped: 0, kek_id: kekId(next), unchanged: true, replaced_key_file: file };
      }
      return { rewrapped: 0, kek_id: kekId(next), unchanged: true };
    }
    const ring = await openKeyRingForStoredKeys(deps.db.knex, deps.config, deps.db.kind, deps.log);
    const count = await rewrapSigningKeys(deps.db.knex, ring, next);
    const file = ring.kek.dataDirFile;
    if (file) replaceDataDirKey(file, next); // the generated key in DATA_DIR: the next start uses the new one
    return { rewrapped: count, kek_id: kekId(next), ...(file ? { replaced_key_file: file } : {}) };
  },
  // `sat token create|list|revoke`: the admin API's domain code and rules (limit, names, expiry, audit).
  'token-create': async (deps, args) => {
    const { org, name, expires, services, jwks, require_dpop, ...limits } = tokenCreateArgs.parse(args);
    const actor = await cliActor(deps, org);
    // --jwks FILE: a JWK Set, one JWK or a PEM public key, validated like the admin API's jwks.
    const keys = jwks === undefined ? undefined : { keys: publicKeyFromText(jwks, 'jwks') };
    // As POST /admin/api/tokens: one refusal names every problem (shape, catalogue, clock, policy) at once.
    const input = await validateWithRules(
      generateTokenBody,
      {
        name,
        expires_at: expires,
        services,
        ...limits,
        ...(keys ? { auth_method: 'private_key_jwt', jwks: keys } : {}),
        ...(require_dpop ? { require_dpop: true } : {}),
      },
      (valid, failed) => generateTokenProblems(deps, actor, valid, failed),
    );
    return generateToken(deps, actor, input);
  },
  // --search is the admin API's `q` (name or client ID, any case, `%` and `_` literal), named so in its errors.
  'token-list': async (deps, args) => {
    const { org, status: statusArg, search } = tokenListArgs.parse(args);
    const query = listTokensQuery.safeParse({ ...(statusArg === undefined ? {} : { status: statusArg }), ...(search === undefined ? {} : { q: search }) });
    if (!query.success) throw new z.ZodError(query.error.issues.map((i) => (i.path[0] === 'q' ? { ...i, path: ['search', ...i.path.slice(1)] } : i)));
    const { status, q } = query.data;
    const actor = await cliActor(deps, org);
    const items: TokenResource[] = [];
    let cursor: string | undefined;
    for (;;) {
      const page = await listTokens(deps, actor, { limit: 100, cursor, status, q });
      items.push(...page.items);
      if (!page.next_cursor) return { items, active_count: page.active_count, max_active: page.max_active };
      cursor = page.next_cursor;
    }
  },
  // `sat token show`: GET /admin/api/tokens/{id} (404-style not_found for an unknown id or another organisation's).
  'token-show': async (deps, args) => {
    const { org, id } = tokenShowArgs.parse(args);
    return getToken(deps, await cliActor(deps, org), id);
  },
  // `sat token update`: PATCH /admin/api/tokens/{id} (same rules, one transaction, audit event by "cli"); --jwks
  // arrives as `public_key` text, converted and validated like the console's pasted key.
  'token-update': async (deps, args) => {
    const { org, id, changes } = tokenUpdateArgs.parse(args);
    const actor = await cliActor(deps, org);
    // As PATCH /admin/api/tokens/{id}: one refusal names every problem at once.
    return patchToken(deps, actor, id, await validateWithRules(updateTokenBody, changes, (valid) => patchTokenProblems(deps, actor, id, valid)));
  },
  // `sat policy show|set`: GET and PUT /admin/api/policy (same rules, audit event by "cli").
  'policy-show': async (deps, args) => {
    const { org } = policyShowArgs.parse(args);
    return getPolicy(deps, await cliActor(deps, org));
  },
  'policy-set': async (deps, args) => {
    const { org, changes } = policySetArgs.parse(args);
    const actor = await cliActor(deps, org);
    const current = await getPolicy(deps, actor);
    if (changes.allowed_services === 'all') changes.allowed_services = deps.config.services.map((s) => s.id);
    // As PUT /admin/api/policy: one refusal names every problem at once.
    return updatePolicy(deps, actor, await validateWithRules(policyBody, { ...current, ...changes }, (valid) => policyProblems(deps.config, valid)));
  },
  'token-revoke': async (deps, args) => {
    const { org, id } = tokenRevokeArgs.parse(args);
    return revokeToken(deps, await cliActor(deps, org), id);
  },
  // `sat token rotate`: SPEC Part 2 "Secret rotation with overlap"; the new secret is in the result, once.
  'token-rotate': async (deps, args) => {
    const { org, id, graceHours } = tokenRotateArgs.parse(args);
    const input = rotateSecretBody.parse(graceHours === undefined ? {} : { grace_period_hours: graceHours });
    return withCliKeyAdvice(org, id, async () => rotateSecret(deps, await cliActor(deps, org), id, input));
  },
  // `sat token retire`: POST /admin/api/tokens/{id}/secrets/{secret_id}/retire (the secret stops at once).
  'token-retire': async (deps, args) => {
    const { org, id, secretId } = tokenRetireArgs.parse(args);
    return withCliKeyAdvice(org, id, async () => retireSecret(deps, await cliActor(deps, org), id, secretId));
  },
  // `sat resource-server add|list|revoke`: platform credentials that may only introspect (docs/oauth.md).
  'resource-server-add': async (deps, args) => addResourceServer(deps, resourceServerAddArgs.parse(args).name),
  'resource-server-list': async (deps) => ({ items: await listResourceServers(deps) }),
  'resource-server-revoke': async (deps, args) => revokeResourceServer(deps, resourceServerRevokeArgs.parse(args).id),
  // `sat backup FILE`: run inside the server when it holds the embedded database, so the copy is consistent.
  backup: async (deps, args) => {
    const { file } = backupArgs.parse(args);
    if (deps.db.kind !== 'embedded') {
      throw new AppError('conflict', 'sat backup copies the embedded database; on PostgreSQL use pg_dump (docs/operations.md).');
    }
    return backupEmbedded(deps.db.knex, file);
  },
  // `sat audit list`: GET /admin/api/audit for scripts, newest first, up to `limit` events (pages read in turn).
  'audit-list': async (deps, args) => {
    const { org, token, limit } = auditListArgs.parse(args);
    const actor = await cliActor(deps, org);
    const items: AuditEventResource[] = [];
    let cursor: string | undefined;
    while (items.length < limit) {
      const page = await listAudit(deps.db.knex, actor.organisation_id, { limit: Math.min(100, limit - items.length), cursor, tokenId: token?.toLowerCase() });
      items.push(...page.items);
      if (!page.next_cursor) return { items, more: false };
      cursor = page.next_cursor;
    }
    return { items, more: true };
  },
  'keys-list': async (deps) => {
    const now = deps.clock();
    // The signer is the same whatever this shell's SIGNING_ALG (the newest key of any algorithm whose time has come).
    const set = await loadPublicKeySet(deps.db.knex, now, keyRetentionMs(deps.config.accessTokenTtlSeconds));
    // Which keys this process's key-encryption key opens (a lost or wrong key, or a damaged row: docs/operations.md
    // "Key-encryption key custody"): each is decrypted and checked, not only its kek_id compared. Without a key for
    // sealed keys every sealed key is unreadable; nothing is generated for a list.
    let ring: KeyRing | undefined;
    if (await deps.db.knex('signing_keys').whereNotNull('sealed_jwk').first('kid')) {
      try {
        ring = await openKeyRingForStoredKeys(deps.db.knex, deps.config, deps.db.kind);
      } catch (err) {
        if (!(err instanceof KeyEncryptionError)) throw err;
      }
    }
    const stored = await listSigningKeys(deps.db.knex, ring ?? new KeyRing(() => ({ key: undefined })));
    const published = new Set(set ? set.keys.map((k) => k.kid) : stored.map((k) => k.kid)); // no signer yet: all pending
    const leaves = retirementTimes(stored, now, keyRetentionMs(deps.config.accessTokenTtlSeconds));
    // By this process's KEY_ROTATION_DAYS and KEY_PUBLISH_AHEAD_SECONDS (the server's, through the control socket):
    // the answer names the setting it used.
    const { nextRotationSeconds } = signingKeySchedule(stored, now, deps.config.keyRotationDays, deps.config.keyPublishAheadSeconds);
    return {
      signing_kid: set?.signingKid ?? null,
      next_rotation_at: nextRotationSeconds === null ? null : new Date(now.getTime() + Math.round(nextRotationSeconds * 1000)).toISOString(),
      key_rotation_days: deps.config.keyRotationDays,
      published: stored
        .filter((k) => published.has(k.kid))
        .map((k) => ({
          kid: k.kid,
          alg: k.alg,
          status: k.kid === set?.signingKid ? 'signing' : k.not_before.getTime() > now.getTime() ? 'pending' : 'retiring',
          signs_from: k.not_before.getTime() > now.getTime() ? k.not_before.toISOString() : null,
          published_until: k.kid === set?.signingKid ? null : (leaves.get(k.kid)?.toISOString() ?? null),
          encrypted: k.encrypted,
          opens: k.opens ?? false,
        })),
    };
  },
};

/**
 * `sat token rotate|retire` on a private_key_jwt token (409 conflict, tokens.NoSecretToRotate): the admin API's
 * advice is PATCH; from the command line it is `sat token update --jwks FILE` (docs/sender-constrained.md).
 */
async function withCliKeyAdvice<T>(org: string, id: string, run: () => Promise<T>): Promise<T> {
  try {
    return await run();
  } catch (err) {
    if (!(err instanceof NoSecretToRotate)) throw err;
    throw new AppError(
      'conflict',
      `This token authenticates with private_key_jwt: it has no secret. Replace its public keys instead: sat token update --org ${JSON.stringify(org)} ${id} --jwks FILE`,
    );
  }
}

/** Runs a command and shapes the outcome like a control-socket answer (errors carry no stack, no SQL). */
export async function runCommand(deps: Deps, name: string, args: Record<string, unknown>): Promise<ControlResponse> {
  // Own commands only: a name such as `constructor` or `__proto__` must not reach Object's own members.
  const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
  if (!command) return { ok: false, error: { code: 'unknown_command', message: `unknown command ${name}` } };
  try {
    return { ok: true, result: await command(deps, args) };
  } catch (err) {
    if (err instanceof z.ZodError) {
      return {
        ok: false,
        error: {
          code: 'validation_failed',
          message: err.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '),
        },
      };
    }
    if (err instanceof KeyEncryptionError) return { ok: false, error: { code: 'key_encryption_failed', message: err.message } };
    // A database migrated by a newer version (`sat migrate` after a rollback): what happened and what to do.
    if (err instanceof DatabaseNewerError) return { ok: false, error: { code: 'database_newer', message: err.message } };
    // `sat migrate` while another instance migrates, or a session holds the lock: who holds it, what to do.
    if (err instanceof MigrationLockTimeoutError) return { ok: false, error: { code: 'migration_lock_timeout', message: err.message } };
    // `sat backup` to a path it cannot write: the reason for the operator, nothing for the server log (bad input).
    if (err instanceof BackupTargetError) return { ok: false, error: { code: 'backup_failed', message: err.message } };
    if (err instanceof AppError) return { ok: false, error: { code: err.code, message: err.message, details: err.details } };
    // `sat migrate` (or any command) with PostgreSQL out of reach or refusing the connection: the operator's problem,
    // said here rather than as "see the server log" with a stack (there may be no server). pg's messages carry no
    // password ("connect ECONNREFUSED host:port", "role \"x\" does not exist", "database \"x\" does not exist").
    if (isDatabaseUnavailable(err)) {
      const which = deps.config.databaseUrl ? 'the database (DATABASE_URL)' : 'the database';
      return { ok: false, error: { code: 'service_unavailable', message: `cannot use ${which}: ${(err as Error).message}` } };
    }
    deps.log.error('command failed', { command: name, err });
    return { ok: false, error: { code: 'internal_error', message: 'the command failed; see the server log' } };
  }
}
