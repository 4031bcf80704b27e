import { loadConfig } from '../../../src/config/index.js';

describe('mail settings', () => {
  it('have defaults: 20 attempts, 30 s doubling up to an hour, a 5 s poll, a 10 min expiry check', () => {
    expect(loadConfig({})).toMatchObject({
      smtpUrl: undefined,
      mailMaxAttempts: 20,
      mailRetryBaseSeconds: 30,
      mailRetryMaxSeconds: 3600,
      mailPollIntervalMs: 5000,
      expiryCheckIntervalMs: 600_000,
    });
  });

  it('read the environment, with fractions of a second for the backoff', () => {
    const config = loadConfig({
      SMTP_URL: 'smtp://user:pass@mail.example.com:587?requireTLS=true',
      MAIL_MAX_ATTEMPTS: '5',
      MAIL_RETRY_BASE_SECONDS: '0.5',
      MAIL_RETRY_MAX_SECONDS: '60',
      MAIL_POLL_INTERVAL_MS: '1000',
      EXPIRY_CHECK_INTERVAL_MS: '3600000',
    });
    expect(config).toMatchObject({
      smtpUrl: 'smtp://user:pass@mail.example.com:587?requireTLS=true',
      mailMaxAttempts: 5,
      mailRetryBaseSeconds: 0.5,
      mailRetryMaxSeconds: 60,
      mailPollIntervalMs: 1000,
      expiryCheckIntervalMs: 3_600_000,
    });
  });

  it('refuse bad values with the variable named', () => {
    expect(() => loadConfig({ SMTP_URL: 'smtp://' })).toThrow(/SMTP_URL: must be an smtp:\/\/ or smtps:\/\/ URL with a host/);
    expect(() => loadConfig({ SMTP_URL: 'http://mail.example.com' })).toThrow(/SMTP_URL/);
    expect(() => loadConfig({ MAIL_RETRY_BASE_SECONDS: 'soon' })).toThrow(/MAIL_RETRY_BASE_SECONDS: must be a number/);
    expect(() => loadConfig({ MAIL_MAX_ATTEMPTS: '0' })).toThrow(/MAIL_MAX_ATTEMPTS/);
    // SPEC: the expiry check runs at least hourly.
    expect(() => loadConfig({ EXPIRY_CHECK_INTERVAL_MS: '3600001' })).toThrow(/EXPIRY_CHECK_INTERVAL_MS/);
  });
});
