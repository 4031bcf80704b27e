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

  it('reads years 0000 to 0099 as themselves (a date long past, not "not a date")', () => {
    expect(parseExpiry('0001-01-01')?.instant.toISOString()).toBe('0001-01-01T23:59:59.999Z');
    expect(parseExpiry('0000-02-29')?.instant.toISOString()).toBe('0000-02-29T23:59:59.999Z'); // a proleptic leap day
    expect(parseExpiry('0099-12-31T10:00:00+01:00')?.instant.toISOString()).toBe('0099-12-31T09:00:00.000Z');
    expect(parseExpiry('0001-02-29')).toBeUndefined();
    expect(failure(() => resolveExpiry('0001-01-01', now, 366)).details).toEqual([{ path: 'expires_at', message: 'must be in the future' }]);
  });

  it('reads date-times with an offset and refuses them without one', () => {
    expect(parseExpiry('2026-12-01T08:30:00+02:00')?.instant.toISOString()).toBe('2026-12-01T06:30:00.000Z');
    expect(parseExpiry('2026-12-01T08:30Z')?.instant.toISOString()).toBe('2026-12-01T08:30:00.000Z');
    expect(parseExpiry('2026-12-01T08:30:00.123456Z')?.instant.toISOString()).toBe('2026-12-01T08:30:00.123Z');
    expect(parseExpiry('2026-12-01T08:30:00')).toBeUndefined();
  });

  it('reads the ISO 8601 extended-format variants: comma fraction, offsets ±hh and ±hhmm', () => {
    const read = (v: string) => parseExpiry(v)?.instant.toISOString();
    expect(read('2027-01-15T10:00:00,5Z')).toBe('2027-01-15T10:00:00.500Z');
    expect(read('2027-01-15T10:00:00.5+02')).toBe('2027-01-15T08:00:00.500Z');
    expect(read('2027-01-15T10:00:00+0200')).toBe('2027-01-15T08:00:00.000Z');
    expect(read('2027-01-15T10:00:00-0930')).toBe('2027-01-15T19:30:00.000Z');
    expect(read('2027-01-15T10:00-03')).toBe('2027-01-15T13:00:00.000Z');
    expect(read('2027-01-15T10:00:00,123456789+05:45')).toBe('2027-01-15T04:15:00.123Z');
    expect(read('2027-01-15t10:00:00z')).toBe('2027-01-15T10:00:00.000Z');
    expect(read('2028-02-29T23:59:59.999-00:00')).toBe('2028-02-29T23:59:59.999Z');
    expect(parseExpiry('2027-01-15T10:00:00+02')?.dateOnly).toBe(false);
  });

  it.each([
    '2027-01-15T10:00:00', // no offset
    '2027-01-15T10:00:00,5', // no offset
    '2027-01-15T10:00:00+2', // one-digit offset
    '2027-01-15T10:00:00+020', // three-digit offset
    '2027-01-15T10:00:00+02:0',
    '2027-01-15T10:00:00+0260', // offset minutes 60
    '2027-01-15T10:00:00+24', // offset hours 24
    '2027-01-15T10:00:00.Z', // a separator without a fraction
    '2027-01-15T10:00:00,1234567890Z', // ten fraction digits
    '2027-01-15T10:00,5Z', // a fraction of a minute
    '2027-01-15T24:00:00Z', // hour 24
    '2027-01-15T10:60Z',
    '2027-01-15T23:59:60Z', // leap second
    '2027-02-29T10:00Z', // not a leap year
    '2027-04-31T10:00+02',
    '20270115T100000Z', // basic format
    '2027-01-15T1000Z',
    '2027-W03-5T10:00Z', // week date
    '2027-015T10:00Z', // ordinal date
    '2027-01-15 10:00Z', // space for T
    '2027-01-15T10Z', // hour only
    ' 2027-01-15T10:00Z',
  ])('refuses the date-time %j', (value) => expect(parseExpiry(value)).toBeUndefined());

  it('says "1 day" for a maximum of one day', () => {
    expect(failure(() => resolveExpiry('2026-12-02', now, 1)).details).toEqual([{ path: 'expires_at', message: 'must be at most 1 day ahead' }]);
    expect(resolveExpiry('2026-11-30', now, 1).toISOString()).toBe('2026-11-30T23:59:59.999Z'); // by day: ~38 h ahead
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
