import { recordAudit } from '../audit/index.js';
import type { Deps } from '../deps.js';
import { queueTokenLeakedMail, type LeakReporter } from '../mail/index.js';
import { hashSecret, isWellFormedSecret } from './credentials.js';
import * as q from './queries.js';
import { toTokenResource } from './resource.js';

/** What a report of a live secret does: revoke the token, or keep it and tell its administrators. */
export type LeakAction = 'revoke' | 'notify';

/** GitHub secret scanning's labels: `true_positive` for a live secret of ours, `false_positive` otherwise. */
export type LeakLabel = 'true_positive' | 'false_positive';

export interface LeakReport {
  /** The string the reporter found. Never logged, stored or mailed. */
  secret: string;
  /** Where it was found; null when the reporter did not say. */
  url: string | null;
  /** The alert's `source` (`content`, `commit`, `npm`, ...), or `public report`. */
  source: string;
}

export interface LeakReportOptions {
  reporter: LeakReporter;
  action: LeakAction;
  /** The address the report came from (audit log). */
  ip: string | null;
}

const ACTOR: Record<LeakReporter, string> = { 'secret-scanning': 'secret-scanning', 'public-report': 'public-report' };

/**
 * SPEC Part 2 "Leaked secrets": acts on reported secrets and labels each report, in order.
 * A string that is not a well-formed secret of ours (prefix and checksum) is `false_positive` without any database
 * work. Each distinct well-formed one is looked up by the hash of a live secret (`findLiveTokenBySecretHash`); when
 * it is live, in one transaction the token is revoked (`revoke`) or marked leaked (`notify`), `token.leaked` is
 * recorded with the URL and source of the first report that named it, and every administrator of the organisation
 * is mailed. A secret that was live when looked up stays `true_positive` even when a concurrent report revoked its
 * token first (that report did the telling).
 */
export async function reportLeakedSecrets(deps: Deps, reports: readonly LeakReport[], options: LeakReportOptions): Promise<LeakLabel[]> {
  const firstReport = new Map<string, LeakReport>();
  for (const report of reports) {
    if (isWellFormedSecret(report.secret) && !firstReport.has(report.secret)) firstReport.set(report.secret, report);
  }
  const labels = new Map<string, LeakLabel>();
  for (const [secret, report] of firstReport) {
    labels.set(secret, await actOnLeak(deps, report, options));
  }
  return reports.map((r) => labels.get(r.secret) ?? 'false_positive');
}

async function actOnLeak(deps: Deps, report: LeakReport, options: LeakReportOptions): Promise<LeakLabel> {
  const now = deps.clock();
  const secretHash = hashSecret(report.secret);
  const outcome = await deps.db.knex.transaction(async (trx) => {
    const row = await q.findLiveTokenBySecretHash(trx, secretHash, now);
    if (!row) return undefined;
    const action = options.action === 'revoke' ? 'revoked' : 'notified';
    if (options.action === 'revoke') {
      // Deleting is revoking (SPEC rule 6), as in revokeToken; nothing deleted: a concurrent report won the race.
      if (!(await q.deleteToken(trx, row.organisation_id, row.id))) return { row, action, acted: false };
    } else {
      await q.markTokenLeaked(trx, row.id, now);
    }
    const leak = { url: report.url, source: report.source, action } as const;
    await recordAudit(trx, {
      organisation_id: row.organisation_id,
      actor_id: null,
      actor_email: ACTOR[options.reporter],
      action: 'token.leaked',
      token_id: row.id,
      token_name: row.name,
      client_id: row.client_id,
      ip: options.ip,
      created_at: now,
      leak,
    });
    // MAIL: token leaked — to every administrator of the organisation, queued with the change it reports.
    await queueTokenLeakedMail(trx, deps, {
      token: toTokenResource(row, now),
      recipients: await q.listAdminEmails(trx, row.organisation_id),
      generatedBy: row.creator_email,
      url: report.url,
      source: report.source,
      reporter: options.reporter,
      action,
      at: now,
    });
    return { row, action, acted: true };
  });
  if (!outcome) return 'false_positive';
  if (outcome.acted) {
    deps.log.info('leaked secret reported', {
      reporter: options.reporter,
      action: outcome.action,
      organisation_id: outcome.row.organisation_id,
      token_id: outcome.row.id,
      client_id: outcome.row.client_id,
      source: report.source,
    });
  }
  return 'true_positive';
}
