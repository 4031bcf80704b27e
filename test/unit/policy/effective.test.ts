import { effectivePolicy } from '../../../src/policy/service.js';

const config = {
  maxTokenLifetimeDays: 180,
  services: [
    { id: 'candidates', name: 'Candidate API', description: '' },
    { id: 'jobs', name: 'Job API', description: '' },
  ],
};
const row = (over: Record<string, unknown> = {}) => ({
  organisation_id: 'o',
  max_lifetime_days: 90,
  allowed_services: ['jobs'],
  revoke_dormant_after_days: 60,
  default_max_tokens_per_hour: 10,
  updated_at: new Date(0),
  updated_by: null,
  ...over,
});

describe('effectivePolicy', () => {
  it('gives the defaults without a stored policy', () => {
    expect(effectivePolicy(undefined, config)).toEqual({
      max_lifetime_days: 180,
      allowed_services: ['candidates', 'jobs'],
      revoke_dormant_after_days: null,
      default_max_tokens_per_hour: null,
    });
  });

  it('gives the stored policy', () => {
    expect(effectivePolicy(row(), config)).toEqual({
      max_lifetime_days: 90,
      allowed_services: ['jobs'],
      revoke_dormant_after_days: 60,
      default_max_tokens_per_hour: 10,
    });
  });

  it('caps a lifetime above a since-lowered server maximum and drops services gone from the catalogue', () => {
    const p = effectivePolicy(row({ max_lifetime_days: 366, allowed_services: ['jobs', 'payroll', 'candidates'] }), config);
    expect(p.max_lifetime_days).toBe(180);
    expect(p.allowed_services).toEqual(['candidates', 'jobs']);
  });
});
