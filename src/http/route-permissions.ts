import type { Permission } from "../auth/permissions.js";

/**
 * THE table of who may call what. Every route of the app must be listed: the server
 * refuses to start with a route missing here (see assertRouteListed).
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

  "POST /api/messages": "messages.send",
  "POST /api/messages/batch": "messages.send",
  "GET /api/messages": "messages.view",
  "GET /api/messages/:id": "messages.view",
  "POST /api/messages/:id/retry": "messages.send",
  "GET /api/capture/:serverId/messages": "messages.view",
  "GET /api/capture/:serverId/messages/:id": "messages.view",
  "GET /api/stats": "messages.view",

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

  "GET /api/audit": "audit.view",
};

export function routeKey(method: string, url: string): string {
  return `${method} ${url}`;
}
