// Summarises a V8 .cpuprofile (from `node --cpu-prof`): where the server's time went, by function (self and
// inclusive) and by package. Used by index.ts with BENCH_PROFILE, or on its own:
//   node dist/test/bench/profile.js path/to/file.cpuprofile [top] [tokens issued meanwhile]
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface ProfileSummary {
  total_ms: number;
  idle_ms: number;
  /** Tokens issued while the profile ran, when known: then `us_per_token` is set on each entry. */
  tokens?: number;
  busy_us_per_token?: number;
  by_package: { name: string; self_ms: number; share: number; us_per_token?: number }[];
  self: { name: string; self_ms: number; share: number; us_per_token?: number }[];
  inclusive: { name: string; ms: number; share: number; us_per_token?: number }[];
}

function packageOf(url: string): string {
  if (!url) return '(native/vm)';
  if (url.startsWith('node:')) return 'node:' + url.slice(5).split('/')[0];
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (m) return m[1] as string;
  const d = /\/dist\/(src|test)\/([^/]+)/.exec(url);
  if (d) return `ours:${d[1]}/${d[2]}`;
  return path.basename(url);
}

function label(f: CallFrame): string {
  const file = f.url ? `${packageOf(f.url)}:${path.basename(f.url)}:${f.lineNumber + 1}` : '';
  return `${f.functionName || '(anonymous)'}${file ? ' ' + file : ''}`;
}

export function summariseProfile(file: string, top = 25, tokens?: number): ProfileSummary {
  const prof = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const n of prof.nodes) {
    byId.set(n.id, n);
    for (const c of n.children ?? []) parent.set(c, n.id);
  }
  const selfUs = new Map<number, number>();
  for (let i = 0; i < prof.samples.length; i++) {
    const id = prof.samples[i] as number;
    const dt = prof.timeDeltas[i + 1] ?? 0; // the delta after a sample is the time it stands for
    selfUs.set(id, (selfUs.get(id) ?? 0) + dt);
  }
  let total = 0;
  let idle = 0;
  const selfByLabel = new Map<string, number>();
  const selfByPkg = new Map<string, number>();
  const inclByLabel = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const node = byId.get(id) as ProfileNode;
    const name = node.callFrame.functionName;
    total += us;
    if (name === '(idle)' || name === '(program)' || name === '(garbage collector)') {
      if (name === '(idle)') idle += us;
      selfByLabel.set(name, (selfByLabel.get(name) ?? 0) + us);
      selfByPkg.set(name, (selfByPkg.get(name) ?? 0) + us);
      continue;
    }
    const l = label(node.callFrame);
    selfByLabel.set(l, (selfByLabel.get(l) ?? 0) + us);
    const pkg = packageOf(node.callFrame.url);
    selfByPkg.set(pkg, (selfByPkg.get(pkg) ?? 0) + us);
    // Inclusive: every distinct frame on this node's stack gets the time once.
    const seen = new Set<string>();
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const f = (byId.get(cur) as ProfileNode).callFrame;
      if (f.functionName === '(root)') break;
      const fl = label(f);
      if (seen.has(fl)) continue;
      seen.add(fl);
      inclByLabel.set(fl, (inclByLabel.get(fl) ?? 0) + us);
    }
  }
  const busy = total - idle || 1;
  const ms = (us: number) => Math.round(us / 100) / 10;
  const share = (us: number) => Math.round((us / busy) * 1000) / 10;
  const sortDesc = (m: Map<string, number>) => [...m].sort((a, b) => b[1] - a[1]);
  const per = (us: number) => (tokens ? { us_per_token: Math.round((us / tokens) * 10) / 10 } : {});
  return {
    total_ms: ms(total),
    idle_ms: ms(idle),
    ...(tokens ? { tokens, busy_us_per_token: Math.round(busy / tokens) } : {}),
    by_package: sortDesc(selfByPkg)
      .filter(([n]) => n !== '(idle)')
      .slice(0, top)
      .map(([name, us]) => ({ name, self_ms: ms(us), share: share(us), ...per(us) })),
    self: sortDesc(selfByLabel)
      .filter(([n]) => n !== '(idle)')
      .slice(0, top)
      .map(([name, us]) => ({ name, self_ms: ms(us), share: share(us), ...per(us) })),
    inclusive: sortDesc(inclByLabel)
      .slice(0, top * 2)
      .map(([name, us]) => ({ name, ms: ms(us), share: share(us), ...per(us) })),
  };
}

export function printProfile(s: ProfileSummary, write: (line: string) => void): void {
  const perTok = (x: { us_per_token?: number }) => (x.us_per_token !== undefined ? `${x.us_per_token.toFixed(1).padStart(6)} µs/tok  ` : '');
  write(
    `  profile: ${s.total_ms} ms sampled, ${s.idle_ms} ms idle; shares are of the busy (main thread) time` +
      (s.tokens ? `; ${s.tokens} tokens, ${s.busy_us_per_token} µs busy per token` : ''),
  );
  write('  self time by package:');
  for (const p of s.by_package) write(`    ${p.share.toFixed(1).padStart(5)} %  ${perTok(p)}${p.name}`);
  write('  self time by function:');
  for (const p of s.self) write(`    ${p.share.toFixed(1).padStart(5)} %  ${perTok(p)}${p.name}`);
  write('  inclusive time by function:');
  for (const p of s.inclusive) write(`    ${p.share.toFixed(1).padStart(5)} %  ${perTok(p)}${p.name}`);
}

if (process.argv[1] && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/test/bench/profile.js file.cpuprofile [top]\n');
    process.exit(2);
  }
  const tokens = process.argv[4] ? Number(process.argv[4]) : undefined;
  printProfile(summariseProfile(file, Number(process.argv[3] ?? 25), tokens), (l) => process.stdout.write(l + '\n'));
}
