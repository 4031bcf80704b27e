import type { Config } from './config/index.js';
import type { Database } from './db/index.js';
import type { Logger } from './log.js';

/** The one object passed around: everything a service or route needs from the outside world. */
export interface Deps {
  readonly config: Readonly<Config>;
  readonly db: Database;
  readonly log: Logger;
  /** Injected clock: tests move time; production uses `() => new Date()`. */
  readonly clock: () => Date;
}
