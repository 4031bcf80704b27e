// Runs the built `sat` command (dist/) as users do: a separate process with its own environment; or, cheaper, the
// same command line in the test's own process (runSatInProcess).
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { Readable, Writable } from 'node:stream';
import { packageRoot } from '../../src/config/index.js';
import { TEST_PASSWORD_HASH_COST } from './cost.js';

const bin = () => path.join(packageRoot(), 'dist', 'src', 'cli', 'index.js');

/**
 * V8 flags for the suite's `sat` processes. `--liftoff-only` runs the embedded engine's WebAssembly with its
 * baseline compiler and skips the optimising tier-up, which a process that lives a few seconds never pays back
 * (measured: `sat token create` on a copied embedded database 2.6-3.1 s CPU → 1.8-2.1 s). Only code generation
 * changes, not behaviour; users run `sat` without them.
 */
export const SAT_NODE_FLAGS = ['--liftoff-only'];

/**
 * For a one-shot command (not `serve`) also no optimising JavaScript compiler and GC on the main thread only:
 * nothing in a command that ends within a second or two runs hot enough to pay for them (measured: another
 * ~0.2-0.3 s CPU less per command).
 */
export const SAT_COMMAND_NODE_FLAGS = [...SAT_NODE_FLAGS, '--no-opt', '--single-threaded-gc'];

/** The argv that runs `sat args…` with the suite's flags: spawn(process.execPath, satArgv(args)). */
export const satArgv = (args: string[]): string[] => [...(args[0] === 'serve' ? SAT_NODE_FLAGS : SAT_COMMAND_NODE_FLAGS), bin(), ...args];

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

function childEnv(env: Record<string, string>): Record<string, string | undefined> {
  // PASSWORD_HASH_COST: the floor, as for in-process servers (test/support/server.ts); an `env` may set another.
  const base = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', PASSWORD_HASH_COST: TEST_PASSWORD_HASH_COST };
  return { ...base, ...env };
}

/** Starts `sat args…` (the test environment, as the other helpers) and returns the process, for tests that drive it. */
export function spawnSatProcess(args: string[], env: Record<string, string>): ChildProcess {
  return spawn(process.execPath, satArgv(args), { env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Runs `sat args…` to its end (killed after `timeoutMs`), with `input` on its standard input when given. */
function spawnSat(args: string[], env: Record<string, string>, input: string | undefined, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, satArgv(args), { env: childEnv(env), stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
    if (input !== undefined) child.stdin!.end(input);
  });
}

export function runSat(args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<CliResult> {
  return spawnSat(args, env, undefined, timeoutMs);
}

/** Like runSat, with `input` written to the command's standard input (then closed): for --password-stdin. */
export function runSatWithInput(args: string[], env: Record<string, string>, input: string, timeoutMs = 60_000): Promise<CliResult> {
  return spawnSat(args, env, input, timeoutMs);
}

/** A stream that keeps what is written to it. */
function collector(): { stream: Writable; text(): string } {
  let text = '';
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: Buffer | string, _encoding, done) {
      text += chunk.toString();
      done();
    },
  });
  return { stream, text: () => text };
}

/**
 * Runs `sat args…` as runSat does (same environment: only `env` and the suite's defaults, PASSWORD_HASH_COST at
 * the floor), but in this process: src/cli/run.ts's runCli, without a Node start and module loading per command
 * (on the embedded database with no server: 0.55 CPU-s a command, against 1.1-1.6 s spawned). `input`, when
 * given, is its standard input (for --password-stdin), else an empty one that is no terminal, like runSat's. What
 * the test shares with the command, and why it is safe:
 * - the process umask: runCli sets it to 077, as every in-process server (startServer) does already. A test about
 *   file modes or the umask `sat` starts with spawns the real `sat` (file-modes.test.ts).
 * - the password-hashing settings (a global of src/accounts): runCli sets them from its configuration, the same as
 *   startServer's (the suite's floor cost, the default pool), so a server in this process hashes as before. An `env`
 *   that would change them (PASSWORD_HASH_COST, CONFIG_FILE) is refused here: spawn for that
 *   (password-hashing.test.ts).
 * - the embedded database's DATA_DIR lock: a kernel lock per open file, so it is held against this process's own
 *   opens too. With a server of this process (startServer) on DATA_DIR, the command goes through its control socket,
 *   as it would from outside; without one, the command opens the engine itself and closes it (and lets go of the
 *   lock) before it resolves. Whether two processes exclude each other is tested with real processes
 *   (embedded-lock.test.ts).
 * - memory: each command with no server opens a PGlite engine (~200 MB outside the JS heap) and closes it; closed
 *   engines are collected: over 40 such commands in one worker, RSS went between 460 and 920 MB and back to 460 MB,
 *   without climbing (process.memoryUsage() after each). jest's --logHeapUsage over twelve CLI files in 2 workers:
 *   49-170 MB after each file, 37-168 MB before this runner.
 * What stays spawned: the tool end to end (cli.test.ts), `serve` and signals, file modes, locks between processes,
 * a different hashing cost, the terminal prompt, and in each converted file one test of its commands.
 */
