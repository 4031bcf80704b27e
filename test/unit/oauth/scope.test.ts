import { errors } from 'oidc-provider';
import { checkScopeSyntax, grantedScope } from '../../../src/oauth/scope.js';

const messageOf = (fn: () => void): string => {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(errors.InvalidScope);
    return (err as errors.OIDCProviderError).error_description ?? '';
  }
  throw new Error('no error thrown');
};

describe('checkScopeSyntax (RFC 6749 §3.3)', () => {
  it('accepts single-space separated scope tokens', () => {
    expect(() => checkScopeSyntax('jobs')).not.toThrow();
    expect(() => checkScopeSyntax('jobs candidates master-lists')).not.toThrow();
  });

  it('says what is wrong', () => {
    expect(messageOf(() => checkScopeSyntax('jobs  candidates'))).toMatch(/single space/);
    expect(messageOf(() => checkScopeSyntax(' jobs'))).toMatch(/start or end with a space/);
    expect(messageOf(() => checkScopeSyntax('jobs '))).toMatch(/start or end with a space/);
    expect(messageOf(() => checkScopeSyntax('jobs\tcandidates'))).toContain('U+0009');
    expect(messageOf(() => checkScopeSyntax('jöbs'))).toContain('U+00F6');
  });
});

describe('grantedScope', () => {
  const services = ['candidates', 'jobs', 'contacts'];
  it('grants every service when no scope is asked', () => {
    expect(grantedScope(services, undefined)).toBe('candidates jobs contacts');
  });
  it('grants the requested values once each, in the order asked', () => {
    expect(grantedScope(services, 'contacts candidates contacts')).toBe('contacts candidates');
  });
  it('refuses values outside the services, naming them', () => {
    let thrown: unknown;
    try {
      grantedScope(services, 'jobs employees clients');
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(errors.InvalidScope);
    expect((thrown as { scope?: string }).scope).toBe('employees clients');
  });
});
