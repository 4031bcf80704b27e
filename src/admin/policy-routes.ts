import type Router from '@koa/router';
import type { Middleware } from 'koa';
import type { Deps } from '../deps.js';
import { parseBodyWithRules } from '../http/validate.js';
import { getPolicy, policyBody, policyProblems, updatePolicy } from '../policy/index.js';
import { adminState } from './auth.js';
import { policyResource } from './responses.js';
import { describeRoute } from './openapi.js';

/** GET and PUT /policy (SPEC "Organisation policy"): the caller's organisation's policy, as one full document. */
export function policyRoutes(router: Router, deps: Deps, auth: Middleware): void {
  describeRoute('GET', '/policy', { summary: "The organisation's policy (full document)", tag: 'policy', response: policyResource });
  router.get('/policy', auth, async (ctx) => {
    ctx.body = await getPolicy(deps, adminState(ctx).actor);
  });

  describeRoute('PUT', '/policy', { summary: "Replace the organisation's policy (audit policy.updated)", tag: 'policy', body: policyBody, response: policyResource });
  router.put('/policy', auth, async (ctx) => {
    const input = await parseBodyWithRules(ctx, policyBody, (valid) => policyProblems(deps.config, valid));
    ctx.body = await updatePolicy(deps, adminState(ctx).actor, input, { ip: ctx.ip });
  });
}
