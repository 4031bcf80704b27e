// Sign in and sign out.
import { api, ApiError, onSessionEnd } from './api.js';
import { $, enable, hide, sentence, setText, show } from './dom.js';
import { addView, enterConsole, resetSession, setAccount, setSignedOutHome, showView, titleFromScreen } from './shell.js';

addView('signin', $('signin-view'));

$('signin-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const email = $('signin-email').value.trim();
  const password = $('signin-password').value;
  const error = $('signin-error');
  hide(error);
  if (!email || !password) {
    show(error, 'Enter your email and password.');
    (email ? $('signin-password') : $('signin-email')).focus();
    return;
  }
  const submit = $('signin-submit');
  submit.disabled = true;
  setText(submit, 'Signing in…');
  try {
    // The response also carries a bearer token for scripts; the console ignores it and relies on the cookie.
    const session = await api('POST', '/admin/api/login', { email, password });
    $('signin-password').value = '';
    setAccount(session);
    hide(error);
    await enterConsole();
  } catch (err) {
    $('signin-password').value = '';
    show(
      error,
      err instanceof ApiError && err.status === 401 ? 'The email or password is not right. Try again.' : sentence(err.message),
    );
    $('signin-password').focus();
  } finally {
    enable(submit, 'Sign in');
  }
});

$('sign-out').addEventListener('click', async (event) => {
  const button = event.currentTarget;
  button.disabled = true;
  hide($('signout-error'));
  try {
    await api('POST', '/admin/api/logout');
  } catch (err) {
    // 401: the session was over already, so signed out either way. Anything else: the session may still be live on
    // the server (a shared computer), so the page says so and stays, rather than claim a sign-out that did not happen.
    if (!(err instanceof ApiError && err.status === 401)) {
      show($('signout-error'), `Sign-out did not complete, so you are still signed in. ${sentence(err.message)}`);
      $('signout-error').scrollIntoView?.({ block: 'nearest' });
      $('account-button').focus(); // the menu and its Sign out item closed: back to the menu's button, not to nowhere
      return;
    }
  } finally {
    button.disabled = false;
  }
  resetToSignIn('You have signed out.', 'info');
});

/** Back to the sign-in form with nothing of the session left on the page, its window title included. */
export function resetToSignIn(message, kind = 'error') {
  resetSession();
  hide($('signout-error'));
  const notice = $('signin-error');
  notice.className = kind === 'info' ? 'notice success' : 'notice error';
  if (message) show(notice, message);
  else hide(notice);
  showView('signin');
  titleFromScreen(); // not the last screen's ("Payroll export · …" would stay in the tab strip and the history)
  $('signin-email').focus();
}

onSessionEnd(resetToSignIn);
setSignedOutHome(() => resetToSignIn(''));
