import { errors } from 'oidc-provider';
import type { PresentedCredentials } from '../tokens/index.js';
import { ClientAuthenticationFailed } from './errors.js';
import type { OAuthForm } from './form.js';

/** Client credentials as a request presented them, and how. */
export type ParsedCredentials = SecretCredentials | AssertionCredentials;

export interface SecretCredentials extends PresentedCredentials {
  method: 'client_secret_basic' | 'client_secret_post';
}

/**
 * `private_key_jwt` (RFC 7523 §2.2): the client ID is the assertion's `sub` (read, not verified: oidc-provider
 * verifies the assertion against the client's registered keys, including `iss`, `aud`, `exp` and the one-time `jti`).
 */
export interface AssertionCredentials {
  method: 'private_key_jwt';
  clientId: string;
  assertion: string;
}

/** The `client_assertion_type` of private_key_jwt client authentication (RFC 7523 §2.2). */
export const JWT_BEARER_ASSERTION = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

function assertionSubject(assertion: string): string | undefined {
  const parts = assertion.split('.');
  if (parts.length !== 3 || assertion.length > 16_384) return undefined;
  try {
    const payload = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { sub?: unknown };
    return typeof payload.sub === 'string' && payload.sub ? payload.sub : undefined;
  } catch {
    return undefined;
  }
}

function parseAssertion(authorization: string | undefined, form: OAuthForm): AssertionCredentials {
  if (authorization !== undefined || form.single('client_secret') !== undefined) {
    throw new errors.InvalidRequest('client authentication must only be provided using one mechanism');
  }
  const type = form.single('client_assertion_type');
  const assertion = form.single('client_assertion');
  if (type === undefined) throw new errors.InvalidRequest('client_assertion_type must be provided');
  if (type !== JWT_BEARER_ASSERTION) throw new errors.InvalidRequest(`client_assertion_type must have value ${JWT_BEARER_ASSERTION}`);
  if (assertion === undefined) throw new errors.InvalidRequest('client_assertion must be provided');
  const sub = assertionSubject(assertion);
  if (sub === undefined) throw new ClientAuthenticationFailed('the client_assertion must be a JWT whose sub is the client ID');
  const postedId = form.single('client_id');
  if (postedId !== undefined && postedId !== sub) {
    throw new errors.InvalidRequest('mismatch between the client_id and the client_assertion sub');
  }
  return { method: 'private_key_jwt', clientId: sub, assertion };
}

/** RFC 9110 §11.1: `Basic`, case-insensitive, then one or more spaces, then the token68 (optional trailing space). */
const BASIC = /^basic[ \t]+([A-Za-z0-9+/._~-]+=*)[ \t]*$/i;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;

/** RFC 6749 §2.3.1: client ID and secret are form-urlencoded before they are joined with ':'. */
function formDecode(value: string): string {
  return decodeURIComponent(value.replace(/\+/g, '%20'));
}

function decodeBasic(header: string): PresentedCredentials | undefined {
  const token = BASIC.exec(header)?.[1];
  if (!token || !BASE64.test(token) || token.length % 4 !== 0) return undefined;
  const text = Buffer.from(token, 'base64').toString('utf8');
  const i = text.indexOf(':');
  if (i === -1) return undefined;
  try {
    return { clientId: formDecode(text.slice(0, i)), secret: formDecode(text.slice(i + 1)) };
  } catch {
    return undefined;
  }
}

/**
 * The one credentials parser of the OAuth endpoints (token, introspection, revocation), RFC 6749 §2.3.1:
 * `client_secret_basic` (Authorization: Basic, any number of spaces after the scheme) or `client_secret_post`
 * (form `client_id` and `client_secret`). Parameters and headers without a value count as omitted (RFC 6749 §3.2),
 * so `client_id=` or `client_secret=` beside Basic is no second mechanism. Returns undefined when no client
 * authentication was included (the caller answers 401 invalid_client). Throws `invalid_request` (400) for two
 * mechanisms or a `client_id` that differs from the Basic one, and `invalid_client` (401) for an unusable header or
 * a form with only one of the two. A `client_assertion` (RFC 7523 `private_key_jwt`) is returned unverified, with
 * its `sub` as the client ID: only oidc-provider, at the token endpoint, verifies it.
 */
export function parseClientCredentials(authorization: string | undefined, form: OAuthForm): ParsedCredentials | undefined {
  const header = authorization?.trim() ? authorization : undefined;
  if (form.single('client_assertion') !== undefined || form.single('client_assertion_type') !== undefined) {
    return parseAssertion(header, form);
  }
  const postedId = form.single('client_id');
  const postedSecret = form.single('client_secret');
  if (header !== undefined) {
    if (postedSecret !== undefined) throw new errors.InvalidRequest('client authentication must only be provided using one mechanism');
    const basic = decodeBasic(header);
    if (!basic || !basic.clientId || !basic.secret) {
      throw new ClientAuthenticationFailed('the Authorization header must be HTTP Basic with client_id:client_secret');
    }
    if (postedId !== undefined && postedId !== basic.clientId) {
      throw new errors.InvalidRequest('mismatch between the client_id in the body and in the Authorization header');
    }
    return { method: 'client_secret_basic', ...basic };
  }
  if (postedId === undefined && postedSecret === undefined) return undefined;
  if (postedSecret === undefined) {
    // Said for every kind of client: a private_key_jwt one that forgot its assertion gets here too.
    throw new ClientAuthenticationFailed(
      'client_id alone authenticates no client: send its client_secret too (or HTTP Basic), or, for private_key_jwt, a client_assertion',
    );
  }
  if (postedId === undefined) throw new ClientAuthenticationFailed('client_secret needs its client_id (or HTTP Basic)');
  return { method: 'client_secret_post', clientId: postedId, secret: postedSecret };
}
