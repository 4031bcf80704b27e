// DOM and formatting helpers shared by every screen of the console. Every piece of data reaches the page as
// text (textContent, append(string), setAttribute), never as HTML: the page runs under Trusted Types with no
// policy, so an innerHTML assignment would throw anyway.

/**
 * Screens that are not on show are taken out of the document (see `parkView`), so that only the visible screen's
 * fields are in it: a label such as "Email" or "Password" then names one field, for assistive technology and for
 * anything that looks fields up by their label. Their elements stay reachable through `$`.
 */
const parked = new Map();

/** Takes a screen out of the document, leaving a placeholder where it was; `unparkView` puts it back. */
export function parkView(node) {
  if (!node.isConnected || parked.has(node)) return;
  const placeholder = document.createComment(`view ${node.id}`);
  node.replaceWith(placeholder);
  parked.set(node, placeholder);
}

/** Puts a screen taken out by `parkView` back where it was. */
export function unparkView(node) {
  const placeholder = parked.get(node);
  if (!placeholder) return;
  parked.delete(node);
  placeholder.replaceWith(node);
}

/**
 * Dialogs, like screens, are in the document only while open: a closed dialog's fields would otherwise share their
 * labels with the screen's ("Allowed addresses" in Generate and in the closed Edit dialog), for assistive technology
 * and for anything that finds a field by its label. Each `<dialog>` of the page is parked now and put back by
 * showModal (and parked again when it closes). Call once, after the screens' modules have wired their dialogs.
 */
export function parkClosedDialogs() {
  for (const dialog of document.querySelectorAll('dialog')) {
    const show = dialog.showModal.bind(dialog);
    dialog.showModal = () => {
      unparkView(dialog);
      show();
    };
    dialog.addEventListener('close', () => parkView(dialog));
    if (!dialog.open) parkView(dialog);
  }
}

/** The element with this id, on show or in a parked screen; throws when the page lacks it (a mistake in index.html). */
export const $ = (id) => {
  let node = document.getElementById(id);
  if (!node) {
    for (const root of parked.keys()) {
      node = root.id === id ? root : root.querySelector(`#${CSS.escape(id)}`);
      if (node) break;
    }
  }
  if (!node) throw new Error(`missing #${id}`);
  return node;
};

/** Builds an element; strings among the children become text nodes (never parsed as HTML). */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key.startsWith('on') && typeof value === 'function') node.addEventListener(key.slice(2), value);
    else node.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child !== undefined && child !== null && child !== false) node.append(child);
  }
  return node;
}

/**
 * A message with names in it, as a tagged template: named`Changes to “${name}” saved.` gives the text's parts, each
 * interpolated value in a <bdi> of its own, so a right-to-left (or mixed) name cannot reorder the sentence around it.
 * setText and show take it as they take a string; its textContent is the plain sentence.
 */
export function named(strings, ...values) {
  const parts = [];
  strings.forEach((text, i) => {
    if (text) parts.push(text);
    if (i < values.length) parts.push(el('bdi', {}, String(values[i])));
  });
  return parts;
}

/** Sets a node's text: a string (or nothing: empty), or the parts `named` made. */
export function setText(node, text) {
  if (Array.isArray(text)) node.replaceChildren(...text);
  else node.textContent = text ?? '';
}

export function show(node, text) {
  if (text !== undefined) setText(node, text);
  node.hidden = false;
}

export function hide(node) {
  node.hidden = true;
}

/** True when focus has fallen to the page's body: the focused control was disabled or taken out of the document. */
export function focusLost() {
  return !document.activeElement || document.activeElement === document.body;
}

/**
 * Enter in a field of a dialog's form (a text field, a checkbox, a switch) sends it with `primary` (its Save), not
 * with the form's first submit button, which browsers use for an implicit submission and which is Cancel in our
 * dialogs (what was typed or ticked was thrown away). Buttons and text areas keep their own Enter.
 */
export function enterSubmitsWith(form, primary) {
  form.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.key !== 'Enter' || event.isComposing || !(target instanceof HTMLInputElement)) return;
    if (['button', 'submit', 'reset', 'file'].includes(target.type)) return;
    event.preventDefault();
    if (!primary.disabled) form.requestSubmit(primary);
  });
}

/**
 * Enables a button that was disabled while its request ran, with `text` when given. A focused button that is
 * disabled drops the focus to the page's body: when nothing else took it meanwhile, it comes back to the button.
 */
export function enable(button, text) {
  button.disabled = false;
  if (text !== undefined) setText(button, text);
  if (focusLost()) button.focus();
}

const graphemes = new Intl.Segmenter(undefined, { granularity: 'grapheme' });

/** Characters as a reader counts them (grapheme clusters), as the API counts a token name's 64 (src/text.ts). */
export function characterCount(text, atMost = Infinity) {
  let n = 0;
  for (const _ of graphemes.segment(text)) if (++n > atMost) break; // long texts cost quadratic time: stop past the limit
  return n;
}

