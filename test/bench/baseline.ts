// The reference point of `npm run bench`: a bare oidc-provider 9 issuing client-credentials JWTs through resource
// indicators, with its default in-memory adapter and nothing else (no database, no hashed secrets, no middleware
// of ours). Started as its own process by index.ts:
//   PORT=… BENCH_CLIENTS_FILE=clients.json [SIGNING_ALG=ES256|RS256] node dist/test/bench/baseline.js
// clients.json is `[{client_id, client_secret}, …]`: the same credentials the bench sends to our server, so both
// servers parse byte-identical requests. Prints `listening <port>` on stdout once it accepts connections.
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { exportJWK, generateKeyPair } from 'jose';
import Provider, { type Configuration } from 'oidc-provider';

const port = Number(process.env.PORT ?? 0);
const host = process.env.HOST ?? '127.0.0.1';
const alg = process.env.SIGNING_ALG === 'RS256' ? 'RS256' : 'ES256';
const clientsFile = process.env.BENCH_CLIENTS_FILE;
if (!clientsFile) throw new Error('BENCH_CLIENTS_FILE is required');
const clients = JSON.parse(readFileSync(clientsFile, 'utf8')) as { client_id: string; client_secret: string }[];
const issuer = process.env.ISSUER ?? `http://${host}:${port}`;
const audience = `${issuer}/api`;

const { privateKey } = await generateKeyPair(alg, { extractable: true });
const jwk = { ...(await exportJWK(privateKey)), alg, use: 'sig' };

const configuration: Configuration = {
  jwks: { keys: [jwk as NonNullable<Configuration['jwks']>['keys'][number]] },
  clientDefaults: { id_token_signed_response_alg: alg },
  features: {
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => audience,
      getResourceServerInfo: () => ({ scope: '', audience, accessTokenFormat: 'jwt', jwt: { sign: { alg } } }),
    },
  },
};

const provider = new Provider(issuer, configuration);
// The default MemoryAdapter: clients stored in it are looked up (adapter.find) on every request, like ours.
const adapter = (provider.Client as unknown as { adapter: { upsert(id: string, v: object, ttl?: number): Promise<void> } })
  .adapter;
for (const c of clients) {
  await adapter.upsert(c.client_id, {
    client_id: c.client_id,
    client_secret: c.client_secret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
  });
}

const server = provider.listen(port, host, () => {
  process.stdout.write(`listening ${(server.address() as AddressInfo).port}\n`);
});
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
