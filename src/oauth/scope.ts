import { errors } from 'oidc-provider';

/** RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E ), joined by single spaces. */
const SCOPE_TOKEN = /^[\x21\x23-\x5B\x5D-\x7E]+$/;

/**
 * Checks the syntax of a `scope` parameter and says what is wrong when it is not RFC 6749 §3.3 (oidc-provider's
 * own check only says "invalid characters", which misleads for a doubled space).
 */
export function checkScopeSyntax(scope: string): void {
  if (/^[ ]|[ ]$/.test(scope)) {
    throw new errors.InvalidScope('scope must not start or end with a space (RFC 6749 section 3.3)', scope);
  }
  if (scope.includes('  ')) {
    throw new errors.InvalidScope('scope values must be separated by a single space, not several (RFC 6749 section 3.3)', scope);
  }
  for (const value of scope.split(' ')) {
    if (SCOPE_TOKEN.test(value)) continue;
    const bad = [...value].find((c) => !SCOPE_TOKEN.test(c)) ?? '';
    const code = `U+${(bad.codePointAt(0) ?? 0).toString(16).toUpperCase().padStart(4, '0')}`;
    throw new errors.InvalidScope(`scope contains a character RFC 6749 section 3.3 does not allow (${code}); separate values with single spaces`, scope);
  }
}

/**
 * The scope policy of the token endpoint, the same on the fast path and in oidc-provider's pipeline (SPEC "OAuth
 * 2.0 surface"): no scope → every service of the token; else the requested values (each once, in the order asked),
 * all of which must be services of the token, or `invalid_scope` naming the others.
 */
export function grantedScope(services: readonly string[], requested: string | undefined): string {
  if (requested === undefined || requested.trim() === '') return services.join(' ');
  const values = [...new Set(requested.split(' ').filter(Boolean))];
  const allowed = new Set(services);
  const outside = values.filter((s) => !allowed.has(s));
  if (outside.length > 0) throw new errors.InvalidScope('requested scope is not allowed', outside.join(' '));
  return values.join(' ');
}

/** The services of a client, from its `scope` metadata. */
export function servicesOf(scope: string | undefined): string[] {
  return (scope ?? '').split(' ').filter(Boolean);
}
