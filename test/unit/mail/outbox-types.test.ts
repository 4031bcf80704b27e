// Compile-time guarantees of the mail module, checked by `tsc` (npm run typecheck): an unused
// `@ts-expect-error` is itself an error, so each line below proves the call does not type-check.
import type { Knex } from 'knex';
import type { TokenRow } from '../../../src/db/index.js';
import { enqueueMail, queueTokenGeneratedMail, type NewMail } from '../../../src/mail/index.js';
import type { GeneratedToken } from '../../../src/tokens/index.js';

describe('mail module types', () => {
  it('queue only inside a transaction, and never from an object carrying a secret', () => {
    const checks = (knex: Knex, trx: Knex.Transaction, mail: NewMail, row: TokenRow, generated: GeneratedToken) => {
      // @ts-expect-error -- the root knex is not a transaction: mail must commit or roll back with its change
      void enqueueMail(knex, mail);
      void enqueueMail(trx, mail);
      const config = { issuer: 'http://x', mailFrom: 'a@b.c', services: [] };
      const who = { id: 'a', email: 'a@b.c' };
      // @ts-expect-error -- a token row carries secret_hash
      void queueTokenGeneratedMail(trx, { config }, { token: row, generatedBy: who, at: new Date() });
      // @ts-expect-error -- generateToken's result carries client_secret
      void queueTokenGeneratedMail(trx, { config }, { token: generated, generatedBy: who, at: new Date() });
      const { client_secret: _secret, ...resource } = generated;
      void queueTokenGeneratedMail(trx, { config }, { token: resource, generatedBy: who, at: new Date() });
    };
    expect(typeof checks).toBe('function');
  });
});
