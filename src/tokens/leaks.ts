import { recordAudit } from '../audit/index.js';
import type { ResourceServerRow } from '../db/index.js';
import type { Deps } from '../deps.js';
import { organisationAdminEmails, queueTokenLeakedMail, type LeakedSecret, type LeakReporter } from '../mail/index.js';
import { hashSecret, isWellFormedSecret } from './credentials.js';
import * as q from './queries.js';
import { toTokenResource } from './resource.js';

/** What a report of a live secret does: revoke the token, or keep it and tell its administrators. */
export type LeakAction = 'revoke' | 'notify';

/** GitHub secret scanning's labels: `true_positive` for a live secret of ours, `false_positive` otherwise. */
export type LeakLabel = 'true_positive' | 'false_positive';

/** One reported string: a secret-scanning alert's `token` with its `url` and `source`, or one public report. */
export interface LeakReport {
  /** The string the reporter found. Never logged, stored or mailed. */
  secret: string;
  /** Where it was found; null when the reporter did not say. */
  url: string | null;
  /** The alert's `source` (`content`, `commit`, `npm`, ...), or `public report`. */
  source: string;
}

/** Who reported, what to do with a live secret (SECRET_SCANNING_ACTION, or always revoke for a public report), from where. */
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
 * work. The well-formed ones are looked up together, by the hash of a live secret (`findLiveTokensBySecretHashes`,
 * one indexed read). For each live one, in one transaction the token is revoked (`revoke`) or that secret is marked
 * leaked (`notify`: the token resource's `leaked_at` while a reported secret is live), `token.leaked` is recorded with the URL and source of the first report that named it, and every
 * administrator of the organisation is mailed: such a report is `true_positive`. A secret found live by the lookup
 * whose token was revoked, or which was retired, before the report's transaction acted (an administrator's revoke, or
 * another alert for it, at the same moment) is dead by then: `false_positive`, nothing recorded or mailed (whoever
 * revoked it did the telling), as when the report had come a moment later.
 * A live secret of a resource server (`sat resource-server add`: the same format, and it may introspect every
 * organisation's tokens) is `true_positive` too: with `revoke` its credentials are deleted at once (`false_positive`
 * when they were deleted in between); with `notify` they stay. Either way the server logs an error-level
 * `resource server secret leaked` line for the operator (a resource server belongs to no organisation: there is no
 * organisation audit log or administrator to tell).
 */
export async function reportLeakedSecrets(deps: Deps, reports: readonly LeakReport[], options: LeakReportOptions): Promise<LeakLabel[]> {
  const firstReport = new Map<string, LeakReport>();
  for (const report of reports) {
    if (isWellFormedSecret(report.secret) && !firstReport.has(report.secret)) firstReport.set(report.secret, report);
  }
  const hashOf = new Map([...firstReport.keys()].map((secret) => [secret, hashSecret(secret)]));
  const live = await q.findLiveTokensBySecretHashes(deps.db.knex, [...hashOf.values()], deps.clock());
  const unmatched = [...hashOf.values()].filter((h) => !live.has(h));
  const servers = await q.findResourceServersBySecretHashes(deps.db.knex, unmatched);
  // The live secrets of one token are acted on together: a rotation's two secrets in one batch revoke the token once
  // and are both true_positive, each with its own event (where it was found), in one mail.
  const byToken = new Map<string, { row: q.TokenWithCreator; hits: LeakHit[] }>();
  const labels = new Map<string, LeakLabel>();
  for (const [secret, report] of firstReport) {
    const hash = hashOf.get(secret)!;
    const row = live.get(hash);
    if (row) {
      const group = byToken.get(row.id) ?? { row, hits: [] };
      group.hits.push({ secret, hash, report });
      byToken.set(row.id, group);
      continue;
    }
    const server = servers.get(hash);
    if (server && (await actOnResourceServerLeak(deps, server, report, options))) labels.set(secret, 'true_positive');
  }
  for (const { row, hits } of byToken.values()) {
    const acted = await actOnLeak(deps, row, hits, options);
    for (const hit of acted) labels.set(hit.secret, 'true_positive');
  }
  return reports.map((r) => labels.get(r.secret) ?? 'false_positive');
}

