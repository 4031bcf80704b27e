import type { Db } from './index.js';

/**
 * Locks an organisation's row for the rest of the transaction; false when there is no such organisation. It
 * serialises the writers of one organisation that take it: generate (SPEC: the token limit holds under
 * concurrency), PATCH of a token, PUT /policy, removing an administrator (never the last one), issuing an
 * invitation or password-reset link (one live link per address).
 *
 * FOR NO KEY UPDATE, not FOR UPDATE: it excludes those writers from one another as much, but not the FOR KEY SHARE
 * that a foreign key check takes on the organisation row. Audit events, tokens and queued mail all refer to it; with
 * FOR UPDATE, a rotate, retire or revoke that held its token and then wrote its audit event waited for a PATCH (or
 * an administrator's removal) that held the organisation and waited for that token: a deadlock, PostgreSQL's 40P01,
 * answered 500, whenever both ran on one token at once (found by fuzzing a running server).
 */
export async function lockOrganisation(trx: Db, organisationId: string): Promise<boolean> {
  const row = await trx('organisations').select('id').where({ id: organisationId }).forNoKeyUpdate().first();
  return row !== undefined;
}
