// A token's own view (#/token?id=…), opened from its name or row in the list: everything GET /admin/api/tokens/{id}
// says about it (client ID, status, services and scopes, times, client authentication, DPoP), the address allowlist
// and the hourly access-token limit with its use in the last hour, the live secrets with their last use, and the
// token's recent audit events (GET /admin/api/audit?token_id=). Edit is token-edit.js; Credentials, Rotate secret,
// Retire and Revoke Access are the list's own actions (tokens.js), shown here with this view as their `place`.
import { api, ApiError, handleSessionEnd } from './api.js';
import { auditRow } from './audit.js';
import {
  $,
  cell,
  createdByText,
  dateTimeFormat,
  el,
  expiresAtEndOfDay,
  fact,
  formatAgo,
  formatExpiry,
  hide,
  localDayFormat,
  sentence,
  setText,
  show,
  timeEl,
  named,
} from './dom.js';
import { addRoute, addView, currentAccount, onReset, showView } from './shell.js';
import { openEdit } from './token-edit.js';
import { askRevoke, askRotate, closeSecret, openCredentials, retirePrevious, showListWith } from './tokens.js';

const EVENTS_PAGE = 10;

const state = {
  id: '',
  token: null,
  /** The catalogue, loaded once per session. */
  services: null,
  seq: 0,
  eventsSeq: 0,
  eventsCursor: null,
};

addView('token', $('token-view'), { signedIn: true });

/** The outcome of an action started here shows here; a revoked token sends the administrator back to the list. */
const place = {
  secretAfter: () => $('token-flash'),
  shows: (token) => $('token-flash').isConnected && state.id === token.id,
  hash: (token) => `#/token?id=${encodeURIComponent(token.id)}`,
  fail(text) {
    if (!text) return hide($('token-action-error'));
    hide($('token-flash'));
    show($('token-action-error'), text);
  },
  async done(text) {
    if (text) show($('token-flash'), text);
    await loadToken();
  },
  async gone(text) {
    showListWith(text);
  },
  focus: () => ($('token-edit').hidden ? $('token-credentials') : $('token-edit')).focus(),
};

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Opens the view of the token `params.get('id')`. */
async function enterToken(params) {
  const id = params.get('id') ?? '';
  if (id !== state.id || !state.token) {
    // A secret shown for another token (or in the list) does not follow the administrator here.
    if ($('token-view').contains($('secret-panel'))) closeSecret({ focus: false });
    hide($('token-flash'));
    clearView();
  }
  hide($('token-action-error'));
  state.id = id;
  showView('token');
  await loadToken();
}

addRoute('token', enterToken);

function clearView() {
  state.token = null;
  setText($('token-title'), 'Token');
  setText($('token-crumb'), 'Token');
  $('token-badges').replaceChildren();
  $('token-actions').hidden = true;
  $('token-details').hidden = true;
  hide($('token-error'));
  for (const id of ['token-facts', 'token-limits', 'token-secret-rows', 'token-thumbprints', 'token-event-rows']) $(id).replaceChildren();
}

async function loadToken() {
  const seq = ++state.seq;
  let token;
  try {
    // A link cut short (`#/token`, `#/token?id=`) is no token: without this, GET /admin/api/tokens/ is the list.
    if (!UUID.test(state.id)) throw new ApiError(404, 'not_found', 'No such token.');
    const [one, services] = await Promise.all([
      api('GET', `/admin/api/tokens/${encodeURIComponent(state.id)}`),
      state.services ?? api('GET', '/admin/api/services').then((page) => (Array.isArray(page?.items) ? page.items : [])),
    ]);
    token = one;
    state.services = services;
  } catch (err) {
    if (seq !== state.seq) return;
    if (handleSessionEnd(err)) return;
    clearView();
    if (err instanceof ApiError && err.status === 404) {
      setText($('token-title'), 'Token not found');
      show($('token-error'), 'No token of your organisation has this address: it was revoked, or the link is wrong. Revoked tokens stay in the audit log.');
    } else {
      show($('token-error'), `The token could not be loaded. ${sentence(err.message)}`);
    }
    return;
  }
  if (seq !== state.seq) return;
  state.token = token;
  render(token);
  await loadEvents({ reset: true });
}

const serviceName = (id) => state.services?.find((s) => s.id === id)?.name ?? id;

