// The SMTP client's waits against RFC 5321 and against the claim on the mail being sent (a relay that took 40 s to
// acknowledge DATA got each message three times: the client gave up at 30 s and sent it again).
import { HEARTBEAT_MS, LEASE_MS } from '../../../src/mail/delivery.js';
import { SMTP_TIMEOUTS } from '../../../src/mail/transport.js';

describe('SMTP timeouts', () => {
  it('give the relay the 10 minutes RFC 5321 §4.5.3.2.6 allows to acknowledge the end of DATA', () => {
    expect(SMTP_TIMEOUTS.socketTimeout).toBeGreaterThanOrEqual(10 * 60_000);
  });

  it('give the connection and the greeting at least a minute (a timeout there only delays the mail)', () => {
    expect(SMTP_TIMEOUTS.connectionTimeout).toBeGreaterThanOrEqual(60_000);
    expect(SMTP_TIMEOUTS.greetingTimeout).toBeGreaterThanOrEqual(60_000);
  });

  it('are covered by the claim: the lease is renewed at least twice per lease, whatever an attempt takes', () => {
    // The lease is short (a crashed sender's mail is due again within seconds) and does not have to outlast an
    // attempt: deliverDueMail renews it every HEARTBEAT_MS while the attempt lasts (test/integration/mail-permanent).
    expect(HEARTBEAT_MS * 2).toBeLessThanOrEqual(LEASE_MS);
  });
});
