// DATA_DIR is created with makeDirectories: 0700 folders, and an error rather than Node's endless loop under /proc.
import { chmodSync, chownSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeDirectories, makeOwnerOnly } from '../../../src/db/index.js';

describe('makeDirectories', () => {
  let base: string;
  beforeAll(() => {
    base = mkdtempSync(path.join(os.tmpdir(), 'sat-dirs-'));
  });
  afterAll(() => rmSync(base, { recursive: true, force: true }));

  it('creates every missing level owner-only, and leaves an existing folder alone', () => {
    const deep = path.join(base, 'a', 'b', 'c');
    makeDirectories(deep);
    for (const p of [path.join(base, 'a'), path.join(base, 'a', 'b'), deep]) {
      expect(statSync(p).isDirectory()).toBe(true);
      expect(statSync(p).mode & 0o777).toBe(0o700 & ~process.umask());
    }
    expect(() => makeDirectories(deep)).not.toThrow();
    expect(() => makeDirectories(`${deep}/`)).not.toThrow();
  });

  it('throws instead of looping for ever on a path under /proc (Node recursive mkdir spins there)', () => {
    expect(() => makeDirectories('/proc/sat-no-such-dir/data')).toThrow(expect.objectContaining({ code: 'ENOENT' }));
  });

  it('throws ENOTDIR when a file stands in the way', () => {
    const file = path.join(base, 'file');
    writeFileSync(file, 'x');
    expect(() => makeDirectories(path.join(file, 'sub'))).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
    expect(() => makeDirectories(file)).toThrow(expect.objectContaining({ code: 'ENOTDIR' }));
  });
});

// docs/security.md: "Entries owned by another user are left alone and counted" — also when the server runs as root,
// which could change them.
(process.getuid?.() === 0 ? describe : describe.skip)('makeOwnerOnly as root', () => {
  it('makes its own entries owner-only and leaves another user’s alone, counting them', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'sat-owner-'));
    try {
      const mine = path.join(dir, 'mine');
      const theirs = path.join(dir, 'theirs');
      writeFileSync(mine, 'x', { mode: 0o644 });
      writeFileSync(theirs, 'x', { mode: 0o644 });
      chmodSync(mine, 0o644);
      chmodSync(theirs, 0o644);
      chownSync(theirs, 65534, 65534); // nobody
      expect(makeOwnerOnly(dir, false)).toEqual({ changed: 1, skipped: 1 }); // `mine` (mkdtemp made the folder 0700)
      expect(statSync(mine).mode & 0o777).toBe(0o600);
      expect(statSync(theirs).mode & 0o777).toBe(0o644);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
