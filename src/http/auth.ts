import { timingSafeEqual } from "node:crypto";
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { Mailroom } from "../app.js";
import { can, canUseServer, type Permission, type Principal } from "../auth/permissions.js";
import { SESSION_COOKIE } from "../auth/sessions.js";
import type { Actor } from "../core/audit.js";
import { MailroomError } from "../kernel/errors.js";
import { allowedBeforePasswordChange, type RouteAccess, routeKey, routePermissions, serverParamOf } from "./route-permissions.js";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | null;
    /** How the principal proved itself: a session cookie needs CSRF protection on writes. */
    authVia: "session" | "token" | null;
  }
  interface FastifyContextConfig {
    access?: RouteAccess;
    /**
     * A provider's webhook (src/http/routes/provider-events.ts): it authenticates by the
     * provider's own mechanism (Postmark's basic auth is no Bearer token), and its body is the
     * provider's payload, which the route checks and cleans itself.
     */
    providerWebhook?: boolean;
  }
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

export function actorOf(request: FastifyRequest): Actor {
  const p = request.principal;
  if (!p) return { type: "system", id: null, label: "anonymous", ip: request.ip };
  return { type: p.kind, id: p.id, label: p.label, ip: request.ip };
}

export function requirePrincipal(request: FastifyRequest): Principal {
  if (!request.principal) throw new MailroomError("unauthenticated");
  return request.principal;
}

/**
 * Resolves who is calling and enforces the route table before the body is even parsed,
 * so an anonymous caller learns nothing from validation errors.
 */
export function registerAuth(app: FastifyInstance, mailroom: Mailroom): void {
  app.decorateRequest("principal", null);
  app.decorateRequest("authVia", null);

  app.addHook("onRoute", (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      if (method === "HEAD") continue;
      const key = routeKey(method, route.url);
      const access = route.url.startsWith("/api/docs") || !route.url.startsWith("/api") ? "public" : routePermissions[key];
      if (!access) throw new Error(`Route ${key} has no entry in src/http/route-permissions.ts`);
      route.config = { ...(route.config ?? {}), access: route.config?.access ?? access };
    }
  });

  app.addHook("onRequest", async (request) => {
    if (request.routeOptions.config.providerWebhook) return;
    const access = request.routeOptions.config.access ?? "public";
    const authorization = request.headers.authorization;
    if (authorization) {
      const [scheme, token] = authorization.split(" ");
      if (scheme?.toLowerCase() !== "bearer" || !token) {
        throw new MailroomError("invalid_token", "Send the API token as 'Authorization: Bearer <token>'.");
      }
      request.principal = await mailroom.tokens.authenticate(token.trim());
      if (!request.principal) throw new MailroomError("invalid_token");
      request.authVia = "token";
    } else {
      const cookie = request.cookies[SESSION_COOKIE];
      const session = cookie ? await mailroom.sessions.find(cookie) : null;
      if (session) {
        request.principal = await mailroom.users.principalFor(session.userId);
        request.authVia = request.principal ? "session" : null;
        const sent = request.headers["x-csrf-token"];
        if (request.principal && !SAFE_METHODS.has(request.method) && access !== "public") {
          if (typeof sent !== "string" || !sameString(sent, session.csrfToken)) throw new MailroomError("csrf_failed");
        }
      }
    }
    if (access === "public") return;
    if (!request.principal) throw new MailroomError("unauthenticated");
    const key = routeKey(request.method, request.routeOptions.url ?? "");
    if (request.principal.mustChangePassword && !allowedBeforePasswordChange.has(key)) {
      throw new MailroomError(
        "password_change_required",
        "Your password was set by someone else: choose your own first (POST /api/auth/password with currentPassword and newPassword), then sign in again.",
      );
    }
    if (access !== "signed-in") requirePermission(request, access);
    if (request.principal.serverIds !== null) {
      if (key === "POST /api/email-servers") {
        throw new MailroomError(
          "server_not_allowed",
          "A token limited to some email servers cannot create servers; use a token without a server limit.",
        );
      }
      const param = serverParamOf(request.routeOptions.url ?? "");
      if (param) await requireServerAccess(request, mailroom, (request.params as Record<string, string>)[param]);
    }
  });
}

/**
 * Refuses a token limited to other servers the server named by id or name. An unknown
 * server passes: the handler answers its 404.
 */
export async function requireServerAccess(request: FastifyRequest, mailroom: Mailroom, idOrName: string): Promise<void> {
  const principal = requirePrincipal(request);
  if (principal.serverIds === null) return;
  const row = await mailroom.servers.findRow(idOrName);
  if (row && !canUseServer(principal, row.id)) {
    throw new MailroomError("server_not_allowed", `This API token may not use the email server '${row.name}'.`, {
      serverId: row.id,
    });
  }
}

export function requirePermission(request: FastifyRequest, permission: Permission): void {
  const principal = requirePrincipal(request);
  if (!can(principal, permission)) {
    throw new MailroomError("forbidden", `This needs the permission '${permission}'; ask an administrator for it.`, {
      permission,
    });
  }
}
