// Organisations and administrators: creation, first start, password hashing, sign-in sessions and their throttle.
export { normaliseEmail } from './email.js';
export { addAdmin, addAdminInput, ensureFirstAdmin, type AddAdminInput, type AddAdminResult } from './service.js';
export { findAdminById, findOrganisationById, findOrganisationByName } from './queries.js';
export { hashPassword, verifyPassword, generatePassword, dummyPasswordHash, configurePasswordHashing } from './passwords.js';
export { PasswordQueueFullError } from './password-pool.js';
export {
  signIn,
  signOut,
  resolveSession,
  pruneSessions,
  signInBody,
  csrfTokenFor,
  checkCsrfToken,
  isWellFormedSessionToken,
  SESSION_TOKEN_PREFIX,
  type Session,
  type SessionAdmin,
  type SignedIn,
  type SignInInput,
} from './sessions.js';
