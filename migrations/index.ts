// The ordered list of migrations: no directory globbing, so the same list works from src/ and dist/.
import type { Knex } from 'knex';
import * as m0001 from './0001_initial.js';

export interface Migration {
  name: string;
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

export const migrations: readonly Migration[] = [{ name: '0001_initial', ...m0001 }];
