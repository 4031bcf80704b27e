// Schemas of the admin API's response bodies, for its OpenAPI description (the request schemas are the ones the
// routes parse with). Loose objects: a field added to a resource does not make the description wrong, only
// incomplete; test/integration/openapi.test.ts checks real responses against these.
import { z } from 'zod';

const timestamp = z.iso.datetime({ offset: true });

/** GET /services: the service catalogue a token can be granted (id, name, description of each service). */
export const serviceList = z.looseObject({
  items: z.array(z.looseObject({ id: z.string(), name: z.string(), description: z.string() })),
});

/** A live secret of a token (SPEC Part 2 "Secret rotation with overlap"), never the secret itself. */
const secretResource = z.looseObject({
  id: z.uuid(),
  created_at: timestamp,
  expires_at: timestamp.nullable().describe('null: lives as long as the token'),
  last_used_at: timestamp.nullable(),
  last4: z.string().nullable().describe('The last four characters of the secret; null for a secret older than rotation.'),
});

/** A token as the admin API shows it (GET /tokens/{id}, list items, PATCH): never its secret or secret hash. */
export const tokenResource = z.looseObject({
  id: z.uuid(),
  name: z.string(),
  client_id: z.string().describe('sat_…'),
  services: z.array(z.string()),
  scopes: z.string().describe('The services, space-separated, as access tokens carry them.'),
  status: z.enum(['active', 'expired']),
  expiring: z.boolean().describe('Active and expiring within expiringSoonDays (7).'),
  dormant: z.boolean().describe('Active and not used for dormantAfterDays (90), counted from creation when never used.'),
  expires_at: timestamp,
  created_at: timestamp,
  created_by: z.looseObject({ id: z.uuid(), email: z.string() }).nullable(),
  last_used_at: timestamp.nullable(),
  leaked_at: timestamp
    .nullable()
    .describe('When a leak of its secret was first reported while the token was kept alive (SECRET_SCANNING_ACTION=notify); else null.'),
  allowed_ips: z.array(z.string()).describe('Normalised IPv4/IPv6 addresses and CIDR ranges allowed to use the token; empty: any address.'),
  max_tokens_per_hour: z.number().int().nullable().describe('Access tokens per rolling hour; null: no limit.'),
  tokens_last_hour: z.number().int().describe('Access tokens issued in the last rolling hour (counted for tokens with a limit; else 0).'),
  auth_method: z.enum(['client_secret', 'private_key_jwt']),
  jwk_thumbprints: z.array(z.string()).nullable().describe('RFC 7638 thumbprints of the registered public keys (private_key_jwt only).'),
  require_dpop: z.boolean(),
  secrets: z.array(secretResource).describe('The live secrets, newest first; empty for a private_key_jwt or an expired token.'),
});

/** POST /tokens (201): the token resource and `client_secret`, shown only here (none for private_key_jwt). */
export const generatedToken = tokenResource.extend({
  client_secret: z
    .string()
    .optional()
    .describe('sats_…: shown in this answer only, never again. Absent for a private_key_jwt token, which has no secret.'),
});

/** GET /tokens: one page of token resources, `next_cursor` (null on the last page) and the organisation's counts. */
export const tokenPage = z.looseObject({
  items: z.array(tokenResource),
  next_cursor: z.string().nullable(),
  active_count: z.number().int(),
  max_active: z.number().int(),
  leaked_count: z.number().int().describe('Distinct tokens of the organisation reported leaked (token.leaked) in the last 30 days.'),
});

/** POST /tokens/{id}/revoke: the revoked token's id, name, client ID and `revoked_at`. */
export const revokedToken = z.looseObject({ id: z.uuid(), name: z.string(), client_id: z.string(), revoked_at: timestamp });

const sessionAdmin = z.looseObject({
  id: z.uuid(),
  email: z.string(),
  organisation: z.looseObject({ id: z.uuid(), name: z.string() }),
});

/** POST /login, POST /invitations/accept: the session token, its CSRF token and expiry, the administrator. */
export const signedIn = z.looseObject({
  token: z.string().describe('sas_…: send as `Authorization: Bearer`; also set as the sat_session cookie.'),
  csrf_token: z.string(),
  expires_at: timestamp,
  admin: sessionAdmin,
});

