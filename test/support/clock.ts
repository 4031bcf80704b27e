// A settable clock for tests, injected as deps.clock through `serve(config, { clock })` (test/support/server.ts).

/**
 * Follows the wall clock until told otherwise: `advance(ms)` moves it ahead (it keeps ticking from there),
 * `set(at)` freezes it at an instant (then `advance` moves the frozen instant), `resume()` lets a frozen clock
 * tick again from where it stands. `now()` is what the server reads.
 */
export class TestClock {
  private frozenAt: number | undefined;
  private offsetMs = 0;

  constructor(start?: Date | number) {
    if (start !== undefined) this.frozenAt = +start;
  }

  now(): Date {
    return new Date(this.frozenAt ?? Date.now() + this.offsetMs);
  }

  /** The clock as `() => Date`, the shape of deps.clock. */
  readonly read = (): Date => this.now();

  /** Freezes the clock at `at`. */
  set(at: Date | number): this {
    this.frozenAt = +at;
    return this;
  }

  /** Moves the clock `ms` ahead (or back, when negative). */
  advance(ms: number): this {
    if (this.frozenAt !== undefined) this.frozenAt += ms;
    else this.offsetMs += ms;
    return this;
  }

  /** A frozen clock ticks again, from the instant it shows. */
  resume(): this {
    if (this.frozenAt !== undefined) {
      this.offsetMs = this.frozenAt - Date.now();
      this.frozenAt = undefined;
    }
    return this;
  }
}

/** Back to real time: not frozen, no offset. */
export function resetClock(clock: TestClock): TestClock {
  return clock.resume().advance(-(clock.now().getTime() - Date.now()));
}

export const DAY_MS = 86_400_000;
