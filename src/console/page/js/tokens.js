// The System Access Token screen: generate (with the secret shown once, or a public key for private_key_jwt,
// Require DPoP, the address allowlist and the hourly limit), the list with search and paging, the active-token limit, a token's credentials (key
// thumbprints, replacing the keys, Require DPoP), Rotate secret, Retire and Revoke Access. A token's name (or a
// click on its row) opens its own view (token-detail.js), which reuses these actions with its own `place`.
import { api, ApiError, handleSessionEnd } from './api.js';
import {
  $,
  DAY_MS,
  addressesOf,
  cell,
  characterCount,
  confirmDialog,
  createdByText,
  dateTimeFormat,
  el,
  enable,
  enterSubmitsWith,
  focusLost,
  formatAgo,
  formatExpiry,
  hide,
  isoDay,
  localDayFormat,
  namingEntries,
  plainFieldMessage,
  sentence,
  setText,
  show,
  timeEl,
  wholeNumberOf,
  named,
} from './dom.js';
import { addView, goTo, isPageTrail, onReset, onViewChange, PAGE_CURSOR, recordRoute, returnTo, setHome, showView } from './shell.js';

const PAGE_SIZE = 10;

const state = {
  services: [],
  /** Cursors of the pages visited: the last one is the page on screen (null = first page). */
  cursors: [null],
  /** False for a later page opened from its address alone (a copied link): the pages before it are not known. */
  trailKnown: true,
  nextCursor: null,
  query: '',
  /** The status filter: '' (all), active, expired, expiring or dormant. */
  status: '',
  activeCount: 0,
  maxActive: 0,
  listSeq: 0,
  /** The token whose credentials dialog is open. */
  editing: null,
  /** The organisation's policy (GET /admin/api/policy), read when the generate form opens; null when unknown. */
  policy: null,
};

addView('tokens', $('tokens-view'), { signedIn: true });

/**
 * Where an action on a token (rotate, retire, credentials, revoke) was started and where its outcome shows: the
 * list (this default) or a token's own view. `secretAfter()`: the node the one-time secret panel follows;
 * `fail(text)`: says what went wrong (an error notice; '' hides it); `done(text?)`: says what happened and reloads;
 * `gone(text)`: the token was revoked; `focus()`: where the focus goes back to; `shows(token)`: whether this place
 * is on screen for `token`, and `hash(token)` the location that shows it again (a one-time secret that arrives after
 * the administrator left goes back there rather than into a screen nobody sees).
 */
const listPlace = {
  secretAfter: () => $('flash'),
  shows: () => $('flash').isConnected,
  hash: () => listRoute(),
  fail(text) {
    if (!text) return hide($('action-error'));
    hide($('flash'));
    show($('action-error'), text);
  },
  async done(text) {
    if (text) show($('flash'), text);
    await loadTokens();
  },
  async gone(text) {
    show($('flash'), text);
    await loadTokens();
    focusTop();
  },
  focus: () => focusTop(),
};

/**
 * A dialog's action answered 404 because the token was revoked meanwhile (in another window, by a colleague, by
 * the policy): the dialog closes and the place says so (`gone`: the list reloads, or a token's view leaves for the
 * list), rather than a bare "No such token." in a dialog that stays open. True when that was the case.
 */
export function revokedMeanwhile(err, token, dialog, place) {
  if (!(err instanceof ApiError) || err.code !== 'not_found') return false;
  if (dialog.open) dialog.close('gone');
  void place.gone(named`“${token.name}” no longer exists: it was revoked (perhaps in another window), so nothing was changed.`);
  return true;
}

/** Leaves a token's view for the list, with a message on top of it (the token was revoked there). */
export function showListWith(text) {
  show($('flash'), text);
  goTo(listRoute());
}

// ---------- the list's place in the address: #/?status=expiring&q=hr&cursor=… ----------
// The status filter, the search and the page are in the route, so a reload, Back and Forward, and a copied link show
// the same list. The cursors of the pages before (for Previous) travel in the history entry's state; a later page
// opened from its address alone (a copied link) knows none, and its Previous leads to the first page.

const STATUSES = new Set(['active', 'expired', 'expiring', 'dormant']);

/** The list's location for its filter, search and page; '#/' for the defaults. */
export function listRoute() {
  const params = new URLSearchParams();
  if (state.status) params.set('status', state.status);
  if (state.query) params.set('q', state.query);
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set('cursor', cursor);
  const text = params.toString();
  return text ? `#/?${text}` : '#/';
}

/** Takes the filter, search and page from the location's `params`; a value the API would refuse is the default. */
function readListRoute(params) {
  const status = params.get('status') ?? '';
  state.status = STATUSES.has(status) ? status : '';
  const query = (params.get('q') ?? '').trim();
  state.query = query.length <= 200 ? query : '';
  const cursor = params.get('cursor') ?? '';
  const trail = history.state?.cursors;
  state.trailKnown = true;
  if (!PAGE_CURSOR.test(cursor)) state.cursors = [null];
  else if (isPageTrail(trail, cursor)) state.cursors = [...trail];
  else if (!isPageTrail(state.cursors, cursor)) {
    state.cursors = [null, cursor];
    state.trailKnown = false;
  }
  clearTimeout(searchTimer);
  $('token-search').value = state.query;
  markFilter();
}

