#!/usr/bin/env node
// `sat`, the bin: runs runCli (src/cli/run.ts) on this process's arguments, input, output and environment, sets the
// exit code (0 ok, 1 failed, 2 usage), and runs `sat serve` until a signal stops it.
import type { Config } from '../config/index.js';

// `sat serve`: a signal that comes while the modules load (0.3-0.5 s) is kept for runServe, which stops the start
// with it ("shutting down", "stopped", exit 0) instead of the process dying the default way (143, no log line).
// Other commands keep the default behaviour. The modules are imported after these handlers are in place.
const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;
const earlySignals: NodeJS.Signals[] = [];
const keepEarly = (signal: NodeJS.Signals) => void earlySignals.push(signal);
const serving = process.argv[2] === 'serve';
if (serving) for (const signal of STOP_SIGNALS) process.on(signal, keepEarly);

// Output that cannot be written (a closed pipe: `sat token list | head -1`; a full disk: `> /dev/full`) ends the
// command with exit 1 and one line, instead of an "Unhandled 'error' event" stack trace. A closed pipe says nothing:
// whoever closed it has what they wanted.
const outputFailed = (stream: string) => (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE' && stream !== 'stderr') process.stderr.write(`sat: cannot write to ${stream} (${err.code ?? err.message})\n`);
  process.exit(1);
};
process.stdout.on('error', outputFailed('stdout'));
process.stderr.on('error', outputFailed('stderr'));

const { createLogger } = await import('../log.js');
const { runCli } = await import('./run.js');

async function runServe(config: Readonly<Config>): Promise<void> {
  const log = createLogger(config.logLevel);
  // The handlers are in place before the server starts: a signal during startup waits for it, then stops it
  // (without them, a SIGTERM right after "listening" would kill the process the default way).
  // Loaded only for `serve`: oidc-provider, Koa and the HTTP edges cost every other command ~0.5 s of CPU.
  const cancel = new AbortController(); // a signal during the start: no port opened, no "listening"
  const starting = import('../main.js').then(({ serve }) => serve(config, { log, signal: cancel.signal }));
  const wasCancelled = (err: unknown) => (err as Error | undefined)?.name === 'StartCancelledError';
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    cancel.abort();
    const started = Date.now();
    log.info('shutting down', { signal, grace_ms: config.shutdownGraceMs });
    // Backstop only: the drain ends by itself within the grace; this catches a stuck database or SMTP close.
    const force = setTimeout(() => {
      log.error('shutdown did not finish; exiting', { after_ms: Date.now() - started });
      process.exit(1);
    }, config.shutdownGraceMs + 15_000);
    force.unref();
    starting.then(
      (running) => running.close(),
      (err: unknown) => {
        if (!wasCancelled(err)) throw err;
      },
    ).then(
      () => {
        log.info('stopped', { signal, ms: Date.now() - started });
        process.exit(0);
      },
      (err: unknown) => {
        log.error('shutdown failed', { err });
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => stop('SIGHUP')); // the terminal of a foreground server closed: stop cleanly too
  for (const signal of STOP_SIGNALS) process.off(signal, keepEarly);
  if (earlySignals[0]) stop(earlySignals[0]); // came while the modules loaded
  try {
    await starting;
  } catch (err) {
    if (wasCancelled(err)) return; // stop() finishes: "stopped", exit 0
    // The database could not open (a full disk, a locked DATA_DIR, …): exit non-zero rather than linger without
    // listening (the embedded engine may leave handles that would keep the process alive).
    const { isDatabaseUnavailable, isConnectionRefusedByDatabase, briefDatabaseError } = await import('../db/index.js');
    // PostgreSQL out of reach or refusing us (a wrong DATABASE_URL, the server down): named as sat's commands do.
    const message =
      config.databaseUrl && (isDatabaseUnavailable(err) || isConnectionRefusedByDatabase(err))
        ? `cannot use the database (DATABASE_URL): ${briefDatabaseError(err).error}`
        : (err as Error).message;
    log.error('could not start', { error: message });
    process.stderr.write(`sat: ${message}\n`);
    process.exit(1);
  }
}

runCli(process.argv.slice(2), { stdin: process.stdin, stdout: process.stdout, stderr: process.stderr, serve: runServe }).then((code) => {
  process.exitCode = code;
});
