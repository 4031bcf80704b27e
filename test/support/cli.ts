// Runs the built `sat` command (dist/) as users do: a separate process with its own environment.
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
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

function childEnv(env: Record<string, string>): NodeJS.ProcessEnv {
  // PASSWORD_HASH_COST: the floor, as for in-process servers (test/support/server.ts); an `env` may set another.
  const base: NodeJS.ProcessEnv = { PATH: process.env.PATH, HOME: process.env.HOME, LOG_LEVEL: 'info', PASSWORD_HASH_COST: TEST_PASSWORD_HASH_COST };
  return { ...base, ...env };
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

function startServing(argv: string[], env: Record<string, string>, timeoutMs: number): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(argv[0]!, argv.slice(1), { cwd: packageRoot(), env: childEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
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
