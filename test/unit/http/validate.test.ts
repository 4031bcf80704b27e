import { z } from 'zod';
import { issuesToDetails } from '../../../src/http/validate.js';
import { generateTokenBody } from '../../../src/tokens/index.js';

const details = (schema: z.ZodType, input: unknown) => {
  const r = schema.safeParse(input);
  if (r.success) throw new Error('expected a failure');
  return issuesToDetails(r.error, input);
};

describe('issuesToDetails', () => {
  it('names each missing field "is required"', () => {
    expect(details(generateTokenBody, {})).toEqual([
      { path: 'name', message: 'is required' },
      { path: 'expires_at', message: 'is required' },
      { path: 'services', message: 'is required' },
    ]);
  });

  it('names each unknown field', () => {
    expect(details(generateTokenBody, { name: 'a', expires_at: '2030-01-01', services: ['x'], foo: 1, bar: 2 })).toEqual([
      { path: 'foo', message: 'is not a known field' },
      { path: 'bar', message: 'is not a known field' },
    ]);
  });

  it('gives nested paths and the schema message', () => {
    expect(details(generateTokenBody, { name: ' ', expires_at: '2030-01-01', services: ['a', 3] })).toEqual([
      { path: 'name', message: 'must not be empty' },
      { path: 'services.1', message: 'must be a service id' },
    ]);
  });

  it('says the body must be an object when it is not', () => {
    for (const input of [null, [], 'text', 42, undefined]) {
      expect(details(generateTokenBody, input)).toEqual([{ path: 'body', message: 'must be a JSON object' }]);
    }
  });
});
