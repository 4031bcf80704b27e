import type Router from '@koa/router';
import type { Context, Middleware } from 'koa';
import {
  acceptInvitation,
  acceptInvitationBody,
  changePassword,
  changePasswordBody,
  confirmPasswordReset,
  inviteAdmin,
  inviteAdminBody,
  listAdmins,
  listOwnSessions,
  passwordResetBody,
  passwordResetConfirmBody,
  removeAdmin,
  requestPasswordReset,
  revokeOtherSessions,
  revokeOwnSession,
  type AdminActor,
  type SessionMeta,
} from '../accounts/index.js';
import type { Deps } from '../deps.js';
import { emptyBody, parseBody } from '../http/validate.js';
import { adminState, setSessionCookie } from './auth.js';

/** The client address and User-Agent of a request, for sessions, audit and mails. */
export function requestMeta(ctx: Context): SessionMeta {
  return { ip: ctx.ip, userAgent: ctx.get('user-agent') || null };
}

/** The signed-in administrator as the accounts module's actor. */
function adminActor(ctx: Context): AdminActor {
  const { admin } = adminState(ctx).session;
  return { id: admin.id, email: admin.email, organisation_id: admin.organisation.id };
}

/**
 * SPEC Part 2 "Administrators": /admins (list, invite, remove), /invitations/accept, /me/password,
 * /me/sessions, /password-reset. Every call on /admins is scoped to the caller's organisation (others' are 404).
 */
export function adminsRoutes(router: Router, deps: Deps, auth: Middleware): void {
  router.get('/admins', auth, async (ctx) => {
    ctx.body = await listAdmins(deps, adminActor(ctx));
  });

  router.post('/admins', auth, async (ctx) => {
    const input = parseBody(ctx, inviteAdminBody);
    ctx.body = await inviteAdmin(deps, adminActor(ctx), input, requestMeta(ctx));
    ctx.status = 201;
  });

  router.delete('/admins/:id', auth, async (ctx) => {
    await removeAdmin(deps, adminActor(ctx), ctx.params.id ?? '', requestMeta(ctx));
    ctx.status = 204;
  });

  // No session: the invitation token is the credential. The answer is a login's (cookie included).
  router.post('/invitations/accept', async (ctx) => {
    const input = parseBody(ctx, acceptInvitationBody);
    const signedIn = await acceptInvitation(deps, input, requestMeta(ctx));
    setSessionCookie(ctx, deps, signedIn.token, new Date(signedIn.expires_at));
    ctx.body = signedIn;
  });

  router.post('/me/password', auth, async (ctx) => {
    const input = parseBody(ctx, changePasswordBody);
    await changePassword(deps, adminState(ctx).session, input, requestMeta(ctx));
    ctx.status = 204;
  });

  router.get('/me/sessions', auth, async (ctx) => {
    ctx.body = await listOwnSessions(deps, adminState(ctx).session);
  });

  router.post('/me/sessions/revoke-others', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    const revoked = await revokeOtherSessions(deps, adminState(ctx).session, requestMeta(ctx));
    ctx.body = { revoked };
  });

  router.post('/me/sessions/:id/revoke', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    await revokeOwnSession(deps, adminState(ctx).session, ctx.params.id ?? '', requestMeta(ctx));
    ctx.status = 204;
  });

  router.post('/password-reset', async (ctx) => {
    const input = parseBody(ctx, passwordResetBody);
    await requestPasswordReset(deps, input, requestMeta(ctx));
    ctx.status = 202;
    ctx.body = { message: 'If this address belongs to an administrator, a mail with a reset link is on its way.' };
  });

  router.post('/password-reset/confirm', async (ctx) => {
    const input = parseBody(ctx, passwordResetConfirmBody);
    await confirmPasswordReset(deps, input, requestMeta(ctx));
    ctx.status = 204;
  });
}
