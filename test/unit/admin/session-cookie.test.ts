// The session cookie's Path follows ISSUER's path (src/admin/auth.ts sessionCookiePath).
import { sessionCookiePath } from '../../../src/admin/auth.js';

describe('sessionCookiePath', () => {
  it.each([
    ['https://sat.example.com', '/'],
    ['https://sat.example.com/', '/'],
    ['https://example.com/sat', '/sat'],
    ['https://example.com/sat/', '/sat'],
    ['https://example.com/tools/sat-staging', '/tools/sat-staging'],
  ])('%s → %s', (issuer, path) => {
    expect(sessionCookiePath(issuer)).toBe(path);
  });
});
