// The Audit log screen (#/audit): the organisation's events, newest first, paged; leaked secrets stand out, with
// where the secret was found. Reached from the top bar, the token screen ("Audit log", and the leaked-tokens notice).
// A token's view shows that token's events with the same rows (auditRow).
import { api, ApiError, handleSessionEnd } from './api.js';
import { $, breakableEmail, cell, dateTimeFormat, el, formatAgo, hide, sentence, setText, show, timeEl } from './dom.js';
import { addRoute, addView, goTo, isPageTrail, onReset, PAGE_CURSOR, recordRoute, showView } from './shell.js';

const PAGE_SIZE = 20;

const state = {
  /** Cursors of the pages visited: the last one is the page on screen (null = newest page). */
  cursors: [null],
  nextCursor: null,
  /** False for a later page opened from its address alone (a copied link): the pages before it are not known. */
  trailKnown: true,
  seq: 0,
};

// The page is in the route (#/audit?cursor=…), so a reload, Back and Forward, and a copied link show the same events;
// the cursors of the pages before (for Newer) travel in the history entry's state, as the token list's do.

function auditRoute() {
  const cursor = state.cursors[state.cursors.length - 1];
  return cursor ? `#/audit?${new URLSearchParams({ cursor })}` : '#/audit';
}

/** Writes the page into the address: a new history entry for Older / Newer (`push`), in place for a fallback. */
function recordAuditRoute({ push = false } = {}) {
  if (!$('audit-view').isConnected) return;
  recordRoute(auditRoute(), { cursors: state.cursors }, { push });
}

addView('audit', $('audit-view'), { signedIn: true });

const EVENTS = {
  'token.generated': 'Token generated',
  'token.revoked': 'Token revoked',
  'token.leaked': 'Secret leaked',
  'token.updated': 'Token changed',
  'token.denied_address': 'Refused: address not allowed',
  'policy.updated': 'Policy changed',
  'token.secret_rotated': 'Secret rotated',
  'token.secret_retired': 'Secret retired',
  'token.secret_expired': 'Previous secret stopped',
  'admin.signed_in': 'Signed in',
  'admin.sign_in_failed': 'Sign-in failed',
  'admin.signed_out': 'Signed out',
  'admin.invited': 'Administrator invited',
  'admin.invitation_withdrawn': 'Invitation withdrawn',
  'admin.added': 'Administrator added',
  'admin.removed': 'Administrator removed',
  'admin.password_changed': 'Password changed',
  'admin.password_reset': 'Password reset',
  'admin.session_revoked': 'Session ended',
};

const ACTORS = {
  cli: 'the sat CLI',
  'secret-scanning': 'Secret scanning',
  'public-report': 'Public report',
  system: 'the server',
};

/** Only web addresses become links; anything else stays text. */
function isWebUrl(value) {
  try {
    const url = new URL(value);
    return url.protocol === 'https:' || url.protocol === 'http:';
  } catch {
    return false;
  }
}

function leakDetails(leak) {
  const where = leak.url
    ? isWebUrl(leak.url)
      ? el('a', { class: 'leak-url', href: leak.url, rel: 'noopener noreferrer', target: '_blank' }, leak.url)
      : el('span', { class: 'leak-url' }, leak.url)
    : el('span', { class: 'muted' }, 'no URL given');
  const done = leak.action === 'revoked' ? 'token revoked' : 'token kept working (notify only): replace its secret';
  return [el('span', {}, 'Found at ', where), el('span', { class: 'sub' }, `Source: ${leak.source} · ${done}`)];
}

/** A changed value as short text: lists joined, empty list "any", null "none". */
function changedValue(value) {
  if (Array.isArray(value)) return value.length ? value.join(', ') : 'any';
  if (value === null || value === undefined) return 'none';
  return String(value);
}

/**
 * `policy.updated` carries the whole document before and after (`details.old`, `details.new`): the fields that
 * differ, as {field: {old, new}}.
 */
function policyChanges(details) {
  const before = details && typeof details.old === 'object' && details.old ? details.old : {};
  const after = details && typeof details.new === 'object' && details.new ? details.new : {};
  const changes = {};
  for (const field of new Set([...Object.keys(before), ...Object.keys(after)])) {
    if (JSON.stringify(before[field] ?? null) !== JSON.stringify(after[field] ?? null)) changes[field] = { old: before[field], new: after[field] };
  }
  return changes;
}

