// Test data made through the domain code, the way the product makes it.
import { randomBytes } from 'node:crypto';
import { addAdmin } from '../../src/accounts/index.js';
import type { Deps } from '../../src/deps.js';
import { generateToken, type Actor, type GeneratedToken } from '../../src/tokens/index.js';

export const uniq = (prefix = 'x') => `${prefix}-${randomBytes(4).toString('hex')}`;

export async function makeAdmin(deps: Deps, org = uniq('org')): Promise<Actor & { password: string; organisation_name: string }> {
  const password = `pw-${randomBytes(8).toString('hex')}`;
  const r = await addAdmin(deps.db.knex, { org, email: `${uniq('admin')}@example.com`, password });
  return { id: r.admin.id, email: r.admin.email, organisation_id: r.organisation.id, organisation_name: r.organisation.name, password };
}

export function daysFromNow(days: number): string {
  return new Date(Date.now() + days * 86_400_000).toISOString().slice(0, 10);
}

export async function makeToken(
  deps: Deps,
  actor: Actor,
  input: Partial<{ name: string; services: string[]; expires_at: string }> = {},
): Promise<GeneratedToken> {
  return generateToken(deps, actor, {
    name: input.name ?? uniq('token'),
    services: input.services ?? ['candidates', 'jobs'],
    expires_at: input.expires_at ?? daysFromNow(30),
  });
}

/** Moves a token's expiry (tests only: the API refuses past or near dates, as it should). */
export async function setTokenExpiry(deps: Deps, tokenId: string, expiresAt: Date): Promise<void> {
  await deps.db.knex('tokens').where({ id: tokenId }).update({ expires_at: expiresAt });
}

export function basic(clientId: string, secret: string): string {
  return 'Basic ' + Buffer.from(`${encodeURIComponent(clientId)}:${encodeURIComponent(secret)}`).toString('base64');
}

/**
 * Whether POST `url`/token/introspection, the caller authenticated by HTTP Basic with `caller`'s client ID and
 * secret, says `token` is active (RFC 7662).
 */
export async function introspectionActive(url: string, caller: { client_id: string; client_secret: string }, token: string): Promise<boolean> {
  const res = await fetch(`${url}/token/introspection`, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: basic(caller.client_id, caller.client_secret) },
    body: new URLSearchParams({ token }).toString(),
  });
  return ((await res.json()) as { active: boolean }).active;
}

/** Moves a token's creation or last use into the past (tests only: time the API cannot fake). */
export async function setTokenTimes(deps: Deps, tokenId: string, times: { created_at?: Date; last_used_at?: Date | null }): Promise<void> {
  await deps.db.knex('tokens').where({ id: tokenId }).update(times);
}
