import type Router from '@koa/router';
import type { Middleware } from 'koa';
import { z } from 'zod';
import { listAudit } from '../audit/index.js';
import { UUID_PATTERN } from '../db/index.js';
import type { Deps } from '../deps.js';
import { parseQuery } from '../http/validate.js';
import { DEFAULT_PAGE_SIZE } from '../tokens/index.js';
import { adminState } from './auth.js';
import { describeRoute } from './openapi.js';
import { auditPage } from './responses.js';

const pageSize = 'must be a whole number from 1 to 100';
const auditQuery = z
  .object({
    limit: z
      .string({ error: pageSize })
      .regex(/^(?:[1-9][0-9]?|100)$/, pageSize) // the whole rule as a pattern, so the OpenAPI description states it
      .transform(Number)
      .pipe(z.number().int().min(1, pageSize).max(100, pageSize))
      .optional(),
    cursor: z.string({ error: 'must be a single text value' }).optional(),
    token_id: z
      .string({ error: 'must be a single token id' })
      .regex(UUID_PATTERN, 'must be a token id (a UUID)')
      .transform((id) => id.toLowerCase())
      .optional()
      .describe("Only this token's events (revoked tokens included); a token of another organisation has none."),
  })
  .strict();

/** GET /audit: the organisation's events, newest first, paged like the token list; `token_id` narrows to one token's. */
export function auditRoutes(router: Router, deps: Deps, auth: Middleware): void {
  describeRoute('GET', '/audit', {
    summary: "The organisation's audit events, newest first; token_id: one token's events only",
    query: auditQuery,
    response: auditPage,
  });
  router.get('/audit', auth, async (ctx) => {
    const { limit, cursor, token_id: tokenId } = parseQuery(ctx, auditQuery);
    ctx.body = await listAudit(deps.db.knex, adminState(ctx).actor.organisation_id, { limit: limit ?? DEFAULT_PAGE_SIZE, cursor, tokenId });
  });
}
