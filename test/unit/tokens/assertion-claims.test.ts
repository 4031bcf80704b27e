// assertionClaimsProblem: the checks of a client assertion beyond its signature (SPEC Part 2 "private_key_jwt";
// RFC 7523 §3, RFC 8725 §3.11), and the words a refusal gives.
import { assertionClaimsProblem, MAX_ASSERTION_LIFETIME_S } from '../../../src/tokens/index.js';

describe('assertionClaimsProblem', () => {
  const now = 1_800_000_000;
  const us = ['https://auth.example.com', 'https://auth.example.com/token'];
  const good = { iss: 'sat_a', sub: 'sat_a', aud: us[0], exp: now + 60 };

  it('finds nothing wrong with a good assertion, an array of our own identifiers, or exp exactly 300 s ahead', () => {
    expect(assertionClaimsProblem({}, good, us, now)).toBeUndefined();
    expect(assertionClaimsProblem({ typ: 'JWT' }, { ...good, aud: us }, us, now)).toBeUndefined();
    expect(assertionClaimsProblem({}, { ...good, exp: now + MAX_ASSERTION_LIFETIME_S }, us, now)).toBeUndefined();
  });

  it('names each problem', () => {
    expect(assertionClaimsProblem({ typ: 'dpop+jwt' }, good, us, now)).toBe('the client_assertion typ names another kind of JWT');
    expect(assertionClaimsProblem({}, { ...good, exp: now }, us, now)).toBe('the client_assertion has expired');
    expect(assertionClaimsProblem({}, { ...good, exp: undefined }, us, now)).toBe('the client_assertion has expired');
    expect(assertionClaimsProblem({}, { ...good, exp: now + 3600 }, us, now)).toBe('the client_assertion exp must be at most 300 seconds ahead');
    expect(assertionClaimsProblem({}, { ...good, sub: 'sat_b' }, us, now)).toBe('the client_assertion sub must equal its iss (the client ID)');
    expect(assertionClaimsProblem({}, { ...good, aud: [us[0], 'https://other.example'] }, us, now)).toBe('the client_assertion aud must name this server only');
  });
});
