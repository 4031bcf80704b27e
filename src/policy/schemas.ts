import { z } from 'zod';

const dormant = 'must be null or a whole number of days from 30 to 365';
const perHour = 'must be null or a whole number from 1 to 1000000';
const lifetime = 'must be a whole number of days, at least 1';

/**
 * PUT /admin/api/policy: the full document, every field required (null where allowed). The upper bound of
 * max_lifetime_days and the catalogue membership of allowed_services need config: checked in service.ts.
 */
export const policyBody = z
  .object({
    max_lifetime_days: z.number({ error: lifetime }).int(lifetime).min(1, lifetime),
    allowed_services: z
      .array(z.string({ error: 'must be a service id' }), { error: 'must be an array of service ids' })
      .min(1, 'allow at least one service')
      .max(100, 'must have at most 100 service ids'),
    revoke_dormant_after_days: z.number({ error: dormant }).int(dormant).min(30, dormant).max(365, dormant).nullable(),
    default_max_tokens_per_hour: z.number({ error: perHour }).int(perHour).min(1, perHour).max(1_000_000, perHour).nullable(),
  })
  .strict();

export type PolicyInput = z.output<typeof policyBody>;
