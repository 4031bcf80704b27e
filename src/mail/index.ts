// Email notices through a transactional outbox (SPEC "Email"): what to say, to whom, queued with the change.
// The worker (delivery.ts) and the transport (transport.ts) are imported by main.ts only: the domain never sends.
export { enqueueMail, mailQueueStats, messageIdDomain, organisationAdminEmails, type MailKind, type MailQueueStats, type NewMail } from './outbox.js';
export {
  queueTokenGeneratedMail,
  queueTokenRevokedMail,
  queueTokenExpiringMail,
  type MailAdmin,
} from './notices.js';
export {
  tokenGenerated,
  tokenRevoked,
  tokenExpiringSoon,
  escapeHtml,
  type MailContent,
  type MailToken,
  type CatalogueEntry,
} from './templates.js';
export { queueTokenRevokedDormantMail, tokenRevokedDormant } from './policy-notices.js';
export { queueInvitationMail, queuePasswordResetMail, queuePasswordChangedMail, oneTimeLink, dropUnsentInvitationMail, countPasswordResetMails, withdrawUnsentPasswordResetMail } from './admin-notices.js';
export { tokenLeaked, queueTokenLeakedMail, type LeakedSecret, type LeakReporter, type TokenLeakedFacts } from './leaked.js';
export { secretRotated, queueSecretRotatedMail, type SecretRotatedFacts } from './rotated.js';
