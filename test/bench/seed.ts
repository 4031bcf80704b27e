// Seeding for the bench: known credentials through the domain code (generateToken, the way the product makes
// them), and bulk rows through one INSERT … SELECT over generate_series for the million-credential scale run.
import { randomBytes } from 'node:crypto';
import type { Knex } from 'knex';
import { addAdmin } from '../../src/accounts/index.js';
import type { Deps } from '../../src/deps.js';
import { generateToken, rotateSecret, type Actor } from '../../src/tokens/index.js';

export interface Credential {
  client_id: string;
  client_secret: string;
  token_id: string;
  organisation_id: string;
}

export interface BenchAdmin extends Actor {
  password: string;
}

export interface KnownSeed {
  credentials: Credential[];
  /** Signs in to the admin API; its organisation holds `perOrg` of the credentials. */
  admin: BenchAdmin;
  organisations: number;
  /**
   * As many credentials again, in organisations of their own, each with an allowlist that holds the bench's
   * loopback client, an hourly limit the load never reaches, and two live secrets (rotated with a grace period;
   * every other credential presents the previous secret, the second one compared): phase 2c, every Part 2 check.
   */
  limited: Credential[];
}

/** Phase 2c's settings on the `limited` credentials. */
export const BENCH_LIMITS = { allowed_ips: ['127.0.0.0/8', '::1'], max_tokens_per_hour: 1_000_000 };

const DAY_MS = 86_400_000;
const dateIn = (days: number) => new Date(Date.now() + days * DAY_MS).toISOString().slice(0, 10);

/**
 * `count` credentials, `perOrg` to an organisation (each organisation gets one administrator). The services
 * vary from token to token, as they would in real use.
 */
export async function seedKnown(deps: Deps, count: number, perOrg: number): Promise<KnownSeed> {
  const services = deps.config.services.map((s) => s.id);
  const credentials: Credential[] = [];
  let admin: BenchAdmin | undefined;
  const orgs = Math.ceil(count / perOrg);
  for (let o = 0; o < orgs; o++) {
    const password = `bench-${randomBytes(9).toString('base64url')}`;
    const r = await addAdmin(deps.db.knex, {
      org: `bench-known-${o + 1}`,
      email: `bench-admin-${o + 1}@example.com`,
      password,
    });
    const actor: BenchAdmin = { id: r.admin.id, email: r.admin.email, organisation_id: r.organisation.id, password };
    admin ??= actor;
    for (let i = 0; i < perOrg && credentials.length < count; i++) {
      const n = credentials.length;
      const t = await generateToken(deps, actor, {
        name: `bench token ${n + 1}`,
        services: services.filter((_s, k) => (n + k) % 3 !== 0 || k === 0),
        expires_at: dateIn(30 + (n % 300)),
      });
      credentials.push({ client_id: t.client_id, client_secret: t.client_secret, token_id: t.id, organisation_id: r.organisation.id });
    }
  }
  const limited: Credential[] = [];
  for (let o = 0; o < orgs; o++) {
    const r = await addAdmin(deps.db.knex, { org: `bench-limited-${o + 1}`, email: `bench-limited-${o + 1}@example.com`, password: `bench-${randomBytes(9).toString('base64url')}` });
    const actor: Actor = { id: r.admin.id, email: r.admin.email, organisation_id: r.organisation.id };
    for (let i = 0; i < perOrg && limited.length < count; i++) {
      const n = limited.length;
      const t = await generateToken(deps, actor, {
        name: `bench limited token ${n + 1}`,
        services: services.filter((_s, k) => (n + k) % 3 !== 0 || k === 0),
        expires_at: dateIn(30 + (n % 300)),
        ...BENCH_LIMITS,
      });
      const rotated = await rotateSecret(deps, actor, t.id, { grace_period_hours: 720 });
      const secret = n % 2 === 0 ? rotated.client_secret : t.client_secret;
      limited.push({ client_id: t.client_id, client_secret: secret, token_id: t.id, organisation_id: r.organisation.id });
    }
  }
  return { credentials, admin: admin as BenchAdmin, organisations: orgs, limited };
}

/** Tokens to revoke in the admin measurement; the bench config lifts the active-token limit for them. */
export async function seedRevocable(deps: Deps, actor: Actor, count: number, tag: string): Promise<string[]> {
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const t = await generateToken(deps, actor, { name: `revoke-${tag}-${i + 1}`, services: ['jobs'], expires_at: dateIn(7) });
    ids.push(t.id);
  }
  return ids;
}

export interface BulkResult {
  organisations: number;
  tokens: number;
  /** The two INSERT … SELECT statements (VACUUM ANALYZE afterwards not included). */
  seconds: number;
}

/**
 * Fills the tokens table up to `total` rows across `orgCount` new organisations with bulk SQL: one INSERT … SELECT
 * for the organisations, one for the tokens. Each row has a distinct well-formed client_id (sat_ + 22 characters
 * from a digest of its number and a per-run salt) and a random secret_hash nobody knows the secret of; names,
 * services, creation and expiry dates vary. Runs VACUUM ANALYZE afterwards, so the planner sees the real size and
 * the measurements run against a settled table.
 */
export async function seedBulk(knex: Knex, total: number, orgCount: number, log: (msg: string) => void): Promise<BulkResult> {
  const started = performance.now();
  const [{ n: existing }] = (await knex('tokens').count<{ n: string | number }[]>({ n: '*' })) as [{ n: string | number }];
  const rows = total - Number(existing);
  if (rows <= 0) return { organisations: 0, tokens: 0, seconds: 0 };
  const salt = randomBytes(8).toString('hex');

  await knex.transaction(async (trx) => {
    await trx.raw(`set local synchronous_commit = off`);
    await trx.raw(
      `insert into organisations (id, name, created_at)
       select gen_random_uuid(), 'bench-org-' || g || '-' || ?::text, now() - g * interval '1 second'
         from generate_series(1, ?::int) g`,
      [salt, orgCount],
    );
    log(`  ${orgCount.toLocaleString('en')} organisations in ${((performance.now() - started) / 1000).toFixed(1)} s`);
    await trx.raw(
      `insert into tokens (id, organisation_id, name, name_key, client_id, secret_hash, services, expires_at, created_at)
       select gen_random_uuid(),
              o.id,
              'bulk token ' || g,
              'bulk token ' || g,
              'sat_' || substr(md5(?::text || g), 1, 22),
              translate(rtrim(encode(sha256(uuid_send(gen_random_uuid())), 'base64'), '='), '+/', '-_'),
              case g % 4 when 0 then '{candidates,jobs}'::text[] when 1 then '{employees}'::text[]
                         when 2 then '{clients,contacts,master-lists}'::text[]
                         else '{candidates,employees,jobs,clients,contacts,master-lists}'::text[] end,
              now() + (1 + g % 365) * interval '1 day',
              now() - (g % 100000) * interval '1 minute'
         from generate_series(1, ?::int) g
         join (select id, (row_number() over (order by id)) - 1 as k
                 from organisations where name like 'bench-org-%-' || ?::text) o
           on o.k = g % ?::int`,
      [salt, rows, salt, orgCount],
    );
  });
  log(`  ${rows.toLocaleString('en')} tokens inserted in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const inserted = performance.now();
  // VACUUM too: otherwise autovacuum takes on the million fresh rows in the middle of the measurements.
  await knex.raw('vacuum analyze organisations');
  await knex.raw('vacuum analyze tokens');
  log(`  vacuum analyze in ${((performance.now() - inserted) / 1000).toFixed(1)} s`);
  return { organisations: orgCount, tokens: rows, seconds: (inserted - started) / 1000 };
}
