// `sat token create --jwks FILE --require-dpop` and `sat token update --jwks FILE --require-dpop|--no-require-dpop`,
// in this process (runSatInProcess) but for one real `sat` process (the built dist/: `npm run build` first).
import { generateKeyPairSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { calculateJwkThumbprint, type JWK } from 'jose';
import { runSat, runSatInProcess, type CliResult } from '../support/cli.js';
import { createTestDb, testDatabases, type TestDb } from '../support/db.js';
import { daysFromNow } from '../support/fixtures.js';

describe.each(testDatabases())('sat token create --jwks on %s', (kind) => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb(kind);
    expect((await runSatInProcess(['admin', 'add', '--org', 'Keyed', '--email', 'k@keyed.example', '--password', 'keyed-password-1'], db.env)).code).toBe(0);
  });
  afterAll(async () => {
    await db?.drop();
  });

  // Commands run in this process (runSatInProcess); the first key file is read by a real `sat` process (runSat).
  const create = (name: string, extra: string[], run: (args: string[], env: Record<string, string>) => Promise<CliResult> = runSatInProcess) =>
    run(['token', 'create', '--org', 'Keyed', '--name', name, '--expires', daysFromNow(10), '--services', 'jobs', ...extra], db.env);

  it('takes a PEM public key or a JWK Set file, prints no secret, and sets require_dpop', async () => {
    const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const pemFile = path.join(db.dataDir, 'key.pem');
    writeFileSync(pemFile, ec.publicKey.export({ format: 'pem', type: 'spki' }));
    const jwksFile = path.join(db.dataDir, 'jwks.json');
    const rsaJwk = rsa.publicKey.export({ format: 'jwk' }) as JWK;
    writeFileSync(jwksFile, JSON.stringify({ keys: [rsaJwk] }));

    const fromPem = await create('From_PEM', ['--jwks', pemFile, '--require-dpop'], runSat);
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

  it('`sat token update --jwks FILE` replaces the keys; --require-dpop and --no-require-dpop switch DPoP', async () => {
    const first = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const second = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const firstFile = path.join(db.dataDir, 'first.pem');
    writeFileSync(firstFile, first.publicKey.export({ format: 'pem', type: 'spki' }));
    const made = JSON.parse((await create('Key_Rotation', ['--jwks', firstFile, '--json'])).stdout) as { id: string };
    const thumbprint = (pair: typeof first) => calculateJwkThumbprint(pair.publicKey.export({ format: 'jwk' }) as JWK);
    const update = (extra: string[]) => runSatInProcess(['token', 'update', '--org', 'Keyed', made.id, ...extra], db.env);

    // A key rotation: the old and the new key together, then the new one alone.
    const bothFile = path.join(db.dataDir, 'both.json');
    const jwk = (pair: typeof first) => pair.publicKey.export({ format: 'jwk' });
    writeFileSync(bothFile, JSON.stringify({ keys: [jwk(first), jwk(second)] }));
    const both = await update(['--jwks', bothFile, '--require-dpop', '--json']);
    expect(both.stderr).not.toMatch(/sat: /);
    expect(both.code).toBe(0);
    expect(JSON.parse(both.stdout)).toMatchObject({ jwk_thumbprints: [await thumbprint(first), await thumbprint(second)], require_dpop: true });

    const secondFile = path.join(db.dataDir, 'second.pem');
    writeFileSync(secondFile, second.publicKey.export({ format: 'pem', type: 'spki' }));
    const alone = await update(['--jwks', secondFile, '--no-require-dpop']);
    expect(alone.code).toBe(0);
    expect(alone.stdout).toContain(await thumbprint(second));
    expect(alone.stdout).not.toContain(await thumbprint(first));
    expect(alone.stdout).toContain('DPoP:                not required');

    // Refused: a private key, both switches at once, keys for a client-secret token; nothing changes.
    const privateFile = path.join(db.dataDir, 'second-private.pem');
    writeFileSync(privateFile, second.privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const refused = await update(['--jwks', privateFile]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/private key/);
    expect((await update(['--require-dpop', '--no-require-dpop'])).code).toBe(2);
    const secret = JSON.parse((await create('Secret_Token', ['--json'])).stdout) as { id: string };
    const secretKeys = await runSatInProcess(['token', 'update', '--org', 'Keyed', secret.id, '--jwks', secondFile], db.env);
    expect(secretKeys.code).not.toBe(0);
    expect(secretKeys.stderr).toMatch(/client secret/);
    const listed = JSON.parse((await runSatInProcess(['token', 'list', '--org', 'Keyed', '--json'], db.env)).stdout) as { items: Array<Record<string, unknown>> };
    expect(listed.items.find((t) => t.id === made.id)).toMatchObject({ jwk_thumbprints: [await thumbprint(second)], require_dpop: false });
    const audit = JSON.parse((await runSatInProcess(['audit', 'list', '--org', 'Keyed', '--token', made.id, '--json'], db.env)).stdout) as {
      items: Array<{ action: string; actor_email: string }>;
    };
    expect(audit.items.filter((e) => e.action === 'token.updated' && e.actor_email === 'cli')).toHaveLength(2);
  });


  it('refuses a private key file and a missing file', async () => {
    const privateFile = path.join(db.dataDir, 'private.pem');
    writeFileSync(privateFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'pem', type: 'pkcs8' }));
    const refused = await create('Private', ['--jwks', privateFile]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/private key/);
    // A file that cannot be read is a failure (1, the reason alone), not wrong usage (2 and the whole help).
    const missing = await create('Missing', ['--jwks', path.join(db.dataDir, 'nope.json')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe(`sat: --jwks ${path.join(db.dataDir, 'nope.json')}: cannot read the file (ENOENT)\n`);
    const rewrap = await runSatInProcess(['keys', 'rewrap', '--new-key-file', path.join(db.dataDir, 'nope.key')], db.env);
    expect([rewrap.code, rewrap.stderr]).toEqual([1, `sat: --new-key-file ${path.join(db.dataDir, 'nope.key')}: cannot read the file (ENOENT)\n`]);
  });

  it('`sat token rotate` and `sat token retire` on a private_key_jwt token point to `sat token update --jwks FILE`', async () => {
    const keyFile = path.join(db.dataDir, 'no-secret.pem');
    writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }));
    const made = JSON.parse((await create('No_Secret', ['--jwks', keyFile, '--json'])).stdout) as { id: string };
    const advice = `Replace its public keys instead: sat token update --org "Keyed" ${made.id} --jwks FILE`;
    const rotate = await runSatInProcess(['token', 'rotate', '--org', 'Keyed', made.id], db.env);
    expect([rotate.code, rotate.stdout]).toEqual([1, '']);
    expect(rotate.stderr).toContain(advice);
    expect(rotate.stderr).not.toContain('PATCH');
    const retire = await runSatInProcess(['token', 'retire', '--org', 'Keyed', made.id, made.id], db.env);
    expect(retire.code).toBe(1);
    expect(retire.stderr).toContain(advice);
  });

  it('token update refuses options it does not take, both DPoP switches, and keys for a client-secret token', async () => {
    const secretToken = JSON.parse((await create('Update_Secret', ['--json'])).stdout) as { id: string; name: string };
    const update = (extra: string[]) => runSatInProcess(['token', 'update', '--org', 'Keyed', secretToken.id, ...extra], db.env);

    const withExpiry = await update(['--name', 'Renamed', '--expires', daysFromNow(20)]);
    expect(withExpiry.code).toBe(2);
    expect(withExpiry.stderr).toContain('does not take --expires');
    const both = await update(['--require-dpop', '--no-require-dpop']);
    expect(both.code).toBe(2);
    const keyFile = path.join(db.dataDir, 'for-secret.pem');
    writeFileSync(keyFile, generateKeyPairSync('ec', { namedCurve: 'P-256' }).publicKey.export({ format: 'pem', type: 'spki' }));
    const keysForSecret = await update(['--jwks', keyFile]);
    expect(keysForSecret.code).toBe(1);
    expect(keysForSecret.stderr).toMatch(/authenticates with a client secret: it has no public keys/);

    // Nothing changed: not the name given beside --expires, not the method.
    const listed = JSON.parse((await runSatInProcess(['token', 'list', '--org', 'Keyed', '--json'], db.env)).stdout) as {
      items: Array<{ id: string; name: string; auth_method: string }>;
    };
    expect(listed.items.find((t) => t.id === secretToken.id)).toMatchObject({ name: 'Update_Secret', auth_method: 'client_secret' });
  });
});
