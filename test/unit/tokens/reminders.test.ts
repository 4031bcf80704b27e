// The reminder rule of SPEC Part 2 "Expiry reminders": most urgent due threshold only, none for a threshold the token
// was created inside, never the same threshold twice.
import { dueReminder } from '../../../src/tokens/index.js';

const DAY = 86_400_000;
const now = new Date('2030-01-01T00:00:00Z');
const token = (createdDaysAgo: number, daysLeft: number, reminded: number | null = null) => ({
  created_at: new Date(now.getTime() - createdDaysAgo * DAY),
  expires_at: new Date(now.getTime() + daysLeft * DAY),
  expiry_reminded_days: reminded,
});
const T = [30, 7, 1];

describe('dueReminder', () => {
  it('is the most urgent threshold reached', () => {
    expect(dueReminder(token(100, 40), T, now)).toBeUndefined();
    expect(dueReminder(token(100, 30), T, now)).toBe(30);
    expect(dueReminder(token(100, 20), T, now)).toBe(30);
    expect(dueReminder(token(100, 5), T, now)).toBe(7); // 30 and 7 due: only 7
    expect(dueReminder(token(100, 0.5), T, now)).toBe(1);
    expect(dueReminder(token(100, -1), T, now)).toBeUndefined(); // expired
  });
  it('never for a threshold the token was created inside', () => {
    expect(dueReminder(token(0, 20), T, now)).toBeUndefined(); // made with 20 days: no 30-day reminder
    expect(dueReminder(token(15, 5), T, now)).toBe(7); // made with 20 days: its 7-day one
    expect(dueReminder(token(1, 5), T, now)).toBeUndefined(); // made with 6 days
    expect(dueReminder(token(5, 0.5), T, now)).toBe(1);
    expect(dueReminder(token(0, 30), T, now)).toBeUndefined(); // made with exactly 30 days: inside
  });
  it('only a threshold more urgent than the last one sent', () => {
    expect(dueReminder(token(100, 20, 30), T, now)).toBeUndefined();
    expect(dueReminder(token(100, 5, 30), T, now)).toBe(7);
    expect(dueReminder(token(100, 5, 7), T, now)).toBeUndefined();
    expect(dueReminder(token(100, 0.5, 7), T, now)).toBe(1);
    expect(dueReminder(token(100, 0.5, 1), T, now)).toBeUndefined();
  });
  it('follows the configured thresholds in any order', () => {
    expect(dueReminder(token(100, 10), [3, 14], now)).toBe(14);
    expect(dueReminder(token(100, 2), [14, 3], now)).toBe(3);
  });
});
