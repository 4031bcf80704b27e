// The pages reached from mailed links, and the request for one: #/forgot (ask for a reset link), #/invite?token=…
// (accept an invitation: choose a password, then signed in) and #/reset?token=… (choose a new password). The token
// is read from the URL once, kept in memory only, and the address bar is rewritten without it at once, so it stays
// out of the history, bookmarks and anything shared from the page.
import { api, ApiError } from './api.js';
import { $, enable, fieldErrors, focusLost, hide, named, sentence, setText, show } from './dom.js';
import { resetToSignIn } from './login.js';
import { addRoute, addView, enterConsole, onReset, setAccount, showView } from './shell.js';

addView('forgot', $('forgot-view'));
addView('onetime', $('onetime-view'));

// ---------- #/forgot ----------

addRoute(
  'forgot',
  () => {
    hide($('forgot-error'));
    hide($('forgot-done'));
    $('forgot-submit').disabled = false;
    showView('forgot');
    $('forgot-email').focus();
  },
  { isPublic: true },
);

$('forgot-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  const email = $('forgot-email').value.trim();
  hide($('forgot-error'));
  hide($('forgot-done'));
  if (!email) {
    show($('forgot-error'), 'Enter the email address of your administrator account.');
    $('forgot-email').focus();
    return;
  }
  const submit = $('forgot-submit');
  submit.disabled = true;
  setText(submit, 'Sending…');
  try {
    await api('POST', '/admin/api/password-reset', { email });
    show(
      $('forgot-done'),
      named`If ${email} belongs to an administrator, a mail with a link to choose a new password is on its way. The link works once, for 1 hour.`,
    );
  } catch (err) {
    show($('forgot-error'), sentence(err.message));
  } finally {
    enable(submit, 'Send the link');
  }
});

// ---------- #/invite and #/reset ----------

const PAGES = {
  invite: {
    title: 'Accept your invitation',
    lead: 'Choose the password for your new administrator account. You are signed in straight after.',
    button: 'Set password and sign in',
  },
  reset: {
    title: 'Choose a new password',
    lead: 'Setting a new password signs your account out everywhere. Then sign in with the new password.',
    button: 'Set new password',
  },
};

/** The link's token, in memory only: {kind, token}. */
let pending = null;

function enterOneTime(kind, params) {
  const token = params.get('token');
  if (token) {
    pending = { kind, token };
    history.replaceState(null, '', `#/${kind}`);
  }
  const page = PAGES[kind];
  setText($('onetime-title'), page.title);
  setText($('onetime-lead'), page.lead);
  setText($('onetime-submit'), page.button);
  clearErrors();
  $('onetime-password').value = '';
  $('onetime-confirm').value = '';
  showView('onetime');
  if (!pending || pending.kind !== kind) {
    show($('onetime-error'), 'This link is incomplete. Open the link from the mail again, or ask for a new one.');
    $('onetime-submit').disabled = true;
    return;
  }
  $('onetime-submit').disabled = false;
  $('onetime-password').focus();
}

addRoute('invite', (params) => enterOneTime('invite', params), { isPublic: true });
addRoute('reset', (params) => enterOneTime('reset', params), { isPublic: true });

const fields = {
  password: { input: $('onetime-password'), error: $('onetime-password-error') },
  confirm: { input: $('onetime-confirm'), error: $('onetime-confirm-error') },
};

const fieldMessages = fieldErrors(fields);
const setFieldError = fieldMessages.set;

function clearErrors() {
  fieldMessages.clear();
  hide($('onetime-error'));
}

/** The page's own check of a new password (the API checks again): 12 to 256 characters, typed twice alike. */
export function passwordProblems(password, confirm) {
  const length = [...password.normalize('NFC')].length; // as the API counts: the NFC form that is hashed
  const problems = {};
  if (length < 12) problems.password = 'Use at least 12 characters.';
  else if (length > 256) problems.password = 'Use at most 256 characters.';
  if (!problems.password && confirm !== password) problems.confirm = 'The two passwords are not the same.';
  return problems;
}

$('onetime-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  if (!pending) return;
  clearErrors();
  const password = $('onetime-password').value;
  const problems = passwordProblems(password, $('onetime-confirm').value);
  if (problems.password || problems.confirm) {
    if (problems.password) setFieldError('password', problems.password);
    if (problems.confirm) setFieldError('confirm', problems.confirm);
    fields[problems.password ? 'password' : 'confirm'].input.focus();
    return;
  }
  const { kind, token } = pending;
  const submit = $('onetime-submit');
  submit.disabled = true;
  setText(submit, 'Saving…');
  try {
    if (kind === 'invite') {
      const signedIn = await api('POST', '/admin/api/invitations/accept', { token, password });
      pending = null;
      $('onetime-password').value = '';
      $('onetime-confirm').value = '';
      setAccount(signedIn);
      history.replaceState(null, '', '#/');
      await enterConsole();
    } else {
      await api('POST', '/admin/api/password-reset/confirm', { token, new_password: password });
      pending = null;
      history.replaceState(null, '', '#/');
      resetToSignIn('Your password was changed and every session signed out. Sign in with the new password.', 'info');
    }
  } catch (err) {
    // What was typed stays for another try (no answer, too many attempts, a password refused: the administrator
    // corrects it); it goes only with a link that no longer works, when there is nothing to send again.
    const detail = err instanceof ApiError ? err.details.find((d) => d?.path === 'password' || d?.path === 'new_password') : null;
    if (detail) {
      setFieldError('password', detail.message);
      $('onetime-password').focus();
    } else if (err instanceof ApiError && err.details.some((d) => d?.path === 'token')) {
      pending = null;
      $('onetime-password').value = '';
      $('onetime-confirm').value = '';
      show(
        $('onetime-error'),
        kind === 'invite'
          ? 'This invitation link no longer works: it was used, replaced by a newer invitation, or it expired after 72 hours. Ask an administrator to invite you again.'
          : 'This link no longer works: it was used, replaced by a newer one, or it expired after 1 hour. Ask for a new one from the sign-in page.',
      );
    } else {
      show($('onetime-error'), sentence(err.message));
    }
  } finally {
    setText(submit, PAGES[kind].button);
    if (pending === null) {
      submit.disabled = true; // the link no longer works: nothing to send again
      if (focusLost()) $('main').focus({ preventScroll: true });
    } else enable(submit);
  }
});

onReset(() => {
  $('onetime-password').value = '';
  $('onetime-confirm').value = '';
});
