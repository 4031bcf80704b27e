// The Policy screen (#/policy, SPEC "Organisation policy"): the organisation's limits on its own tokens, read with
// GET /admin/api/policy and saved whole with PUT.
import { api, ApiError, handleSessionEnd } from './api.js';
import { $, el, hide, sentence, setText, show } from './dom.js';
import { addRoute, addView, onReset, showView } from './shell.js';

addView('policy', $('policy-view'), { signedIn: true });

const serverMaxLifetime = Number(document.querySelector('meta[name="sat-max-token-lifetime-days"]')?.content) || 366;
const form = $('policy-form');
const lifetime = $('policy-lifetime');
const dormantOn = $('policy-dormant-on');
const dormantDays = $('policy-dormant-days');
const hourlyOn = $('policy-hourly-on');
const hourly = $('policy-hourly');

const fields = {
  max_lifetime_days: { input: lifetime, error: $('policy-lifetime-error') },
  allowed_services: { input: null, error: $('policy-services-error') },
  revoke_dormant_after_days: { input: dormantDays, error: $('policy-dormant-error') },
  default_max_tokens_per_hour: { input: hourly, error: $('policy-hourly-error') },
};

function setFieldError(field, message) {
  const { input, error } = fields[field];
  if (message) show(error, sentence(message));
  else hide(error);
  if (input) {
    if (message) input.setAttribute('aria-invalid', 'true');
    else input.removeAttribute('aria-invalid');
  }
}

function clearErrors() {
  for (const field of Object.keys(fields)) setFieldError(field, '');
  hide($('policy-error'));
}

function syncToggles() {
  dormantDays.disabled = !dormantOn.checked;
  hourly.disabled = !hourlyOn.checked;
}
dormantOn.addEventListener('change', () => {
  syncToggles();
  if (dormantOn.checked && !dormantDays.value) dormantDays.value = '90';
});
hourlyOn.addEventListener('change', () => {
  syncToggles();
  if (hourlyOn.checked && !hourly.value) hourly.value = '1000';
});

function render(services, policy) {
  lifetime.max = String(serverMaxLifetime);
  lifetime.value = String(policy.max_lifetime_days);
  setText($('policy-lifetime-hint'), `The furthest expiry date a new token may have: 1 to ${serverMaxLifetime} days ahead.`);
  $('policy-service-list').replaceChildren(
    ...services.map((service) => {
      const id = `policy-service-${service.id}`;
      return el(
        'li',
        {},
        el(
          'label',
          { for: id },
          el('input', { type: 'checkbox', id, value: service.id, checked: policy.allowed_services.includes(service.id) }),
          el('span', {}, el('span', { class: 'service-name' }, service.name, ' ', el('span', { class: 'service-id' }, `(${service.id})`))),
        ),
      );
    }),
  );
  dormantOn.checked = policy.revoke_dormant_after_days !== null;
  dormantDays.value = policy.revoke_dormant_after_days === null ? '' : String(policy.revoke_dormant_after_days);
  hourlyOn.checked = policy.default_max_tokens_per_hour !== null;
  hourly.value = policy.default_max_tokens_per_hour === null ? '' : String(policy.default_max_tokens_per_hour);
  syncToggles();
}

/** A whole number as typed, or the text itself for the API to name what is wrong with it. */
const numberOf = (input) => (/^\d{1,9}$/.test(input.value.trim()) ? Number(input.value.trim()) : input.value.trim());

async function enterPolicy() {
  clearErrors();
  hide($('policy-flash'));
  showView('policy');
  try {
    const [services, policy] = await Promise.all([api('GET', '/admin/api/services'), api('GET', '/admin/api/policy')]);
    render(Array.isArray(services?.items) ? services.items : [], policy);
  } catch (err) {
    if (handleSessionEnd(err)) return;
    show($('policy-error'), `The policy could not be loaded. ${sentence(err.message)}`);
  }
}

addRoute('policy', enterPolicy);

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  hide($('policy-flash'));
  const body = {
    max_lifetime_days: numberOf(lifetime),
    allowed_services: [...$('policy-service-list').querySelectorAll('input:checked')].map((box) => box.value),
    revoke_dormant_after_days: dormantOn.checked ? numberOf(dormantDays) : null,
    default_max_tokens_per_hour: hourlyOn.checked ? numberOf(hourly) : null,
  };
  const submit = $('policy-submit');
  submit.disabled = true;
  setText(submit, 'Saving…');
  try {
    const saved = await api('PUT', '/admin/api/policy', body);
    const services = [...$('policy-service-list').querySelectorAll('li')].map((li) => ({
      id: li.querySelector('input').value,
      name: li.querySelector('.service-name').firstChild.textContent.trim(),
    }));
    render(services, saved);
    show($('policy-flash'), 'Policy saved. It applies to tokens generated or changed from now on.');
  } catch (err) {
    if (handleSessionEnd(err)) return;
    const placed = [];
    if (err instanceof ApiError) {
      for (const detail of err.details) {
        const field = String(detail?.path ?? '').split('.')[0];
        if (fields[field] && !placed.includes(field)) {
          setFieldError(field, detail.message);
          placed.push(field);
        }
      }
    }
    if (placed.length) (fields[placed[0]].input ?? $('policy-service-list').querySelector('input') ?? form).focus();
    else show($('policy-error'), sentence(err.message));
  } finally {
    submit.disabled = false;
    setText(submit, 'Save policy');
  }
});

onReset(() => {
  clearErrors();
  hide($('policy-flash'));
  form.reset();
  $('policy-service-list').replaceChildren();
});
