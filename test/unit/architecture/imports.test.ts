// STYLE §6.3 (dependency direction), enforced: every import in src/ is read and checked against rules 1–5.
// A new exception belongs in EXCEPTIONS below, with its reason; the test fails on one that is no longer needed.
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../../../src/config/index.js';

const src = path.join(packageRoot(), 'src');

type Layer = 'leaf' | 'domain' | 'edge' | 'root';

/** The module of a file: its first folder under src/, or the file itself for top-level files. */
const moduleOf = (file: string) => (file.includes('/') ? file.slice(0, file.indexOf('/')) : file.replace(/\.ts$/, ''));

const LAYERS: Record<string, Layer> = {
  // Leaves. `deps` is the one object passed around: the types of config, db and log, nothing else.
  db: 'leaf',
  config: 'leaf',
  errors: 'leaf',
  log: 'leaf',
  metrics: 'leaf',
  deps: 'leaf',
  // Domain.
  tokens: 'domain',
  accounts: 'domain',
  audit: 'domain',
  mail: 'domain',
  text: 'leaf', // pure text rules (hidden characters in names): no imports
  address: 'leaf', // client addresses as limits count them (ipaddr.js only)
  types: 'leaf', // ambient declarations of untyped packages (types/*.d.ts): no code
  policy: 'domain', // the organisation policy (SPEC "Organisation policy")
  keys: 'domain', // signing keys: sealed at rest, published ahead, rotated (docs/keys.md)
  // Edges.
  admin: 'edge',
  oauth: 'edge',
  ops: 'edge',
  console: 'edge',
  http: 'edge',
  control: 'edge',
  scanning: 'edge', // the secret-scanning partner endpoint and public credential revocation
  // Composition roots: they wire the rest together and may import anything.
  main: 'root',
  server: 'root',
  cli: 'root',
  commands: 'root', // the operations `sat` runs, in its own process or inside the server (control socket)
  jobs: 'root', // the scheduler (rule 5), imported by main.ts only
};

/** Files of the mail module that are workers, not domain: imported only by the composition roots (STYLE §6.3). */
const WORKER_FILES = new Set(['mail/delivery.ts', 'mail/transport.ts', 'jobs.ts']);
const FRAMEWORKS = ['koa', '@koa/router', 'oidc-provider', 'nodemailer'];

/**
 * Known, documented departures from the rules, as `rule: importer → imported`. Each must still occur.
 */
const EXCEPTIONS = new Map<string, string>([
  // Leaves read the configuration's types (db and log need the shape of Config and LogLevel).
  ['1: log.ts → config/index.ts', 'log levels are a config type'],
  ['1: deps.ts → config/index.ts', 'Deps carries the config'],
  ['1: deps.ts → db/index.ts', 'Deps carries the database'],
  ['1: deps.ts → log.ts', 'Deps carries the logger'],
  ['1: db/index.ts → log.ts', 'knex messages go through our redacting logger'],
  ['1: db/index.ts → config/index.ts', 'STYLE: db may import config types'],
  // Graceful shutdown closes idle keep-alive connections on a short interval while in-flight requests finish: a
  // timer of the HTTP server's own lifecycle, not a scheduled job.
  ['5: http/drain.ts schedules with setInterval', 'the shutdown drain polls idle connections'],
  ['1: db/outage.ts → log.ts', 'a database outage is logged once, then summarised, through our redacting logger'],
  ['5: db/outage.ts schedules with setInterval', 'the outage summary line every 10 s while the database is away'],
  ['5: mail/delivery.ts schedules with setInterval', 'renews the claim on the mail being sent, only while it is sent'],
]);

interface Import {
  from: string; // file under src/, e.g. 'tokens/service.ts'
  specifier: string;
  typeOnly: boolean;
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    if (e.isDirectory()) return e.name === 'page' ? [] : walk(full); // console/page: browser code, no imports of ours
    return e.name.endsWith('.ts') ? [full] : [];
  });
}

const files = walk(src).map((f) => path.relative(src, f).split(path.sep).join('/'));
const text = new Map(files.map((f) => [f, readFileSync(path.join(src, f), 'utf8')]));