/** `token.updated` with `details.changes` ({field: {old, new}}), or `policy.updated`: one line per changed field. */
function changeLines(details, action) {
  const changes =
    action === 'policy.updated'
      ? policyChanges(details)
      : details && typeof details.changes === 'object' && details.changes
        ? details.changes
        : null;
  if (!changes) return null;
  return Object.entries(changes).map(([field, change]) =>
    // Each value isolated (dir="auto"): a right-to-left name beside a left-to-right one would otherwise reorder the
    // line ("name: تكامل → 2024 Payroll" displayed as "2024 → تكامل Payroll").
    el('span', { class: 'sub change' }, el('code', {}, field), ': ', el('bdi', {}, changedValue(change?.old)), ' → ', el('bdi', {}, changedValue(change?.new))),
  );
}

/**
 * The secret events' `details` as a line: which secret (by its last four characters) and, for a rotation, when the
 * previous one stops; none for events recorded before the details existed.
 */
function secretLine(details, action) {
  if (!details || typeof details !== 'object') return null;
  const ending = (last4) => (typeof last4 === 'string' ? `ending in ${last4}` : null);
  if (action === 'token.secret_rotated') {
    const previous = ending(details.previous_secret_last4);
    const stops =
      details.grace_period_hours === 0
        ? 'stopped at once'
        : typeof details.previous_stops_at === 'string'
          ? `stops ${dateTimeFormat.format(new Date(details.previous_stops_at))}`
          : null;
    const text = [ending(details.secret_last4) ? `New secret ${ending(details.secret_last4)}` : null, previous && stops ? `previous one (${previous}) ${stops}` : null].filter(
      Boolean,
    );
    return text.length ? el('span', { class: 'sub' }, text.join('; ')) : null;
  }
  const which = ending(details.secret_last4);
  if (!which) return null;
  const rolledBack = action === 'token.secret_retired' && details.rolled_back === true ? ' (the newest: the previous secret is the only one again)' : '';
  return el('span', { class: 'sub' }, `Secret ${which}${rolledBack}`);
}

/** `admin.sign_in_failed`'s `details.attempts` (since `first_at`) as a line; none for a single attempt. */
function failedAttempts(details) {
  const attempts = details && typeof details.attempts === 'number' ? details.attempts : 1;
  if (attempts < 2) return null;
  const since = typeof details.first_at === 'string' ? ` since ${dateTimeFormat.format(new Date(details.first_at))}` : '';
  return el('span', {}, `${attempts} attempts${since}`);
}

/** One event as a table row; `withToken: false` leaves out the Token column (a token's own view). */
export function auditRow(event, { withToken = true } = {}) {
  const leaked = event.action === 'token.leaked' && event.leak;
  const who = ACTORS[event.actor_email] ?? event.actor_email ?? '';
  return el(
    'tr',
    { class: leaked ? 'leaked' : undefined, 'data-action': event.action },
    cell('When', 'col-when', timeEl(event.created_at, formatAgo(event.created_at)), el('span', { class: 'sub' }, dateTimeFormat.format(new Date(event.created_at)))),
    cell('Event', 'col-event', el('span', { class: leaked ? 'status leaked' : undefined }, EVENTS[event.action] ?? event.action)),
    cell('By', 'col-by', who.includes('@') ? breakableEmail(who) : who),
    withToken
      ? cell(
          'Token',
          'col-token',
          event.token_name ? el('span', { class: 'token-name', dir: 'auto' }, event.token_name) : el('span', { class: 'muted' }, '—'),
          event.client_id ? el('code', { class: 'sub' }, event.client_id) : null,
        )
      : null,
    cell('From', 'col-ip', event.ip ? el('code', {}, event.ip) : el('span', { class: 'muted' }, '—')),
    cell(
      'Details',
      'col-details',
      leaked ? leakDetails(event.leak) : null,
      event.action === 'token.updated' || event.action === 'policy.updated' ? changeLines(event.details, event.action) : null,
      event.action.startsWith('token.secret_') ? secretLine(event.details, event.action) : null,
      // Failed sign-ins of one administrator within the throttle's window are one event that counts them.
      event.action === 'admin.sign_in_failed' ? failedAttempts(event.details) : null,
      // Events about another administrator (admin.invited, admin.removed, ...) name them.
      event.subject_admin?.email ? el('span', {}, 'About ', ...breakableEmail(event.subject_admin.email)) : null,
    ),
  );
}

