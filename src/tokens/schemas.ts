import { z } from 'zod';
import { characterCount, firstHiddenCharacter, hasVisibleCharacter, longestCharacter, MAX_CODE_POINTS_PER_CHARACTER, NAME_MAX_CODE_POINTS } from '../text.js';
import { containsClientSecret } from './credentials.js';
import { MAX_ALLOWED_IPS, normaliseNetwork } from './networks.js';

/** Leading and trailing white space as `\s` knows it, except U+FEFF (a byte-order mark is Cf, not space). */
const TRIMMED_SPACE = /^[^\S\ufeff]+|[^\S\ufeff]+$/g;

/** Static shape rules of POST /admin/api/tokens; rules needing config, time or the database live in service.ts. */
export const tokenName = z
  .string({ error: 'must be a string' })
  // Trims white space only: String.prototype.trim() also drops U+FEFF, a format character (Cf) the SPEC refuses.
  .transform((s) => s.replace(TRIMMED_SPACE, ''))
  .pipe(
    z
      .string()
      .refine((s) => s.length > 0, 'must not be empty')
      // Characters as a reader counts them (graphemes: `é` in NFC or NFD, an emoji sequence, are one each), and a
      // bound on code points for text of a few characters stacked with marks.
      .superRefine((s, ctx) => {
        if (characterCount(s, 64) > 64) ctx.addIssue({ code: 'custom', message: 'must be at most 64 characters' });
        else if ([...s].length > NAME_MAX_CODE_POINTS) {
          ctx.addIssue({ code: 'custom', message: `must be at most ${NAME_MAX_CODE_POINTS} code points (accents and emoji sequences count several)` });
        } else if (longestCharacter(s) > MAX_CODE_POINTS_PER_CHARACTER) {
          ctx.addIssue({
            code: 'custom',
            message: `must not stack more than ${MAX_CODE_POINTS_PER_CHARACTER} code points into one character (combining marks, emoji joined by ZWJ)`,
          });
        }
      })
      .superRefine((s, ctx) => {
        if (containsClientSecret(s)) {
          // Checked first: the message must not quote it, and nothing else about it matters.
          ctx.addIssue({ code: 'custom', message: 'must not contain a client secret (names appear in mails, the audit log and lists)' });
          return;
        }
        const hidden = firstHiddenCharacter(s);
        if (hidden !== undefined) {
          ctx.addIssue({ code: 'custom', message: `must not contain invisible, control, format, bidirectional, private-use or unassigned characters (${hidden})` });
        } else if (s.length > 0 && !hasVisibleCharacter(s)) {
          ctx.addIssue({ code: 'custom', message: 'must have at least one visible character' });
        }
      }),
  );

const serviceList = z
  .array(z.string({ error: 'must be a service id' }), { error: 'must be an array of service ids' })
  .min(1, 'choose at least one service')
  .max(100, 'must have at most 100 service ids');

/**
 * SPEC "Network and rate limits per token": at most 20 IPv4/IPv6 addresses or CIDR ranges (empty = any address),
 * each normalised by ipaddr.js (normaliseNetwork); duplicates after normalisation are dropped.
 */
export const allowedIps = z
  .array(z.string({ error: 'must be an IPv4 or IPv6 address or CIDR range' }), { error: 'must be an array of addresses or CIDR ranges' })
  .max(MAX_ALLOWED_IPS, `must have at most ${MAX_ALLOWED_IPS} entries`)
  .transform((entries, ctx) => {
    const out: string[] = [];
    entries.forEach((entry, i) => {
      const network = normaliseNetwork(entry);
      if (network === undefined) {
        ctx.addIssue({ code: 'custom', path: [i], message: 'must be an IPv4 or IPv6 address or CIDR range (e.g. 203.0.113.7, 10.0.0.0/8, 2001:db8::/32)' });
      } else if (!out.includes(network)) out.push(network);
    });
    return out;
  });

const perHour = 'must be null or a whole number from 1 to 1000000';
/** Access tokens per rolling hour: null (no limit) or 1 to 1,000,000. */
export const maxTokensPerHour = z.number({ error: perHour }).int(perHour).min(1, perHour).max(1_000_000, perHour).nullable();

/**
 * POST /admin/api/tokens body (strict: unknown fields refused): name, expiry, services, and optional network, hourly
 * limit, auth method (client_secret or private_key_jwt with `jwks`/`public_key`) and DPoP. The service checks the
 * rules that need config, time or the database.
 */
