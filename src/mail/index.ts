// Email notices through a transactional outbox (SPEC "Email"): what to say, to whom, queued with the change.
// The worker (delivery.ts) and the transport (transport.ts) are imported by main.ts only: the domain never sends.
export { enqueueMail, messageIdDomain, type MailKind, type NewMail } from './outbox.js';
export {
  queueTokenGeneratedMail,
  queueTokenRevokedMail,
  enqueueExpiryNotices,
  EXPIRY_NOTICE_DAYS,
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
export { queueInvitationMail, queuePasswordResetMail, queuePasswordChangedMail, oneTimeLink } from './admin-notices.js';
