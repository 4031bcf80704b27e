// `sat secret check SECRET|-`: offline, says whether a string is a well-formed client secret of this server's format.
import { SECRET_PREFIX, secretFormatProblem, type SecretProblem } from '../tokens/index.js';

const explain: Record<SecretProblem, string> = {
  prefix: `does not start with ${SECRET_PREFIX}`,
  length: `does not have 49 characters after ${SECRET_PREFIX}`,
  characters: `has characters other than 0-9, A-Z and a-z after ${SECRET_PREFIX}`,
  checksum: 'has the right shape but a wrong checksum (a typo, a truncated copy, or not one of ours)',
};

async function readStdin(stdin: AsyncIterable<Buffer | string>): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stdin) {
    const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
    size += b.length;
    if (size > 64 * 1024) break; // a secret is 54 characters; no need to hold more
    chunks.push(b);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Runs the check: exit code 0 for a well-formed secret, 1 otherwise. `value` `-` reads the secret from stdin (so it
 * stays out of `ps` and shell history); surrounding white space (a trailing newline) is ignored. The output never
 * repeats the value: scripts call this with real secrets.
 */
export async function secretCheck(
  value: string,
  json: boolean,
  io: { stdin: AsyncIterable<Buffer | string>; stdout: (text: string) => void },
): Promise<number> {
  const secret = (value === '-' ? await readStdin(io.stdin) : value).trim();
  const problem = secretFormatProblem(secret);
  if (json) {
    io.stdout(JSON.stringify({ well_formed: problem === undefined, problem: problem ?? null }) + '\n');
  } else {
    io.stdout(
      problem === undefined
        ? 'well-formed: a client secret in this server\'s format (prefix and checksum are right; whether it is live is not checked)\n'
        : `not a well-formed client secret: it ${explain[problem]}\n`,
    );
  }
  return problem === undefined ? 0 : 1;
}