/**
 * Writes the list's filter, search and page into the address: a new history entry for a page or a filter (`push`),
 * in place otherwise (a search as it is typed, a fallback). The top bar's and the token view's links to the list
 * follow, so they lead back to the list as it was left.
 */
function recordListRoute({ push = false } = {}) {
  const hash = listRoute();
  $('nav-tokens').setAttribute('href', hash);
  $('token-crumb-list').setAttribute('href', hash);
  if (!$('tokens-view').isConnected) return; // another screen is on show now (a search typed just before leaving)
  recordRoute(hash, { cursors: state.cursors }, { push }); // /admin with no hash stays as it is
}

/** Loads the services, shows the screen and the page of tokens its location names (`params`; the first by default). */
async function enterTokens(params = new URLSearchParams()) {
  readListRoute(params);
  recordListRoute(); // an invalid value left the address: it shows the list on show
  // A secret shown in a token's view is not carried back to the list.
  if (!$('tokens-view').contains(secretPanel)) {
    closeSecret({ focus: false });
    $('flash').after(secretPanel);
  }
  let servicesError = null;
  try {
    const services = await api('GET', '/admin/api/services');
    state.services = Array.isArray(services?.items) ? services.items : [];
  } catch (err) {
    if (handleSessionEnd(err)) return;
    servicesError = err; // the screen still opens, and says so (the last catalogue known, if any, stays)
  }
  renderServices();
  hide($('action-error'));
  showView('tokens');
  await loadTokens();
  if (servicesError && $('list-error').hidden) show($('list-error'), `The services could not be loaded. ${sentence(servicesError.message)}`);
}

setHome(enterTokens);

onReset(() => {
  closeSecret({ focus: false });
  revokeDialog.close();
  if ($('credentials-dialog').open) $('credentials-dialog').close();
  if ($('rotate-dialog').open) $('rotate-dialog').close();
  retireDialog.close();
  closeGenerate({ focus: false });
  state.cursors = [null];
  state.trailKnown = true;
  state.nextCursor = null;
  state.query = '';
  state.status = '';
  state.policy = null;
  markFilter();
  $('nav-tokens').setAttribute('href', '#/');
  $('token-crumb-list').setAttribute('href', '#/');
  state.listSeq += 1;
  $('token-search').value = '';
  hide($('search-secret'));
  $('token-rows').replaceChildren();
  hide($('flash'));
  hide($('action-error'));
});

// ---------- generate ----------

const generatePanel = $('generate-panel');
const generateForm = $('generate-form');
const openGenerate = $('open-generate');
const nameInput = $('token-name');
const expiryInput = $('token-expiry');
const serviceFilter = $('service-filter');
const publicKeyInput = $('public-key');
const ipsInput = $('token-ips');
const hourlyOn = $('token-hourly-on');
const hourlyInput = $('token-hourly');

function syncHourly() {
  hourlyInput.disabled = !hourlyOn.checked;
}

hourlyOn.addEventListener('change', () => {
  syncHourly();
  if (hourlyOn.checked && !hourlyInput.value) hourlyInput.value = String(state.policy?.default_max_tokens_per_hour ?? 1000);
  if (!hourlyOn.checked) setFieldError('max_tokens_per_hour', '');
});

