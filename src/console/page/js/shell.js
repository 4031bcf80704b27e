// The frame around the screens: which view is on show, the hash routes (#/, #/audit, #/policy, #/profile, #/admins,
// #/token?id=…, and the public
// #/forgot, #/invite, #/reset), the navigation and account in the top bar, and the hooks that wipe every
// screen's state when the session ends.
import { api, handleSessionEnd, session } from './api.js';
import { $, parkView, setText, unparkView } from './dom.js';

const views = { loading: $('loading') };
const signedInViews = new Set();
/** The top-bar navigation link of each signed-in view that has one. */
const navLinks = { tokens: $('nav-tokens'), audit: $('nav-audit'), policy: $('nav-policy'), admins: $('nav-admins') };

/** Registers a screen's top-level element; signedIn views show the navigation and account in the top bar. */
export function addView(name, node, { signedIn = false } = {}) {
  views[name] = node;
  if (signedIn) signedInViews.add(name);
}

/** The view on show; '' before the first. */
let current = '';
const leaveHooks = [];

/** Registers `fn(from, to)`, run when the page changes from one view to another (not when a view shows again). */
export function onViewChange(fn) {
  leaveHooks.push(fn);
}

/** Shows one view; the others are hidden and taken out of the document (dom.js `parkView`). */
export function showView(name) {
  const from = current;
  current = name;
  if (from && from !== name) {
    // A dialog belongs to the screen that opened it (Back or a link while it is open): it closes, like a Cancel.
    for (const dialog of document.querySelectorAll('dialog[open]')) dialog.close();
    for (const fn of leaveHooks) fn(from, name);
  }
  for (const [key, node] of Object.entries(views)) {
    node.hidden = key !== name;
    if (key === name) unparkView(node);
    else parkView(node);
  }
  const inside = signedInViews.has(name);
  $('account').hidden = !inside;
  $('main-nav').hidden = !inside;
  for (const [key, link] of Object.entries(navLinks)) {
    if (key === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** The signed-in administrator ({id, email, organisation: {id, name}}), or null. Memory only. */
let account = null;

export function currentAccount() {
  return account;
}

/** "jane.doe@example.com" → "JD"; at most two letters, for the account button. */
export function initials(email) {
  const local = String(email ?? '').split('@')[0] ?? '';
  const parts = local.split(/[._+-]+/).filter(Boolean);
  const letters = (parts.length > 1 ? [parts[0][0], parts[1][0]] : [...(parts[0] ?? '?')].slice(0, 2)).join('');
  return letters.toUpperCase() || '?';
}

/** Shows who is signed in; keeps the CSRF token from /me or login. */
export function setAccount(me) {
  // /me and login both carry the administrator; accept either {admin: {...}} or the admin itself.
  const admin = me?.admin ?? me ?? {};
  const organisation = admin.organisation ?? me?.organisation ?? null;
  account = { id: admin.id ?? null, email: admin.email ?? '', organisation: organisation ?? { id: null, name: '' } };
  setText($('account-org'), organisation?.name ?? '');
  setText($('account-email'), admin.email ?? '');
  setText($('account-initials'), initials(admin.email));
  $('account-button').title = `${admin.email ?? ''} · ${organisation?.name ?? ''}`;
  if (me?.csrf_token) session.csrf = me.csrf_token;
  lastCheck = Date.now();
  watchExpiry(me?.expires_at);
}

// ---------- a session that ends while the page is idle ----------
// A session ends at its expires_at (from login or /me), or when it is signed out elsewhere (another session, a
// password change or reset, the administrator removed). The page does not wait for the next click to find out: at
// expires_at, and whenever the tab comes back into view, it asks /me, and a 401 leads to the sign-in form with
// "Your session has ended" (and every screen's data, a one-time secret included, wiped).

let expiryTimer;
/** When /me was last asked (Date.now()); a tab shown again within CHECK_GAP_MS of it does not ask again. */
let lastCheck = 0;
const CHECK_GAP_MS = 10_000;

function watchExpiry(expiresAt) {
  clearTimeout(expiryTimer);
  const at = Date.parse(expiresAt ?? '');
  if (Number.isNaN(at)) return;
  // A second after the end; when the browser's clock is ahead of the server's, /me still answers: ask again later.
  const wait = at - Date.now() + 1000;
  expiryTimer = setTimeout(() => void checkSession(), Math.min(wait > 1000 ? wait : 30_000, 2 ** 31 - 1));
}

async function checkSession() {
  const who = account?.id;
  if (!signedIn || !who) return;
  lastCheck = Date.now();
  try {
    const me = await api('GET', '/admin/api/me');
    if (account?.id === who) watchExpiry(me?.expires_at);
  } catch (err) {
    // Signed out or in as someone else meanwhile: not about this session. No answer: asked again in a while.
    if (account?.id === who && !handleSessionEnd(err)) {
      clearTimeout(expiryTimer);
      expiryTimer = setTimeout(() => void checkSession(), 30_000);
    }
  }
}

document.addEventListener('visibilitychange', () => {
  if (document.visibilityState === 'visible' && Date.now() - lastCheck >= CHECK_GAP_MS) void checkSession();
});

const resets = [];

/** Registers a function that wipes a screen's session data (secrets, lists, open dialogs). */
export function onReset(fn) {
  resets.push(fn);
}

let signedIn = false;

/**
 * How to find a session the page has not asked about, or null: set when a mailed link's page (a public route) opened
 * with the browser's session cookie, without asking /me. Leaving that page for the console (#/, "Back to sign in")
 * runs it once, instead of showing the sign-in form to an administrator who is signed in.
 */
let findSession = null;

/** Registers `find()`, run (once) in place of the sign-in form the next time a signed-out visitor opens a private route. */
export function findSessionLater(find) {
  findSession = find;
}

/** Leaves nothing of the session on the page: every screen's reset, the CSRF token, the account. */
export function resetSession() {
  signedIn = false;
  findSession = null;
  clearTimeout(expiryTimer);
  for (const fn of resets) fn();
  session.csrf = '';
  account = null;
  setText($('account-org'), '');
  setText($('account-email'), '');
  setText($('account-initials'), '');
}

let home = async () => {};
let signedOutHome = () => {};

/** Registers the screen shown after sign-in (and for #/). */
export function setHome(enter) {
  home = enter;
}

/** Registers what a signed-out visitor sees at a private route (the sign-in form). */
export function setSignedOutHome(enter) {
  signedOutHome = enter;
}

const routes = new Map();

/** Registers `#/name`: `enter(params)` shows it. Public routes open without a session (the mailed links). */
export function addRoute(name, enter, { isPublic = false } = {}) {
  routes.set(name, { enter, isPublic });
}

/** "#/invite?token=x" → {name: 'invite', params}; anything else → the home route ''. */
export function parseRoute(hash = location.hash) {
  const m = /^#\/([a-z-]*)(?:\?(.*))?$/.exec(hash);
  return m ? { name: m[1], params: new URLSearchParams(m[2] ?? '') } : { name: '', params: new URLSearchParams() };
}

/** True when the current location is a public route (a mailed link), which opens without asking /me. */
export function isPublicRoute(route = parseRoute()) {
  return routes.get(route.name)?.isPublic === true;
}

/** Shows the screen of the current location, within what the visitor may see. */
export async function openRoute(route = parseRoute()) {
  const target = routes.get(route.name);
  if (target?.isPublic) return target.enter(route.params);
  if (!signedIn) {
    const find = findSession;
    findSession = null;
    return find ? find() : signedOutHome();
  }
  if (target) return target.enter(route.params);
  return home(route.params);
}

const PRODUCT = 'System Access Token';

/** The window's title: the screen's heading, then the product ("Audit log · System Access Token"). */
export function titleFromScreen() {
  const heading = document.querySelector('main h1')?.textContent?.trim();
  document.title = heading && heading !== PRODUCT ? `${heading} · ${PRODUCT}` : PRODUCT;
}

/**
 * Opens the screen of the current location. An ended session leads to the sign-in form. The window's title names
 * the screen, and focus that is not within it (on the top bar's link that was followed, or on a control of the
 * screen just left, now out of the document) moves to the main region, so a screen reader announces the new screen
 * and the keyboard carries on from there.
 */
async function followRoute() {
  try {
    await openRoute();
  } catch (err) {
    if (!handleSessionEnd(err)) console.warn('could not open the page', err);
  }
  titleFromScreen();
  const focused = document.activeElement;
  if (!focused || focused === document.body || !focused.isConnected || !$('main').contains(focused)) $('main').focus({ preventScroll: true });
}

window.addEventListener('hashchange', () => void followRoute());

/**
 * Opens the screen of `hash` now and resolves once it shows (a new history entry; hashchange does not open it a
 * second time): for an answer that must be seen on the screen it was asked from, after the administrator left it.
 */
export async function returnTo(hash) {
  if (location.hash !== hash) history.pushState(null, '', hash);
  await followRoute();
}

/** Goes to `hash` (e.g. '#/audit'); when the location is already there, opens its screen again. */
export function goTo(hash) {
  if (location.hash === hash || (hash === '#/' && location.hash === '')) void followRoute();
  else location.hash = hash;
}

/** After sign-in (or with a live session at start): the screen of the location (home by default), focus on it. */
export async function enterConsole() {
  signedIn = true;
  findSession = null;
  const route = parseRoute();
  if (isPublicRoute(route)) {
    history.replaceState(null, '', '#/');
    await home();
  } else {
    await openRoute(route);
  }
  titleFromScreen();
  $('main').focus({ preventScroll: true });
}

/** A page cursor as the API issues them (base64url), as it may stand in an address (#/?cursor=…, #/audit?cursor=…). */
export const PAGE_CURSOR = /^[A-Za-z0-9_-]{1,200}$/;

/**
 * Whether `trail` (kept in a history entry's state: the cursors of the pages visited, null for the first) is a
 * well-formed trail of more than one page that ends at `cursor`, so Previous can step back through it after a reload.
 */
export function isPageTrail(trail, cursor) {
  return (
    Array.isArray(trail) &&
    trail[0] === null &&
    trail.length > 1 &&
    trail[trail.length - 1] === cursor &&
    trail.slice(1).every((c) => typeof c === 'string' && PAGE_CURSOR.test(c))
  );
}

/**
 * Writes `hash` into the address with `data` as the history entry's state: a new entry when `push` (a page, a
 * filter), else in place (a search as it is typed, a fallback); the state alone when the address already says it.
 */
export function recordRoute(hash, data, { push = false } = {}) {
  if ((location.hash || '#/') === hash) history.replaceState(data, '');
  else if (push) history.pushState(data, '', hash);
  else history.replaceState(data, '', hash);
}
