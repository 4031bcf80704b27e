import { z } from 'zod';
import { firstHiddenCharacter } from '../text.js';

/** Static shape rules of POST /admin/api/tokens; rules needing config, time or the database live in service.ts. */
export const tokenName = z
  .string({ error: 'must be a string' })
  .transform((s) => s.trim())
  .pipe(
    z
      .string()
      .refine((s) => s.length > 0, 'must not be empty')
      .refine((s) => [...s].length <= 64, 'must be at most 64 characters')
      .superRefine((s, ctx) => {
        const hidden = firstHiddenCharacter(s);
        if (hidden !== undefined) {
          ctx.addIssue({ code: 'custom', message: `must not contain control, format or bidirectional characters (${hidden})` });
        }
      }),
  );

export const generateTokenBody = z
  .object({
    name: tokenName,
    expires_at: z.string({ error: 'must be a date (YYYY-MM-DD) or an ISO 8601 date-time with an offset' }),
    services: z
      .array(z.string({ error: 'must be a service id' }), { error: 'must be an array of service ids' })
      .min(1, 'choose at least one service')
      .max(100),
    // SPEC Part 2 "Sender-constrained and secretless tokens": jwks is validated in depth by parsePublicJwks (jwks.ts).
    auth_method: z.enum(['client_secret', 'private_key_jwt'], { error: 'must be "client_secret" or "private_key_jwt"' }).optional(),
    jwks: z.unknown().optional(),
    /** A pasted JWK, JWK Set or PEM public key (the console), converted to `jwks` by the server. */
    public_key: z.string({ error: 'must be the text of a JWK or a PEM public key' }).max(65_536).optional(),
    require_dpop: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .strict();

/**
 * The sender-constraint part of PATCH /admin/api/tokens/{id} (SPEC Part 2): `jwks` replaces the public keys of a
 * `private_key_jwt` token; `require_dpop` turns the DPoP requirement on or off. Kept apart from the other PATCH
 * fields (name, services, network and rate limits) so the two can be merged into one body.
 */
export const updateTokenCredentialsBody = z
  .object({
    jwks: z.unknown().optional(),
    public_key: z.string({ error: 'must be the text of a JWK or a PEM public key' }).max(65_536).optional(),
    require_dpop: z.boolean({ error: 'must be true or false' }).optional(),
  })
  .strict();

export type UpdateTokenCredentialsInput = z.infer<typeof updateTokenCredentialsBody>;

export type GenerateTokenInput = z.infer<typeof generateTokenBody>;

/** GET /admin/api/tokens query string (every value arrives as a string). */
export const listTokensQuery = z
  .object({
    q: z.string({ error: 'must be a single text value' }).trim().max(200, 'must be at most 200 characters').optional(),
    status: z.enum(['active', 'expired'], { error: 'must be "active" or "expired"' }).optional(),
    limit: z
      .string({ error: 'must be a whole number from 1 to 100' })
      .regex(/^\d{1,3}$/, 'must be a whole number from 1 to 100')
      .transform(Number)
      .pipe(z.number().int().min(1, 'must be a whole number from 1 to 100').max(100, 'must be a whole number from 1 to 100'))
      .optional(),
    cursor: z.string({ error: 'must be a single text value' }).optional(),
  })
  .strict();

export type ListTokensInput = {
  q?: string | undefined;
  status?: 'active' | 'expired' | undefined;
  limit?: number | undefined;
  cursor?: string | undefined;
};
