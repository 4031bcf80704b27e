// The OAuth 2.0 edge: oidc-provider configured for client credentials, its keys, and what it does not do for us.
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { issuerPath } from '../config/index.js';
import { isDatabaseUnavailable, noteDatabaseOutage } from '../db/index.js';
import {
  KeyEncryptionError,
  ensureSigningKey,
  keyRetentionMs,
  loadKeySet,
  loadKeySetInPart,
  openKeyRing,
  pruneSigningKeys,
  recordSignerTokenTtl,
  rotateSigningKeyIfDue,
  sealPlaintextKeys,
  type KeyRing,
  type KeySet,
} from '../keys/index.js';
import { AccessTokenAllowance, UsageRecorder } from '../tokens/index.js';
import {
  AUTHORIZATION_PATH,
  authorizationServerMetadata,
  openIdProviderMetadata,
  prepareJson,
  prepareJwks,
  jwksMaxAgeSeconds,
  servePrepared,
  type PreparedJson,
} from './discovery.js';
import { createProvider } from './provider.js';
import { providerErrorText, renderOAuthError, TemporarilyUnavailable } from './errors.js';
import { createAccessTokenVerifier, introspectionEndpoint, type AccessTokenVerifier } from './introspection.js';
import { revocationEndpoint } from './revocation.js';
import { recordProviderOutcome, tokenEndpoint, type CurrentProvider } from './token-endpoint.js';

/** The OAuth endpoints whose every answer carries `Cache-Control: no-store` and `Pragma: no-cache`. */
const NEVER_CACHED: ReadonlySet<string> = new Set(['/token', '/token/introspection', '/token/revocation']);

/** The largest form body the OAuth endpoints read (main.ts: whether to invite a body with 100 Continue). */
export { MAX_FORM_BYTES } from './form.js';

/** The provider endpoints we expose, with their methods; every other route oidc-provider registers stays unreachable. */
const exposed = new Map<string, string[]>([
  ['/token', ['POST']],
  ['/token/introspection', ['POST']],
  ['/token/revocation', ['POST']],
  // oidc-provider's authorization endpoint: discovery must name one (docs/keys.md "Discovery"); no client may use it,
  // so it answers every request with an RFC 6749 error.
  [AUTHORIZATION_PATH, ['GET', 'POST']],
]);

/**
 * Whether an instance holds the database's key set: `unopened`, the published kids it cannot open (empty when all
 * open); `signerUsableUntil`, when it signs with a key it cannot replace (the database's signer does not open here),
 * the moment after which a token it signs would outlive that key's publication (its end of publication less the
 * token lifetime: past already when the key is no longer published). From then on its tokens would not verify
 * everywhere for their whole lifetime: the token endpoint answers 503 and /readyz 503.
 */
export interface KeyHealth {
  unopened: readonly string[];
  signerUsableUntil?: Date;
}

/** Whether `health` lets this instance sign at `now` (KeyHealth.signerUsableUntil). */
export function canSign(health: KeyHealth, now: Date): boolean {
  return health.signerUsableUntil === undefined || now.getTime() < health.signerUsableUntil.getTime();
}

/**
 * Whether `path` is one of the OAuth endpoints (token, introspection, revocation, authorization), also under
 * ISSUER's path (`/sat/token` for `ISSUER=https://host/sat`, http/common.ts servedUnderIssuerPath): the paths whose
 * errors are RFC 6749 §5.2 `{error, error_description}`, for the refusals Node makes before the app sees a request
 * (http/client-error.ts).
 */
export function oauthEndpointMatcher(issuer: string): (path: string) => boolean {
  const prefix = issuerPath(issuer);
  return (path) => exposed.has(path) || (prefix !== '' && path.startsWith(`${prefix}/`) && exposed.has(path.slice(prefix.length)));
}

export interface OAuth {
  middleware: Middleware;
  /**
   * Re-reads the key set at deps.clock(); rebuilds the provider and the JWKS when it changed. Returns true on a
   * change. When a published key does not open here (a key added after `sat keys rewrap`, on an instance without the
   * new key-encryption key), the JWKS still becomes what the database publishes and the signer stays one this
   * process opened (loadKeySetInPart), logged once a minute and shown by `keyHealth`: never signs garbage.
   */
  reloadKeys(): Promise<boolean>;
  /** Whether this instance holds the database's key set (KeyHealth). */
  readonly keyHealth: KeyHealth;
  /** Deletes keys superseded longer ago than the longest access token lifetime plus an hour. */
  pruneKeys(): Promise<number>;
  /** Automatic rotation (KEY_ROTATION_DAYS): adds a key published ahead when due, then reloads. Returns its kid. */
  rotateKeysIfDue(): Promise<string | undefined>;
  /** Writes batched last_used_at updates. */
  flushUsage(): Promise<number>;
  /** Shutdown, after the last request: gives back the hourly-limit reservations this instance did not use. */
  releaseHourlyReservations(): Promise<number>;
  readonly keySet: KeySet;
  /** Whether the token endpoint's fast path is on (TOKEN_FAST_PATH and its startup self-check). */
  readonly fastPathEnabled: boolean;
  /** The key-encryption key and the opened private keys of this process. */
  readonly keyRing: KeyRing;
  /** The access-token verifier of introspection and revocation (it remembers verified signatures). */
  readonly verifyAccessToken: AccessTokenVerifier;
}

