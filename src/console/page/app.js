// The admin console: a small client of /admin/api. Plain browser JavaScript in native ES modules (js/), no
// framework, no build step. Rules kept throughout: every piece of data reaches the page as text (textContent,
// append(string), setAttribute), never as HTML; the session lives only in the HttpOnly cookie; the CSRF token,
// the client secret and a mailed link's token live only in memory, and the secret only in the panel that shows
// it, until it closes.
//
// This entry module loads the screens (each registers its view, its route and its listeners) and starts the
// console: a mailed link (#/invite, #/reset, and #/forgot) opens its page at once, and /me is asked only when the
// visitor leaves it for the console; a request without a session cookie (the page's
// <meta name="sat-session" content="none">) the sign-in form; otherwise /me decides between the console and the
// sign-in form.
import { api, ApiError } from './js/api.js';
import { parkClosedDialogs, sentence } from './js/dom.js';
import { resetToSignIn } from './js/login.js';
import { enterConsole, findSessionLater, isPublicRoute, openRoute, setAccount } from './js/shell.js';
import './js/menu.js';
import './js/tokens.js';
import './js/token-detail.js';
import './js/policy.js';
import './js/profile.js';
import './js/admins.js';
import './js/onetime.js';
import './js/audit.js';

async function start() {
  parkClosedDialogs();
  // The server says when the request carried no session cookie: nothing to ask /me (its 401 would only be noise).
  const cookie = document.querySelector('meta[name="sat-session"]')?.content !== 'none';
  if (isPublicRoute()) {
    // A mailed link's page opens as itself even when an administrator is signed in in this browser: the link may be
    // for someone else at this computer, who must not be shown that administrator's console. Leaving it for the
    // console ("Back to sign in", #/) asks /me then, so a live session is found rather than the sign-in form shown.
    if (cookie) findSessionLater(resume);
    await openRoute();
    return;
  }
  if (!cookie) {
    resetToSignIn('');
    return;
  }
  await resume();
}

/** Asks /me: the console at the location with a live session, else the sign-in form. */
async function resume() {
  try {
    const me = await api('GET', '/admin/api/me');
    setAccount(me);
    await enterConsole();
  } catch (err) {
    if (err instanceof ApiError && err.status === 401) {
      resetToSignIn('');
    } else {
      resetToSignIn(`The console could not start. ${sentence(err.message)}`);
    }
  }
}

void start();