/** "must be in the future" → "Must be in the future." */
export function sentence(text) {
  const t = String(text ?? '').trim();
  if (!t) return '';
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

export const DAY_MS = 86_400_000;

export const isoDay = (ms) => new Date(ms).toISOString().slice(0, 10);

const dayFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric', timeZone: 'UTC' });
export const localDayFormat = new Intl.DateTimeFormat(undefined, { year: 'numeric', month: 'short', day: 'numeric' });
export const dateTimeFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });
const relative = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });

const expiryTimeFormat = new Intl.DateTimeFormat(undefined, {
  year: 'numeric',
  month: 'short',
  day: 'numeric',
  hour: 'numeric',
  minute: '2-digit',
  timeZoneName: 'short',
});

/**
 * Whether a token's `expires_at` (an instant) is the end of a UTC day, 23:59:59.999: how the API stores an expiry
 * given as a date (SPEC: "a date YYYY-MM-DD (valid through the end of that day, UTC)"). A date-time given with an
 * offset is any other instant.
 */
export function expiresAtEndOfDay(iso) {
  return (Date.parse(iso) + 1) % DAY_MS === 0;
}

/**
 * A token's expiry: the UTC day for a date-only expiry (or a `YYYY-MM-DD` day itself), else the date and time in
 * the browser's time zone, named.
 */
export function formatExpiry(iso) {
  if (/^\d{4}-\d{2}-\d{2}$/.test(iso) || expiresAtEndOfDay(iso)) return dayFormat.format(new Date(iso));
  return expiryTimeFormat.format(new Date(iso));
}

/**
 * Who created a token, as the list and the token view say it: "by EMAIL", or, with `created_by` null, what the
 * mails say (docs/mail.md): the CLI and a since-removed administrator look the same in the resource.
 */
export function createdByText(token) {
  const email = token.created_by?.email;
  if (email) return ['by ', ...breakableEmail(email)];
  return el('span', { title: 'Created from the command line, or by an administrator since removed' }, 'no administrator on record');
}

/** "3 minutes ago", "yesterday"; a full date and time beyond a month. */
export function formatAgo(iso) {
  const seconds = Math.round((Date.parse(iso) - Date.now()) / 1000);
  const abs = Math.abs(seconds);
  if (abs < 60) return relative.format(Math.trunc(seconds), 'second');
  if (abs < 3600) return relative.format(Math.round(seconds / 60), 'minute');
  if (abs < 86_400) return relative.format(Math.round(seconds / 3600), 'hour');
  if (abs < 30 * 86_400) return relative.format(Math.round(seconds / 86_400), 'day');
  return dateTimeFormat.format(new Date(iso));
}

/** A <time> with the machine-readable instant and the full date and time as its tooltip. */
export function timeEl(iso, text) {
  return el('time', { datetime: iso, title: dateTimeFormat.format(new Date(iso)) }, text);
}

/**
 * An email as text that may wrap before its "@" rather than inside a word, isolated (<bdi>) as every name the page
 * shows is: it reads in one visual order wherever it sits.
 */
export function breakableEmail(email) {
  const at = email.lastIndexOf('@');
  return [el('bdi', {}, ...(at > 0 ? [email.slice(0, at), el('wbr'), email.slice(at)] : [email]))];
}

/** A table cell with one wrapper inside, so a phone's one-card-per-row layout can label it. */
export function cell(label, cls, ...children) {
  return el('td', { 'data-label': label, class: cls }, el('div', { class: 'cell' }, ...children));
}

/** A whole number as typed, or the text itself for the API to name what is wrong with it. */
export const wholeNumberOf = (input) => (/^\d{1,9}$/.test(input.value.trim()) ? Number(input.value.trim()) : input.value.trim());

/** One checkbox of a service list (`.service-list`): its name and catalogue id; `value` is the id. */
export function serviceCheckbox(service, idPrefix, checked = false) {
  const id = `${idPrefix}-${service.id}`;
  return el(
    'li',
    {},
    el(
      'label',
      { for: id },
      el('input', { type: 'checkbox', id, value: service.id, checked }),
      el('span', {}, el('span', { class: 'service-name' }, service.name, ' ', el('span', { class: 'service-id' }, `(${service.id})`))),
    ),
  );
}

/** The ids of the checked boxes of a service list. */
export function checkedServices(list) {
  return [...list.querySelectorAll('input[type="checkbox"]:checked')].map((box) => box.value);
}

/** A row of a description list (`dl.facts`): a term and its value (text or nodes). */
export function fact(term, ...value) {
  return el('div', { class: 'fact' }, el('dt', {}, term), el('dd', {}, ...value));
}

/**
 * The error messages of a form's fields. `fields`: name → {input (or null), error (the <p class="field-error">)}.
 * `place(err, fieldOf)` puts each of an ApiError's `details` ({path, message}) at the field `fieldOf(path)` names
 * (by default the path's first segment), the first message per field, and returns the fields it marked.
 */
/**
 * An API field message in the words of the page: "must be null or a whole number from 1 to 1000000" (null is how
 * the API says "no limit", which the page offers as its own choice) reads "Enter a whole number from 1 to 1,000,000";
 * the organisation policy's refusals name the policy as the page does and the services by `serviceName(id)`
 * ("not in the allowed_services of this organisation: jobs (organisation policy)" reads "Not allowed by your
 * organisation's policy: Job API").
 */
