// The Edit dialog of a token's view: name, services, allowed addresses and the hourly access-token limit, sent as
// PATCH /admin/api/tokens/{id} with only the fields that changed (SPEC "Network and rate limits per token"). The
// API's validation errors ({error, message, details: [{path, message}]}) show next to their fields; nothing is
// changed unless the API accepted the whole request. Keys and DPoP stay in the Credentials dialog (tokens.js).
import { api, ApiError, handleSessionEnd } from './api.js';
import {
  $,
  addressesOf,
  checkedServices,
  el,
  enable,
  enterSubmitsWith,
  fieldErrors,
  hide,
  namingEntries,
  sentence,
  serviceCheckbox,
  setText,
  show,
  wholeNumberOf,
  named,
} from './dom.js';
import { onReset } from './shell.js';
import { showListWith } from './tokens.js';

const dialog = $('edit-dialog');
const form = $('edit-form');
enterSubmitsWith(form, $('edit-save'));
const nameInput = $('edit-name');
const serviceList = $('edit-service-list');
const ipsInput = $('edit-ips');
const hourlyOn = $('edit-hourly-on');
const hourly = $('edit-hourly');

const fields = {
  name: { input: nameInput, error: $('edit-name-error') },
  services: { input: null, error: $('edit-services-error') },
  allowed_ips: { input: ipsInput, error: $('edit-ips-error') },
  max_tokens_per_hour: { input: hourly, error: $('edit-hourly-error') },
};
const errors = fieldErrors(fields);

/** The token being edited, the button that opened the dialog, and what to do with the saved token. */
let editing = null;

function syncHourly() {
  hourly.disabled = !hourlyOn.checked;
}

hourlyOn.addEventListener('change', () => {
  syncHourly();
  if (hourlyOn.checked && !hourly.value) hourly.value = '1000';
  if (!hourlyOn.checked) errors.set('max_tokens_per_hour', '');
});

const sameList = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);
const sameSet = (a, b) => a.length === b.length && a.every((x) => b.includes(x));

/**
 * Opens the dialog on `token` (the API's token resource); `services` is the catalogue ([{id, name}]); `saved(token)`
 * runs with the API's answer after a successful save.
 */
export async function openEdit(token, services, opener, saved) {
  // The organisation's policy, read as the dialog opens: a service it leaves out cannot be added (the API would
  // refuse it). A failure to read it offers every service, and the API says why a choice is refused.
  let allowed = null;
  try {
    const policy = await api('GET', '/admin/api/policy');
    if (Array.isArray(policy?.allowed_services)) allowed = policy.allowed_services;
  } catch (err) {
    if (handleSessionEnd(err)) return;
  }
  editing = { token, opener, saved };
  setText($('edit-token-name'), token.name);
  nameInput.value = token.name;
  // A service the catalogue no longer lists stays visible (and checked) so that saving does not drop it unseen.
  const known = services.map((s) => s.id);
  const listed = [...services, ...token.services.filter((id) => !known.includes(id)).map((id) => ({ id, name: id }))];
  serviceList.replaceChildren(
    ...listed.map((s) => {
      const has = token.services.includes(s.id);
      const item = serviceCheckbox(s, 'edit-service', has);
      if (allowed !== null && !allowed.includes(s.id)) {
        // Not allowed by the policy: one the token does not have cannot be added; one it has may only be removed.
        item.classList.add('not-allowed');
        if (!has) item.querySelector('input').disabled = true;
        item
          .querySelector('label > span')
          .append(
            el('span', { class: 'service-policy' }, has ? "Not allowed by your organisation's policy any more: it can only be removed" : "Not allowed by your organisation's policy"),
          );
      }
      return item;
    }),
  );
  ipsInput.value = (token.allowed_ips ?? []).join('\n');
  hourlyOn.checked = token.max_tokens_per_hour !== null && token.max_tokens_per_hour !== undefined;
  hourly.value = hourlyOn.checked ? String(token.max_tokens_per_hour) : '';
  syncHourly();
  errors.clear();
  hide($('edit-error'));
  $('edit-save').disabled = false;
  dialog.returnValue = '';
  dialog.showModal();
  nameInput.focus();
}

/** What differs from the token as loaded: an unchanged field is not sent (nor checked again against the policy). */
function changes(token) {
  const body = {};
  const name = nameInput.value.trim();
  if (name !== token.name) body.name = name;
  const services = checkedServices(serviceList);
  if (!sameSet(services, token.services)) body.services = services;
  const ips = addressesOf(ipsInput.value);
  if (!sameList(ips, token.allowed_ips ?? [])) body.allowed_ips = ips;
  const max = hourlyOn.checked ? wholeNumberOf(hourly) : null;
  if (max !== (token.max_tokens_per_hour ?? null)) body.max_tokens_per_hour = max;
  return body;
}

function focusField(field) {
  if (field === 'services') (serviceList.querySelector('input') ?? form).focus();
  else fields[field].input.focus();
}

form.addEventListener('submit', async (event) => {
  const choice = event.submitter?.value;
  if (choice !== 'save' || !editing) return; // Cancel: the dialog closes by itself
  event.preventDefault();
  errors.clear();
  hide($('edit-error'));
  const { token } = editing;
  const body = changes(token);
  if (!Object.keys(body).length) {
    dialog.close('unchanged');
    return;
  }
  const save = $('edit-save');
  save.disabled = true;
  setText(save, 'Saving…');
  try {
    const updated = await api('PATCH', `/admin/api/tokens/${encodeURIComponent(token.id)}`, body);
    const { saved } = editing;
    editing = null;
    dialog.close('saved');
    await saved(updated);
  } catch (err) {
    if (handleSessionEnd(err)) return;
    if (err instanceof ApiError && err.code === 'not_found') {
      // Revoked meanwhile (another window, a colleague, the policy): nothing to edit any more.
      dialog.close('gone');
      showListWith(named`“${token.name}” no longer exists: it was revoked (perhaps in another window), so nothing was changed.`);
      return;
    }
    const placed = err instanceof ApiError ? errors.place(namingEntries(err.details, body.allowed_ips)) : [];
    if (err instanceof ApiError && err.code === 'name_taken' && !placed.includes('name')) {
      errors.set('name', err.message);
      placed.push('name');
    }
    if (placed.length) focusField(placed[0]);
    else show($('edit-error'), sentence(err.message));
  } finally {
    enable(save, 'Save changes');
  }
});

dialog.addEventListener('close', () => {
  const opener = editing?.opener;
  editing = null;
  if (dialog.returnValue !== 'saved' && opener?.isConnected) opener.focus();
});

onReset(() => {
  editing = null;
  if (dialog.open) dialog.close();
  serviceList.replaceChildren();
  form.reset();
});