async function loadAudit() {
  const seq = ++state.seq;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set('cursor', cursor);
  let page;
  try {
    page = await api('GET', `/admin/api/audit?${params}`);
  } catch (err) {
    if (seq !== state.seq) return;
    if (handleSessionEnd(err)) return;
    if (cursor && err instanceof ApiError && err.details.some((d) => d?.path === 'cursor')) {
      // A cursor in the address this server did not issue: the newest events, without an error.
      state.cursors = [null];
      state.trailKnown = true;
      recordAuditRoute();
      return loadAudit();
    }
    show($('audit-error'), `The audit log could not be loaded. ${sentence(err.message)}`);
    return;
  }
  if (seq !== state.seq) return;
  hide($('audit-error'));
  const items = Array.isArray(page?.items) ? page.items : [];
  state.nextCursor = page?.next_cursor ?? null;
  $('audit-rows').replaceChildren(...items.map(auditRow));
  $('audit-table').hidden = items.length === 0;
  if (items.length) hide($('audit-empty'));
  else show($('audit-empty'), 'No events yet.');
  const pageNo = state.cursors.length;
  $('audit-pager').hidden = pageNo <= 1 && !state.nextCursor;
  $('audit-prev').disabled = pageNo <= 1;
  $('audit-next').disabled = !state.nextCursor;
  setText($('audit-page-info'), pageNo === 1 || state.trailKnown ? `Page ${pageNo}` : '');
}

/** Shows the audit log at the page its location names (`params`: the newest by default). */
async function enterAudit(params = new URLSearchParams()) {
  const cursor = params.get('cursor') ?? '';
  const trail = history.state?.cursors;
  state.trailKnown = true;
  if (!PAGE_CURSOR.test(cursor)) state.cursors = [null];
  else if (isPageTrail(trail, cursor)) {
    state.cursors = [...trail];
  } else {
    state.cursors = [null, cursor];
    state.trailKnown = false;
  }
  state.nextCursor = null;
  // Not the rows (nor the pager) of an earlier visit while the first page loads: they are not page 1 of the log now.
  $('audit-rows').replaceChildren();
  $('audit-pager').hidden = true;
  showView('audit');
  recordAuditRoute(); // an invalid cursor left the address
  $('main').focus({ preventScroll: true });
  await loadAudit();
}

addRoute('audit', enterAudit);

$('open-audit').addEventListener('click', () => goTo('#/audit'));
$('leaked-audit').addEventListener('click', () => goTo('#/audit'));
// Back to the list as it was left (its filter, search and page: the top bar's link to it carries them).
$('audit-back').addEventListener('click', () => goTo($('nav-tokens').getAttribute('href') ?? '#/'));
// A pager button disabled under the focus (the last page's Older, the first page's Newer) hands it to the other one,
// as the token list's pager does: never to nowhere.
$('audit-next').addEventListener('click', async () => {
  if (!state.nextCursor) return;
  state.cursors.push(state.nextCursor);
  recordAuditRoute({ push: true });
  await loadAudit();
  if ($('audit-next').disabled && !$('audit-pager').hidden) $('audit-prev').focus();
});
$('audit-prev').addEventListener('click', async () => {
  if (state.cursors.length <= 1) return;
  state.cursors.pop();
  if (state.cursors.length === 1) state.trailKnown = true;
  recordAuditRoute({ push: true });
  await loadAudit();
  if ($('audit-prev').disabled && !$('audit-pager').hidden) $('audit-next').focus();
});

onReset(() => {
  state.cursors = [null];
  state.trailKnown = true;
  state.nextCursor = null;
  state.seq += 1;
  $('audit-rows').replaceChildren();
  hide($('audit-error'));
});
