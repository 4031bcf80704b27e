// System access tokens: generation, rules, credentials, and the client lookup the OAuth edge uses.
export { generateToken, getToken, type Actor, type GeneratedToken } from './service.js';
export { generateTokenBody, type GenerateTokenInput } from './schemas.js';
export { findTokenByClientId, deleteToken } from './queries.js';
export { toTokenResource, tokenStatus, type TokenResource } from './resource.js';
export {
  CLIENT_ID_PREFIX,
  SECRET_PREFIX,
  isWellFormedClientId,
  isWellFormedSecret,
  verifySecret,
  hashSecret,
} from './credentials.js';
export { accessTokenLifetime, parseExpiry, resolveExpiry } from './expiry.js';
export { UsageRecorder } from './usage.js';
