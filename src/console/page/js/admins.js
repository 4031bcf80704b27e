// The Administrators page (#/admins): the organisation's administrators, invite by email, remove; the pending
// invitations (not accepted, not expired) with Withdraw.
import { api, ApiError, handleSessionEnd } from './api.js';
import { $, breakableEmail, cell, confirmDialog, dateTimeFormat, el, enable, formatAgo, hide, localDayFormat, named, sentence, setText, show, timeEl } from './dom.js';
import { resetToSignIn } from './login.js';
import { addRoute, addView, currentAccount, onReset, showView } from './shell.js';

addView('admins', $('admins-view'), { signedIn: true });

async function enterAdmins() {
  hide($('admins-flash'));
  clearInviteErrors();
  showView('admins');
  await Promise.all([loadAdmins(), loadInvitations()]);
}

addRoute('admins', enterAdmins);

let listSeq = 0;

async function loadAdmins() {
  const seq = ++listSeq;
  let page;
  try {
    page = await api('GET', '/admin/api/admins');
  } catch (err) {
    if (seq !== listSeq || handleSessionEnd(err)) return;
    show($('admins-error'), `The administrators could not be loaded. ${sentence(err.message)}`);
    return;
  }
  if (seq !== listSeq) return;
  hide($('admins-error'));
  const items = Array.isArray(page?.items) ? page.items : [];
  $('admin-rows').replaceChildren(...items.map((a) => adminRow(a, items.length)));
}

function adminRow(admin, count) {
  const me = currentAccount()?.id === admin.id;
  return el(
    'tr',
    { 'data-admin-id': admin.id },
    cell('Email', 'col-name', el('span', { class: 'token-name' }, ...breakableEmail(admin.email)), me ? el('span', { class: 'status current' }, 'You') : null),
    cell('Added', 'col-created', timeEl(admin.created_at, localDayFormat.format(new Date(admin.created_at)))),
    cell(
      'Last sign-in',
      'col-used',
      admin.last_sign_in_at ? timeEl(admin.last_sign_in_at, formatAgo(admin.last_sign_in_at)) : el('span', { class: 'muted' }, 'Never'),
    ),
    cell(
      '',
      'col-actions',
      count > 1
        ? el(
            'button',
            {
              type: 'button',
              class: 'button danger-outline small',
              'aria-label': `Remove ${admin.email}`,
              onclick: (event) => askRemove(admin, event.currentTarget),
            },
            'Remove',
          )
        : el('span', { class: 'muted small' }, 'The last administrator stays'),
    ),
  );
}

// ---------- pending invitations ----------

let invitationsSeq = 0;
/** The addresses of the pending invitations listed (an invitation sent again replaces one of them). */
let pendingInvitations = [];

async function loadInvitations() {
  const seq = ++invitationsSeq;
  let page;
  try {
    page = await api('GET', '/admin/api/invitations');
  } catch (err) {
    if (seq !== invitationsSeq || handleSessionEnd(err)) return;
    show($('invitations-error'), `The pending invitations could not be loaded. ${sentence(err.message)}`);
    return;
  }
  if (seq !== invitationsSeq) return;
  hide($('invitations-error'));
  const items = Array.isArray(page?.items) ? page.items : [];
  pendingInvitations = items.map((invitation) => String(invitation.email));
  $('invitation-rows').replaceChildren(...items.map(invitationRow));
  $('invitations-wrap').hidden = items.length === 0;
  $('invitations-empty').hidden = items.length !== 0;
}

function invitationRow(invitation) {
  const by = invitation.invited_by;
  return el(
    'tr',
    { 'data-invitation-id': invitation.id },
    cell('Email', 'col-name', el('span', { class: 'token-name' }, ...breakableEmail(invitation.email))),
    cell(
      'Invited by',
      'col-created',
      by ? el('span', {}, ...breakableEmail(by.email)) : el('span', { class: 'muted' }, 'the sat CLI'),
      timeEl(invitation.created_at, formatAgo(invitation.created_at)),
    ),
    cell('Link expires', 'col-expires', timeEl(invitation.expires_at, dateTimeFormat.format(new Date(invitation.expires_at)))),
    cell(
      '',
      'col-actions',
      el(
        'button',
        {
          type: 'button',
          class: 'button danger-outline small',
          'aria-label': `Withdraw the invitation to ${invitation.email}`,
          onclick: (event) => askWithdraw(invitation, event.currentTarget),
        },
        'Withdraw',
      ),
    ),
  );
}