/**
 * The OAuth edge on `deps`. `keyRing`: the key ring `serve` opened before touching the database (main.ts); default
 * one opened here (KeyEncryptionError when PostgreSQL mode has no key-encryption key).
 */
export async function createOAuth(deps: Deps, keyRing?: KeyRing): Promise<OAuth> {
  const { config } = deps;
  const usage = new UsageRecorder();
  const hooks = {
    onTokenIssued: (tokenId: string, secretHash: string | undefined, hourlyLimited: boolean) =>
      usage.record(tokenId, deps.clock(), secretHash, !hourlyLimited),
  };
  // A token authenticated as the caller of introspection or revocation was used too; no access token to count.
  const recordCallerUse = (tokenId: string, secretHash: string | undefined) => usage.record(tokenId, deps.clock(), secretHash, false);
  const retention = keyRetentionMs(config.accessTokenTtlSeconds);
  // Start: resolve the key-encryption key (KeyEncryptionError stops the server), seal keys stored in clear.
  const ring = keyRing ?? openKeyRing(config, deps.db.kind, deps.log);
  const sealed = await sealPlaintextKeys(deps.db.knex, ring);
  if (sealed) {
    // Older dumps and backups still hold them in clear, and they still sign: a rotation retires them (docs/keys.md).
    deps.log.warn('signing keys encrypted at rest; copies taken while they were in clear still hold them: run `sat keys rotate` to retire them', { keys: sealed });
  }
  // A key of SIGNING_ALG signs or will sign (ensureSigningKey, under the table lock): the first key on an empty
  // database; after a change of SIGNING_ALG, a key of the new algorithm published now that signs only
  // KEY_PUBLISH_AHEAD_SECONDS later (SPEC Part 2 "Signing-key rotation never fails a verifier"). Until then the
  // current signer keeps signing, with its own algorithm; the reload job switches when the new key's time comes.
  const ensure = () => ensureSigningKey(deps.db.knex, ring, config.signingAlg, deps.clock(), config.keyPublishAheadSeconds);
  let recordedKid: string | undefined; // the signer this process has recorded its token lifetime on
  const load = async () => {
    let set = await loadKeySet(deps.db.knex, ring, deps.clock(), retention);
    if (!set) {
      // No key signs (every key was deleted by hand): make one as on a first start, then read what won.
      await ensure();
      set = await loadKeySet(deps.db.knex, ring, deps.clock(), retention);
    }
    if (!set) throw new Error('no signing key available');
    // Before this process signs with a key, the key records this process's token lifetime, so that every instance
    // keeps it published for the longest one plus an hour, whatever its own ACCESS_TOKEN_TTL_SECONDS (a failure
    // here is a failed load: the keys loaded before keep signing).
    if (set.signingKid !== recordedKid) {
      await recordSignerTokenTtl(deps.db.knex, set.signingKid, config.accessTokenTtlSeconds);
      recordedKid = set.signingKid;
    }
    return set;
  };

  const switching = await ensure(); // at every start, not only on an empty table: SIGNING_ALG may have changed
  let keySet = await load();
  // Only once the keys loaded: keys sealed before, with no key-encryption key now, refused the start above instead.
  if (!ring.kek.key) deps.log.warn('signing keys are stored in clear (ALLOW_PLAINTEXT_KEYS=true): a database dump can forge tokens');
  if (switching?.kid === keySet.signingKid) {
    deps.log.warn(`SIGNING_ALG changed to ${config.signingAlg}: the new key signs at once (KEY_PUBLISH_AHEAD_SECONDS is 0)`, {
      signing_kid: keySet.signingKid,
      signing_alg: keySet.signingAlg,
    });
  } else if (switching) {
    const from = switching.signsFrom.toISOString();
    deps.log.warn(
      `SIGNING_ALG changed to ${config.signingAlg}: the ${keySet.signingAlg} key ${keySet.signingKid} keeps signing until ${from}, ` +
        `then the ${switching.alg} key ${switching.kid} (${switching.created ? 'published now' : 'already published'})` +
        (switching.dropped.length > 0 ? `; deleted the pending key(s) of the previous algorithm, which would have taken over: ${switching.dropped.join(', ')}` : ''),
      {
        signing_kid: keySet.signingKid,
        signing_alg: keySet.signingAlg,
        new_kid: switching.kid,
        new_alg: switching.alg,
        signs_from: from,
        ...(switching.dropped.length > 0 ? { dropped_pending: switching.dropped } : {}),
      },
    );
  }
  const build = async (set: KeySet): Promise<CurrentProvider> => {
    const { provider, fastPath } = await createProvider(deps, set, hooks);
    provider.use(recordProviderOutcome);
    provider.use(providerErrorText);
    return { callback: provider.callback(), fastPath };
  };
  let current = await build(keySet);
  let jwks: PreparedJson = prepareJwks(keySet.publicKeys); // prepared once per key change (issue 17 item 5)
  const oidcMetadata = prepareJson(openIdProviderMetadata(config)); // lists both algorithms: fixed across key changes
  const asMetadata = prepareJson(authorizationServerMetadata(config));
  // RFC 7662 / RFC 7009 for our JWT access tokens: served by us, oidc-provider refuses JWTs on both.
  const verifyAccessToken = createAccessTokenVerifier(deps, () => keySet);
  const hourly = new AccessTokenAllowance(deps, usage); // this instance's hourly-limit reservations
  let keyHealth: KeyHealth = { unopened: [] }; // set by every reload
  let couldSign = true; // at the last reload: a change is logged at once
  const ownEndpoints = new Map<string, Middleware>([
    ['/token/introspection', introspectionEndpoint(deps, verifyAccessToken, recordCallerUse)],
    ['/token/revocation', revocationEndpoint(deps, verifyAccessToken, recordCallerUse)],
    ['/token', refuseWithoutSigner(() => keyHealth, tokenEndpoint(deps, () => current, hourly))],
    ['/jwks', servePrepared(() => jwks, jwksMaxAgeSeconds(config.keyPublishAheadSeconds))],
    ['/.well-known/openid-configuration', servePrepared(() => oidcMetadata)],
    ['/.well-known/oauth-authorization-server', servePrepared(() => asMetadata)],
  ]);

  const middleware: Middleware = async (ctx, next) => {
    const own = ownEndpoints.get(ctx.path);
    const methods = exposed.get(ctx.path);
    // The access log's `route` (as @koa/router sets it for the other routes): these paths are fixed strings.
    if (own || methods !== undefined) (ctx as { _matchedRoute?: string })._matchedRoute = ctx.path;
    // RFC 6749 §5.1: token responses carry Cache-Control: no-store and Pragma: no-cache, on either path; so does
    // every answer of introspection and revocation (errors and 405s included), never cached either.
    if (NEVER_CACHED.has(ctx.path)) ctx.set('Pragma', 'no-cache');
    if (methods !== undefined && !methods.includes(ctx.method) && !(methods.includes('GET') && ctx.method === 'HEAD')) {
      ctx.status = 405;
      ctx.set('Allow', methods.join(', '));
      ctx.set('Cache-Control', 'no-store'); // an error, like every other of these endpoints
      ctx.body = { error: 'invalid_request', error_description: `use ${methods.join(' or ')}` };
      return;
    }
    if (own) return own(ctx, next);
    if (methods === undefined) return next();
    ctx.respond = false;
    await current.callback(ctx.req, ctx.res);
  };

  /**
   * /token while this instance cannot sign tokens that verify for their whole lifetime (canSign): 503
   * temporarily_unavailable, so a client retries on another instance, instead of a token that stops verifying early.
   */
  function refuseWithoutSigner(health: () => KeyHealth, endpoint: Middleware): Middleware {
    return async (ctx, next) => {
      const h = health();
      // The usual case, a complete key set, reads no clock: this runs on every token request.
      if (h.signerUsableUntil === undefined || canSign(h, deps.clock())) return endpoint(ctx, next);
      renderOAuthError(
        ctx,
        new TemporarilyUnavailable('this instance cannot sign access tokens now (its signing key is not published long enough); retry', 5),
        config.issuer,
      );
    };
  }

  let lastReloadError = 0;
  // One reload at a time (the 2 s job, `sat keys …` through the control socket, the rotation check): two at once
  // could install the set the first one read after the newer set the second one read, for up to 2 s.
  let reloading: Promise<unknown> = Promise.resolve();
  const reloadKeys = (): Promise<boolean> => {
    const run = reloading.then(reloadOnce, reloadOnce);
    reloading = run.catch(() => undefined);
    return run;
  };
  const reloadOnce = async (): Promise<boolean> => {
    let next: KeySet;
    try {
      try {
        next = await load();
        keyHealth = { unopened: [] };
      } catch (err) {
        if (!(err instanceof KeyEncryptionError)) throw err;
        // A published key does not open here: publish what the database publishes all the same (a key removed by
        // `sat keys remove` leaves this JWKS too, one added elsewhere enters it), signing with what opens.
        const partial = await loadKeySetInPart(deps.db.knex, ring, deps.clock(), retention, keySet);
        if (!partial) throw err;
        const until = partial.signerPublishedUntil;
        keyHealth = {
          unopened: partial.unopened,
          ...(until ? { signerUsableUntil: new Date(until.getTime() - config.accessTokenTtlSeconds * 1000) } : {}),
        };
        const signs = canSign(keyHealth, deps.clock());
        const now = Date.now();
        // Once a minute, and at once when this instance stops being able to sign.
        if (now - lastReloadError >= 60_000 || (couldSign && !signs)) {
          lastReloadError = now;
          deps.log.error(
            'signing keys do not open with this instance\'s key-encryption key: they are published but cannot sign here; ' +
              (signs
                ? `still signing with ${partial.signingKid}` + (until ? ` until ${keyHealth.signerUsableUntil!.toISOString()}` : '')
                : `${partial.signingKid}, the key it holds, leaves the JWKS before a token signed now would expire: the token endpoint and /readyz answer 503`) +
              '; give it the current key-encryption key (KEY_ENCRYPTION_KEY_FILE: replace the file, read again within seconds; ' +
              'KEY_ENCRYPTION_KEY: set it and restart)',
            { unopened: partial.unopened, signing_kid: partial.signingKid, err },
          );
        }
        couldSign = signs;
        next = partial;
      }
    } catch (err) {
      // Every 2 s during a database outage: counted with the outage's other refusals (one line, no stack, then
      // summaries: db/outage.ts); the loaded keys keep signing.
      if (isDatabaseUnavailable(err)) {
        noteDatabaseOutage(deps.log, err, 'signing key reload');
        return false;
      }
      // Anything else: logged once a minute, not per attempt.
      const now = Date.now();
      if (now - lastReloadError >= 60_000) {
        lastReloadError = now;
        deps.log.warn('signing keys not reloaded; still signing with the keys loaded before', { err });
      }
      return false;
    }
    if (keyHealth.unopened.length === 0) {
      lastReloadError = 0;
      couldSign = true;
    }
    if (next.fingerprint === keySet.fingerprint) return false;
    current = await build(next);
    // Keys that left the set (pruned, or deleted by `sat keys remove`) are named: an incident's removal shows here.
    const kept = new Set(next.publicKeys.map((k) => k.kid));
    const removed = keySet.publicKeys.map((k) => k.kid).filter((kid): kid is string => typeof kid === 'string' && !kept.has(kid));
    keySet = next;
    jwks = prepareJwks(keySet.publicKeys);
    deps.log.info('signing keys reloaded', {
      signing_kid: keySet.signingKid,
      signing_alg: keySet.signingAlg,
      published: keySet.publicKeys.length,
      ...(removed.length > 0 ? { removed } : {}),
    });
    return true;
  };

  return {
    middleware,
    get keySet() {
      return keySet;
    },
    get keyHealth() {
      return keyHealth;
    },
    get fastPathEnabled() {
      return current.fastPath.enabled;
    },
    keyRing: ring,
    verifyAccessToken,
    reloadKeys,
    pruneKeys: () => pruneSigningKeys(deps.db.knex, deps.clock(), retention),
    async rotateKeysIfDue() {
      const kid = await rotateSigningKeyIfDue(
        deps.db.knex,
        ring,
        config.signingAlg,
        deps.clock(),
        config.keyRotationDays,
        config.keyPublishAheadSeconds,
      );
      if (kid) {
        deps.log.info('signing key rotated automatically', { kid, signs_in_seconds: config.keyPublishAheadSeconds });
        await reloadKeys();
      }
      return kid;
    },
    async flushUsage() {
      const written = await usage.flush(deps.db.knex);
      await hourly.releasePastMinutes(); // hourly-limit reservations of minutes that are over
      return written;
    },
    releaseHourlyReservations: () => hourly.releaseUnused(),
  };
}