/** The hourly limit starts at the policy's default (none when the policy has none). */
function prepareHourly() {
  const fallback = state.policy?.default_max_tokens_per_hour ?? null;
  hourlyOn.checked = fallback !== null;
  hourlyInput.value = fallback === null ? '' : String(fallback);
  syncHourly();
  setText(
    $('token-hourly-hint'),
    `Past the limit in the last rolling hour, the token endpoint answers 429 with Retry-After.${
      fallback === null ? '' : ` Your organisation's policy sets ${fallback.toLocaleString('en-GB')} unless you choose otherwise.`
    }`,
  );
}

/** "Public key" chosen: the pasted key is sent, converted and validated by the server (private_key_jwt). */
const usesPublicKey = () => $('auth-key').checked;

function applyAuthMethod() {
  $('public-key-field').hidden = !usesPublicKey();
  if (!usesPublicKey()) setFieldError('public_key', '');
}

for (const radio of [$('auth-secret'), $('auth-key')]) radio.addEventListener('change', applyAuthMethod);

const maxLifetimeDays = Number(document.querySelector('meta[name="sat-max-token-lifetime-days"]')?.content) || 366;

/** The furthest expiry in days: the server's maximum lifetime, or the organisation's policy when it is shorter. */
function lifetimeDays() {
  const policyDays = Number(state.policy?.max_lifetime_days);
  return { days: policyDays > 0 && policyDays < maxLifetimeDays ? policyDays : maxLifetimeDays, byPolicy: policyDays > 0 && policyDays < maxLifetimeDays };
}

/** Today (UTC) up to today + the maximum lifetime: the API's own bounds for a YYYY-MM-DD expiry. */
function expiryBounds() {
  const now = Date.now();
  return { min: isoDay(now), max: isoDay(now + lifetimeDays().days * DAY_MS) };
}

/** The expiry field's bounds and hint; its value too when it is empty or out of them, unless `keepValue`. */
function prepareExpiry({ keepValue = false } = {}) {
  const { min, max } = expiryBounds();
  const { days, byPolicy } = lifetimeDays();
  expiryInput.min = min;
  expiryInput.max = max;
  if (!keepValue && (!expiryInput.value || expiryInput.value > max || expiryInput.value < min)) {
    expiryInput.value = isoDay(Math.min(Date.now() + 90 * DAY_MS, Date.parse(max)));
  }
  setText(
    $('token-expiry-hint'),
    `The token works through the end of this day (UTC), then expires by itself. Latest: ${formatExpiry(max)} (${days === 1 ? '1 day' : `${days} days`} ahead${byPolicy ? ", your organisation's policy" : ''}).`,
  );
}

/** Services the organisation's policy leaves out cannot be chosen, and say why. */
function applyServicePolicy() {
  const allowed = Array.isArray(state.policy?.allowed_services) ? state.policy.allowed_services : null;
  for (const item of $('service-list').children) {
    const box = item.querySelector('input');
    const refused = allowed !== null && !allowed.includes(box.value);
    box.disabled = refused;
    if (refused) box.checked = false;
    item.classList.toggle('not-allowed', refused);
    item.querySelector('.service-policy').hidden = !refused;
  }
  filterServices();
}

/** Reads the organisation's policy for the form; false when the session ended. A failure keeps the last one known. */
async function loadPolicy() {
  try {
    state.policy = await api('GET', '/admin/api/policy');
  } catch (err) {
    if (handleSessionEnd(err)) return false;
  }
  return true;
}

openGenerate.addEventListener('click', () => {
  if (generatePanel.hidden) void openGeneratePanel();
  else closeGenerate();
});

async function openGeneratePanel() {
  openGenerate.setAttribute('aria-expanded', 'true');
  if (!(await loadPolicy())) return;
  prepareExpiry();
  prepareHourly();
  applyServicePolicy();
  clearFieldErrors();
  generatePanel.hidden = false;
  nameInput.focus();
}

function closeGenerate({ focus = true } = {}) {
  generateForm.reset();
  syncHourly();
  applyAuthMethod();
  serviceFilter.value = '';
  filterServices();
  clearFieldErrors();
  generatePanel.hidden = true;
  openGenerate.setAttribute('aria-expanded', 'false');
  if (focus) focusTop();
}

$('generate-cancel').addEventListener('click', () => closeGenerate());

function renderServices() {
  const list = $('service-list');
  list.replaceChildren(
    ...state.services.map((service) => {
      const id = `service-${service.id}`;
      return el(
        'li',
        { 'data-search': `${service.name} ${service.id} ${service.description ?? ''}`.toLowerCase() },
        el(
          'label',
          { for: id },
          el('input', { type: 'checkbox', id, name: 'services', value: service.id }),
          el(
            'span',
            {},
            el('span', { class: 'service-name' }, service.name, ' ', el('span', { class: 'service-id' }, `(${service.id})`)),
            service.description ? el('span', { class: 'service-desc' }, service.description) : null,
            el('span', { class: 'service-policy', hidden: true }, "Not allowed by your organisation's policy"),
          ),
        ),
      );
    }),
  );
  filterServices();
}

function selectedServices() {
  return [...$('service-list').querySelectorAll('input[type="checkbox"]:checked')].map((box) => box.value);
}

/** Narrows the checkboxes as one types; a checked service that is filtered out stays chosen. */
function filterServices() {
  const needle = serviceFilter.value.trim().toLowerCase();
  let shown = 0;
  for (const item of $('service-list').children) {
    const match = !needle || item.dataset.search.includes(needle);
    item.hidden = !match;
    if (match) shown += 1;
  }
  const total = state.services.length;
  const chosen = selectedServices().length;
  setText(
    $('service-count'),
    `${needle ? `${shown} of ${total} shown` : `${total} services`} · ${chosen} selected`,
  );
  const none = $('service-none');
  if (needle && shown === 0) show(none, `No service matches “${serviceFilter.value.trim()}”.`);
  else hide(none);
}

serviceFilter.addEventListener('input', filterServices);
serviceFilter.addEventListener('keydown', (event) => {
  // Enter in the filter must not submit the form.
  if (event.key === 'Enter') event.preventDefault();
});
$('service-list').addEventListener('change', () => {
  filterServices();
  if (selectedServices().length) setFieldError('services', '');
});

const fieldInputs = {
  name: { input: nameInput, error: $('token-name-error') },
  expires_at: { input: expiryInput, error: $('token-expiry-error') },
  services: { input: null, error: $('services-error') },
  public_key: { input: publicKeyInput, error: $('public-key-error') },
  allowed_ips: { input: ipsInput, error: $('token-ips-error') },
  max_tokens_per_hour: { input: hourlyInput, error: $('token-hourly-error') },
};

function fieldOf(path) {
  const key = String(path ?? '').split(/[.[]/)[0];
  if (key === 'jwks') return 'public_key';
  return fieldInputs[key] ? key : null;
}

function setFieldError(field, message) {
  const { input, error } = fieldInputs[field];
  if (message) show(error, sentence(plainFieldMessage(message, serviceName)));
  else hide(error);
  if (input) {
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

function clearFieldErrors() {
  for (const field of Object.keys(fieldInputs)) setFieldError(field, '');
  hide($('generate-error'));
}

function focusField(field) {
  if (field === 'services') {
    const first = $('service-list').querySelector('li:not([hidden]) input') ?? serviceFilter;
    first.focus();
  } else fieldInputs[field].input.focus();
}

/** The checks the page can make before asking: the API makes them again, and more. */
function checkForm() {
  const errors = {};
  const name = nameInput.value.trim();
  if (!name) errors.name = 'Enter a name that says what the token is for.';
  else if (characterCount(name, 64) > 64) errors.name = 'Use at most 64 characters.';
  const { min, max } = expiryBounds();
  const expiry = expiryInput.value;
  if (!expiry) errors.expires_at = 'Choose an expiry date.';
  else if (expiry < min) errors.expires_at = 'Choose a date that is not in the past.';
  else if (expiry > max) {
    const { days, byPolicy } = lifetimeDays();
    errors.expires_at = `Choose a date at most ${days === 1 ? '1 day' : `${days} days`} ahead${byPolicy ? " (your organisation's policy)" : ''}.`;
  }
  if (!selectedServices().length) errors.services = 'Choose at least one service.';
  if (usesPublicKey() && !publicKeyInput.value.trim()) errors.public_key = 'Paste the public key of the integration (PEM or JWK).';
  return errors;
}

generateForm.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearFieldErrors();
  const errors = checkForm();
  const invalid = Object.keys(fieldInputs).filter((field) => errors[field]);
  if (invalid.length) {
    for (const field of invalid) setFieldError(field, errors[field]);
    focusField(invalid[0]);
    return;
  }
  const submit = $('generate-submit');
  submit.disabled = true;
  setText(submit, 'Generating…');
  const allowedIps = addressesOf(ipsInput.value);
  secretsInFlight++;
  let waiting = true; // for the secret: until it shows (then a reload only loses what the page no longer needs)
  try {
    const token = await api('POST', '/admin/api/tokens', {
      name: nameInput.value.trim(),
      expires_at: expiryInput.value,
      services: selectedServices(),
      ...(usesPublicKey() ? { auth_method: 'private_key_jwt', public_key: publicKeyInput.value } : {}),
      require_dpop: $('require-dpop').checked,
      allowed_ips: allowedIps,
      max_tokens_per_hour: hourlyOn.checked ? wholeNumberOf(hourlyInput) : null,
    });
    closeGenerate({ focus: false });
    await showSecret(token);
    secretsInFlight--;
    waiting = false;
    // The new token shows in the list: a search or status filter left from before would hide it.
    clearTimeout(searchTimer);
    state.query = '';
    state.status = '';
    $('token-search').value = '';
    markFilter();
    state.cursors = [null];
    recordListRoute();
    await loadTokens();
  } catch (err) {
    if (handleSessionEnd(err)) return;
    await showGenerateError(err, allowedIps);
  } finally {
    if (waiting) secretsInFlight--;
    setText(submit, 'Generate');
    applyLimit();
    if (focusLost()) (submit.disabled ? focusTop() : submit.focus());
  }
});

async function showGenerateError(err, allowedIps) {
  const placed = [];
  if (err instanceof ApiError && err.details?.some((detail) => /\(organisation policy\)$/.test(String(detail?.message)))) {
    // The policy changed since the form opened: it offers what the policy allows now (the messages say what changed).
    // The date typed stays as typed (the message is about it); a service the policy forbids can no longer be ticked.
    if (await loadPolicy()) {
      prepareExpiry({ keepValue: true });
      applyServicePolicy();
    }
  }
  if (err instanceof ApiError) {
    for (const detail of namingEntries(err.details, allowedIps)) {
      const field = fieldOf(detail?.path);
      if (field && !placed.includes(field)) {
        setFieldError(field, detail.message);
        placed.push(field);
      }
    }
    if (err.code === 'name_taken' && !placed.includes('name')) {
      setFieldError('name', err.message);
      placed.push('name');
    }
    if (err.code === 'token_limit_reached') void loadTokens();
  }
  if (placed.length) {
    focusField(placed[0]);
  } else {
    show($('generate-error'), sentence(err.message));
  }
}

// ---------- the secret, once ----------

/**
 * Requests whose answer holds a secret shown only once (Generate, Rotate) still running: leaving the page now (a
 * reload, closing the tab) would lose it, so the browser asks first. Leaving the screen within the page does not:
 * the answer opens it again (showSecret).
 */
let secretsInFlight = 0;
window.addEventListener('beforeunload', (event) => {
  if (secretsInFlight > 0) {
    event.preventDefault();
    event.returnValue = ''; // what browsers before the standard's preventDefault() read
  }
});

const secretPanel = $('secret-panel');

/** Where the focus goes when the secret panel closes (the place that opened it). */
let secretReturn = () => focusTop();

async function showSecret(token, lead = 'Token generated', place = listPlace) {
  // Shown once, so never into a screen the administrator has left while the request ran (a top-bar link, Back):
  // that screen opens again first.
  if (!place.shows(token)) await returnTo(place.hash(token));
  const anchor = place.secretAfter();
  anchor.after(secretPanel);
  secretReturn = place.focus;
  setText($('secret-title-lead'), lead);
  hide(anchor);
  setText($('secret-token-name'), token.name);
  setText($('secret-client-id'), token.client_id);
  // A private_key_jwt token has no secret: the panel shows its key thumbprints instead.
  const keyed = token.auth_method === 'private_key_jwt';
  $('secret-row').hidden = keyed;
  $('secret-warning').hidden = keyed;
  $('key-notice').hidden = !keyed;
  $('secret-thumbprints-row').hidden = !keyed;
  $('secret-thumbprints').replaceChildren(...(token.jwk_thumbprints ?? []).map((t) => el('li', {}, t)));
  setText($('close-secret'), keyed ? 'Close' : 'I have stored the secret · Close');
  setText($('secret-client-secret'), token.client_secret ?? '');
  setText($('copy-status'), '');
  secretPanel.hidden = false;
  secretPanel.focus();
  secretPanel.scrollIntoView({ block: 'nearest' });
}

/** Removes the secret from the page: the text node goes, nothing else ever held it. */
export function closeSecret({ focus = true } = {}) {
  const wasOpen = !secretPanel.hidden;
  setText($('secret-client-secret'), '');
  setText($('secret-client-id'), '');
  setText($('secret-token-name'), '');
  $('secret-thumbprints').replaceChildren();
  setText($('copy-status'), '');
  secretPanel.hidden = true;
  if (wasOpen && focus) secretReturn();
}

$('close-secret').addEventListener('click', () => closeSecret());
// Leaving the page (or being put in the back/forward cache) drops the secret too, and so does leaving the screen that
// shows it for another one (the audit log, a token's view, the list): coming back does not show it again.
window.addEventListener('pagehide', () => closeSecret({ focus: false }));
onViewChange(() => closeSecret({ focus: false }));

async function copyFrom(id, what) {
  const source = $(id);
  const value = source.textContent ?? '';
  const status = $('copy-status');
  try {
    await navigator.clipboard.writeText(value);
    setText(status, `${what} copied to the clipboard.`);
  } catch {
    // No clipboard access (plain HTTP on another host, or denied): select it for a manual copy.
    const range = document.createRange();
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection?.removeAllRanges();
    selection?.addRange(range);
    setText(status, `${what} selected: press Ctrl+C (⌘C on a Mac) to copy it.`);
  }
}

$('copy-client-id').addEventListener('click', () => copyFrom('secret-client-id', 'Client ID'));
$('copy-client-secret').addEventListener('click', () => copyFrom('secret-client-secret', 'Client secret'));

// ---------- the token list ----------

function serviceName(id) {
  return state.services.find((service) => service.id === id)?.name ?? id;
}

/** The route of a token's own view. */
export function tokenHref(id) {
  return `#/token?id=${encodeURIComponent(id)}`;
}

