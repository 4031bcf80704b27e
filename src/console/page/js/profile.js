// The Profile page (#/profile): change password, and the sessions of this administrator with revoke.
import { api, ApiError, handleSessionEnd } from './api.js';
import { $, cell, confirmDialog, dateTimeFormat, el, enable, fieldErrors, formatAgo, hide, sentence, setText, show, timeEl } from './dom.js';
import { passwordProblems } from './onetime.js';
import { addRoute, addView, currentAccount, onReset, showView } from './shell.js';

addView('profile', $('profile-view'), { signedIn: true });

async function enterProfile() {
  const me = currentAccount();
  setText($('profile-email'), me?.email ?? '');
  setText($('profile-org'), me?.organisation?.name ?? '');
  $('password-username').value = me?.email ?? '';
  hide($('profile-flash'));
  clearErrors();
  showView('profile');
  await loadSessions();
}

addRoute('profile', enterProfile);

// ---------- change password ----------

const fields = {
  current_password: { input: $('current-password'), error: $('current-password-error') },
  new_password: { input: $('new-password'), error: $('new-password-error') },
  confirm: { input: $('confirm-password'), error: $('confirm-password-error') },
};

const fieldMessages = fieldErrors(fields);
const setFieldError = fieldMessages.set;

function clearErrors() {
  fieldMessages.clear();
  hide($('password-error'));
}

function clearPasswords() {
  for (const { input } of Object.values(fields)) input.value = '';
}

$('password-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  hide($('profile-flash'));
  const current = fields.current_password.input.value;
  const next = fields.new_password.input.value;
  const problems = passwordProblems(next, fields.confirm.input.value);
  const errors = {};
  if (!current) errors.current_password = 'Enter your current password.';
  if (problems.password) errors.new_password = problems.password;
  if (problems.confirm) errors.confirm = problems.confirm;
  const invalid = Object.keys(fields).filter((f) => errors[f]);
  if (invalid.length) {
    for (const field of invalid) setFieldError(field, errors[field]);
    fields[invalid[0]].input.focus();
    return;
  }
  const submit = $('password-submit');
  submit.disabled = true;
  setText(submit, 'Changing…');
  try {
    await api('POST', '/admin/api/me/password', { current_password: current, new_password: next });
    clearPasswords();
    show($('profile-flash'), 'Your password was changed. Every other session was signed out, and a mail tells you about the change.');
    await loadSessions();
  } catch (err) {
    if (handleSessionEnd(err)) return;
    const placed = [];
    if (err instanceof ApiError) {
      for (const detail of err.details) {
        if (fields[detail?.path] && !placed.includes(detail.path)) {
          setFieldError(detail.path, detail.message);
          placed.push(detail.path);
        }
      }
    }
    if (placed.length) fields[placed[0]].input.focus();
    else show($('password-error'), sentence(err.message));
    // A wrong current password is typed again; after any other failure what was typed stays for another try.
    if (placed.includes('current_password')) fields.current_password.input.value = '';
  } finally {
    enable(submit, 'Change password');
  }
});

// ---------- sessions ----------

/** A readable name for a User-Agent: "Chrome on Linux"; the full string stays in the tooltip. */
export function browserName(userAgent) {
  const ua = String(userAgent ?? '');
  if (!ua) return 'Unknown client';
  const browser =
    /Edg\//.test(ua) ? 'Edge'
    : /Firefox\//.test(ua) ? 'Firefox'
    : /(Chrome|Chromium)\//.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) ? 'Safari'
    : /^curl\//.test(ua) ? 'curl'
    : ua.split(/[\s/]/)[0] || 'Unknown client';
  const system =
    /Windows/.test(ua) ? 'Windows'
    : /Android/.test(ua) ? 'Android'
    : /iPhone|iPad/.test(ua) ? 'iOS'
    : /Mac OS X|Macintosh/.test(ua) ? 'macOS'
    : /Linux|X11/.test(ua) ? 'Linux'
    : '';
  return system ? `${browser} on ${system}` : browser;
}

let sessionsSeq = 0;
/** The other sessions listed (not this one), for the confirmation of "Sign out all other sessions". */
let otherSessions = [];

