// src/oauth/request-url.ts: which request URLs name this server (RFC 7523 §3 aud, RFC 9449 §4.3 htu), and htu's
// normal form (RFC 3986 §6.2.2).
import { normalHtu, requestUrlIsOurs } from '../../../src/oauth/request-url.js';

const ctx = (href: string, localAddress?: string) => ({ href, req: { socket: { localAddress } } });

describe('requestUrlIsOurs', () => {
  const issuer = 'https://auth.example.com/sat';

  it("takes ISSUER's host name (any port: a load balancer's), a loopback name, and the address the connection reached", () => {
    expect(requestUrlIsOurs(ctx('https://AUTH.example.com/token', '10.0.0.5'), issuer)).toBe(true);
    expect(requestUrlIsOurs(ctx('http://auth.example.com:8080/token', '10.0.0.5'), issuer)).toBe(true);
    for (const href of ['http://localhost:7160/token', 'http://app.localhost/token', 'http://127.0.0.1:7160/token', 'http://127.1.2.3/token', 'http://[::1]:7160/token']) {
      expect({ href, ours: requestUrlIsOurs(ctx(href, '10.0.0.5'), issuer) }).toEqual({ href, ours: true });
    }
    expect(requestUrlIsOurs(ctx('http://10.0.0.5:8080/token', '10.0.0.5'), issuer)).toBe(true);
    expect(requestUrlIsOurs(ctx('http://10.0.0.5:8080/token', '::ffff:10.0.0.5'), issuer)).toBe(true); // a dual-stack socket
    expect(requestUrlIsOurs(ctx('http://[2001:db8::5]/token', '2001:db8:0:0::5'), issuer)).toBe(true);
  });

  it('refuses any other name: another host, a sub- or look-alike domain, an address the connection did not reach', () => {
    for (const href of [
      'http://evil.example/token',
      'https://auth.example.com.evil.example/token',
      'https://sub.auth.example.com/token',
      'http://10.0.0.6/token',
      'http://0x0a.0.0.6/token', // WHATWG URL spells it 10.0.0.6
      'http://[2001:db8::6]/token',
      'not a url',
    ]) {
      expect({ href, ours: requestUrlIsOurs(ctx(href, '10.0.0.5'), issuer) }).toEqual({ href, ours: false });
    }
    expect(requestUrlIsOurs(ctx('http://10.0.0.5/token'), issuer)).toBe(false); // no socket address known
  });
});

describe('normalHtu', () => {
  it('drops query and fragment, decodes percent-encoded unreserved characters, upper-cases other escapes', () => {
    expect(normalHtu('HTTPS://Auth.Example.com:443/%74oken?x=1#f')).toBe('https://auth.example.com/token');
    expect(normalHtu('https://a.example/sat/%7e%2D%5f%2e/x')).toBe('https://a.example/sat/~-_./x');
    expect(normalHtu('https://a.example/a%2fb%3a')).toBe('https://a.example/a%2Fb%3A');
    expect(normalHtu('https://a.example/a/%2E%2E/token')).toBe('https://a.example/token');
    expect(normalHtu('https://a.example/%2574oken')).toBe('https://a.example/%2574oken'); // an escaped %, not a t
  });

  it('is undefined for what is no URL', () => {
    expect(normalHtu('/token')).toBeUndefined();
    expect(normalHtu('')).toBeUndefined();
  });
});
