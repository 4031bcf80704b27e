// stopIfCancelled (src/main.ts), in a process of its own with a real signal: a stop asked for by a signal that came
// during a start's CPU work is seen at the next check, not after the port opened. A signal's handler runs only in the
// event loop's poll phase, and the start's steps on the embedded database are CPU work chained through promises: a
// check that only read `signal.aborted` missed a SIGTERM sent during them (an operator's test saw "listening", then
// "shutting down"; docs/operations.md promises neither port nor "listening").
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { packageRoot } from '../../src/config/index.js';

describe('a stop asked for during a start', () => {
  it('is seen at the next check though its signal came during CPU work', () => {
    const main = pathToFileURL(path.join(packageRoot(), 'dist', 'src', 'main.js')).href;
    const script = `
      const { stopIfCancelled, StartCancelledError } = await import(${JSON.stringify(main)});
      const controller = new AbortController();
      process.once('SIGUSR2', () => controller.abort());
      process.kill(process.pid, 'SIGUSR2');
      for (const end = Date.now() + 50; Date.now() < end; ); // CPU work, as the embedded engine's start
      const handledBefore = controller.signal.aborted; // what the old check read
      const cancelled = await stopIfCancelled(controller.signal).then(() => false, (err) => err instanceof StartCancelledError);
      const plain = await stopIfCancelled(new AbortController().signal).then(() => 'went on', () => 'stopped');
      process.stdout.write(JSON.stringify({ handledBefore, cancelled, plain }));
    `;
    const out = execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
    expect(JSON.parse(out)).toEqual({ handledBefore: false, cancelled: true, plain: 'went on' });
  });
});
