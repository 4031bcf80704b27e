// The bench's Part 2 detection decides between a measured target and "n/a (feature not present)".
import { detectPart2Features } from '../../bench/phases.js';

describe('detectPart2Features', () => {
  const today = {
    tables: ['organisations', 'admins', 'tokens', 'signing_keys', 'revoked_access_tokens', 'resource_servers', 'mail_outbox'],
    columns: ['id', 'organisation_id', 'name', 'client_id', 'secret_hash', 'services', 'expires_at', 'created_at', 'created_by', 'last_used_at'],
  };

  it('finds none of the Part 2 token checks in a schema without them', () => {
    expect(detectPart2Features(today.tables, today.columns)).toEqual({ second_secret: false, allowlist: false, hourly_limit: false, evidence: [] });
  });

  it('finds each one by its table or token column', () => {
    const f = detectPart2Features([...today.tables, 'token_secrets'], [...today.columns, 'allowed_cidrs', 'max_tokens_per_hour']);
    expect(f).toMatchObject({ second_secret: true, allowlist: true, hourly_limit: true });
    expect(f.evidence).toEqual(['table token_secrets', 'tokens.allowed_cidrs', 'tokens.max_tokens_per_hour']);
    expect(detectPart2Features(today.tables, [...today.columns, 'previous_secret_hash'])).toMatchObject({ second_secret: true, allowlist: false });
    // This build's names: tokens.prev_secret_hash, tokens.allowed_ips, tokens.max_tokens_per_hour.
    expect(detectPart2Features(today.tables, [...today.columns, 'prev_secret_hash', 'allowed_ips', 'max_tokens_per_hour'])).toMatchObject({
      second_secret: true,
      allowlist: true,
      hourly_limit: true,
    });
  });
});
