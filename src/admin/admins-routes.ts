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
  listInvitations,
  listOwnSessions,
  passwordResetBody,
  passwordResetConfirmBody,
  removeAdmin,
  requestPasswordReset,
  revokeOtherSessions,
  revokeOwnSession,
  withdrawInvitation,
  type AdminActor,
  type SessionMeta,
} from '../accounts/index.js';
import type { Deps } from '../deps.js';
import { emptyBody, parseBody } from '../http/validate.js';
import { adminState, setSessionCookie } from './auth.js';
import { describeRoute } from './openapi.js';
import { accepted, adminList, invitation, invitationList, ownSessionList, revokedSessions, signedIn } from './responses.js';

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
 * SPEC Part 2 "Administrators": /admins (list, invite, remove), /invitations (pending ones: list, withdraw),
 * /invitations/accept, /me/password,
 * /me/sessions, /password-reset. Every call on /admins is scoped to the caller's organisation (others' are 404).
 */
export function adminsRoutes(router: Router, deps: Deps, auth: Middleware): void {
  describeRoute('GET', '/admins', { summary: "The organisation's administrators", tag: 'admins', response: adminList });
  router.get('/admins', auth, async (ctx) => {
    ctx.body = await listAdmins(deps, adminActor(ctx));
  });

  describeRoute('POST', '/admins', { summary: 'Invite an administrator (mails a one-time link valid 72 h)', tag: 'admins', body: inviteAdminBody, status: 201, response: invitation, errors: { 409: ['admin_exists'] } });
  router.post('/admins', auth, async (ctx) => {
    const input = parseBody(ctx, inviteAdminBody);
    ctx.body = await inviteAdmin(deps, adminActor(ctx), input, requestMeta(ctx));
    ctx.status = 201;
  });

  describeRoute('DELETE', '/admins/:id', { summary: 'Remove an administrator (their sessions end at once)', tag: 'admins', status: 204, errors: { 409: ['last_admin'] } });
  router.delete('/admins/:id', auth, async (ctx) => {
    await removeAdmin(deps, adminActor(ctx), ctx.params.id ?? '', requestMeta(ctx));
    ctx.status = 204;
  });

  describeRoute('GET', '/invitations', { summary: "The organisation's pending invitations (not used, not expired), newest first", tag: 'admins', response: invitationList });
  router.get('/invitations', auth, async (ctx) => {
    ctx.body = await listInvitations(deps, adminActor(ctx));
  });

  describeRoute('DELETE', '/invitations/:id', { summary: 'Withdraw a pending invitation (its link stops working at once)', tag: 'admins', status: 204 });
  router.delete('/invitations/:id', auth, async (ctx) => {
    await withdrawInvitation(deps, adminActor(ctx), ctx.params.id ?? '', requestMeta(ctx));
    ctx.status = 204;
  });

  // No session: the invitation token is the credential. The answer is a login's (cookie included).
  describeRoute('POST', '/invitations/accept', { summary: 'Accept an invitation: set the password and sign in', tag: 'admins', auth: false, body: acceptInvitationBody, response: signedIn, errors: { 409: ['admin_exists'], 429: ['rate_limited'] } });
  router.post('/invitations/accept', async (ctx) => {
    const input = parseBody(ctx, acceptInvitationBody);
    const signedIn = await acceptInvitation(deps, input, requestMeta(ctx));
    setSessionCookie(ctx, deps, signedIn.token, new Date(signedIn.expires_at));
    ctx.body = signedIn;
  });

  describeRoute('POST', '/me/password', { summary: 'Change your password (ends every other session)', tag: 'me', body: changePasswordBody, status: 204, errors: { 429: ['rate_limited'] } });
  router.post('/me/password', auth, async (ctx) => {
    const input = parseBody(ctx, changePasswordBody);
    await changePassword(deps, adminState(ctx).session, input, requestMeta(ctx));
    ctx.status = 204;
  });

  describeRoute('GET', '/me/sessions', { summary: 'Your sessions', tag: 'me', response: ownSessionList });
  router.get('/me/sessions', auth, async (ctx) => {
    ctx.body = await listOwnSessions(deps, adminState(ctx).session);
  });

  describeRoute('POST', '/me/sessions/revoke-others', { summary: 'End every session but this one', tag: 'me', response: revokedSessions });
  router.post('/me/sessions/revoke-others', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    const revoked = await revokeOtherSessions(deps, adminState(ctx).session, requestMeta(ctx));
    ctx.body = { revoked };
  });

  describeRoute('POST', '/me/sessions/:id/revoke', { summary: 'End one of your sessions', tag: 'me', status: 204 });
  router.post('/me/sessions/:id/revoke', auth, async (ctx) => {
    parseBody(ctx, emptyBody);
    await revokeOwnSession(deps, adminState(ctx).session, ctx.params.id ?? '', requestMeta(ctx));
    ctx.status = 204;
  });

  describeRoute('POST', '/password-reset', { summary: 'Ask for a password reset link (202 whatever the address)', tag: 'admins', auth: false, body: passwordResetBody, status: 202, response: accepted });
  router.post('/password-reset', async (ctx) => {
    const input = parseBody(ctx, passwordResetBody);
    await requestPasswordReset(deps, input, requestMeta(ctx));
    ctx.status = 202;
    ctx.body = { message: 'If this address belongs to an administrator, a mail with a reset link is on its way.' };
  });

  describeRoute('POST', '/password-reset/confirm', { summary: 'Set a new password with a reset link (ends every session)', tag: 'admins', auth: false, body: passwordResetConfirmBody, status: 204, errors: { 429: ['rate_limited'] } });
  router.post('/password-reset/confirm', async (ctx) => {
    const input = parseBody(ctx, passwordResetConfirmBody);
    await confirmPasswordReset(deps, input, requestMeta(ctx));
    ctx.status = 204;
  });
}
