// runCli (src/cli/run.ts): `sat` as a function reads and writes only through the io it is given and returns the exit
// code; the commands that need no database are checked here (the rest: test/integration/*cli*.test.ts).
import { Readable, Writable } from 'node:stream';
import { runCli, type CliIo } from '../../../src/cli/run.js';

function io(input = '', more: Partial<CliIo> = {}) {
  let stdout = '';
  let stderr = '';
  const sink = (add: (text: string) => void) =>
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        add(chunk.toString());
        done();
      },
    });
  return {
    io: { env: {}, stdin: Readable.from([Buffer.from(input)]), stdout: sink((t) => (stdout += t)), stderr: sink((t) => (stderr += t)), ...more },
    out: () => stdout,
    err: () => stderr,
  };
}

describe('runCli', () => {
  // The commands below that load the configuration set the umask (077), as `sat` does: this worker's is put back.
  const umask = process.umask(0o022);
  process.umask(umask);
  afterAll(() => {
    process.umask(umask);
  });
  // Nothing may reach the process's own output: its write is replaced while each test runs.
  const written: string[] = [];
  const streams = [process.stdout, process.stderr];
  const writes = streams.map((s) => s.write);
  beforeEach(() => {
    for (const s of streams) {
      s.write = ((chunk: string | Uint8Array) => written.push(String(chunk)) > 0) as typeof s.write;
    }
  });
  afterEach(() => {
    streams.forEach((s, i) => (s.write = writes[i]!));
    expect(written).toEqual([]);
  });

  it('prints the usage: 0 with --help, 2 with no command or an unknown option', async () => {
    const help = io();
    expect(await runCli(['--help'], help.io)).toBe(0);
    expect(help.out()).toMatch(/^Usage: sat <command>/);
    const none = io();
    expect(await runCli([], none.io)).toBe(2);
    expect([none.out(), none.err()]).toEqual(['', expect.stringMatching(/^Usage: sat <command>/)]); // wrong usage: stderr
    const unknown = io();
    expect(await runCli(['token', 'list', '--colour'], unknown.io)).toBe(2);
    expect(unknown.err()).toMatch(/^sat: unknown option --colour\n\nUsage: sat token list/);
  });

  it("prints one command's or one group's help with --help after its name, and the whole usage for an unknown one", async () => {
    const create = io();
    expect(await runCli(['token', 'create', '--help'], create.io)).toBe(0);
    expect(create.out()).toMatch(/^Usage: sat token create \[options\]\n\n {2}token create --org NAME --name NAME --expires DATE/);
    expect(create.out()).toMatch(/--require-dpop: access\s+tokens only with a DPoP proof\n\nOptions:\n {2}--json/);
    expect(create.out()).not.toMatch(/token list|admin add|Commands:/);
    const group = io();
    expect(await runCli(['keys', '-h'], group.io)).toBe(0);
    expect(group.out()).toMatch(/^Usage: sat keys <command> \[options\]/);
    expect(group.out().match(/^ {2}keys \w+/gm)).toEqual(['  keys list', '  keys rotate', '  keys remove', '  keys rewrap']);
    const withOperand = io();
    expect(await runCli(['backup', '/tmp/nowhere', '--help'], withOperand.io)).toBe(0);
    expect(withOperand.out()).toMatch(/^Usage: sat backup \[options\]\n\n {2}backup FILE/);
    const unknown = io();
    expect(await runCli(['tokens', '--help'], unknown.io)).toBe(0);
    expect(unknown.out()).toMatch(/^Usage: sat <command> \[options\]\n\nCommands:\n/);
  });

  it('follows a usage error with the help of the command it names, not the whole usage', async () => {
    const option = io();
    expect(await runCli(['keys', 'rotate', '--bogus'], option.io)).toBe(2);
    expect(option.err()).toMatch(/^sat: unknown option --bogus\n\nUsage: sat keys rotate \[options\]\n\n {2}keys rotate /);
    const short = io(); // Node's own text went on to advise a `--` that no sat command takes
    expect(await runCli(['token', 'list', '-z'], short.io)).toBe(2);
    expect(short.err()).toMatch(/^sat: unknown option -z\n\nUsage: sat token list/);
    expect(option.err()).not.toMatch(/Commands:|token create/);
    const group = io();
    expect(await runCli(['token'], group.io)).toBe(2);
    expect(group.err()).toMatch(/^sat: token needs a command\n\nUsage: sat token <command> \[options\]/);
    expect(group.err()).not.toMatch(/admin add/);
    const single = io(); // a group of one command (audit list) is still a group
    expect(await runCli(['audit', '--help'], single.io)).toBe(0);
    expect(single.out()).toMatch(/^Usage: sat audit <command> \[options\]\n\n {2}audit list --org NAME/);
    const unknown = io(); // nothing to narrow to: the whole usage, and the message again below it
    expect(await runCli(['tokens'], unknown.io)).toBe(2);
    expect(unknown.err()).toMatch(/^sat: unknown command: tokens\n\nUsage: sat <command> \[options\]\n\nCommands:\n[\s\S]*\nsat: unknown command: tokens\n$/);
  });

  // README "Exit codes": a value of the wrong form is wrong usage (2), as --grace-hours 1.5 always was; these were 1.
  it('takes a whole number (or none where offered) for each count option: another form is exit 2, before anything runs', async () => {
    const cases: Array<[string[], string]> = [
      [['token', 'create', '--org', 'o', '--name', 'n', '--expires', '2030-01-01', '--services', 's', '--max-tokens-per-hour', '1.5'], '--max-tokens-per-hour takes a whole number or none'],
      [['token', 'update', '--org', 'o', 'id', '--max-tokens-per-hour', 'abc'], '--max-tokens-per-hour takes a whole number or none'],
      [['policy', 'set', '--org', 'o', '--max-lifetime-days', 'abc'], '--max-lifetime-days takes a whole number'],
      [['policy', 'set', '--org', 'o', '--max-lifetime-days', 'none'], '--max-lifetime-days takes a whole number'],
      [['policy', 'set', '--org', 'o', '--revoke-dormant-after-days', '1.5'], '--revoke-dormant-after-days takes a whole number or none'],
      [['policy', 'set', '--org', 'o', '--default-max-tokens-per-hour', '-'], '--default-max-tokens-per-hour takes a whole number or none'],
    ];
    for (const [argv, message] of cases) {
      const bad = io();
      expect({ argv, code: await runCli(argv, bad.io), out: bad.out() }).toEqual({ argv, code: 2, out: '' });
      expect(bad.err().split('\n')[0]).toBe(`sat: ${message}`);
    }
  });

  it('asks `keys remove` for one KID (exit 2)', async () => {
    for (const argv of [['keys', 'remove'], ['keys', 'remove', 'a', 'b']]) {
      const bad = io();
      expect(await runCli(argv, bad.io)).toBe(2);
      expect(bad.err()).toMatch(/^sat: keys remove needs one KID \(sat keys list shows them\)/);
    }
  });

  it('reads `secret check -` from its stdin', async () => {
    const bad = io('sats_not-a-secret\n');
    expect(await runCli(['secret', 'check', '-', '--json'], bad.io)).toBe(1);
    expect(JSON.parse(bad.out())).toEqual({ well_formed: false, problem: 'length' });
  });

  it('loads the configuration from io.env: a bad setting is exit 1 with the reason', async () => {
    const r = io('', { env: { PORT: 'eighty' } });
    expect(await runCli(['token', 'list', '--org', 'x'], r.io)).toBe(1);
    expect(r.err()).toBe('sat: invalid configuration:\n  PORT: must be a whole number\n');
  });

  it('hands `serve` to io.serve, and refuses it without one', async () => {
    const started: unknown[] = [];
    const withServe = io('', { serve: async (config) => void started.push(config.port) });
    expect(await runCli(['serve'], { ...withServe.io, env: { PORT: '4567' } })).toBe(0);
    expect(started).toEqual([4567]);
    const without = io();
    expect(await runCli(['serve'], without.io)).toBe(1);
    expect(without.err()).toBe('sat: serve cannot run here\n');
  });
});
