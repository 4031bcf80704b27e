// File-mode checks shared by the tests of SPEC Part 2 "owner-only files" (file-modes, backup).
import { lstatSync, readdirSync } from 'node:fs';
import path from 'node:path';

/** Every entry under `dir` (itself included) that is not owner-only: 0700 folders, 0600 anything else (symlinks skipped). */
export function readableEntries(dir: string): string[] {
  const bad: string[] = [];
  const visit = (p: string) => {
    const st = lstatSync(p);
    if (st.isSymbolicLink()) return;
    const mode = st.mode & 0o777;
    if (mode !== (st.isDirectory() ? 0o700 : 0o600)) bad.push(`${path.relative(dir, p) || '.'} ${mode.toString(8)}`);
    if (st.isDirectory()) for (const name of readdirSync(p)) visit(path.join(p, name));
  };
  visit(dir);
  return bad;
}
