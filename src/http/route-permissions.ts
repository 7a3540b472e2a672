import type { Permission } from "../auth/permissions.js";

/**
 * THE table of who may call what. Every route of the app must be listed: the server
 * refuses to start with a route missing here (the onRoute hook in src/http/auth.ts).
 * - "public": anyone, signed in or not;
 * - "signed-in": any user or token;
 * - a permission: super admins, or users/tokens holding it.
 */
export type RouteAccess = "public" | "signed-in" | Permission;

export const routePermissions: Record<string, RouteAccess> = {
  "GET /healthz": "public",
  "GET /readyz": "public",
  // Bound to 127.0.0.1 by default; put it behind the load balancer's internal network only.
  "GET /metrics": "public",
  "POST /api/auth/login": "public",
  "POST /api/auth/logout": "signed-in",
  "GET /api/auth/me": "signed-in",
  "POST /api/auth/password": "signed-in",
  "GET /api/info": "signed-in",

  "GET /api/drivers": "email-servers.view",
  "GET /api/email-servers": "email-servers.view",
  "POST /api/email-servers": "email-servers.update",
  "GET /api/email-servers/:id": "email-servers.view",
  "PUT /api/email-servers/:id": "email-servers.update",
  "DELETE /api/email-servers/:id": "email-servers.update",
  "PATCH /api/email-servers/:id/settings/:key": "email-servers.update",
  "DELETE /api/email-servers/:id/settings/:key": "email-servers.update",
  "POST /api/email-servers/:id/copy": "email-servers.update",
  "POST /api/email-servers/:id/default": "email-servers.update",
  "POST /api/email-servers/:id/oauth/authorize": "email-servers.update",
  "DELETE /api/email-servers/:id/oauth": "email-servers.update",
  "POST /api/email-servers/:id/test": "email-servers.test",
  "POST /api/email-servers/test": "email-servers.test",
  "POST /api/email-servers/:id/probe": "email-servers.test",

  "GET /api/routes": "email-servers.view",
  "POST /api/routes": "email-servers.update",
  "GET /api/routes/:id": "email-servers.view",
  "PUT /api/routes/:id": "email-servers.update",
  "DELETE /api/routes/:id": "email-servers.update",
  "POST /api/routes/explain": "email-servers.view",

  "POST /api/messages": "messages.send",
  "POST /api/messages/batch": "messages.send",
  "GET /api/messages": "messages.view",
  // messages.view, or the message's own sender (a send-only token reads its status): checked in the handler.
  "GET /api/messages/:id": "signed-in",
  "POST /api/messages/:id/retry": "messages.send",
  "GET /api/capture/:serverId/messages": "messages.view",
  "GET /api/capture/:serverId/messages/:id": "messages.view",
  // Captured mail is the Capture server's data: clearing it is a change to the server.
  "DELETE /api/capture/:serverId/messages": "email-servers.update",
  "DELETE /api/capture/:serverId/messages/:id": "email-servers.update",
  "GET /api/capture/:serverId/messages/:id/raw": "messages.view",
  "GET /api/capture/:serverId/messages/:id/attachments/:index": "messages.view",
  // It sends mail; the handler also asks for messages.view, as it reads the captured message.
  "POST /api/capture/:serverId/messages/:id/release": "messages.send",
  // Erasure on request: its own permission, as it destroys what messages.view reads.
  "DELETE /api/recipients/:address/data": "messages.erase",
  "GET /api/stats": "messages.view",
  "GET /api/smtp-submission": "signed-in",

  "GET /api/users": "users.manage",
  "POST /api/users": "users.manage",
  "GET /api/users/:id": "users.manage",
  "PATCH /api/users/:id": "users.manage",
  "DELETE /api/users/:id": "users.manage",
  "GET /api/groups": "users.manage",
  "POST /api/groups": "users.manage",
  "GET /api/groups/:id": "users.manage",
  "PUT /api/groups/:id": "users.manage",
  "DELETE /api/groups/:id": "users.manage",
  "GET /api/tokens": "users.manage",
  "POST /api/tokens": "users.manage",
  "DELETE /api/tokens/:id": "users.manage",

  // Install-wide figures (database size, messages by tier) beside the periods in force.
  "GET /api/settings/retention": "messages.view",
  "PUT /api/settings/retention": "settings.update",
  "DELETE /api/settings/retention": "settings.update",

  // Providers' webhooks: each authenticates by the provider's own proof (src/events/provider-events).
  "POST /api/provider-events/:serverId/mailgun": "public",
  "POST /api/provider-events/:serverId/postmark": "public",
  "POST /api/provider-events/:serverId/ses": "public",
  "GET /api/email-servers/:id/event-sources": "email-servers.view",
  "PUT /api/email-servers/:id/event-sources/:provider": "email-servers.update",
  "DELETE /api/email-servers/:id/event-sources/:provider": "email-servers.update",
  // The list holds addresses, as the delivery log does; changing it has a permission of its own.
  "GET /api/suppressions": "messages.view",
  "POST /api/suppressions": "suppressions.update",
  "DELETE /api/suppressions/:id": "suppressions.update",
  "GET /api/settings/suppressions": "messages.view",
  "PUT /api/settings/suppressions": "settings.update",
  // Alerts: one permission for all of it (channels reach out to URLs and mailboxes; the
  // history and thresholds are of the same admins). Super admins pass as everywhere.
  "GET /api/alerts/channels": "alerts.manage",
  "POST /api/alerts/channels": "alerts.manage",
  "GET /api/alerts/channels/:id": "alerts.manage",
  "PUT /api/alerts/channels/:id": "alerts.manage",
  "DELETE /api/alerts/channels/:id": "alerts.manage",
  "POST /api/alerts/channels/:id/test": "alerts.manage",
  "GET /api/alerts/incidents": "alerts.manage",
  "GET /api/settings/alerts": "alerts.manage",
  "PUT /api/settings/alerts": "alerts.manage",

  "GET /api/audit": "audit.view",
  "GET /api/audit/filters": "audit.view",

  // Application webhooks: a caller sees and changes only its own (a super admin every one); a
  // user also needs messages.view (its webhooks hear of every message), checked in the service.
  "GET /api/webhooks": "webhooks.manage",
  "POST /api/webhooks": "webhooks.manage",
  "GET /api/webhooks/:id": "webhooks.manage",
  "PATCH /api/webhooks/:id": "webhooks.manage",
  "DELETE /api/webhooks/:id": "webhooks.manage",
  "POST /api/webhooks/:id/rotate-secret": "webhooks.manage",
  "GET /api/webhooks/:id/deliveries": "webhooks.manage",
  "POST /api/webhooks/:id/test": "webhooks.manage",
  "POST /api/webhook-deliveries/:id/replay": "webhooks.manage",
};

/** What a session whose password someone else set may still do (password_change_required). */
export const allowedBeforePasswordChange = new Set(["GET /api/auth/me", "POST /api/auth/password", "POST /api/auth/logout"]);

/**
 * The path parameter that names an email server, for the routes that have one: a token
 * limited to other servers is refused (server_not_allowed) before the handler runs, on
 * every such route, present and future.
 */
export function serverParamOf(url: string): string | null {
  if (/^\/api\/email-servers\/:id(\/|$)/.test(url)) return "id";
  if (/^\/api\/capture\/:serverId(\/|$)/.test(url)) return "serverId";
  return null;
}

export function routeKey(method: string, url: string): string {
  return `${method} ${url}`;
}
