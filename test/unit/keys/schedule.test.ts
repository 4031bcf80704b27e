import { signingKeySchedule } from '../../../src/keys/index.js';

const DAY = 86_400_000;
const at = (ms: number) => new Date(Date.UTC(2026, 0, 1) + ms);

describe('signingKeySchedule (the signing-key metrics)', () => {
  it('ages the key that signs now and counts down to the rotation, the ahead window included', () => {
    const rows = [{ alg: 'ES256', created_at: at(0), not_before: new Date(0) }];
    expect(signingKeySchedule(rows, at(10 * DAY), 90, 600)).toEqual({ ageSeconds: 10 * 86_400, nextRotationSeconds: 80 * 86_400 - 600 });
  });

  it('takes a pending key (published ahead, not signing yet) for the rotation, not for the age', () => {
    const rows = [
      { alg: 'ES256', created_at: at(0), not_before: new Date(0) },
      { alg: 'ES256', created_at: at(89 * DAY), not_before: at(89 * DAY + 600_000) },
    ];
    const now = at(89 * DAY + 60_000);
    expect(signingKeySchedule(rows, now, 90, 600)).toEqual({
      ageSeconds: (89 * DAY + 60_000) / 1000,
      nextRotationSeconds: (90 * DAY + 600_000 - 600_000 - 60_000) / 1000,
    });
  });

  it('says 0 when overdue, null without automatic rotation or without any key', () => {
    const rows = [{ alg: 'ES256', created_at: at(0), not_before: new Date(0) }];
    expect(signingKeySchedule(rows, at(100 * DAY), 90, 600).nextRotationSeconds).toBe(0);
    expect(signingKeySchedule(rows, at(DAY), 0, 600).nextRotationSeconds).toBeNull();
    expect(signingKeySchedule([], at(DAY), 90, 600)).toEqual({ ageSeconds: null, nextRotationSeconds: null });
  });

  it('counts keys of every algorithm: after a change of SIGNING_ALG the previous key still signs, the new one is pending', () => {
    const rows = [
      { alg: 'ES256', created_at: at(0), not_before: new Date(0) },
      { alg: 'RS256', created_at: at(10 * DAY), not_before: at(10 * DAY + 600_000) },
    ];
    const now = at(10 * DAY + 60_000);
    expect(signingKeySchedule(rows, now, 90, 600)).toEqual({
      ageSeconds: (10 * DAY + 60_000) / 1000, // the ES256 key, which signs until the RS256 key's time comes
      nextRotationSeconds: (10 * DAY + 600_000 + 90 * DAY - 600_000 - now.getTime() + at(0).getTime()) / 1000, // 90 days after the RS256 key signs, less the ahead window
    });
  });
});
