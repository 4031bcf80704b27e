import { decodeCursor, encodeCursor, escapeLike, isUuid } from '../../../src/db/index.js';

describe('keyset cursors', () => {
  const key = { at: '2026-03-01T12:34:56.123456Z', id: '0b6f3c1e-8d2a-4c55-9a11-3f1e2d4c5b6a' };

  it('round-trips a page key through an opaque base64url string', () => {
    const cursor = encodeCursor(key);
    expect(cursor).toMatch(/^[A-Za-z0-9_-]+$/);
    expect(decodeCursor(cursor)).toEqual(key);
  });

  it.each([
    ['empty', ''],
    ['not base64url', 'a+b/c='],
    ['not JSON', Buffer.from('hello').toString('base64url')],
    ['an object', Buffer.from(JSON.stringify({ at: key.at, id: key.id })).toString('base64url')],
    ['three members', Buffer.from(JSON.stringify([key.at, key.id, 1])).toString('base64url')],
    ['a millisecond time', Buffer.from(JSON.stringify(['2026-03-01T12:34:56.123Z', key.id])).toString('base64url')],
    ['an impossible time', Buffer.from(JSON.stringify(['2026-13-45T99:99:99.000000Z', key.id])).toString('base64url')],
    ['February 30th', Buffer.from(JSON.stringify(['2026-02-30T00:00:00.000000Z', key.id])).toString('base64url')],
    ['February 29th of a common year', Buffer.from(JSON.stringify(['2027-02-29T00:00:00.000000Z', key.id])).toString('base64url')],
    ['hour 24', Buffer.from(JSON.stringify(['2026-03-01T24:00:00.000000Z', key.id])).toString('base64url')],
    ['year 0', Buffer.from(JSON.stringify(['0000-01-01T00:00:00.000000Z', key.id])).toString('base64url')],
    ['an id that is no uuid', Buffer.from(JSON.stringify([key.at, "x' or 1=1 --"])).toString('base64url')],
    ['a huge string', 'A'.repeat(5000)],
  ])('rejects %s', (_label, cursor) => {
    expect(decodeCursor(cursor)).toBeUndefined();
  });

  it('accepts February 29th of a leap year and the first year', () => {
    for (const at of ['2028-02-29T23:59:59.999999Z', '0001-01-01T00:00:00.000000Z']) {
      expect(decodeCursor(encodeCursor({ at, id: key.id }))).toEqual({ at, id: key.id });
    }
  });

  it('recognises uuids', () => {
    expect(isUuid(key.id)).toBe(true);
    expect(isUuid(key.id.toUpperCase())).toBe(true);
    expect(isUuid('nope')).toBe(false);
    expect(isUuid(`${key.id}x`)).toBe(false);
  });
});

describe('escapeLike', () => {
  it('takes %, _ and \\ literally', () => {
    expect(escapeLike('100%_done\\x')).toBe('100\\%\\_done\\\\x');
    expect(escapeLike('plain')).toBe('plain');
  });
});
