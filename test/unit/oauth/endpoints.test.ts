import { oauthEndpointMatcher } from '../../../src/oauth/index.js';

describe('oauthEndpointMatcher', () => {
  it('knows the OAuth endpoints, also under the issuer path, and nothing that only looks like one', () => {
    const atRoot = oauthEndpointMatcher('https://example.com');
    const underPath = oauthEndpointMatcher('https://example.com/sat/');
    for (const path of ['/token', '/token/introspection', '/token/revocation']) {
      expect([atRoot(path), underPath(path), underPath(`/sat${path}`)]).toEqual([true, true, true]);
    }
    for (const path of ['/tokenx', '/token/', '/sat/token', '/jwks', '/admin/api/tokens', '/']) expect({ path, match: atRoot(path) }).toEqual({ path, match: false });
    expect(underPath('/satx/token')).toBe(false);
  });
});
