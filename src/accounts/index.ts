// Organisations and administrators: creation, first start, password hashing, sign-in sessions and their throttle.
export { normaliseEmail } from '../text.js';
export { addAdmin, addAdminInput, ensureFirstAdmin, type AddAdminInput, type AddAdminResult } from './service.js';
export { findAdminById, findOrganisationById, findOrganisationByName } from './queries.js';
export { hashPassword, verifyPassword, generatePassword, dummyPasswordHash, configurePasswordHashing, releasePasswordHashing } from './passwords.js';
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
export { newPassword, MIN_PASSWORD_LENGTH, MAX_PASSWORD_LENGTH } from './passwords.js';
export { createSession, signedIn, type SessionMeta } from './sessions.js';
export {
  listAdmins,
  inviteAdmin,
  existingAdminEmail,
  inviteAdminBody,
  acceptInvitation,
  acceptInvitationBody,
  removeAdmin,
  removeAdminByEmail,
  type AdminActor,
  type AdminResource,
} from './admins.js';
export { listInvitations, withdrawInvitation, withdrawInvitationByEmail, type InvitationResource } from './invitations.js';
export {
  changePassword,
  changePasswordBody,
  listOwnSessions,
  revokeOwnSession,
  revokeOtherSessions,
  type SessionResource,
} from './self.js';
export {
  requestPasswordReset,
  passwordResetBody,
  confirmPasswordReset,
  passwordResetConfirmBody,
  resetPasswordFromCli,
  cliResetPasswordArgs,
} from './password-reset.js';
export { INVITATION_TTL_MS, PASSWORD_RESET_TTL_MS } from './one-time.js';
export { registerAddressCall, registerAttempt, emailKey, addressKey, type ThrottleVerdict, type ThrottleSettings } from './login-throttle.js';