/** Withdraw: the invitation's link stops working; the lists catch up when it was no longer pending. */
const withdrawDialog = confirmDialog('withdraw-invitation', {
  fill: (invitation) => setText($('withdraw-invitation-email'), invitation.email),
  busy: 'Withdrawing…',
  run: (invitation) => api('DELETE', `/admin/api/invitations/${encodeURIComponent(invitation.id)}`),
  async done(invitation) {
    show($('admins-flash'), named`The invitation to ${invitation.email} was withdrawn: its link no longer works.`);
    await loadInvitations();
    $('invite-email').focus(); // the row and its button are gone: ready to invite the right address
  },
  failed(err, invitation) {
    if (handleSessionEnd(err)) return { after: () => {} };
    if (err instanceof ApiError && err.status === 404) {
      // Accepted, withdrawn in another window, or expired meanwhile: both lists catch up.
      return {
        async after() {
          show($('admins-flash'), named`The invitation to ${invitation.email} is no longer pending: it was accepted, withdrawn or has expired.`);
          await Promise.all([loadAdmins(), loadInvitations()]);
          $('invite-email').focus();
        },
      };
    }
    return err.message;
  },
});
const askWithdraw = (invitation, opener) => withdrawDialog.ask(invitation, opener);

// ---------- invite ----------

function setInviteError(message) {
  const input = $('invite-email');
  if (message) {
    show($('invite-email-error'), sentence(message));
    input.setAttribute('aria-invalid', 'true');
  } else {
    hide($('invite-email-error'));
    input.removeAttribute('aria-invalid');
  }
}

function clearInviteErrors() {
  setInviteError('');
  hide($('invite-error'));
}

$('invite-form').addEventListener('submit', async (event) => {
  event.preventDefault();
  clearInviteErrors();
  hide($('admins-flash'));
  const email = $('invite-email').value.trim();
  if (!email || !/^[^\s@]+@[^\s@]+$/.test(email)) {
    setInviteError(email ? 'Enter a whole email address, like name@example.com.' : 'Enter the email address to invite.');
    $('invite-email').focus();
    return;
  }
  const submit = $('invite-submit');
  submit.disabled = true;
  setText(submit, 'Sending…');
  try {
    const invitation = await api('POST', '/admin/api/admins', { email });
    $('invite-email').value = '';
    // Inviting an address again replaces its pending invitation: the earlier mail's link stops working.
    const again = pendingInvitations.some((pending) => pending.toLowerCase() === String(invitation?.email ?? email).toLowerCase());
    const to = invitation?.email ?? email;
    show(
      $('admins-flash'),
      again
        ? named`Invitation sent to ${to}. The link in it works once, for 72 hours. The link of the earlier invitation no longer works.`
        : named`Invitation sent to ${to}. The link in it works once, for 72 hours.`,
    );
    await Promise.all([loadAdmins(), loadInvitations()]);
    $('invite-email').focus(); // ready for the next address
  } catch (err) {
    if (handleSessionEnd(err)) return;
    const detail = err instanceof ApiError ? err.details.find((d) => d?.path === 'email') : null;
    // The address stays as typed: the message does not start with it, so nothing capitalises it.
    if (err instanceof ApiError && err.code === 'admin_exists') setInviteError(`This address is already an administrator: ${email}.`);
    else if (detail) setInviteError(detail.message);
    else show($('invite-error'), sentence(err.message));
    $('invite-email').focus();
  } finally {
    enable(submit, 'Send invitation');
  }
});

// ---------- remove ----------

/** Remove: the administrator is signed out at once; removing oneself ends this page's session. */
const removeDialog = confirmDialog('remove-admin', {
  // Removing oneself is said in so many words: the row's "You" badge is easy to miss in a dialog about an address.
  fill(admin) {
    const self = currentAccount()?.id === admin.id;
    setText($('remove-admin-email'), self ? named`your own account (${admin.email})` : named`${admin.email}`);
    setText(
      $('remove-admin-text'),
      self
        ? 'You are signed out at once and can no longer sign in: another administrator would have to invite you again. Tokens you generated keep working.'
        : 'They are signed out at once and can no longer sign in. Tokens they generated keep working.',
    );
  },
  busy: 'Removing…',
  run: (admin) => api('DELETE', `/admin/api/admins/${encodeURIComponent(admin.id)}`),
  async done(admin) {
    if (currentAccount()?.id === admin.id) {
      resetToSignIn('You removed your own administrator account.', 'info');
      return;
    }
    show($('admins-flash'), named`${admin.email} was removed and signed out.`);
    await Promise.all([loadAdmins(), loadInvitations()]); // the invitations they sent went with them
    $('invite-email').focus();
  },
  failed(err, admin) {
    if (handleSessionEnd(err)) return { after: () => {} };
    if (err instanceof ApiError && err.status === 404) {
      return {
        async after() {
          show($('admins-flash'), named`${admin.email} was already removed.`);
          await loadAdmins();
        },
      };
    }
    // 409 last_admin: the others were removed elsewhere meanwhile; the list catches up behind the dialog.
    if (err instanceof ApiError && err.status === 409) void loadAdmins();
    return err.message;
  },
});
const askRemove = (admin, opener) => removeDialog.ask(admin, opener);

onReset(() => {
  listSeq += 1;
  invitationsSeq += 1;
  pendingInvitations = [];
  removeDialog.close();
  withdrawDialog.close();
  $('admin-rows').replaceChildren();
  $('invitation-rows').replaceChildren();
  hide($('invitations-wrap'));
  hide($('invitations-empty'));
  hide($('invitations-error'));
  $('invite-email').value = '';
  clearInviteErrors();
  hide($('admins-flash'));
});
