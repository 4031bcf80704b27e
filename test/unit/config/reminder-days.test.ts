// `expiryReminderDays` (SPEC Part 2 "Expiry reminders"): default [30, 7, 1], configurable through CONFIG_FILE.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../../src/config/index.js';

const made: string[] = [];
afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** CONFIG_FILE naming a new file holding `json`, in a folder removed after the file's tests. */
const withFile = (json: unknown) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'sat-config-'));
  made.push(dir);
  const file = path.join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(json), { mode: 0o600 });
  return { CONFIG_FILE: file };
};

describe('expiryReminderDays', () => {
  it('defaults to 30, 7 and 1 days', () => {
    expect([...loadConfig({}).expiryReminderDays].sort((a, b) => b - a)).toEqual([30, 7, 1]);
  });
  it('is read from CONFIG_FILE', () => {
    expect([...loadConfig(withFile({ expiryReminderDays: [14, 3] })).expiryReminderDays].sort((a, b) => b - a)).toEqual([14, 3]);
    expect(loadConfig(withFile({ expiryReminderDays: [] })).expiryReminderDays).toEqual([]);
  });
  it('refuses days that are not distinct whole days from 1', () => {
    for (const bad of [[0], [7, 7], [1.5], ['7'], 7]) {
      expect(() => loadConfig(withFile({ expiryReminderDays: bad }))).toThrow(/expiryReminderDays/);
    }
  });
});
