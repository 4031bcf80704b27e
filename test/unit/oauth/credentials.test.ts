import { errors } from 'oidc-provider';
import { parseClientCredentials } from '../../../src/oauth/credentials.js';
import { ClientAuthenticationFailed } from '../../../src/oauth/errors.js';
import type { OAuthForm } from '../../../src/oauth/form.js';

/** A form as readForm builds it: only parameters with a value. */
function form(params: Record<string, string>): OAuthForm {
  const kept = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== ''));
  return { params: kept, single: (name) => kept[name], repeated: () => undefined, text: undefined };
}
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('parseClientCredentials', () => {
  it('reads HTTP Basic with any number of spaces and any case of the scheme', () => {
    for (const header of [`Basic ${b64('id:secret')}`, `Basic    ${b64('id:secret')}`, `basic ${b64('id:secret')}`, `BASIC\t${b64('id:secret')} `]) {
      expect(parseClientCredentials(header, form({}))).toEqual({ method: 'client_secret_basic', clientId: 'id', secret: 'secret' });
    }
  });

  it('form-decodes both parts of Basic (RFC 6749 §2.3.1)', () => {
    expect(parseClientCredentials(`Basic ${b64('a%3Ab:c+d%25')}`, form({}))).toEqual({ method: 'client_secret_basic', clientId: 'a:b', secret: 'c d%' });
  });

  it('reads client_secret_post', () => {
    expect(parseClientCredentials(undefined, form({ client_id: 'id', client_secret: 's' }))).toEqual({ method: 'client_secret_post', clientId: 'id', secret: 's' });
  });

  it('treats an empty header and empty parameters as omitted', () => {
    expect(parseClientCredentials(undefined, form({ client_id: '', client_secret: '' }))).toBeUndefined();
    expect(parseClientCredentials('', form({}))).toBeUndefined();
    expect(parseClientCredentials(`Basic ${b64('id:s')}`, form({ client_id: '', client_secret: '' }))?.method).toBe('client_secret_basic');
  });

  it('refuses two mechanisms and a mismatched client_id with invalid_request', () => {
    expect(() => parseClientCredentials(`Basic ${b64('id:s')}`, form({ client_secret: 's' }))).toThrow(errors.InvalidRequest);
    expect(() => parseClientCredentials(`Basic ${b64('id:s')}`, form({ client_id: 'other' }))).toThrow(errors.InvalidRequest);
    expect(parseClientCredentials(`Basic ${b64('id:s')}`, form({ client_id: 'id' }))?.clientId).toBe('id');
  });

  it('answers invalid_client for an unusable header, and for half a form', () => {
    for (const header of ['Bearer abc', 'Basic', 'Basic !!!', `Basic ${b64('no-colon')}`, `Basic ${b64(':s')}`, `Basic ${b64('id:')}`, `Basic ${b64('%E0%A4%A:s')}`]) {
      let thrown: unknown;
      try {
        parseClientCredentials(header, form({}));
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(ClientAuthenticationFailed);
      expect((thrown as ClientAuthenticationFailed).statusCode).toBe(401);
    }
    expect(() => parseClientCredentials(undefined, form({ client_id: 'id' }))).toThrow(ClientAuthenticationFailed);
    expect(() => parseClientCredentials(undefined, form({ client_secret: 's' }))).toThrow(ClientAuthenticationFailed);
    // A client_id alone is told what else could go with it, a private_key_jwt client (which has no secret) too.
    const description = (params: Record<string, string>) => {
      try {
        parseClientCredentials(undefined, form(params));
      } catch (err) {
        return (err as ClientAuthenticationFailed).error_description;
      }
    };
    expect(description({ client_id: 'id' })).toMatch(/client_secret .*client_assertion/);
    expect(description({ client_secret: 's' })).toBe('client_secret needs its client_id (or HTTP Basic)');
  });
});