async function loadSessions() {
  const seq = ++sessionsSeq;
  let page;
  try {
    page = await api('GET', '/admin/api/me/sessions');
  } catch (err) {
    if (seq !== sessionsSeq || handleSessionEnd(err)) return;
    show($('sessions-error'), `Your sessions could not be loaded. ${sentence(err.message)}`);
    return;
  }
  if (seq !== sessionsSeq) return;
  hide($('sessions-error'));
  const items = Array.isArray(page?.items) ? page.items : [];
  $('session-rows').replaceChildren(...items.map(sessionRow));
  otherSessions = items.filter((s) => !s.current);
  $('revoke-others').disabled = otherSessions.length === 0;
}

function sessionRow(s) {
  const name = browserName(s.user_agent);
  return el(
    'tr',
    { 'data-session-id': s.id },
    cell(
      'Browser',
      'col-name',
      el('span', { class: 'token-name', title: s.user_agent ?? '' }, name),
      s.current ? el('span', { class: 'status current' }, 'This session') : null,
    ),
    cell('IP address', 'col-client', el('code', {}, s.ip ?? 'unknown')),
    cell('Signed in', 'col-created', timeEl(s.created_at, dateTimeFormat.format(new Date(s.created_at)))),
    cell('Last active', 'col-used', timeEl(s.last_seen_at, formatAgo(s.last_seen_at))),
    cell(
      '',
      'col-actions',
      s.current
        ? null
        : el(
            'button',
            {
              type: 'button',
              class: 'button danger-outline small',
              'aria-label': `Sign out the session of ${name} from ${s.ip ?? 'an unknown address'}`,
              onclick: (event) => revokeSessionDialog.ask(s, event.currentTarget),
            },
            'Sign out',
          ),
    ),
  );
}

/** After a session was signed out (or was gone already): the list again, the focus where the row's button was. */
async function afterSessionRevoked() {
  await loadSessions();
  if ($('revoke-others').disabled) $('main').focus({ preventScroll: true }); // that was the last other session
  else $('revoke-others').focus();
}

/**
 * A row's "Sign out" ends that browser's or script's session at once: it asks first, as every removal does (focus on
 * Cancel; Cancel and Escape give the focus back to the row's button). A session already gone just leaves the list.
 */
const revokeSessionDialog = confirmDialog('revoke-session', {
  fill(s) {
    setText(
      $('revoke-session-text'),
      `${browserName(s.user_agent)} from ${s.ip ?? 'an unknown address'} is signed out at once and must sign in again. This session stays signed in.`,
    );
  },
  busy: 'Signing out…',
  run: (s) => api('POST', `/admin/api/me/sessions/${encodeURIComponent(s.id)}/revoke`),
  async done(s) {
    hide($('sessions-error'));
    show($('profile-flash'), `The session of ${browserName(s.user_agent)} from ${s.ip ?? 'an unknown address'} was signed out.`);
    await afterSessionRevoked();
  },
  failed(err) {
    if (handleSessionEnd(err)) return { after: () => {} };
    if (err instanceof ApiError && err.status === 404) return { after: afterSessionRevoked };
    return err.message;
  },
});

/**
 * "Sign out all other sessions" ends every other browser and script signed in as this administrator at once: it asks
 * first, as every removal does (focus on Cancel; Cancel and Escape give the focus back to the button).
 */
const revokeOthersDialog = confirmDialog('revoke-others', {
  fill(count) {
    setText(
      $('revoke-others-text'),
      `${count === 1 ? '1 other session is' : `${count} other sessions are`} signed out at once: every other browser or script signed in as you must sign in again. This session stays signed in.`,
    );
  },
  busy: 'Signing out…',
  run: () => api('POST', '/admin/api/me/sessions/revoke-others'),
  async done(_count, result) {
    const n = Number(result?.revoked ?? 0);
    hide($('sessions-error'));
    show($('profile-flash'), n === 1 ? 'Signed out 1 other session.' : `Signed out ${n} other sessions.`);
    await afterSessionRevoked();
  },
  failed(err) {
    if (handleSessionEnd(err)) return { after: () => {} };
    return err.message;
  },
});

$('revoke-others').addEventListener('click', (event) => revokeOthersDialog.ask(otherSessions.length, event.currentTarget));

onReset(() => {
  revokeSessionDialog.close();
  revokeOthersDialog.close();
  otherSessions = [];
  sessionsSeq += 1;
  clearPasswords();
  clearErrors();
  $('session-rows').replaceChildren();
  hide($('profile-flash'));
});
