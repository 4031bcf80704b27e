// `sat token create --jwks FILE --require-dpop`, run as users run it (the built dist/: `npm run build` first).
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { runSat } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow } from '../support/fixtures.js';

describe.each(testDatabases())('sat token create --jwks on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
    expect((await runSat(['admin', 'add', '--org', 'Keyed', '--email', 'k@keyed.example', '--password', 'keyed-password-1'], db.env)).code).toBe(0);
  });
  afterAll(async () => {
    await db?.drop();
  });

  const create = (name: string, extra: string[]) =>
    runSat(['token', 'create', '--org', 'Keyed', '--name', name, '--expires', daysFromNow(10), '--services', 'jobs', ...extra], db.env);

  it('takes a PEM public key or a JWK Set file, prints no secret, and sets require_dpop', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pemFile = path.join(db.dataDir, 'key.pem');
    writeFileSync(pemFile, ec.publicKey.export({ format: 'pem', type: 'spki' }));
    const jwksFile = path.join(db.dataDir, 'jwks.json');
    const rsaJwk = rsa.publicKey.export({ format: 'jwk' }) as JWK;
    writeFileSync(jwksFile, JSON.stringify({ keys: [rsaJwk] }));

    const fromPem = await create('From_PEM', ['--jwks', pemFile, '--require-dpop']);
    expect(fromPem.code).toBe(0);
    expect(fromPem.stdout).not.toContain('client secret');
    expect(fromPem.stdout).toContain(await calculateJwkThumbprint(ec.publicKey.export({ format: 'jwk' }) as JWK));
    expect(fromPem.stdout).toContain('DPoP:          required');

    const fromJwks = await create('From_JWKS', ['--jwks', jwksFile, '--json']);
    expect(fromJwks.code).toBe(0);
    const body = JSON.parse(fromJwks.stdout) as Record<string, unknown>;
    expect(body).toMatchObject({ auth_method: 'private_key_jwt', jwk_thumbprints: [await calculateJwkThumbprint(rsaJwk)], require_dpop: false });
    expect(body.client_secret).toBeUndefined();

    const secretWithDpop = await create('Secret_DPoP', ['--require-dpop', '--json']);
    expect(JSON.parse(secretWithDpop.stdout)).toMatchObject({ auth_method: 'client_secret', require_dpop: true });
  });

  it('refuses a private key file and a missing file', async () => {
    const privateFile = path.join(db.dataDir, 'private.pem');
    writeFileSync(privateFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const refused = await create('Private', ['--jwks', privateFile]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/private key/);
    const missing = await create('Missing', ['--jwks', path.join(db.dataDir, 'nope.json')]);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/cannot read/);
  });
});