async function loadTokens() {
  const seq = ++state.listSeq;
  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (state.query) params.set('q', state.query);
  if (state.status) params.set('status', state.status);
  const cursor = state.cursors[state.cursors.length - 1];
  if (cursor) params.set('cursor', cursor);
  let page;
  try {
    page = await api('GET', `/admin/api/tokens?${params}`);
  } catch (err) {
    if (seq !== state.listSeq) return;
    if (handleSessionEnd(err)) return;
    if (cursor && err instanceof ApiError && err.details.some((d) => d?.path === 'cursor')) {
      // A cursor in the address this server did not issue: the first page, without an error.
      state.cursors = [null];
      state.trailKnown = true;
      recordListRoute();
      return loadTokens();
    }
    if (state.query && err instanceof ApiError && err.details.some((d) => d?.path === 'q')) {
      // A search the API refuses (a NUL from an address, say): no search, without an error, as for a bad cursor.
      state.query = '';
      $('token-search').value = '';
      state.cursors = [null];
      state.trailKnown = true;
      recordListRoute();
      return loadTokens();
    }
    show($('list-error'), `The tokens could not be loaded. ${sentence(err.message)}`);
    return;
  }
  if (seq !== state.listSeq) return; // a newer search or page answered first
  hide($('list-error'));
  const items = Array.isArray(page?.items) ? page.items : [];
  if (!items.length && state.cursors.length > 1) {
    // The page emptied (its last token was revoked): step back.
    state.cursors.pop();
    if (state.cursors.length === 1) state.trailKnown = true;
    recordListRoute();
    return loadTokens();
  }
  state.nextCursor = page?.next_cursor ?? null;
  state.activeCount = Number(page?.active_count ?? 0);
  state.maxActive = Number(page?.max_active ?? 0);
  renderLeaked(Number(page?.leaked_count ?? 0));
  renderRows(items);
  renderPager();
  applyLimit();
}