function importsOf(file: string): Import[] {
  const code = text.get(file)!.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
  const found: Import[] = [];
  const statement = /(?:^|[;\n])\s*(import|export)\s+(type\s+)?([^'";]*?)\s*from\s*['"]([^'"]+)['"]/g;
  for (const m of code.matchAll(statement)) found.push({ from: file, specifier: m[4]!, typeOnly: Boolean(m[2]) });
  for (const m of code.matchAll(/(?:^|[;\n])\s*import\s+['"]([^'"]+)['"]/g)) found.push({ from: file, specifier: m[1]!, typeOnly: false });
  for (const m of code.matchAll(/\bimport\(\s*['"]([^'"]+)['"]\s*\)/g)) found.push({ from: file, specifier: m[1]!, typeOnly: false });
  return found;
}

/** The src/-relative file an import names, or undefined for a package. */
function target(imp: Import): string | undefined {
  if (!imp.specifier.startsWith('.')) return undefined;
  const resolved = path.posix.normalize(path.posix.join(path.posix.dirname(imp.from), imp.specifier)).replace(/\.js$/, '.ts');
  return resolved.startsWith('..') ? `../${resolved}` : resolved;
}

function violations(): string[] {
  const out: string[] = [];
  for (const file of files) {
    const mod = moduleOf(file);
    const layer = LAYERS[mod];
    if (!layer) {
      out.push(`0: ${file} belongs to no layer (add its module to LAYERS)`);
      continue;
    }
    for (const imp of importsOf(file)) {
      const to = target(imp);
      if (to === undefined) {
        // Rule 2: the domain never imports the HTTP, OAuth or mail frameworks.
        if (layer === 'domain' && !WORKER_FILES.has(file) && FRAMEWORKS.some((p) => imp.specifier === p || imp.specifier.startsWith(`${p}/`))) {
          out.push(`2: ${file} → ${imp.specifier}`);
        }
        continue;
      }
      if (to.startsWith('../')) continue; // migrations/, package.json: outside src/
      const toMod = moduleOf(to);
      if (toMod === mod) continue; // inside one module: free
      const toLayer = LAYERS[toMod];
      const edge = `${file} → ${to}`;
      // The workers (mail delivery and transport, the scheduler) are imported only by the composition roots.
      if (WORKER_FILES.has(to) && layer !== 'root') out.push(`3: ${edge} (a worker, for main.ts only)`);
      // Rule 4: across modules, only a module's index.ts (modules without one expose their files: see README).
      const hasIndex = files.includes(`${toMod}/index.ts`);
      if (to.includes('/') && hasIndex && !to.endsWith('/index.ts') && !(WORKER_FILES.has(to) && layer === 'root')) {
        out.push(`4: ${edge}`);
      }
      if (layer === 'leaf') {
        out.push(`1: ${edge}`); // leaves import no other module (EXCEPTIONS lists the type imports STYLE allows)
      } else if (layer === 'domain') {
        if (toLayer !== 'leaf' && toLayer !== 'domain') out.push(`2: ${edge}`);
      } else if (layer === 'edge') {
        // Rule 3: edges import the domain, the leaves and http/; never another edge.
        if (toLayer === 'root' || (toLayer === 'edge' && toMod !== 'http')) out.push(`3: ${edge}`);
      }
    }
  }
  return out;
}

/** Rule 5: who may read the environment, schedule, and exit. */
function ruleFive(): string[] {
  const out: string[] = [];
  for (const file of files) {
    const code = text.get(file)!.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    if (/\bprocess\.env\b/.test(code) && file !== 'config/index.ts') out.push(`5: ${file} reads process.env`);
    if (/\bsetInterval\s*\(/.test(code) && file !== 'jobs.ts') out.push(`5: ${file} schedules with setInterval`);
    if (/\bprocess\.exit\s*\(/.test(code) && file !== 'main.ts' && !file.startsWith('cli/')) out.push(`5: ${file} calls process.exit`);
  }
  return out;
}

describe('STYLE §6.3: dependency direction', () => {
  const found = [...violations(), ...ruleFive()];

  it('finds the imports it checks (the scanner works)', () => {
    const all = files.flatMap(importsOf);
    expect(files).toContain('tokens/service.ts');
    expect(all.some((i) => i.from === 'server.ts' && i.specifier === './oauth/index.js')).toBe(true);
    expect(all.some((i) => i.from === 'main.ts' && i.specifier === './mail/delivery.js')).toBe(true);
    expect(all.some((i) => i.from === 'db/index.ts' && i.specifier === 'knex-pglite')).toBe(true); // a dynamic import
    expect(all.some((i) => i.typeOnly)).toBe(true);
  });

  it('has no import that breaks rules 1–5 beyond the documented exceptions', () => {
    expect(found.filter((v) => !EXCEPTIONS.has(v))).toEqual([]);
  });

  it('lists no exception that no longer occurs', () => {
    expect([...EXCEPTIONS.keys()].filter((e) => !found.includes(e))).toEqual([]);
  });

  // Issue 9 item 5: HTTP is the edge's. The domain says what happened (RateLimitedError's seconds, a 401 code); the
  // edge writes the headers (http/error-handler.ts: Retry-After, the WWW-Authenticate challenge).
  it('has no HTTP header written in the domain', () => {
    const header = /['"`](Retry-After|WWW-Authenticate|Set-Cookie|Cache-Control|Location|Vary|Content-Type)['"`]/i;
    const domain = files.filter((f) => LAYERS[moduleOf(f)] === 'domain' && !WORKER_FILES.has(f));
    expect(domain).toContain('accounts/sessions.ts');
    const code = (f: string) => text.get(f)!.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`])\/\/.*$/gm, '$1');
    expect(domain.filter((f) => header.test(code(f)))).toEqual([]);
  });

  // Domain modules may import each other, but not both ways: a cycle (accounts ⇄ mail once) means neither can be
  // read, tested or loaded without the other. Type-only imports count too (they tie the modules' shapes).
  it('has no import cycle between two modules', () => {
    const uses = new Map<string, Set<string>>();
    for (const file of files) {
      for (const imp of importsOf(file)) {
        const to = target(imp);
        if (to === undefined || to.startsWith('../')) continue;
        const [a, b] = [moduleOf(file), moduleOf(to)];
        if (a !== b) uses.set(a, (uses.get(a) ?? new Set()).add(b));
      }
    }
    const cycles = [...uses].flatMap(([a, bs]) => [...bs].filter((b) => a < b && uses.get(b)?.has(a)).map((b) => `${a} ⇄ ${b}`));
    expect(cycles).toEqual([]);
  });
});