export function plainFieldMessage(message, serviceName = (id) => id) {
  return String(message ?? '')
    .replace(/^must be at most (.+?) ahead \(max_lifetime_days\) \(organisation policy\)$/, "Choose a date at most $1 ahead (your organisation's policy)")
    .replace(/^not in the allowed_services of this organisation: (.+) \(organisation policy\)$/, (_, ids) =>
      `Not allowed by your organisation's policy: ${ids.split(', ').map(serviceName).join(', ')}`,
    )
    .replace(/^must be null or (.+)$/i, 'Enter $1')
    .replace(/\b(\d{5,})\b/g, (n) => Number(n).toLocaleString('en-GB'));
}

export function fieldErrors(fields) {
  const set = (field, message) => {
    const { input, error } = fields[field];
    if (message) show(error, sentence(plainFieldMessage(message)));
    else hide(error);
    if (input) {
      if (message) input.setAttribute('aria-invalid', 'true');
      else input.removeAttribute('aria-invalid');
    }
  };
  return {
    set,
    clear() {
      for (const field of Object.keys(fields)) set(field, '');
    },
    /** Puts each detail under its field (every problem of a field, in order: two bad addresses are both named). */
    place(details, fieldOf = (path) => String(path ?? '').split(/[.[]/)[0]) {
      const byField = new Map();
      for (const detail of Array.isArray(details) ? details : []) {
        const field = fieldOf(detail?.path);
        if (!field || !fields[field]) continue;
        const text = sentence(plainFieldMessage(detail.message));
        if (!byField.has(field)) byField.set(field, []);
        if (!byField.get(field).includes(text)) byField.get(field).push(text);
      }
      for (const [field, texts] of byField) set(field, texts.join(' '));
      return [...byField.keys()];
    },
  };
}

/** The entries of an address box: one per line (commas and spaces separate too), blanks dropped. */
export const addressesOf = (text) => text.split(/[\s,]+/).filter(Boolean);

/** An address error names the entry it is about (the API's path is `allowed_ips.<index>` into `ips`, as sent). */
export function namingEntries(details, ips) {
  return details.map((detail) => {
    const m = /^allowed_ips\.(\d+)$/.exec(String(detail?.path ?? ''));
    const entry = m ? ips?.[Number(m[1])] : undefined;
    return entry === undefined ? detail : { path: detail.path, message: `“${entry}”: ${detail.message}` };
  });
}

/**
 * Wires one of index.html's confirmation dialogs for a destructive action `NAME`: `<dialog id="NAME-dialog">` holding a
 * `<form method="dialog">` whose buttons are `#NAME-cancel` (value "cancel") and `#NAME-confirm` (value "confirm"),
 * and an error notice `#NAME-error`. Returns `{ask, close}`:
 * - `ask(subject, opener)` fills the dialog (`fill(subject)`) and shows it with the focus on Cancel;
 * - on confirm the button is disabled and reads `busy` while `run(subject)` sends the request; when it resolves, the
 *   dialog closes and `done(subject, result)` shows the outcome and places the focus;
 * - when `run` throws, `failed(err, subject)` answers either a message, shown in the dialog, which stays open, or
 *   `{after}`: the dialog closes (the subject is gone, the session ended) and `after()` says why;
 * - Cancel and Escape close it and give the focus back to `opener` (while it is still on the page);
 * - `close()` closes it without acting (the console's reset at sign-out).
 */
export function confirmDialog(id, { fill, busy, run, done, failed }) {
  const dialog = $(`${id}-dialog`);
  const confirm = $(`${id}-confirm`);
  const label = confirm.textContent;
  let current = null;
  dialog.querySelector('form').addEventListener('submit', async (event) => {
    if (event.submitter?.value !== 'confirm' || !current) return; // Cancel: the dialog closes by itself
    event.preventDefault(); // open until the server has answered
    const { subject } = current;
    confirm.disabled = true;
    setText(confirm, busy);
    let then;
    try {
      const result = await run(subject);
      then = () => done(subject, result);
    } catch (err) {
      const outcome = failed(err, subject);
      if (typeof outcome === 'string') {
        show($(`${id}-error`), sentence(outcome));
        enable(confirm, label);
        return;
      }
      then = outcome.after;
    }
    current = null;
    if (dialog.open) dialog.close('done');
    confirm.disabled = false;
    setText(confirm, label);
    await then();
  });
  dialog.addEventListener('close', () => {
    const opener = current?.opener;
    current = null;
    if ((dialog.returnValue === 'cancel' || dialog.returnValue === '') && opener?.isConnected) opener.focus();
  });
  return {
    ask(subject, opener) {
      current = { subject, opener };
      fill(subject);
      hide($(`${id}-error`));
      confirm.disabled = false;
      dialog.returnValue = '';
      dialog.showModal();
      $(`${id}-cancel`).focus();
    },
    close() {
      current = null;
      if (dialog.open) dialog.close('done');
    },
  };
}