/** Tokens reported leaked in the last 30 days (revoked ones included): a notice that leads to the audit log. */
function renderLeaked(count) {
  if (count > 0) {
    setText($('leaked-text'), count === 1 ? '1 token was reported leaked in the last 30 days.' : `${count} tokens were reported leaked in the last 30 days.`);
    show($('leaked-notice'));
  } else {
    hide($('leaked-notice'));
  }
}

function renderRows(items) {
  $('token-rows').replaceChildren(...items.map(tokenRow));
  const empty = $('list-empty');
  $('token-table').hidden = items.length === 0;
  if (items.length) hide(empty);
  else if (state.query) show(empty, `No ${state.status ? `${FILTER_WORDS[state.status]} ` : ''}token matches “${state.query}”.`);
  else if (state.status) show(empty, `No ${FILTER_WORDS[state.status]} tokens.`);
  else show(empty, 'No tokens yet. Generate one to let an external application call your APIs.');
}

function tokenRow(token) {
  const status = token.status === 'active' ? 'Active' : token.status === 'expired' ? 'Expired' : String(token.status ?? '');
  return el(
    'tr',
    { 'data-token-id': token.id },
    cell(
      'Name',
      'col-name',
      el('a', { class: 'token-name', href: tokenHref(token.id), title: 'Details, limits, secrets and events', dir: 'auto' }, token.name),
      token.auth_method === 'private_key_jwt' ? [' ', el('span', { class: 'tag', title: 'private_key_jwt' }, 'Public key')] : null,
      token.require_dpop ? [' ', el('span', { class: 'tag', title: 'access tokens only with a DPoP proof' }, 'DPoP')] : null,
    ),
    cell('Client ID', 'col-client', el('code', {}, token.client_id), previousSecret(token)),
    cell(
      'Services',
      'col-services',
      (token.services ?? []).map((id) => el('span', { class: 'tag', title: id }, serviceName(id))),
    ),
    cell(
      'Status',
      'col-status',
      el('span', { class: `status ${token.status}` }, status),
      token.leaked_at
        ? el('span', { class: 'status leaked', title: `Secret reported leaked ${formatAgo(token.leaked_at)}: replace it` }, 'Leaked')
        : null,
      token.expiring ? el('span', { class: 'badge expiring', title: `Expires within ${expiringSoonDays} days` }, 'Expiring soon') : null,
      token.dormant ? el('span', { class: 'badge dormant', title: `Not used for ${dormantAfterDays} days or more` }, 'Dormant') : null,
    ),
    cell('Expires', 'col-expires', timeEl(token.expires_at, formatExpiry(token.expires_at))),
    cell(
      'Last used',
      'col-used',
      token.last_used_at ? timeEl(token.last_used_at, formatAgo(token.last_used_at)) : el('span', { class: 'muted' }, 'Never'),
    ),
    cell(
      'Created',
      'col-created',
      timeEl(token.created_at, localDayFormat.format(new Date(token.created_at))),
      el('span', { class: 'sub' }, createdByText(token)),
    ),
    cell(
      '',
      'col-actions',
      el(
        'button',
        {
          type: 'button',
          class: 'button subtle small',
          'aria-label': `Credentials of ${token.name}`,
          onclick: (event) => openCredentials(token, event.currentTarget),
        },
        'Credentials',
      ),
      ' ',
      // A private_key_jwt token has no secret to rotate (its keys change under Credentials).
      token.status === 'active' && token.auth_method !== 'private_key_jwt'
        ? el(
            'button',
            {
              type: 'button',
              class: 'button subtle small',
              'aria-label': `Rotate secret of ${token.name}`,
              onclick: (event) => askRotate(token, event.currentTarget),
            },
            'Rotate secret',
          )
        : null,
      ' ',
      el(
        'button',
        {
          type: 'button',
          class: 'button danger-outline small',
          'aria-label': `Revoke access for ${token.name}`,
          onclick: (event) => askRevoke(token, event.currentTarget),
        },
        'Revoke Access',
      ),
    ),
  );
}

