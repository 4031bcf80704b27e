// runCommand (src/commands.ts): what the control socket runs for `sat` while a server holds the database. Only the
// commands it defines: a name that is a member of every object (`constructor`, `toString`, `__proto__`) is unknown.
import { runCommand } from '../../../src/commands.js';
import type { Deps } from '../../../src/deps.js';

describe('runCommand', () => {
  it('answers unknown_command for names that are not its own commands, running nothing', async () => {
    const deps = { secret: 'must not come back' } as unknown as Deps;
    for (const name of ['constructor', 'toString', 'hasOwnProperty', '__proto__', 'valueOf', 'no-such-command']) {
      expect([name, await runCommand(deps, name, {})]).toEqual([name, { ok: false, error: { code: 'unknown_command', message: `unknown command ${name}` } }]);
    }
  });
});
