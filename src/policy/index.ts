// Organisation policy (SPEC "Organisation policy"): limits an organisation sets on its own tokens.
export {
  getPolicy,
  updatePolicy,
  findEffectivePolicy,
  listDormantRevocationPolicies,
  policyViolation,
  policyProblems,
  type Policy,
  type PolicyActor,
} from './service.js';
export { policyBody, type PolicyInput } from './schemas.js';