/** During a rotation's grace period: the previous secret (last four characters), when it stops, and Retire. */
function previousSecret(token) {
  const secrets = token.secrets ?? [];
  const previous = secrets.find((x) => x.expires_at !== null);
  if (!previous || secrets.length < 2) return null;
  return el(
    'span',
    { class: 'sub previous-secret' },
    `Previous secret ••••${previous.last4 ?? '????'} works until `,
    timeEl(previous.expires_at, dateTimeFormat.format(new Date(previous.expires_at))),
    ' ',
    el(
      'button',
      {
        type: 'button',
        class: 'button subtle small',
        'aria-label': `Retire the previous secret of ${token.name}`,
        onclick: (event) => retirePrevious(token, previous, event.currentTarget),
      },
      'Retire',
    ),
  );
}

/**
 * Retire: after a confirmation, a secret of a rotation stops at once. A refusal (the only live secret left: 409
 * last_secret; the secret already retired or stopped elsewhere: 404) closes the dialog, shows as an error and the
 * secrets are read again, so the screen shows what is true now.
 */
const retireDialog = confirmDialog('retire', {
  fill({ token, previous }) {
    setText($('retire-name'), token.name);
    setText($('retire-last4'), previous.last4 ?? '????');
  },
  busy: 'Retiring…',
  run: ({ token, previous }) => api('POST', `/admin/api/tokens/${encodeURIComponent(token.id)}/secrets/${encodeURIComponent(previous.id)}/retire`),
  async done({ token, place }) {
    place.fail('');
    await place.done(named`The previous secret of “${token.name}” no longer works.`);
    place.focus(); // the Retire button went with the secret
  },
  failed(err, { token, place }) {
    if (handleSessionEnd(err)) return { after: () => {} };
    if (!(err instanceof ApiError && (err.status === 404 || err.status === 409))) return err.message;
    return {
      async after() {
        place.fail(
          err.status === 404
            ? named`The previous secret of “${token.name}” had already stopped: it was retired elsewhere or its grace period ended.`
            : sentence(err.message),
        );
        await place.done();
        place.focus();
      },
    };
  },
});

/** Asks to retire `previous`, a secret of `token` (the Retire button `opener` gets the focus back on Cancel). */
export function retirePrevious(token, previous, opener, place = listPlace) {
  retireDialog.ask({ token, previous, place }, opener);
}

// ---------- Rotate secret ----------

const rotateDialog = $('rotate-dialog');
let rotating = null;

/** Rotate secret: asks for the grace period; the new secret shows once, in the panel after `place.secretAfter()`. */
export function askRotate(token, opener, place = listPlace) {
  rotating = { token, opener, place };
  setText($('rotate-name'), token.name);
  setText($('rotate-client-id'), token.client_id);
  $('rotate-grace').value = '24';
  hide($('rotate-error'));
  $('rotate-confirm').disabled = false;
  rotateDialog.returnValue = '';
  rotateDialog.showModal();
  $('rotate-cancel').focus();
}

