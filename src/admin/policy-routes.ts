import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { parseBody } from '../http/validate.js';
import { getPolicy, policyBody, updatePolicy } from '../policy/index.js';
import { adminState } from './auth.js';

/** GET and PUT /policy (SPEC "Organisation policy"): the caller's organisation's policy, as one full document. */
export function policyRoutes(router: Router, deps: Deps, auth: Middleware): void {
  router.get('/policy', auth, async (ctx) => {
    ctx.body = await getPolicy(deps, adminState(ctx).actor);
  });

  router.put('/policy', auth, async (ctx) => {
    const input = parseBody(ctx, policyBody);
    ctx.body = await updatePolicy(deps, adminState(ctx).actor, input, { ip: ctx.ip });
  });
}
