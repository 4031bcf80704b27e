// Row types, one per table; snake_case like the columns and the API.

export interface OrganisationRow {
  id: string;
  name: string;
  created_at: Date;
}

export interface AdminRow {
  id: string;
  organisation_id: string;
  email: string;
  /** normaliseEmail(email), unique (migration 0040); null only for a pre-0040 row that collided with another. */
  email_key?: string | null;
  /** Migration 0040: when the administrator last started a session. */
  last_sign_in_at?: Date | null;
  password_hash: string;
  created_at: Date;
}

export interface TokenRow {
  id: string;
  organisation_id: string;
  name: string;
  /** The name's key (src/text.ts tokenNameKey), which uniqueness and search compare (migration 0120). Never in an API answer. */
  name_key: string | null;
  client_id: string;
  /** SHA-256 of the client secret; null for a `private_key_jwt` token (migration 0080), which has no secret. */
  secret_hash: string | null;
  services: string[];
  expires_at: Date;
  created_at: Date;
  created_by: string | null;
  /** How the client authenticates at the token endpoint (migration 0080). */
  auth_method: 'client_secret' | 'private_key_jwt';
  /** The public keys of a `private_key_jwt` token ({keys: [...]}, public members only); null otherwise. */
  jwks: { keys: object[] } | string | null;
  /** Access tokens only with a DPoP proof (RFC 9449), migration 0080. */
  require_dpop: boolean;
  last_used_at: Date | null;
  /** When the "expires in 7 days" notice was queued (migration 0003); null until then. */
  expiry_notified_at?: Date | null;
  /**
   * When the current secret (`secret_hash`) of this kept-alive token was first reported leaked (migrations 0050,
   * 0140); null when it was not. Moves with the secret: to `prev_secret_leaked_at` on rotation.
   */
  leaked_at?: Date | null;
  /** Normalised IPv4/IPv6 addresses and CIDR ranges; empty = any address (migration 0070). */
  allowed_ips?: string[];
  /** Access tokens per rolling hour; null = no limit (migration 0070). */
  max_tokens_per_hour?: number | null;
  /** Migration 0090: the current secret (its hash is `secret_hash`); last4 null for a secret older than 0090. */
  secret_id?: string;
  secret_created_at?: Date | null;
  secret_last_used_at?: Date | null;
  secret_last4?: string | null;
  /** Migration 0090: the previous secret while a rotation's grace period lasts; all null when there is none. */
  prev_secret_id?: string | null;
  prev_secret_hash?: string | null;
  prev_secret_created_at?: Date | null;
  prev_secret_expires_at?: Date | null;
  prev_secret_last_used_at?: Date | null;
  prev_secret_last4?: string | null;
  /** Migration 0140: when the previous secret was first reported leaked (notify mode); null when it was not. */
  prev_secret_leaked_at?: Date | null;
  /** Migration 0090: the most urgent expiry reminder threshold (days) already mailed; null when none. */
  expiry_reminded_days?: number | null;
}

/** An organisation's policy (migration 0070); no row = the defaults. */
export interface OrganisationPolicyRow {
  organisation_id: string;
  max_lifetime_days: number;
  allowed_services: string[];
  revoke_dormant_after_days: number | null;
  default_max_tokens_per_hour: number | null;
  updated_at: Date;
  updated_by: string | null;
}

/** A signing key (migrations 0001, 0020): the private JWK sealed under `kek_id`, or in clear (ALLOW_PLAINTEXT_KEYS). */
export interface SigningKeyRow {
  kid: string;
  alg: string;
  public_jwk: Record<string, unknown> | string;
  /** In clear only when no key-encryption key is configured; null when sealed. */
  private_jwk: Record<string, unknown> | string | null;
  /** AES-256-GCM of the private JWK: base64url `iv.ciphertext.tag` (src/keys/encryption.ts). */
  sealed_jwk: string | null;
  /** Which key-encryption key sealed it (a fingerprint, never the key). */
  kek_id: string | null;
  /** When the key was made, by the application's clock (automatic rotation counts from here). */
  created_at: Date;
  /** Published at once; signs from this moment on (rotation publishes ahead of use). */
  not_before: Date;
  /**
   * The longest ACCESS_TOKEN_TTL_SECONDS of the servers that signed with this key (migration 0150); null when none
   * has since that migration. Optional: rows made by code before it, and inserts, leave it out.
   */
  max_token_ttl_seconds?: number | null;
}

export type MailStatus = 'pending' | 'sent' | 'failed' | 'withdrawn';

/** One message of the mail outbox (migration 0003). */
export interface MailOutboxRow {
  id: string;
  message_id: string;
  kind: string;
  recipient: string;
  subject: string;
  text_body: string;
  html_body: string;
  status: MailStatus;
  attempts: number;
  next_attempt_at: Date;
  locked_by: string | null;
  locked_until: Date | null;
  last_error: string | null;
  created_at: Date;
  sent_at: Date | null;
}

/** An administrator's sign-in session (migration 0002): only the SHA-256 of the session token is stored. */
export interface AdminSessionRow {
  id: string;
  token_hash: string;
  admin_id: string;
  created_at: Date;
  expires_at: Date;
  ip: string | null;
  /** Migration 0040: last authenticated request (updated at most once a minute) and the sign-in's User-Agent. */
  last_seen_at?: Date | null;
  user_agent?: string | null;
}

export type OneTimeTokenPurpose = 'invitation' | 'password_reset';

/** An invitation or a password reset (migration 0040): only the SHA-256 of the token is stored. */
export interface AdminOneTimeTokenRow {
  id: string;
  purpose: OneTimeTokenPurpose;
  token_hash: string;
  organisation_id: string;
  admin_id: string | null;
  email: string;
  email_key: string;
  created_by: string | null;
  created_at: Date;
  expires_at: Date;
  used_at: Date | null;
}

/** Failed sign-ins for one key (`email:…` or `ip:…`) in a fixed window (migration 0002). */
export interface LoginThrottleRow {
  key: string;
  failures: number;
  window_started_at: Date;
}

/** The audit log (migration 0002). Token columns are copies, so revoked tokens stay described. */
export interface AuditEventRow {
  id: string;
  organisation_id: string;
  actor_id: string | null;
  actor_email: string;
  action: string;
  token_id: string | null;
  token_name: string | null;
  client_id: string | null;
  ip: string | null;
  created_at: Date;
  /** Free-form facts of the event, such as old and new values (migration 0070). */
  details?: Record<string, unknown> | null;
  /** Migration 0040: the administrator an admin.* event is about (invited, added, removed, …). */
  subject_admin_id?: string | null;
  subject_admin_email?: string | null;
  /** `token.leaked` only (migration 0050): where the secret was found, who reported it, what the server did. */
  leak_url?: string | null;
  leak_source?: string | null;
  leak_action?: string | null;
}

/** An access token (JWT `jti`) revoked at the RFC 7009 endpoint, kept until its `exp` (migration 0002). */
export interface RevokedAccessTokenRow {
  jti: string;
  client_id: string;
  organisation_id: string;
  expires_at: Date;
  revoked_at: Date;
}

/** A resource server of the platform (migration 0010): may introspect every organisation's tokens. */
export interface ResourceServerRow {
  id: string;
  name: string;
  client_id: string;
  secret_hash: string;
  created_at: Date;
}
