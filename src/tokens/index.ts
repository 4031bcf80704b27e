// System access tokens: generation, listing, revocation, rules, credentials, and the client lookup the OAuth edge uses.
export {
  generateToken,
  getToken,
  listTokens,
  revokeToken,
  updateToken,
  lifecycleRules,
  DEFAULT_PAGE_SIZE,
  LEAKED_COUNT_DAYS,
  EXPIRY_NOTICE_DAYS,
  enqueueExpiryNotices,
  type Actor,
  type GeneratedToken,
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
export { revokeDormantTokens } from './dormant.js';
export { normaliseNetwork, isAddressAllowed, MAX_ALLOWED_IPS } from './networks.js';
export { findTokenByClientId, deleteToken } from './queries.js';
export { toTokenResource, tokenStatus, isExpiring, isDormant, type TokenResource, type LifecycleRules } from './resource.js';
export {
  CLIENT_ID_PREFIX,
  SECRET_PREFIX,
  isWellFormedClientId,
  isWellFormedSecret,
  secretFormatProblem,
  type SecretProblem,
  verifySecret,
  hashSecret,
} from './credentials.js';
export { accessTokenLifetime, parseExpiry, resolveExpiry } from './expiry.js';
export { UsageRecorder } from './usage.js';
export { isAccessTokenRevoked, pruneRevokedAccessTokens, revokeAccessToken, type RevokedAccessToken } from './access-tokens.js';
export {
  authenticateClient,
  authenticateForIntrospection,
  findIntrospectedSubject,
  type AuthenticatedClient,
  type IntrospectedSubject,
  type PresentedCredentials,
} from './clients.js';
export type { ClientRow } from './queries.js';
export { AccessTokenAllowance, checkClientAddress, countTokensLastHour, pruneIssuanceBuckets, reservationSize, type Allowance } from './limits.js';
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