export async function runSatInProcess(args: string[], env: Record<string, string>, input?: string): Promise<CliResult> {
  for (const name of ['PASSWORD_HASH_COST', 'CONFIG_FILE']) {
    if (name in env && env[name] !== childEnv({})[name]) throw new Error(`runSatInProcess: ${name} changes process-wide settings; use runSat`);
  }
  const { runCli } = await import('../../src/cli/run.js');
  const stdout = collector();
  const stderr = collector();
  const stdin = Readable.from(input === undefined ? [] : [Buffer.from(input)]);
  const code = await runCli(args, { env: childEnv(env), stdin, stdout: stdout.stream, stderr: stderr.stream });
  return { code, stdout: stdout.text(), stderr: stderr.text() };
}

export interface ServeProcess {
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/**
 * Starts `sat serve` and resolves once it logs "listening". `wrapper` runs it under another command
 * (e.g. `['unshare', '--pid', '--fork']`, to make it PID 1 of a fresh PID namespace).
 */
export function startSatServe(env: Record<string, string>, timeoutMs = 60_000, wrapper: string[] = []): Promise<ServeProcess> {
  return startServing([...wrapper, process.execPath, ...satArgv(['serve'])], env, timeoutMs);
}

/**
 * Starts the server the way the README's quick start does, `npm start` in the package root (npm, then the
 * package's start script), and resolves once it logs "listening". `child` is the npm process.
 */
export function startNpmStart(env: Record<string, string>, timeoutMs = 60_000): Promise<ServeProcess> {
  return startServing(['npm', 'start'], env, timeoutMs);
}

/** Every `sat serve` / `npm start` this process started and that has not exited (see `killLeftoverServers`). */
const liveServers = new Set<ChildProcess>();

/**
 * Kills (SIGKILL) every server `startSatServe` / `startNpmStart` started that is still running, and waits for each to
 * exit; resolves to how many there were. For `afterEach`: a test that times out leaves its servers running (its own
 * `finally` runs only when its awaits end), and a server left on a DATA_DIR holds its lock, so every later test of the
 * file failed with "is in use" instead of the one timeout (seen under load 10). A test that ends normally has stopped
 * its servers, so this finds none. A wrapper (`unshare --kill-child`) takes its child with it; `npm start`'s server,
 * a child of npm, is not reached.
 */
export async function killLeftoverServers(): Promise<number> {
  const left = [...liveServers];
  await Promise.all(
    left.map(
      (child) =>
        new Promise<void>((resolve) => {
          if (child.exitCode !== null || child.signalCode !== null) return resolve();
          child.once('exit', () => resolve());
          child.kill('SIGKILL');
        }),
    ),
  );
  liveServers.clear();
  return left.length;
}

/**
 * Registers an `afterEach` of the calling test file that kills the servers a test left running
 * (`killLeftoverServers`) and fails a test that passed without stopping its own. For every file that starts servers
 * with `startSatServe` / `startNpmStart`, at its top level.
 */
export function killLeftoverServersAfterEach(): void {
  afterEach(async () => {
    const left = await killLeftoverServers();
    if (left > 0) throw new Error(`the test left ${left} sat serve process(es) running (killed now)`);
  });
}

function startServing(argv: string[], env: Record<string, string>, timeoutMs: number): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: packageRoot(), env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    liveServers.add(child);
    child.once('exit', () => liveServers.delete(child));
    let out = '';
    const onData = (d: Buffer) => {
      out += d.toString();
      if (out.includes('"msg":"listening"')) {
        clearTimeout(timer);
        resolve({
          child,
          output: () => out,
          stop: () =>
            new Promise((res) => {
              if (child.exitCode !== null) return res(child.exitCode);
              child.once('exit', (code) => res(code));
              child.kill('SIGTERM');
            }),
        });
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sat serve did not start:\n${out}`));
    }, timeoutMs);
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sat serve exited with ${code}:\n${out}`));
    });
  });
}