function statusBadges(token) {
  const expiringSoonDays = Number(document.querySelector('meta[name="sat-expiring-soon-days"]')?.content) || 7;
  const dormantAfterDays = Number(document.querySelector('meta[name="sat-dormant-after-days"]')?.content) || 90;
  return [
    el('span', { class: `status ${token.status}` }, token.status === 'active' ? 'Active' : 'Expired'),
    token.leaked_at
      ? el('span', { class: 'status leaked', title: `Secret reported leaked ${formatAgo(token.leaked_at)}: replace it` }, 'Leaked')
      : null,
    token.expiring ? [' ', el('span', { class: 'badge expiring', title: `Expires within ${expiringSoonDays} days` }, 'Expiring soon')] : null,
    token.dormant ? [' ', el('span', { class: 'badge dormant', title: `Not used for ${dormantAfterDays} days or more` }, 'Dormant')] : null,
  ];
}

function render(token) {
  const active = token.status === 'active';
  const keyed = token.auth_method === 'private_key_jwt';
  // The name isolated (<bdi>, as in the breadcrumb's dir="auto", the list and the dialogs): a right-to-left name reads
  // in the same visual order in the heading as everywhere else, whatever the heading's own direction.
  setText($('token-title'), named`${token.name}`);
  setText($('token-crumb'), token.name);
  $('token-badges').replaceChildren(...statusBadges(token).flat().filter(Boolean));
  // An expired token can no longer be changed (the API answers 409): Edit and Rotate go; Revoke stays.
  $('token-edit').hidden = !active;
  $('token-rotate').hidden = !active || keyed;
  $('token-actions').hidden = false;
  $('token-details').hidden = false;
  hide($('token-error'));

  $('token-facts').replaceChildren(
    fact('Client ID', el('code', { id: 'token-client-id' }, token.client_id)),
    fact('Organisation', el('bdi', {}, currentAccount()?.organisation?.name ?? '')),
    fact('Status', ...statusBadges(token).flat().filter(Boolean)),
    fact(
      'Services',
      el('span', { class: 'tags' }, ...(token.services ?? []).map((id) => el('span', { class: 'tag', title: id }, serviceName(id)))),
    ),
    fact('Scopes', el('code', {}, token.scopes ?? '')),
    fact(
      'Client authentication',
      keyed ? 'Public key: a JWT signed with its private key ' : 'Client secret ',
      el('code', {}, keyed ? 'private_key_jwt' : 'client_secret_basic'),
      keyed ? null : [' or ', el('code', {}, 'client_secret_post')],
    ),
    fact('DPoP', token.require_dpop ? 'Required: access tokens only with a DPoP proof (RFC 9449)' : 'Not required'),
    fact(
      'Created',
      timeEl(token.created_at, localDayFormat.format(new Date(token.created_at))),
      el('span', { class: 'sub' }, createdByText(token)),
    ),
    fact(
      'Expires',
      timeEl(token.expires_at, formatExpiry(token.expires_at)),
      el('span', { class: 'sub' }, expiresAtEndOfDay(token.expires_at) ? `end of the day (UTC), ${formatAgo(token.expires_at)}` : formatAgo(token.expires_at)),
    ),
    fact('Last used', token.last_used_at ? timeEl(token.last_used_at, formatAgo(token.last_used_at)) : el('span', { class: 'muted' }, 'Never')),
  );

  const ips = token.allowed_ips ?? [];
  const max = token.max_tokens_per_hour ?? null;
  const used = Number(token.tokens_last_hour ?? 0);
  $('token-limits').replaceChildren(
    fact(
      'Allowed addresses',
      ips.length
        ? el('ul', { class: 'addresses', id: 'token-allowed-ips' }, ...ips.map((ip) => el('li', {}, el('code', {}, ip))))
        : el('span', { id: 'token-allowed-ips' }, 'Any address'),
    ),
    fact('Access tokens per hour', el('span', { id: 'token-hourly-limit' }, max === null ? 'No limit' : max.toLocaleString('en-GB'))),
    fact(
      'In the last hour',
      max === null
        ? el('span', { id: 'token-last-hour' }, `${used.toLocaleString('en-GB')} access token${used === 1 ? '' : 's'}`)
        : [
            el('span', { id: 'token-last-hour' }, `${used.toLocaleString('en-GB')} of ${max.toLocaleString('en-GB')} access tokens`),
            hourMeter(used, max),
          ],
    ),
  );

  renderSecrets(token);
}

/** A bar of the hour's use against the limit (its width set through the CSSOM, which the CSP allows). */
function hourMeter(used, max) {
  const fill = el('span', { class: `meter-fill${used >= max ? ' full' : ''}` });
  fill.style.width = `${Math.min(100, (used / max) * 100)}%`;
  return el('span', { class: 'meter', 'aria-hidden': 'true' }, fill);
}

