// The frame around the screens: which view is on show, the account in the top bar, and the hooks that wipe
// every screen's state when the session ends.
import { session } from './api.js';
import { $, setText } from './dom.js';

const views = { loading: $('loading') };
const signedInViews = new Set();

/** Registers a screen's top-level element; signedIn views show the account in the top bar. */
export function addView(name, node, { signedIn = false } = {}) {
  views[name] = node;
  if (signedIn) signedInViews.add(name);
}

/** Shows one view and hides the others. */
export function showView(name) {
  for (const [key, node] of Object.entries(views)) node.hidden = key !== name;
  $('account').hidden = !signedInViews.has(name);
  // The section links in the top bar mark the one on show.
  for (const link of document.querySelectorAll('[data-nav-view]')) {
    if (link.getAttribute('data-nav-view') === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

/** Shows who is signed in; keeps the CSRF token from /me or login. */
export function setAccount(me) {
  // /me and login both carry the administrator; accept either {admin: {...}} or the admin itself.
  const admin = me?.admin ?? me ?? {};
  const organisation = admin.organisation ?? me?.organisation ?? null;
  setText($('account-org'), organisation?.name ?? '');
  setText($('account-email'), admin.email ?? '');
  if (me?.csrf_token) session.csrf = me.csrf_token;
}

const resets = [];

/** Registers a function that wipes a screen's session data (secrets, lists, open dialogs). */
export function onReset(fn) {
  resets.push(fn);
}

/** Leaves nothing of the session on the page: every screen's reset, the CSRF token, the account. */
export function resetSession() {
  for (const fn of resets) fn();
  session.csrf = '';
  setText($('account-org'), '');
  setText($('account-email'), '');
}

let home = async () => {};

/** Registers the screen shown after sign-in. */
export function setHome(enter) {
  home = enter;
}

/** After sign-in (or with a live session at start): the home screen, focus on the content. */
export async function enterConsole() {
  await home();
  $('main').focus({ preventScroll: true });
}