export const generateTokenBody = z
  .object({
    name: tokenName,
    expires_at: z.string({ error: 'must be a date (YYYY-MM-DD) or an ISO 8601 date-time with an offset' }),
    services: serviceList,
    allowed_ips: allowedIps.optional(),
    /** Absent: the organisation policy's default_max_tokens_per_hour. */
    max_tokens_per_hour: maxTokensPerHour.optional(),
    // SPEC Part 2 "Sender-constrained and secretless tokens": jwks is validated in depth by parsePublicJwks (jwks.ts).
    auth_method: z.enum(['client_secret', 'private_key_jwt'], { error: 'must be "client_secret" or "private_key_jwt"' }).optional(),
    jwks: z.unknown().optional(),
    /** A pasted JWK, JWK Set or PEM public key (the console), converted to `jwks` by the server. */
    public_key: z.string({ error: 'must be the text of a JWK or a PEM public key' }).max(65_536).optional(),
    require_dpop: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .strict();

export type GenerateTokenInput = z.output<typeof generateTokenBody>;

/**
 * The sender-constraint part of PATCH /admin/api/tokens/{id} (SPEC Part 2): `jwks` (or `public_key`) replaces the
 * public keys of a `private_key_jwt` token; `require_dpop` turns the DPoP requirement on or off.
 */
const credentialFields = {
  jwks: z.unknown().optional(),
  public_key: z.string({ error: 'must be the text of a JWK or a PEM public key' }).max(65_536).optional(),
  require_dpop: z.boolean({ error: 'must be true or false' }).optional(),
};

/** The sender-constraint fields of PATCH /admin/api/tokens/{id} (`jwks`, `public_key`, `require_dpop`), strict. */
export const updateTokenCredentialsBody = z.object(credentialFields).strict();

export type UpdateTokenCredentialsInput = z.infer<typeof updateTokenCredentialsBody>;

/** The lifecycle part of PATCH /admin/api/tokens/{id} (SPEC "Network and rate limits per token"). */
const lifecycleFields = {
  name: tokenName.optional(),
  services: serviceList.optional(),
  allowed_ips: allowedIps.optional(),
  max_tokens_per_hour: maxTokensPerHour.optional(),
};

/**
 * PATCH /admin/api/tokens/{id}: the fields to change, at least one. A body with any other problem (an unknown field
 * such as `expires_at`, a bad value) did give a field: it is told that problem only, not to give one.
 */
export const updateTokenBody = z
  .object({ ...lifecycleFields, ...credentialFields })
  .strict()
  .refine((b) => Object.values(b).some((v) => v !== undefined), {
    message: 'give at least one of name, services, allowed_ips, max_tokens_per_hour, jwks, public_key, require_dpop',
    when: (payload) => payload.issues.length === 0,
  });

export type UpdateTokenInput = z.output<typeof updateTokenBody>;

/** The names of the lifecycle fields of a PATCH (the others are the credential fields). */
export const LIFECYCLE_UPDATE_FIELDS = Object.keys(lifecycleFields) as Array<keyof typeof lifecycleFields>;

/** The `status` filter of the token list (SPEC "Admin API" and "Credential lifecycle"). */
export const TOKEN_STATUS_FILTERS = ['active', 'expired', 'expiring', 'dormant'] as const;
export type TokenStatusFilter = (typeof TOKEN_STATUS_FILTERS)[number];

/** GET /admin/api/tokens query string (every value arrives as a string). */
export const listTokensQuery = z
  .object({
    // A substring as sent (SPEC "Admin API"): not trimmed, so `q=HR%20` finds "HR API" and not "HR-sync"; empty is "not given".
    q: z.string({ error: 'must be a single text value' }).max(200, 'must be at most 200 characters').optional(),
    status: z.enum(TOKEN_STATUS_FILTERS, { error: 'must be "active", "expired", "expiring" or "dormant"' }).optional(),
    limit: z
      .string({ error: 'must be a whole number from 1 to 100' })
      .regex(/^(?:[1-9][0-9]?|100)$/, 'must be a whole number from 1 to 100') // the whole rule, also in the OpenAPI description
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be a whole number from 1 to 100').max(100, 'must be a whole number from 1 to 100'))
      .optional(),
    cursor: z.string({ error: 'must be a single text value' }).optional(),
  })
  .strict();

export type ListTokensInput = {
  q?: string | undefined;
  status?: TokenStatusFilter | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
};
