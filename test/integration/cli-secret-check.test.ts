// `sat secret check SECRET|-`: offline (no configuration, no database), exit 0/1/2, never prints the secret.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { packageRoot } from '../../src/config/index.js';
import { generateClientSecret } from '../../src/tokens/credentials.js';
import { runSatInProcess } from '../support/cli.js';

// An environment that would fail to load (bad DATABASE_URL): the check must not need one.
const BAD_ENV = { DATABASE_URL: 'not a url' };

/** A real `sat` process (the first test); the others run the same command line in this process. */
function sat(args: string[], stdin?: string): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const env = { PATH: process.env.PATH, HOME: process.env.HOME, ...BAD_ENV };
    const child = spawn(process.execPath, [path.join(packageRoot(), 'dist', 'src', 'cli', 'index.js'), ...args], { env });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(stdin ?? '');
  });
}

describe('sat secret check', () => {
  const secret = generateClientSecret();
  const typo = secret.slice(0, 20) + (secret[20] === 'a' ? 'b' : 'a') + secret.slice(21);

  it('exits 0 for a well-formed secret given as an argument or on stdin, without printing it', async () => {
    for (const r of [await sat(['secret', 'check', secret]), await sat(['secret', 'check', '-'], `${secret}\n`)]) {
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^well-formed/);
      expect(r.stdout + r.stderr).not.toContain(secret);
    }
  });

  it('exits 1 for a typo, a wrong prefix or nothing on stdin, saying which part is wrong', async () => {
    const bad = await runSatInProcess(['secret', 'check', '-'], BAD_ENV, typo);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain('checksum');
    expect(bad.stdout + bad.stderr).not.toContain(typo);
    expect((await runSatInProcess(['secret', 'check', 'ghp_abc'], BAD_ENV)).stdout).toContain('does not start with sats_');
    const empty = await runSatInProcess(['secret', 'check', '-'], BAD_ENV, '');
    expect(empty.code).toBe(1);
  });

  it('prints JSON with --json, and exits 2 on a usage error', async () => {
    const r = await runSatInProcess(['secret', 'check', '--json', secret.slice(0, 30)], BAD_ENV);
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout)).toEqual({ well_formed: false, problem: 'length' });
    expect((await runSatInProcess(['secret', 'check'], BAD_ENV)).code).toBe(2);
    expect((await runSatInProcess(['secret', 'check', 'a', 'b'], BAD_ENV)).code).toBe(2);
  });
});
