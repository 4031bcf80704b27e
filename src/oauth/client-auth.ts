import type { Context } from 'koa';

/**
 * The client secret a token request presents, read the way oidc-provider's client authentication reads it
 * (form `client_secret`, else HTTP Basic). Used only to reject malformed secrets before any database read.
 */
export function presentedSecret(ctx: Context & { oidc?: { params?: Record<string, unknown> } }): string | undefined {
  const posted = ctx.oidc?.params?.client_secret;
  if (typeof posted === 'string' && posted !== '') return posted;
  const header = ctx.headers.authorization;
  if (!header) return undefined;
  const [scheme, value] = header.split(' ');
  if (scheme?.toLowerCase() !== 'basic' || !value) return undefined;
  const basic = Buffer.from(value, 'base64').toString('utf8');
  const i = basic.indexOf(':');
  if (i === -1) return undefined;
  try {
    return decodeURIComponent(basic.slice(i + 1).replace(/\+/g, '%20'));
  } catch {
    return undefined;
  }
}
