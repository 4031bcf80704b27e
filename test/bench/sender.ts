// Sender-constrained and secretless token requests under load (SPEC Part 2; issue 13): private_key_jwt and DPoP
// beside the secret-based request. Each request needs a fresh JWT (one-time jti), so autocannon's prebuilt requests
// do not fit: a closed loop of `connections` workers signs one assertion and/or proof per request (on the load
// generator, which shares the machine's cores with the server: read the rates as a figure to watch, not a target).
import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { exportJWK, SignJWT, type JWK } from 'jose';
import { addAdmin } from '../../src/accounts/index.js';
import type { Deps } from '../../src/deps.js';
import { generateToken } from '../../src/tokens/index.js';

export interface SenderSeed {
  keyClient: { client_id: string; private_pem: string };
  secretClient: { client_id: string; client_secret: string };
}

export interface SenderRun {
  kind: string;
  connections: number;
  tokens: number;
  tokens_per_s: number;
  failures: number;
  p50_ms: number;
  p99_ms: number;
}

const JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer';

/** One private_key_jwt token (P-256 key) and one client-secret token, in an organisation of their own. */
export async function seedSender(deps: Deps): Promise<SenderSeed> {
  const r = await addAdmin(deps.db.knex, { org: 'bench-sender', email: 'bench-sender@example.com', password: `bench-${randomUUID()}` });
  const actor = { id: r.admin.id, email: r.admin.email, organisation_id: r.organisation.id };
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const expires_at = new Date(Date.now() + 30 * 86_400_000).toISOString().slice(0, 10);
  const keyToken = await generateToken(deps, actor, {
    name: 'bench private_key_jwt',
    services: ['jobs'],
    expires_at,
    auth_method: 'private_key_jwt',
    jwks: { keys: [publicKey.export({ format: 'jwk' })] },
  });
  const secretToken = await generateToken(deps, actor, { name: 'bench dpop', services: ['jobs'], expires_at });
  return {
    keyClient: { client_id: keyToken.client_id, private_pem: privateKey.export({ format: 'pem', type: 'pkcs8' }) as string },
    secretClient: { client_id: secretToken.client_id, client_secret: secretToken.client_secret },
  };
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))] as number;
}

/**
 * Runs each kind of request (secret Basic, private_key_jwt, secret + DPoP, private_key_jwt + DPoP) for `seconds`
 * with `connections` concurrent workers against `url`, checking every answer (200 and the expected token_type).
 */
export async function measureSender(url: string, seeded: SenderSeed, connections: number, seconds: number): Promise<SenderRun[]> {
  const { createPrivateKey } = await import('node:crypto');
  const discovery = (await (await fetch(`${url}/.well-known/oauth-authorization-server`)).json()) as { issuer: string };
  const assertionKey: KeyObject = createPrivateKey(seeded.keyClient.private_pem);
  const dpop = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const dpopJwk: JWK = await exportJWK(dpop.publicKey);
  const tokenUrl = `${url}/token`;
  const secretAuth = 'Basic ' + Buffer.from(`${seeded.secretClient.client_id}:${seeded.secretClient.client_secret}`).toString('base64');

  const assertion = () =>
    new SignJWT({ jti: randomUUID() })
      .setProtectedHeader({ alg: 'ES256' })
      .setIssuer(seeded.keyClient.client_id)
      .setSubject(seeded.keyClient.client_id)
      .setAudience(discovery.issuer)
      .setIssuedAt()
      .setExpirationTime('60s')
      .sign(assertionKey);
  const proof = () =>
    new SignJWT({ jti: randomUUID(), htm: 'POST', htu: tokenUrl })
      .setProtectedHeader({ alg: 'ES256', typ: 'dpop+jwt', jwk: dpopJwk })
      .setIssuedAt()
      .sign(dpop.privateKey);

  const kinds: Array<{ kind: string; type: string; build: () => Promise<{ headers: Record<string, string>; body: string }> }> = [
    { kind: 'client_secret_basic', type: 'Bearer', build: async () => ({ headers: { authorization: secretAuth }, body: 'grant_type=client_credentials' }) },
    {
      kind: 'private_key_jwt',
      type: 'Bearer',
      build: async () => ({
        headers: {},
        body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion() }).toString(),
      }),
    },
    { kind: 'secret + DPoP', type: 'DPoP', build: async () => ({ headers: { authorization: secretAuth, dpop: await proof() }, body: 'grant_type=client_credentials' }) },
    {
      kind: 'private_key_jwt + DPoP',
      type: 'DPoP',
      build: async () => ({
        headers: { dpop: await proof() },
        body: new URLSearchParams({ grant_type: 'client_credentials', client_assertion_type: JWT_BEARER, client_assertion: await assertion() }).toString(),
      }),
    },
  ];

  const runs: SenderRun[] = [];
  for (const k of kinds) {
    const latencies: number[] = [];
    let failures = 0;
    const deadline = performance.now() + seconds * 1000;
    const worker = async () => {
      while (performance.now() < deadline) {
        const started = performance.now();
        try {
          const { headers, body } = await k.build();
          const res = await fetch(tokenUrl, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', ...headers }, body });
          const json = (await res.json()) as { token_type?: string };
          if (res.status === 200 && json.token_type === k.type) latencies.push(performance.now() - started);
          else failures++;
        } catch {
          failures++;
        }
      }
    };
    const began = performance.now();
    await Promise.all(Array.from({ length: connections }, worker));
    const elapsed = (performance.now() - began) / 1000;
    latencies.sort((a, b) => a - b);
    runs.push({
      kind: k.kind,
      connections,
      tokens: latencies.length,
      tokens_per_s: Math.round(latencies.length / elapsed),
      failures,
      p50_ms: Math.round(percentile(latencies, 50) * 100) / 100,
      p99_ms: Math.round(percentile(latencies, 99) * 100) / 100,
    });
  }
  return runs;
}