/** GET /me: the signed-in administrator, their organisation, the session's expiry and its CSRF token. */
export const me = z.looseObject({
  admin: sessionAdmin,
  organisation: z.looseObject({ id: z.uuid(), name: z.string() }),
  expires_at: timestamp,
  csrf_token: z.string(),
});

/** GET /audit: one page of the organisation's audit events and `next_cursor` (null on the last page). */
export const auditPage = z.looseObject({
  items: z.array(
    z.looseObject({
      id: z.uuid(),
      action: z.string(),
      actor_id: z.uuid().nullable(),
      actor_email: z.string(),
      token_id: z.uuid().nullable(),
      token_name: z.string().nullable(),
      client_id: z.string().nullable(),
      ip: z.string().nullable(),
      created_at: timestamp,
      details: z
        .record(z.string(), z.unknown())
        .nullable()
        .describe('Facts of the event: {changes: {field: {old, new}}} for token.updated, {old, new} for policy.updated, the secrets of token.secret_*, …'),
      subject_admin: z
        .looseObject({ id: z.uuid().nullable(), email: z.string() })
        .optional()
        .describe('The administrator an admin.* event is about; absent on other events.'),
      leak: z
        .looseObject({ url: z.string().nullable(), source: z.string(), action: z.enum(['revoked', 'notified']) })
        .nullable()
        .describe('token.leaked only: where the secret was found, the report source, what the server did; else null.'),
    }),
  ),
  next_cursor: z.string().nullable(),
});

/** One administrator of the organisation: id, email, creation and last sign-in (null: never signed in). */
export const adminResource = z.looseObject({
  id: z.uuid(),
  email: z.string(),
  created_at: timestamp,
  last_sign_in_at: timestamp.nullable(),
});

/** POST /admin/api/admins: the invitation (its id is the invitation's, not yet an administrator's). */
export const invitation = z.looseObject({
  id: z.uuid().describe("The invitation's id; the administrator gets their own id on accepting."),
  email: z.string(),
  expires_at: timestamp.describe('When the mailed link stops working: 72 hours after the invitation.'),
});

/** GET /admins: the organisation's administrators. */
export const adminList = z.looseObject({ items: z.array(adminResource) });

/** GET /admin/api/invitations: the pending invitations (not used, not expired), newest first. */
export const invitationList = z.looseObject({
  items: z.array(
    z.looseObject({
      id: z.uuid().describe('The id POST /admin/api/admins answered with; DELETE /admin/api/invitations/{id} withdraws it.'),
      email: z.string(),
      created_at: timestamp,
      expires_at: timestamp.describe('When the mailed link stops working.'),
      invited_by: z
        .looseObject({ id: z.uuid(), email: z.string() })
        .nullable()
        .describe('The administrator who sent it; null when `sat admin invite` did.'),
    }),
  ),
});

/** GET /me/sessions: the signed-in administrator's sessions; `current` marks the one making the call. */
export const ownSessionList = z.looseObject({
  items: z.array(
    z.looseObject({
      id: z.string(),
      created_at: timestamp,
      last_seen_at: timestamp,
      ip: z.string().nullable(),
      user_agent: z.string().nullable(),
      current: z.boolean(),
    }),
  ),
});

/** POST /me/sessions/revoke-others: how many sessions were ended. */
export const revokedSessions = z.looseObject({ revoked: z.number().int() });

/** 202 answers with only a message (POST /password-reset, whatever the address). */
export const accepted = z.looseObject({ message: z.string() });

/** The token resource with its live secrets (SPEC Part 2 "Secret rotation with overlap"): every token resource has them. */
export const tokenWithSecrets = tokenResource;

/** POST /tokens/{id}/rotate: the token resource with its live secrets and the new `client_secret`, shown once. */
export const rotatedToken = tokenWithSecrets.extend({
  client_secret: z.string().describe('sats_…: the new secret, shown in this answer only, never again.'),
});

/** GET and PUT /policy: the organisation's whole policy (SPEC Part 2 "Organisation policy"). */
export const policyResource = z.looseObject({
  max_lifetime_days: z.number().int().describe('Longest lifetime a generated token may have, in days.'),
  allowed_services: z.array(z.string()).describe('The services tokens may be generated for.'),
  revoke_dormant_after_days: z.number().int().nullable().describe('Tokens unused this many days are revoked; null: never.'),
  default_max_tokens_per_hour: z.number().int().nullable().describe('max_tokens_per_hour of a new token that sets none; null: no limit.'),
});
