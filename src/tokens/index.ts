// System access tokens: generation, listing, revocation, rules, credentials, and the client lookup the OAuth edge uses.
export {
  generateToken,
  generateTokenProblems,
  patchTokenProblems,
  getToken,
  listTokens,
  revokeToken,
  lifecycleRules,
  patchToken,
  DEFAULT_PAGE_SIZE,
  LEAKED_COUNT_DAYS,
  type Actor,
  type GeneratedToken,
  type GeneratedKeyToken,
  type RequestMeta,
  type RevokedToken,
  type TokenPage,
} from './service.js';
export {
  generateTokenBody,
  listTokensQuery,
  updateTokenBody,
  tokenName,
  allowedIps,
  maxTokensPerHour,
  TOKEN_STATUS_FILTERS,
  type GenerateTokenInput,
  type ListTokensInput,
  type UpdateTokenInput,
  type TokenStatusFilter,
} from './schemas.js';
export { isQuietToken, recordUseOfQuietToken, revokeDormantTokens } from './dormant.js';
export { normaliseNetwork, isAddressAllowed, MAX_ALLOWED_IPS } from './networks.js';
export { findTokenByClientId, deleteToken } from './queries.js';
export { rowJwks, toTokenResource, tokenStatus, isExpiring, isDormant, type TokenResource, type LifecycleRules } from './resource.js';
export {
  CLIENT_ID_PREFIX,
  SECRET_PREFIX,
  isWellFormedClientId,
  isWellFormedSecret,
  secretFormatProblem,
  type SecretProblem,
  verifySecret,
  hashSecret,
  redactCredentials,
} from './credentials.js';
export { accessTokenLifetime, parseExpiry, resolveExpiry } from './expiry.js';
export { UsageRecorder } from './usage.js';
export { isAccessTokenRevoked, pruneRevokedAccessTokens, revokeAccessToken, type RevokedAccessToken } from './access-tokens.js';
export {
  ASSERTION_CLOCK_SKEW_S,
  MAX_ASSERTION_LIFETIME_S,
  assertionClaimsProblem,
  authenticateAssertion,
  authenticateClient,
  authenticateForIntrospection,
  findAssertionClient,
  findIntrospectedSubject,
  namesOnlyUs,
  isClientAssertionType,
  verifyAssertion,
  type AuthenticatedClient,
  type IntrospectedSubject,
  type RefusedAssertion,
  type PresentedCredentials,
} from './clients.js';
export type { ClientRow } from './queries.js';
export { claimOneTimeUse, isOneTimeUseClaimed, pruneOneTimeUses } from './replay.js';
export {
  CLIENT_ASSERTION_ALGS,
  jwkThumbprint,
  parsePublicJwks,
  publicKeyFromText,
  type PublicJwk,
  type PublicJwks,
} from './jwks.js';
export { AccessTokenAllowance, checkClientAddress, countTokensLastHour, pruneIssuanceBuckets, reservationSize, unusedReservationBound, NO_LIMIT, type Allowance } from './limits.js';
export {
  addResourceServer,
  listResourceServers,
  revokeResourceServer,
  type AddedResourceServer,
  type ResourceServerResource,
} from './resource-servers.js';
export {
  reportLeakedSecrets,
  type LeakAction,
  type LeakLabel,
  type LeakReport,
  type LeakReportOptions,
} from './leaks.js';
export { enqueueExpiryNotices, dueReminder } from './reminders.js';
export {
  rotateSecret,
  retireSecret,
  expirePreviousSecrets,
  rotateSecretBody,
  NoSecretToRotate,
  DEFAULT_GRACE_PERIOD_HOURS,
  type RotateSecretInput,
  type RotatedToken,
} from './rotation.js';
export { secretsOf, type SecretResource } from './resource.js';