rotateDialog.querySelector('form').addEventListener('submit', async (event) => {
  const choice = event.submitter?.value;
  if (choice !== 'rotate' || !rotating) return; // Cancel: the dialog closes by itself
  event.preventDefault();
  const { token, place } = rotating;
  const confirm = $('rotate-confirm');
  confirm.disabled = true;
  secretsInFlight++;
  let waiting = true;
  try {
    const rotated = await api('POST', `/admin/api/tokens/${encodeURIComponent(token.id)}/rotate`, {
      grace_period_hours: Number($('rotate-grace').value),
    });
    rotating = null;
    rotateDialog.close('rotated');
    await showSecret(rotated, 'New secret', place);
    secretsInFlight--;
    waiting = false;
    await place.done();
  } catch (err) {
    if (handleSessionEnd(err)) return;
    if (revokedMeanwhile(err, token, rotateDialog, place)) return;
    show($('rotate-error'), sentence(err.message));
    enable(confirm);
  } finally {
    if (waiting) secretsInFlight--;
  }
});

rotateDialog.addEventListener('close', () => {
  const opener = rotating?.opener;
  rotating = null;
  if (opener && rotateDialog.returnValue !== 'rotated') opener.focus();
});

// A click anywhere on a row (not on its buttons or links, nor to select text) opens the token's view, like its name.
$('token-rows').addEventListener('click', (event) => {
  const target = event.target instanceof Element ? event.target : null;
  if (!target || target.closest('a, button') || window.getSelection()?.toString()) return;
  const row = target.closest('tr[data-token-id]');
  if (row) location.hash = tokenHref(row.dataset.tokenId);
});

function renderPager() {
  const page = state.cursors.length;
  $('pager').hidden = page <= 1 && !state.nextCursor;
  $('page-prev').disabled = page <= 1;
  $('page-next').disabled = !state.nextCursor;
  setText($('page-info'), (page > 1 && state.trailKnown) || (page === 1 && state.nextCursor) ? `Page ${page}` : '');
}

$('page-next').addEventListener('click', async () => {
  if (!state.nextCursor) return;
  state.cursors.push(state.nextCursor);
  recordListRoute({ push: true });
  await loadTokens();
  ($('page-next').disabled ? $('page-prev') : $('page-next')).focus();
});

$('page-prev').addEventListener('click', async () => {
  if (state.cursors.length <= 1) return;
  state.cursors.pop();
  if (state.cursors.length === 1) state.trailKnown = true;
  recordListRoute({ push: true });
  await loadTokens();
  ($('page-prev').disabled ? $('page-next') : $('page-prev')).focus();
});

// ---------- status filters: one click to "expiring soon" or "dormant" ----------

const expiringSoonDays = Number(document.querySelector('meta[name="sat-expiring-soon-days"]')?.content) || 7;
const dormantAfterDays = Number(document.querySelector('meta[name="sat-dormant-after-days"]')?.content) || 90;
const FILTER_WORDS = { active: 'active', expired: 'expired', expiring: 'expiring', dormant: 'dormant' };

$('filter-expiring').title = `Active tokens that expire within ${expiringSoonDays} days`;
$('filter-dormant').title = `Active tokens not used for ${dormantAfterDays} days or more`;
setText($('filter-dormant'), `Dormant (unused ${dormantAfterDays}+ days)`);

function markFilter() {
  for (const chip of $('status-filters').querySelectorAll('.chip')) {
    chip.setAttribute('aria-pressed', String(chip.dataset.status === state.status));
  }
}

$('status-filters').addEventListener('click', (event) => {
  const chip = event.target instanceof Element ? event.target.closest('.chip') : null;
  if (!chip || chip.dataset.status === state.status) return;
  state.status = chip.dataset.status ?? '';
  state.cursors = [null];
  state.trailKnown = true;
  markFilter();
  recordListRoute({ push: true });
  void loadTokens();
});

/**
 * A client secret's shape (`sats_` and 49 base62 characters; 40 or more: a secret cut short when pasted): never a
 * name or client ID, never searched for. A name such as `sats_nightly_export` is not one.
 */
const CLIENT_SECRET = /sats_[A-Za-z0-9]{40,}/;

let searchTimer;
$('token-search').addEventListener('input', (event) => {
  clearTimeout(searchTimer);
  const value = event.currentTarget.value.trim();
  // A pasted client secret (to find its token) would go into the address bar, the history and the API's URL: it is
  // kept out of all three, and the way to act on a leaked secret is said instead.
  if (CLIENT_SECRET.test(value)) {
    show(
      $('search-secret'),
      'That is a client secret: the list is searched by name or client ID only, so it is not searched and stays out of ' +
        'the address. If it may have leaked, rotate or revoke the token it belongs to; anyone can also report it at ' +
        'POST /credentials/revoke, which revokes it at once.',
    );
    return;
  }
  hide($('search-secret'));
  searchTimer = setTimeout(() => {
    if (value === state.query) return;
    state.query = value;
    state.cursors = [null];
    state.trailKnown = true;
    recordListRoute();
    void loadTokens();
  }, 250);
});
$('token-search').addEventListener('keydown', (event) => {
  if (event.key === 'Enter') event.preventDefault();
});