/** The live secrets (current, and the previous one during a rotation's overlap), or the key thumbprints. */
function renderSecrets(token) {
  const keyed = token.auth_method === 'private_key_jwt';
  $('token-secrets-wrap').hidden = keyed || (token.secrets ?? []).length === 0;
  $('token-thumbprints').hidden = !keyed;
  setText(
    $('token-secrets-lead'),
    keyed
      ? 'No client secret: the integration signs a JWT with its private key. The registered public keys (RFC 7638 thumbprints):'
      : token.status === 'expired'
        ? 'None: the token has expired, so none of its secrets works any more.'
        : 'The secrets that work now, newest first. During a rotation the previous one keeps working until its grace period ends.',
  );
  $('token-thumbprints').replaceChildren(...(token.jwk_thumbprints ?? []).map((t) => el('li', {}, t)));
  const secrets = token.secrets ?? [];
  $('token-secret-rows').replaceChildren(
    ...secrets.map((secret, i) => {
      const previous = secret.expires_at !== null;
      return el(
        'tr',
        { 'data-secret-id': secret.id },
        cell(
          'Secret',
          'col-secret',
          el('code', {}, `••••${secret.last4 ?? '????'}`),
          ' ',
          el('span', { class: `status ${previous ? 'expired' : 'current'}` }, previous ? 'Previous' : i === 0 ? 'Current' : 'Live'),
        ),
        cell('Created', 'col-created', timeEl(secret.created_at, formatAgo(secret.created_at))),
        cell(
          'Works until',
          'col-until',
          previous
            ? [timeEl(secret.expires_at, dateTimeFormat.format(new Date(secret.expires_at))), el('span', { class: 'sub' }, `${formatAgo(secret.expires_at)}, then stops by itself`)]
            : [el('span', {}, 'As long as the token'), el('span', { class: 'sub' }, formatExpiry(token.expires_at))],
        ),
        cell('Last used', 'col-used', secret.last_used_at ? timeEl(secret.last_used_at, formatAgo(secret.last_used_at)) : el('span', { class: 'muted' }, 'Never')),
        cell(
          '',
          'col-actions',
          previous && secrets.length > 1
            ? el(
                'button',
                {
                  type: 'button',
                  class: 'button subtle small',
                  'aria-label': `Retire the previous secret of ${token.name}`,
                  onclick: (event) => retirePrevious(token, secret, event.currentTarget, place),
                },
                'Retire',
              )
            : null,
        ),
      );
    }),
  );
}

/** The token's events, newest first; `reset` starts again from the newest, otherwise the next older page is added. */
async function loadEvents({ reset }) {
  const seq = ++state.eventsSeq;
  if (reset) state.eventsCursor = null;
  const params = new URLSearchParams({ token_id: state.id, limit: String(EVENTS_PAGE) });
  if (state.eventsCursor) params.set('cursor', state.eventsCursor);
  let page;
  try {
    page = await api('GET', `/admin/api/audit?${params}`);
  } catch (err) {
    if (seq !== state.eventsSeq) return;
    if (handleSessionEnd(err)) return;
    show($('token-events-error'), `The events could not be loaded. ${sentence(err.message)}`);
    return;
  }
  if (seq !== state.eventsSeq) return;
  hide($('token-events-error'));
  const items = Array.isArray(page?.items) ? page.items : [];
  const rows = items.map((event) => auditRow(event, { withToken: false }));
  if (reset) $('token-event-rows').replaceChildren(...rows);
  else $('token-event-rows').append(...rows);
  state.eventsCursor = page?.next_cursor ?? null;
  const any = $('token-event-rows').children.length > 0;
  $('token-events').hidden = !any;
  if (any) hide($('token-events-empty'));
  else show($('token-events-empty'), 'No events yet.');
  $('token-events-more-wrap').hidden = !state.eventsCursor;
}

$('token-events-more').addEventListener('click', async () => {
  const before = $('token-event-rows').children.length;
  await loadEvents({ reset: false });
  // The last page hides the button under the focus: it goes to the first of the events just added, never to nowhere.
  const first = $('token-event-rows').children[before];
  if ($('token-events-more-wrap').hidden && first) {
    first.tabIndex = -1;
    first.focus();
  }
});

$('token-edit').addEventListener('click', (event) => {
  if (!state.token) return;
  openEdit(state.token, state.services ?? [], event.currentTarget, async (updated) => {
    show($('token-flash'), named`Changes to “${updated.name}” saved.`);
    await loadToken();
    $('token-edit').focus();
  });
});
$('token-credentials').addEventListener('click', (event) => state.token && openCredentials(state.token, event.currentTarget, place));
$('token-rotate').addEventListener('click', (event) => state.token && askRotate(state.token, event.currentTarget, place));
$('token-revoke').addEventListener('click', (event) => state.token && askRevoke(state.token, event.currentTarget, place));

onReset(() => {
  state.id = '';
  state.services = null;
  state.seq += 1;
  state.eventsSeq += 1;
  state.eventsCursor = null;
  clearView();
  hide($('token-flash'));
  hide($('token-action-error'));
  hide($('token-events-error'));
});
