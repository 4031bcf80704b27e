// SPEC Part 2 "Signing-key rotation never fails a verifier" when SIGNING_ALG changes: which key signs, and what a
// start adds (src/keys/service.ts signerAt, signingKeyPlan).
import { signerAt, signingKeyPlan } from '../../../src/keys/index.js';

const T = Date.UTC(2026, 0, 1);
const at = (s: number) => new Date(T + s * 1000);
const key = (kid: string, alg: string, notBefore: Date) => ({ kid, alg, not_before: notBefore });

describe('signerAt: the newest key of any algorithm whose not_before has passed', () => {
  it('ignores the algorithm: a newer RS256 key supersedes an ES256 one, and an older ES256 key never comes back', () => {
    const rows = [key('es-old', 'ES256', new Date(0)), key('rs', 'RS256', at(600)), key('es-pending', 'ES256', at(1200))];
    expect(signerAt(rows, at(599))?.kid).toBe('es-old');
    expect(signerAt(rows, at(600))?.kid).toBe('rs');
    expect(signerAt(rows, at(1199))?.kid).toBe('rs');
    expect(signerAt(rows, at(1200))?.kid).toBe('es-pending');
  });

  it('is undefined when nothing signs yet; breaks a tie on not_before by the greater kid', () => {
    expect(signerAt([key('a', 'ES256', at(10))], at(0))).toBeUndefined();
    expect(signerAt([], at(0))).toBeUndefined();
    expect(signerAt([key('a', 'ES256', at(0)), key('b', 'RS256', at(0))], at(0))?.kid).toBe('b');
  });
});

describe('signingKeyPlan: what a start with SIGNING_ALG finds and adds', () => {
  const now = at(100);
  it('the first key signs "since forever"', () => {
    expect(signingKeyPlan([], 'RS256', now, 600)).toEqual({ add: new Date(0) });
    expect(signingKeyPlan([key('p', 'ES256', at(200))], 'ES256', now, 600)).toEqual({ add: new Date(0) }); // nothing active
  });

  it('nothing to add when the signer has the algorithm, or a key of it is pending', () => {
    expect(signingKeyPlan([key('es', 'ES256', new Date(0))], 'ES256', now, 600)).toEqual({});
    // A pending key of another algorithm does not matter while the signer has ours.
    expect(signingKeyPlan([key('es', 'ES256', new Date(0)), key('rs', 'RS256', at(300))], 'ES256', now, 600)).toEqual({});
    // Another instance (or an earlier start) already added the new algorithm's key: the earliest pending one takes over.
    const rows = [key('es', 'ES256', new Date(0)), key('rs2', 'RS256', at(900)), key('rs', 'RS256', at(300))];
    expect(signingKeyPlan(rows, 'RS256', now, 600)).toEqual({ pending: rows[2] });
  });

  it('a changed SIGNING_ALG: a key published now that signs KEY_PUBLISH_AHEAD_SECONDS later', () => {
    expect(signingKeyPlan([key('es', 'ES256', new Date(0))], 'RS256', now, 600)).toEqual({ add: at(700) });
    // Back to ES256 while RS256 signs: a new ES256 key, never the superseded one.
    const rows = [key('es', 'ES256', new Date(0)), key('rs', 'RS256', at(50))];
    expect(signingKeyPlan(rows, 'ES256', now, 600)).toEqual({ add: at(700) });
    expect(signingKeyPlan(rows, 'ES256', now, 0)).toEqual({ add: now });
  });
});
