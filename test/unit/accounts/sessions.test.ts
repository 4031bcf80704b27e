import { checkCsrfToken, csrfTokenFor, isWellFormedSessionToken } from '../../../src/accounts/index.js';

describe('session and CSRF tokens', () => {
  const session = `sas_${'a'.repeat(43)}`;
  const other = `sas_${'b'.repeat(43)}`;

  it('recognises the session token format', () => {
    expect(isWellFormedSessionToken(session)).toBe(true);
    expect(isWellFormedSessionToken(session.slice(0, -1))).toBe(false);
    expect(isWellFormedSessionToken(`sat_${'a'.repeat(43)}`)).toBe(false);
    expect(isWellFormedSessionToken(`${session} `)).toBe(false);
  });

  it('derives a CSRF token per session that does not reveal the session token', () => {
    const csrf = csrfTokenFor(session);
    expect(csrf).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(csrf).toBe(csrfTokenFor(session));
    expect(csrf).not.toBe(csrfTokenFor(other));
    expect(csrf).not.toContain(session.slice(4, 20));
  });

  it('accepts only the CSRF token of the same session', () => {
    expect(checkCsrfToken(session, csrfTokenFor(session))).toBe(true);
    expect(checkCsrfToken(session, csrfTokenFor(other))).toBe(false);
    expect(checkCsrfToken(session, undefined)).toBe(false);
    expect(checkCsrfToken(session, '')).toBe(false);
    expect(checkCsrfToken(session, csrfTokenFor(session).slice(1))).toBe(false);
  });
});
