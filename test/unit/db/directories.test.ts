// DATA_DIR is created with makeDirectories: 0700 folders, and an error rather than Node's endless loop under /proc.
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeDirectories } from '../../../src/db/index.js';

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
