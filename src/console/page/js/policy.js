// The Policy screen (#/policy, SPEC "Organisation policy"): the organisation's limits on its own tokens, read with
// GET /admin/api/policy and saved whole with PUT.
import { api, ApiError, handleSessionEnd } from './api.js';
import { $, checkedServices, enable, fieldErrors, hide, sentence, serviceCheckbox, setText, show, wholeNumberOf as numberOf } from './dom.js';
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
const errors = fieldErrors(fields);

function clearErrors() {
  errors.clear();
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
    ...services.map((service) => serviceCheckbox(service, 'policy-service', policy.allowed_services.includes(service.id))),
  );
  dormantOn.checked = policy.revoke_dormant_after_days !== null;
  dormantDays.value = policy.revoke_dormant_after_days === null ? '' : String(policy.revoke_dormant_after_days);
  hourlyOn.checked = policy.default_max_tokens_per_hour !== null;
  hourly.value = policy.default_max_tokens_per_hour === null ? '' : String(policy.default_max_tokens_per_hour);
  syncToggles();
}

async function enterPolicy() {
  clearErrors();
  hide($('policy-flash'));
  showView('policy');
  // Nothing to edit or save until the current policy is in the form: typing would be overwritten, and saving the
  // empty form would only draw validation errors.
  form.inert = true;
  form.setAttribute('aria-busy', 'true');
  try {
    const [services, policy] = await Promise.all([api('GET', '/admin/api/services'), api('GET', '/admin/api/policy')]);
    render(Array.isArray(services?.items) ? services.items : [], policy);
    form.inert = false;
  } catch (err) {
    if (handleSessionEnd(err)) return;
    show($('policy-error'), `The policy could not be loaded. ${sentence(err.message)}`);
  } finally {
    form.removeAttribute('aria-busy');
  }
}

addRoute('policy', enterPolicy);

form.addEventListener('submit', async (event) => {
  event.preventDefault();
  clearErrors();
  hide($('policy-flash'));
  const body = {
    max_lifetime_days: numberOf(lifetime),
    allowed_services: checkedServices($('policy-service-list')),
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
    const placed = err instanceof ApiError ? errors.place(err.details, (path) => String(path ?? '').split('.')[0]) : [];
    if (placed.length) (fields[placed[0]].input ?? $('policy-service-list').querySelector('input') ?? form).focus();
    else show($('policy-error'), sentence(err.message));
  } finally {
    enable(submit, 'Save policy');
  }
});

onReset(() => {
  clearErrors();
  hide($('policy-flash'));
  form.reset();
  $('policy-service-list').replaceChildren();
});
