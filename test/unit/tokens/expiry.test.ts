import { AppError } from '../../../src/errors.js';
import { accessTokenLifetime, parseExpiry, resolveExpiry } from '../../../src/tokens/expiry.js';

const now = new Date('2026-11-29T10:00:00Z');

function failure(fn: () => unknown): AppError {
  try {
    fn();
  } catch (err) {
    return err as AppError;
  }
  throw new Error('expected an error');
}

describe('expiry', () => {
  it('reads a date as the end of that day, UTC', () => {
    expect(parseExpiry('2026-12-31')?.instant.toISOString()).toBe('2026-12-31T23:59:59.999Z');
    expect(parseExpiry('2028-02-29')?.dateOnly).toBe(true);
  });

  it('reads date-times with an offset and refuses them without one', () => {
    expect(parseExpiry('2026-12-01T08:30:00+02:00')?.instant.toISOString()).toBe('2026-12-01T06:30:00.000Z');
    expect(parseExpiry('2026-12-01T08:30Z')?.instant.toISOString()).toBe('2026-12-01T08:30:00.000Z');
    expect(parseExpiry('2026-12-01T08:30:00.123456Z')?.instant.toISOString()).toBe('2026-12-01T08:30:00.123Z');
    expect(parseExpiry('2026-12-01T08:30:00')).toBeUndefined();
  });

  it.each(['2026-02-30', '2027-02-29', '2026-13-01', '26-12-01', '2026-12-01T25:00:00Z', '2026-12-01T10:00:00+24:00', 'tomorrow', ''])(
    'refuses %j',
    (value) => expect(parseExpiry(value)).toBeUndefined(),
  );

  it('requires the future and at most the maximum lifetime ahead', () => {
    expect(failure(() => resolveExpiry('2026-11-28', now, 366)).details).toEqual([{ path: 'expires_at', message: 'must be in the future' }]);
    expect(failure(() => resolveExpiry('2026-11-29T09:59:59Z', now, 366)).code).toBe('validation_failed');
    expect(resolveExpiry('2026-11-29', now, 366).toISOString()).toBe('2026-11-29T23:59:59.999Z'); // today: through its end
    expect(resolveExpiry('2027-11-30', now, 366).toISOString()).toBe('2027-11-30T23:59:59.999Z'); // the 366th day
    expect(failure(() => resolveExpiry('2027-12-01', now, 366)).details?.[0]?.message).toMatch(/366 days/);
    expect(resolveExpiry('2027-11-30T10:00:00Z', now, 366).toISOString()).toBe('2027-11-30T10:00:00.000Z');
    expect(failure(() => resolveExpiry('2027-11-30T10:00:01Z', now, 366)).code).toBe('validation_failed');
    expect(failure(() => resolveExpiry('soon', now, 366)).details?.[0]?.path).toBe('expires_at');
  });

  it('caps the access token lifetime at the expiry', () => {
    const iat = Math.floor(now.getTime() / 1000);
    expect(accessTokenLifetime(iat, 900, new Date(now.getTime() + 3_600_000))).toBe(900);
    expect(accessTokenLifetime(iat, 900, new Date(now.getTime() + 100_500))).toBe(100);
    expect(accessTokenLifetime(iat, 900, new Date(now.getTime() - 1))).toBeLessThan(1);
  });
});