/** A reported string that is a live secret of a token, with its hash and the first report that named it. */
interface LeakHit {
  secret: string;
  hash: string;
  report: LeakReport;
}

/** Which of the token's live secrets has the hash `hash` (the token's only one, or one of a rotation's two). */
function whichSecret(row: q.TokenWithCreator, hash: string, now: Date): Exclude<LeakedSecret, 'both'> {
  if (row.prev_secret_hash === hash) return 'previous';
  const rotating = !!row.prev_secret_hash && !!row.prev_secret_expires_at && row.prev_secret_expires_at > now;
  return rotating ? 'current' : 'only';
}

/**
 * Revokes or marks the token of leaked secrets (one, or both of a rotation), with a `token.leaked` event per secret
 * (its URL and source) and one mail to every administrator; returns the hits acted on, none when every secret died
 * meanwhile (revoked or retired in between).
 */
async function actOnLeak(deps: Deps, row: q.TokenWithCreator, hits: readonly LeakHit[], options: LeakReportOptions): Promise<LeakHit[]> {
  const now = deps.clock();
  const action = options.action === 'revoke' ? 'revoked' : 'notified';
  const acted = await deps.db.knex.transaction(async (trx) => {
    // Deleting is revoking (SPEC rule 6), as in revokeToken. Nothing to delete or mark: revoked, or the secrets
    // retired, in between.
    let present: LeakHit[] = [];
    if (options.action === 'revoke') {
      const deleted = await q.deleteTokenHoldingSecret(trx, row.organisation_id, row.id, hits.map((h) => h.hash));
      if (deleted) present = hits.filter((h) => h.hash === deleted.secret_hash || h.hash === deleted.prev_secret_hash);
    } else {
      for (const hit of hits) if (await q.markTokenLeaked(trx, row.id, hit.hash, now)) present.push(hit);
    }
    if (present.length === 0) return [];
    for (const hit of present) {
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
        leak: { url: hit.report.url, source: hit.report.source, action },
      });
    }
    // MAIL: token leaked — to every administrator of the organisation, queued with the change it reports.
    await queueTokenLeakedMail(trx, deps, {
      token: toTokenResource(row, now),
      recipients: await organisationAdminEmails(trx, row.organisation_id),
      generatedBy: row.creator_email,
      found: present.map((hit) => ({ url: hit.report.url, source: hit.report.source, secret: whichSecret(row, hit.hash, now) })),
      reporter: options.reporter,
      action,
      at: now,
    });
    return present;
  });
  if (acted.length > 0) {
    deps.log.info('leaked secret reported', {
      reporter: options.reporter,
      action,
      organisation_id: row.organisation_id,
      token_id: row.id,
      client_id: row.client_id,
      source: acted.map((hit) => hit.report.source).join(', '),
      secrets: acted.length,
    });
  }
  return acted;
}

/** Revokes (or only reports) a resource server's leaked credentials; false when they were revoked meanwhile. */
async function actOnResourceServerLeak(deps: Deps, server: ResourceServerRow, report: LeakReport, options: LeakReportOptions): Promise<boolean> {
  const revoked = options.action === 'revoke' && (await q.deleteResourceServer(deps.db.knex, server.id)) !== undefined;
  deps.log.error('resource server secret leaked', {
    reporter: options.reporter,
    action: revoked ? 'revoked' : options.action === 'revoke' ? 'already revoked' : 'notified',
    resource_server_id: server.id,
    name: server.name,
    client_id: server.client_id,
    url: report.url,
    source: report.source,
    ...(revoked ? {} : options.action === 'notify' ? { advice: 'revoke it with sat resource-server revoke and issue new credentials' } : {}),
  });
  return revoked || options.action === 'notify';
}