/** "N of 25 tokens used"; at the limit both generate buttons are disabled and say why. */
function applyLimit() {
  const { activeCount: used, maxActive: max } = state;
  const atLimit = max > 0 && used >= max;
  setText($('usage-text'), max > 0 ? `${used} of ${max} tokens used` : '');
  $('usage-text').hidden = atLimit;
  const fill = $('usage-fill');
  fill.style.width = max > 0 ? `${Math.min(100, (used / max) * 100)}%` : '0';
  fill.classList.toggle('full', atLimit);
  const reason = $('limit-reason');
  if (atLimit) show(reason, `${used} of ${max} tokens used — revoke one to generate another.`);
  else hide(reason);
  openGenerate.disabled = atLimit;
  const submit = $('generate-submit');
  if (submit.textContent === 'Generate') submit.disabled = atLimit;
}

function focusTop() {
  (openGenerate.disabled ? $('token-search') : openGenerate).focus();
}

// ---------- Revoke Access ----------

/** Revoke Access: asks first; afterwards the token is gone (`place.gone`), also when it was revoked elsewhere. */
const revokeDialog = confirmDialog('revoke', {
  fill({ token }) {
    setText($('revoke-name'), token.name);
    setText($('revoke-client-id'), token.client_id);
  },
  busy: 'Revoking…',
  run: ({ token }) => api('POST', `/admin/api/tokens/${encodeURIComponent(token.id)}/revoke`),
  done: ({ token, place }) => place.gone(named`Access revoked for “${token.name}”. Integrations using it can no longer get access tokens.`),
  failed(err, { token, place }) {
    if (handleSessionEnd(err)) return { after: () => {} };
    // Already gone (revoked elsewhere): the list catches up.
    if (err instanceof ApiError && err.status === 404) return { after: () => place.gone(named`“${token.name}” was already revoked.`) };
    return err.message;
  },
});

/** Asks to revoke `token` (the button `opener` gets the focus back on Cancel); the outcome shows at `place`. */
export function askRevoke(token, opener, place = listPlace) {
  revokeDialog.ask({ token, place }, opener);
}

// ---------- a token's credentials: key thumbprints, replacing the keys, Require DPoP ----------

const credentialsDialog = $('credentials-dialog');

/** The credentials dialog: key thumbprints, replacing the keys (private_key_jwt), Require DPoP. */
export function openCredentials(token, opener, place = listPlace) {
  state.editing = { token, opener, place };
  const keyed = token.auth_method === 'private_key_jwt';
  setText($('credentials-name'), token.name);
  setText(
    $('credentials-method'),
    keyed
      ? 'Authenticates with a JWT signed by its private key (private_key_jwt): no client secret.'
      : 'Authenticates with its client secret.',
  );
  $('credentials-keys').hidden = !keyed;
  $('credentials-thumbprints').replaceChildren(...(token.jwk_thumbprints ?? []).map((t) => el('li', {}, t)));
  $('replace-key').value = '';
  $('replace-key').removeAttribute('aria-invalid');
  hide($('replace-key-error'));
  $('credentials-dpop').checked = token.require_dpop === true;
  hide($('credentials-error'));
  credentialsDialog.returnValue = '';
  credentialsDialog.showModal();
  (keyed ? $('replace-key') : $('credentials-dpop')).focus();
}

enterSubmitsWith($('credentials-form'), $('credentials-save'));
$('credentials-form').addEventListener('submit', async (event) => {
  const choice = event.submitter?.value;
  if (choice !== 'save' || !state.editing) return; // Close: the dialog closes by itself
  event.preventDefault();
  const { token, place } = state.editing;
  const save = $('credentials-save');
  save.disabled = true;
  setText(save, 'Saving…');
  // Only what differs from the token as loaded: a Save that changes nothing writes nothing (and no audit event).
  const body = {};
  if ($('credentials-dpop').checked !== (token.require_dpop === true)) body.require_dpop = $('credentials-dpop').checked;
  const pasted = $('replace-key').value.trim();
  if (pasted && token.auth_method === 'private_key_jwt') body.public_key = pasted;
  if (!Object.keys(body).length) {
    state.editing = null;
    credentialsDialog.close('unchanged');
    enable(save, 'Save');
    place.focus();
    return;
  }
  try {
    const updated = await api('PATCH', `/admin/api/tokens/${encodeURIComponent(token.id)}`, body);
    state.editing = null;
    credentialsDialog.close('saved');
    await place.done([...named`Credentials of “${updated.name}” saved`, `${pasted ? `: ${updated.jwk_thumbprints?.length ?? 0} public key(s) registered` : ''}.`]);
    place.focus();
  } catch (err) {
    if (handleSessionEnd(err)) return;
    if (revokedMeanwhile(err, token, $('credentials-dialog'), place)) return;
    const keyDetail = err instanceof ApiError ? err.details?.find((d) => /^(public_key|jwks)\b/.test(String(d?.path ?? ''))) : undefined;
    if (keyDetail) {
      // The key's problem under the key field, with the focus there to correct it.
      $('replace-key').setAttribute('aria-invalid', 'true');
      show($('replace-key-error'), sentence(`The key was not accepted: it ${keyDetail.message}`));
      $('replace-key').focus();
    } else show($('credentials-error'), sentence(err.message));
  } finally {
    enable(save, 'Save');
  }
});
