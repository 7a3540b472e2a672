import Fastify, { type InjectOptions, type LightMyRequestResponse } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Permission, type Principal, permissions } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { DEFAULT_THRESHOLDS } from "../../src/events/alerts/thresholds.js";
import { registerAuth } from "../../src/http/auth.js";
import { type RouteAccess, routePermissions } from "../../src/http/route-permissions.js";
import { buildServer } from "../../src/http/server.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { auditEntries, createServer, expectError, serverBody } from "./fixtures.js";

/**
 * Routes the table opens to every signed-in caller because their handler decides: what
 * they need from a caller that is neither the owner of the resource nor a super admin.
 */
const handlerChecked: Partial<Record<string, Permission>> = {
  // A message's sender may read it without messages.view (a send-only token reads its status).
  "GET /api/messages/:id": "messages.view",
};

/** Who the fixtures act as when a service asks: every server, every permission. */
const everyServer: Principal = {
  kind: "user",
  id: "fixtures",
  label: "fixtures",
  email: null,
  superAdmin: true,
  permissions: new Set(),
  serverIds: null,
  userId: null,
};

const routes = Object.entries(routePermissions).map(([key, access]) => {
  const [method, path] = key.split(" ");
  const needs: RouteAccess = handlerChecked[key] ?? access;
  return { key, method, path, access: needs };
});

/** The routes in `app.printRoutes()`'s tree, as "METHOD /path" (HEAD left out). */
function registeredRoutes(tree: string): string[] {
  const found: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split("\n")) {
    const match = /^([│ ]*)[├└]── (.+?)(?: \(([A-Z, ]+)\))?$/u.exec(line);
    if (!match) continue;
    const depth = match[1].length / 4;
    stack.length = depth;
    stack[depth] = match[2];
    const path = stack.join("");
    for (const method of (match[3] ?? "").split(", ").filter(Boolean)) {
      if (method !== "HEAD") found.push(`${method} ${path}`);
    }
  }
  return found;
}

describe.each(await availableDialects())("permissions on %s", (dialect) => {
  let t: TestApp;
  let seq = 0;
  const unique = (prefix: string) => `${prefix}-${++seq}-${Math.random().toString(36).slice(2, 8)}`;

  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(() => t.close());

  // ---- what a request to each route needs: ids of real things, and a valid body ----

  const fresh = {
    server: async () => (await createServer(t, serverBody("smtp", unique("Matrix server")))).id as string,
    user: async () =>
      (
        await t.mailroom.users.create(
          { email: `${unique("target")}@example.com`, name: "Target", password: ADMIN_PASSWORD },
          systemActor,
        )
      ).user.id,
    group: async () => (await t.mailroom.users.createGroup({ name: unique("group"), permissions: [] }, systemActor)).id,
    // Owned by a user with no permission, so any users.manage holder may revoke it.
    token: async () =>
      (
        await t.mailroom.tokens.create({ name: unique("token"), permissions: ["messages.send"] }, systemActor, {
          superAdmin: false,
          permissions: new Set(["messages.send"]),
          serverIds: null,
          userId: await fresh.user(),
        })
      ).view.id,
    suppression: async () =>
      (await t.mailroom.suppressions.add({ address: `${unique("suppressed")}@example.com` }, systemActor, everyServer)).id,
    route: async () =>
      (
        await t.mailroom.routes.create(
          { name: unique("route"), match: { tag: unique("tag") }, servers: ["Capture"] },
          systemActor,
        )
      ).id,
  };

  /** An email channel through Capture: its test is queued at once, never sent over the network. */
  const freshAlertChannel = async () =>
    (
      await t.mailroom.alerts.channels.create(
        {
          name: unique("alerts"),
          type: "email",
          serverId: (await t.mailroom.servers.getRow("Capture")).id,
          recipients: ["matrix@example.com"],
        },
        systemActor,
      )
    ).id;

  /** A real id for the `:id` of a path, by the resource the path is under. */
  async function idFor(path: string): Promise<string> {
    // A probe connects to the server: the Capture server is checked here, never over the network.
    if (path === "/api/email-servers/:id/probe" || path === "/api/email-servers/:id/test") {
      return (await t.mailroom.servers.getRow("Capture")).id;
    }
    if (path.startsWith("/api/email-servers/")) return fresh.server();
    if (path.startsWith("/api/users/")) return fresh.user();
    if (path.startsWith("/api/groups/")) return fresh.group();
    if (path.startsWith("/api/tokens/")) return fresh.token();
    if (path.startsWith("/api/routes/")) return fresh.route();
    if (path.startsWith("/api/suppressions/")) return fresh.suppression();
    if (path.startsWith("/api/alerts/channels/")) return freshAlertChannel();
    // A resource this test does not know how to create yet: the route must still check
    // permissions first; without a real id its answer is a 404, which is not 401/403.
    return "00000000-0000-4000-8000-000000000000";
  }

  async function paramValue(name: string, path: string): Promise<string> {
    if (name === "id") return idFor(path);
    // A server named by another parameter (e.g. a Capture server's messages): the Capture
    // server a fresh Mailroom starts with.
    if (/server/i.test(name)) return (await t.mailroom.servers.getRow("Capture")).id;
    if (name === "key") return "timeoutSeconds"; // a setting of the smtp servers idFor creates (not where its password goes)
    if (name === "index") return "0";
    if (name === "address") return "matrix-erasure@example.com";
    if (name === "provider") return "postmark";
    return "x";
  }

  const message = { to: ["matrix@example.com"], subject: "Permission matrix", text: "Queued by the matrix." };

  /** Bodies that make a permitted call succeed (or reach its handler), by route. */
  function bodyFor(key: string, caller: CallerKind): unknown {
    switch (key) {
      case "POST /api/auth/login":
        return { email: ADMIN_EMAIL, password: ADMIN_PASSWORD };
      case "POST /api/auth/password":
        return { currentPassword: ADMIN_PASSWORD, newPassword: "a new long password" };
      case "POST /api/email-servers":
      case "PUT /api/email-servers/:id":
        return serverBody("smtp", unique("Matrix body"));
      case "PATCH /api/email-servers/:id/settings/:key":
        return { value: 45 };
      case "POST /api/users":
        return { email: `${unique("new")}@example.com`, password: ADMIN_PASSWORD };
      case "PATCH /api/users/:id":
        return { name: "Renamed" };
      case "POST /api/groups":
      case "PUT /api/groups/:id":
        // Likewise for a group's permissions.
        return { name: unique("group"), permissions: [caller === "super admin" ? "messages.view" : "users.manage"] };
      case "POST /api/tokens":
        // Nobody may hand out a permission they lack: a users.manage holder gives users.manage.
        return { name: unique("token"), permissions: [caller === "super admin" ? "messages.send" : "users.manage"] };
      // A token has no email of its own to send a test to: every caller names the recipient.
      case "POST /api/email-servers/:id/test":
        return { mode: "check", to: "matrix@example.com" };
      case "POST /api/email-servers/test":
        return { mode: "check", to: "matrix@example.com", server: { driver: "capture", settings: { retention: 50 } } };
      case "POST /api/routes":
      case "PUT /api/routes/:id":
        return { name: unique("route"), match: { tag: unique("tag") }, servers: ["Capture"] };
      case "POST /api/routes/explain":
        return { from: "noreply@mailroom.localhost", to: ["matrix@example.com"], tag: "matrix" };
      case "POST /api/messages":
        return message;
      case "POST /api/messages/batch":
        return { messages: [message, message] };
      case "POST /api/capture/:serverId/messages/:id/release":
        return { server: "Capture" };
      case "PUT /api/settings/retention":
        return { bodyDays: 30, metadataDays: 365, auditDays: null };
      case "POST /api/suppressions":
        return { address: `${unique("matrix")}@example.com` };
      case "PUT /api/settings/suppressions":
        return { scope: "everywhere" };
      // A public address: nothing connects at registration.
      case "POST /api/webhooks":
        return { url: "https://hooks.example.com/mailroom", events: ["sent"] };
      case "POST /api/alerts/channels":
        return { name: unique("alerts"), type: "webhook", url: "https://alerts.example.com/hook" };
      case "PUT /api/alerts/channels/:id":
        return { name: unique("renamed") };
      case "PUT /api/settings/alerts":
        return DEFAULT_THRESHOLDS;
      default:
        return undefined;
    }
  }

  /**
   * The routes of this issue with the access DESIGN.md gives them. Their permitted call must
   * succeed (2xx) with the body above; routes added later only need to pass the checks.
   */
  const issueRoutes: Record<string, RouteAccess> = {
    "GET /healthz": "public",
    "GET /readyz": "public",
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
    "POST /api/email-servers/:id/probe": "email-servers.test",
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
    // Issue 12: what the admin UI needs for examples and the audit log's filters.
    "GET /api/info": "signed-in",
    "GET /api/audit/filters": "audit.view",
    "DELETE /api/capture/:serverId/messages": "email-servers.update",
    // Issue 18: erasure on request has a permission of its own.
    "DELETE /api/recipients/:address/data": "messages.erase",
    // Issue 18: retention settings; changing them is "Settings: Update Settings" or super admin.
    "GET /api/settings/retention": "messages.view",
    "PUT /api/settings/retention": "settings.update",
    "DELETE /api/settings/retention": "settings.update",
    // Issue 16: application webhooks, each caller's own (the routes of one are in handlerRefusal).
    "GET /api/webhooks": "webhooks.manage",
    "POST /api/webhooks": "webhooks.manage",
    // Issue 16: alerts have a permission of their own (channels reach out to URLs and mailboxes).
    "GET /api/alerts/channels": "alerts.manage",
    "POST /api/alerts/channels": "alerts.manage",
    "GET /api/alerts/channels/:id": "alerts.manage",
    "PUT /api/alerts/channels/:id": "alerts.manage",
    "DELETE /api/alerts/channels/:id": "alerts.manage",
    "POST /api/alerts/channels/:id/test": "alerts.manage",
    "GET /api/alerts/incidents": "alerts.manage",
    "GET /api/settings/alerts": "alerts.manage",
    "PUT /api/settings/alerts": "alerts.manage",
  };
  const mustSucceed = new Set([
    ...Object.keys(issueRoutes),
    "GET /metrics",
    "GET /api/smtp-submission",
    "GET /api/stats",
    "GET /api/messages",
    "GET /api/capture/:serverId/messages",
    "POST /api/email-servers/:id/test",
    "POST /api/email-servers/test",
    "POST /api/messages",
    "POST /api/messages/batch",
    "GET /api/routes",
    "POST /api/routes",
    "GET /api/routes/:id",
    "PUT /api/routes/:id",
    "DELETE /api/routes/:id",
    "POST /api/routes/explain",
    // Issue 16: provider events and the suppression list.
    "GET /api/email-servers/:id/event-sources",
    "PUT /api/email-servers/:id/event-sources/:provider",
    "GET /api/suppressions",
    "POST /api/suppressions",
    "DELETE /api/suppressions/:id",
    "GET /api/settings/suppressions",
    "PUT /api/settings/suppressions",
  ]);
  /**
   * What a permitted call answers when this test cannot make it succeed: the handler ran and
   * refused the request, with one of these codes, for a reason that is not access (a message
   * that does not exist, an OAuth action on an SMTP server). A schema's 400 is never enough:
   * it comes before the handler.
   */
  const handlerRefusal: Record<string, string[]> = {
    "GET /api/messages/:id": ["message_not_found"],
    "POST /api/messages/:id/retry": ["message_not_found"],
    "GET /api/capture/:serverId/messages/:id": ["message_not_found"],
    "DELETE /api/capture/:serverId/messages/:id": ["message_not_found"],
    "GET /api/capture/:serverId/messages/:id/raw": ["message_not_found"],
    "GET /api/capture/:serverId/messages/:id/attachments/:index": ["message_not_found"],
    "POST /api/capture/:serverId/messages/:id/release": ["message_not_found"],
    // A token cannot finish a browser sign-in: the handler says so before the driver does.
    "POST /api/email-servers/:id/oauth/authorize": ["oauth_not_supported", "oauth_session_required"],
    "DELETE /api/email-servers/:id/oauth": ["oauth_not_supported"],
    // A fresh server has no source of provider events: the handler says so (after the access check).
    "DELETE /api/email-servers/:id/event-sources/:provider": ["provider_events_not_set_up"],
    // Public: the provider's own proof is checked by the handler; the Capture server has no source set up.
    "POST /api/provider-events/:serverId/mailgun": ["provider_events_not_set_up"],
    "POST /api/provider-events/:serverId/postmark": ["provider_events_not_set_up"],
    "POST /api/provider-events/:serverId/ses": ["provider_events_not_set_up"],
    // Nobody's webhook has the made-up id (test/events/webhooks-access.test.ts covers owners).
    "GET /api/webhooks/:id": ["webhook_not_found"],
    "PATCH /api/webhooks/:id": ["webhook_not_found"],
    "DELETE /api/webhooks/:id": ["webhook_not_found"],
    "POST /api/webhooks/:id/rotate-secret": ["webhook_not_found"],
    "GET /api/webhooks/:id/deliveries": ["webhook_not_found"],
    "POST /api/webhooks/:id/test": ["webhook_not_found"],
    "POST /api/webhook-deliveries/:id/replay": ["webhook_delivery_not_found"],
  };
  /** Permissions a route's handler checks on top of the table's (releasing reads the message). */
  const handlerAlsoNeeds: Partial<Record<string, Permission[]>> = {
    "POST /api/capture/:serverId/messages/:id/release": ["messages.view"],
    // A user's webhook hears of every message: the service asks a user for messages.view too.
    ...Object.fromEntries(
      Object.keys(routePermissions)
        .filter((key) => key.includes("/api/webhook"))
        .map((key) => [key, ["messages.view"] as Permission[]]),
    ),
  };
  /** Routes whose permitted call needs a real captured message: only their access is checked here (test/api/admin-day.test.ts calls them). */
  const accessOnlyRoutes: Record<string, RouteAccess> = {
    "DELETE /api/capture/:serverId/messages/:id": "email-servers.update",
    "GET /api/capture/:serverId/messages/:id/raw": "messages.view",
    "GET /api/capture/:serverId/messages/:id/attachments/:index": "messages.view",
    "POST /api/capture/:serverId/messages/:id/release": "messages.send",
  };

  async function requestFor(route: (typeof routes)[number], caller: CallerKind): Promise<InjectOptions> {
    let url = route.path;
    for (const [, name] of route.path.matchAll(/:([A-Za-z]+)/g)) {
      url = url.replace(`:${name}`, encodeURIComponent(await paramValue(name, route.path)));
    }
    const body = bodyFor(route.key, caller);
    const options: InjectOptions = { method: route.method as InjectOptions["method"], url };
    if (body !== undefined) options.payload = body as InjectOptions["payload"];
    else if (!["GET", "DELETE"].includes(route.method)) options.payload = {};
    return options;
  }

  // ---- the callers ----

  type CallerKind = "anonymous" | "without" | "with" | "super admin";

  const sessions = new Map<string, Caller>();
  /** A signed-in user in a group with exactly these permissions (cached by set). */
  async function userWith(perms: Permission[]): Promise<Caller> {
    const cacheKey = perms.join(",");
    if (!sessions.has(cacheKey)) sessions.set(cacheKey, await t.userWith(perms, `${unique("caller")}@example.com`));
    return sessions.get(cacheKey)!;
  }
  async function superAdmin(): Promise<Caller> {
    const email = `${unique("super")}@example.com`;
    await t.mailroom.users.create({ email, name: "Super", password: ADMIN_PASSWORD, superAdmin: true }, systemActor);
    return t.login(email, ADMIN_PASSWORD);
  }

  /**
   * The caller of a kind for a route. "signed-in" routes change the caller's own session or
   * password, so they get a fresh user each time.
   */
  async function callerFor(kind: CallerKind, access: RouteAccess, key: string): Promise<Caller | null> {
    if (kind === "anonymous") return null;
    const fresh = access === "signed-in" || access === "public";
    if (kind === "super admin") return fresh ? superAdmin() : t.admin;
    if (fresh) return t.userWith([], `${unique("plain")}@example.com`);
    const permission = access as Permission;
    return userWith(kind === "with" ? withPermission(key, permission) : permissions.filter((p) => p !== permission));
  }

  const withPermission = (key: string, permission: Permission): Permission[] => [permission, ...(handlerAlsoNeeds[key] ?? [])];

  const isPermission = (access: RouteAccess): access is Permission => access !== "public" && access !== "signed-in";

  /** The permitted call reached the handler: a 2xx, or the refusal listed for the route. */
  function expectAllowed(res: LightMyRequestResponse, key: string): void {
    const context = `${key}: ${res.body}`;
    if (mustSucceed.has(key)) {
      expect(res.statusCode, context).toBeGreaterThanOrEqual(200);
      expect(res.statusCode, context).toBeLessThan(300);
    } else {
      expect(handlerRefusal[key], `${key}: give it a body that succeeds (bodyFor) or its refusal (handlerRefusal)`).toBeDefined();
      expect(res.statusCode, context).toBeGreaterThanOrEqual(400);
      expect(handlerRefusal[key], context).toContain(res.json().code);
    }
  }

  describe("the route table and the app agree", () => {
    it("every route the app serves under /api is in the table, and every table entry is served", async () => {
      const served = registeredRoutes(t.app.printRoutes({ commonPrefix: false }));
      expect(served.length).toBeGreaterThan(10);
      const apiServed = served.filter((r) => r.split(" ")[1].startsWith("/api/") && !r.split(" ")[1].startsWith("/api/docs"));
      const apiTable = Object.keys(routePermissions).filter((r) => r.split(" ")[1].startsWith("/api/"));
      expect([...apiServed].sort()).toEqual([...apiTable].sort());
      for (const route of routes) {
        expect(t.app.hasRoute({ method: route.method as "GET", url: route.path }), route.key).toBe(true);
      }
      // Routes outside /api (health, OAuth callbacks, docs) are public by design.
      for (const r of served.filter((x) => !x.split(" ")[1].startsWith("/api/") || x.includes("/api/docs"))) {
        expect(routePermissions[r] ?? "public", r).toBe("public");
      }
    });

    it("the routes of this issue have the access DESIGN.md gives them", () => {
      for (const [key, access] of Object.entries({ ...issueRoutes, ...accessOnlyRoutes })) {
        expect(routePermissions[key], key).toBe(access);
      }
    });

    it("the app refuses to start with a route missing from the table", async () => {
      const app = Fastify();
      registerAuth(app, t.mailroom);
      expect(() => app.get("/api/not-in-the-table", async () => "x")).toThrow(/no entry in src\/http\/route-permissions.ts/);
      await app.close();
    });

    it("every permission in the table is a known permission", () => {
      for (const { key, access } of routes) {
        expect(["public", "signed-in", ...permissions], key).toContain(access);
      }
    });
  });

  describe.each(routes)("$key ($access)", (route) => {
    it("without credentials: 401 unless public", async () => {
      const res = await t.request(null, await requestFor(route, "anonymous"));
      if (route.access === "public") expectAllowed(res, route.key);
      else expectError(res, 401, "unauthenticated");
    });

    it("a user with every permission but this one: 403 forbidden naming it", async () => {
      const caller = await callerFor("without", route.access, route.key);
      const res = await t.request(caller, await requestFor(route, "without"));
      if (!isPermission(route.access)) {
        // Public and signed-in routes need no permission: a plain user passes.
        expectAllowed(res, route.key);
        return;
      }
      const body = expectError(res, 403, "forbidden");
      expect(body.details).toEqual({ permission: route.access });
      expect(body.message).toContain(route.access);
    });

    it("a user with exactly this permission: allowed", async () => {
      const caller = await callerFor("with", route.access, route.key);
      expectAllowed(await t.request(caller, await requestFor(route, "with")), route.key);
    });

    it("a super admin: allowed", async () => {
      const caller = await callerFor("super admin", route.access, route.key);
      expectAllowed(await t.request(caller, await requestFor(route, "super admin")), route.key);
    });

    if (isPermission(route.access)) {
      const permission = route.access;
      it("an API token with this permission (Bearer): allowed, no CSRF token needed", async () => {
        const { token } = await t.mailroom.tokens.create(
          { name: unique("tok"), permissions: withPermission(route.key, permission) },
          systemActor,
          null,
        );
        const options = await requestFor(route, "with");
        expectAllowed(await t.request({ headers: { authorization: `Bearer ${token}` } }, options), route.key);
      });

      it("an API token without this permission: 403 forbidden", async () => {
        const { token } = await t.mailroom.tokens.create(
          { name: unique("tok"), permissions: permissions.filter((p) => p !== permission) },
          systemActor,
          null,
        );
        const res = await t.request({ headers: { authorization: `Bearer ${token}` } }, await requestFor(route, "without"));
        expectError(res, 403, "forbidden");
      });
    }
  });

  describe("API tokens", () => {
    it("an unknown, malformed, revoked or expired token is 401 invalid_token", async () => {
      const bearer = (value: string) => ({ headers: { authorization: value } });
      const list = { method: "GET" as const, url: "/api/email-servers" };
      for (const value of [
        "Bearer mrt_0000000000000000_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "Bearer nonsense",
        "Basic abc",
        "Bearer",
      ]) {
        expectError(await t.request(bearer(value), list), 401, "invalid_token");
      }
      const { token, view } = await t.mailroom.tokens.create(
        { name: unique("revoked"), permissions: ["email-servers.view"] },
        systemActor,
        null,
      );
      expect((await t.request(bearer(`Bearer ${token}`), list)).statusCode).toBe(200);
      // A token whose secret part is changed by one character is refused.
      const tampered = token.slice(0, -1) + (token.endsWith("A") ? "B" : "A");
      expectError(await t.request(bearer(`Bearer ${tampered}`), list), 401, "invalid_token");
      const revoke = await t.request(t.admin, { method: "DELETE", url: `/api/tokens/${view.id}` });
      expect(revoke.statusCode).toBe(204);
      expectError(await t.request(bearer(`Bearer ${token}`), list), 401, "invalid_token");

      const expiring = await t.mailroom.tokens.create(
        { name: unique("expiring"), permissions: ["email-servers.view"], expiresAt: new Date(Date.now() + 60_000).toISOString() },
        systemActor,
        null,
      );
      expect((await t.request(bearer(`Bearer ${expiring.token}`), list)).statusCode).toBe(200);
      await t.mailroom.ctx.db
        .updateTable("api_tokens")
        .set({ expires_at: Date.now() - 1 })
        .where("id", "=", expiring.view.id)
        .execute();
      expectError(await t.request(bearer(`Bearer ${expiring.token}`), list), 401, "invalid_token");
    });

    it("a token is shown once and stored only as a hash", async () => {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/tokens",
        payload: { name: unique("shown-once"), permissions: ["messages.send"] },
      });
      expect(res.statusCode, res.body).toBe(201);
      const { token, id } = res.json();
      expect(token).toMatch(/^mrt_[0-9a-f]{16}_/);
      const list = await t.request(t.admin, { method: "GET", url: "/api/tokens" });
      // The secret part follows "mrt_<16 hex>_" and may itself contain "_".
      const secret = token.slice("mrt_0123456789abcdef_".length);
      expect(secret).toHaveLength(32);
      expect(list.body).not.toContain(secret);
      const row = await t.mailroom.ctx.db.selectFrom("api_tokens").selectAll().where("id", "=", id).executeTakeFirstOrThrow();
      expect(JSON.stringify(row)).not.toContain(secret);
    });

    it("a user cannot give a token a permission they lack", async () => {
      const manager = await userWith(["users.manage"]);
      const res = await t.request(manager, {
        method: "POST",
        url: "/api/tokens",
        payload: { name: unique("escalate"), permissions: ["email-servers.update"] },
      });
      expectError(res, 403, "forbidden");
    });

    it("only a super admin can create a super admin", async () => {
      const manager = await userWith(["users.manage"]);
      const res = await t.request(manager, {
        method: "POST",
        url: "/api/users",
        payload: { email: `${unique("sa")}@example.com`, password: ADMIN_PASSWORD, superAdmin: true },
      });
      expectError(res, 403, "forbidden");
    });
  });

  describe("sessions and CSRF", () => {
    it("the session cookie is HttpOnly and SameSite=Strict", async () => {
      const res = await t.request(null, {
        method: "POST",
        url: "/api/auth/login",
        payload: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD },
      });
      expect(res.statusCode).toBe(200);
      const cookie = res.cookies.find((c) => c.name === "mailroom_session")!;
      expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/" });
      expect(res.json().csrfToken).toEqual(expect.any(String));
    });

    it("a cookie-authenticated write without or with a wrong X-CSRF-Token is 403 csrf_failed, and changes nothing", async () => {
      const cookieOnly = { headers: { cookie: t.admin.headers.cookie } };
      const before = (await t.request(t.admin, { method: "GET", url: "/api/email-servers" })).json().total;
      expectError(
        await t.request(cookieOnly, {
          method: "POST",
          url: "/api/email-servers",
          payload: serverBody("capture", unique("csrf")),
        }),
        403,
        "csrf_failed",
      );
      expectError(
        await t.request(
          { headers: { ...cookieOnly.headers, "x-csrf-token": "wrong" } },
          { method: "POST", url: "/api/email-servers", payload: serverBody("capture", unique("csrf")) },
        ),
        403,
        "csrf_failed",
      );
      const id = await fresh.server();
      expectError(await t.request(cookieOnly, { method: "DELETE", url: `/api/email-servers/${id}` }), 403, "csrf_failed");
      expect((await t.request(t.admin, { method: "GET", url: `/api/email-servers/${id}` })).statusCode).toBe(200);
      // Reads need no CSRF token.
      const read = await t.request(cookieOnly, { method: "GET", url: "/api/email-servers" });
      expect(read.statusCode).toBe(200);
      expect(read.json().total).toBe(before + 1);
    });

    it("another session's CSRF token does not work", async () => {
      const other = await userWith(["email-servers.update"]);
      const mixed = { headers: { cookie: t.admin.headers.cookie, "x-csrf-token": other.headers["x-csrf-token"] } };
      expectError(
        await t.request(mixed, { method: "POST", url: "/api/email-servers", payload: serverBody("capture", unique("mixed")) }),
        403,
        "csrf_failed",
      );
    });

    it("logout ends the session", async () => {
      const caller = await t.userWith(["email-servers.view"], `${unique("logout")}@example.com`);
      expect((await t.request(caller, { method: "GET", url: "/api/email-servers" })).statusCode).toBe(200);
      expect((await t.request(caller, { method: "POST", url: "/api/auth/logout" })).statusCode).toBe(204);
      expectError(await t.request(caller, { method: "GET", url: "/api/email-servers" }), 401, "unauthenticated");
    });

    it("disabling a user ends their sessions at once", async () => {
      const email = `${unique("disabled")}@example.com`;
      const caller = await t.userWith(["email-servers.view"], email);
      const { items } = (await t.request(t.admin, { method: "GET", url: "/api/users?limit=500" })).json();
      const user = items.find((u: { email: string }) => u.email === email);
      const res = await t.request(t.admin, { method: "PATCH", url: `/api/users/${user.id}`, payload: { disabled: true } });
      expect(res.statusCode, res.body).toBe(200);
      expectError(await t.request(caller, { method: "GET", url: "/api/email-servers" }), 401, "unauthenticated");
      expectError(
        await t.request(null, { method: "POST", url: "/api/auth/login", payload: { email, password: ADMIN_PASSWORD } }),
        401,
        "invalid_credentials",
      );
    });

    it("a user's permissions are the union of their groups'", async () => {
      const a = await t.mailroom.users.createGroup({ name: unique("a"), permissions: ["email-servers.view"] }, systemActor);
      const b = await t.mailroom.users.createGroup({ name: unique("b"), permissions: ["audit.view"] }, systemActor);
      const email = `${unique("union")}@example.com`;
      await t.mailroom.users.create({ email, password: ADMIN_PASSWORD, groupIds: [a.id, b.id] }, systemActor);
      const caller = await t.login(email, ADMIN_PASSWORD);
      expect((await t.request(caller, { method: "GET", url: "/api/email-servers" })).statusCode).toBe(200);
      expect((await t.request(caller, { method: "GET", url: "/api/audit" })).statusCode).toBe(200);
      expectError(await t.request(caller, { method: "GET", url: "/api/users" }), 403, "forbidden");
      const me = (await t.request(caller, { method: "GET", url: "/api/auth/me" })).json();
      expect(me.user.permissions).toEqual(["email-servers.view", "audit.view"]);
    });
  });

  describe("login", () => {
    const login = (email: string, password: string, caller: Caller | null = null) =>
      t.request(caller, { method: "POST", url: "/api/auth/login", payload: { email, password } });

    it("answers an unknown user, a wrong password and a disabled account identically", async () => {
      const disabled = `${unique("off")}@example.com`;
      await t.mailroom.users.create({ email: disabled, password: ADMIN_PASSWORD, disabled: true }, systemActor);
      const unknown = await login("nobody@example.com", ADMIN_PASSWORD);
      const wrong = await login(ADMIN_EMAIL, "not the password at all");
      const off = await login(disabled, ADMIN_PASSWORD);
      for (const res of [unknown, wrong, off]) {
        expectError(res, 401, "invalid_credentials");
        expect(res.cookies).toEqual([]);
      }
      expect(wrong.body).toBe(unknown.body);
      expect(off.body).toBe(unknown.body);
    });

    it("accepts the email in any case", async () => {
      expect((await login(ADMIN_EMAIL.toUpperCase(), ADMIN_PASSWORD)).statusCode).toBe(200);
    });

    it("a failed login writes an audit entry auth.login_failed without the password", async () => {
      const attempted = `${unique("intruder")}@example.com`;
      await login(attempted, "guessed-password-123");
      const entries = await auditEntries(t, "&action=auth.login_failed");
      const entry = entries.find((e) => (e.after as { email?: string })?.email === attempted);
      expect(entry).toBeDefined();
      expect(entry!.actor.type).toBe("system");
      expect(JSON.stringify(entries)).not.toContain("guessed-password-123");
      expect(t.logs.join("")).not.toContain("guessed-password-123");
    });

    it("is limited per account after 5 failures: 429 too_many_attempts with Retry-After, then lets the right password in", async () => {
      let now = Date.now();
      const limited = await buildServer(t.mailroom, { now: () => now });
      try {
        const email = `${unique("guessed")}@example.com`;
        await t.mailroom.users.create({ email, password: ADMIN_PASSWORD }, systemActor);
        const attempt = (password: string) =>
          limited.inject({ method: "POST", url: "/api/auth/login", payload: { email, password } });
        for (let i = 0; i < 5; i++) expectError(await attempt("wrong password!"), 401, "invalid_credentials");
        const res = await attempt("wrong password!");
        expectError(res, 429, "too_many_attempts");
        expect(Number(res.headers["retry-after"])).toBe(2);
        // Even the right password waits now: it is not checked while the account must wait.
        expectError(await attempt(ADMIN_PASSWORD), 429, "too_many_attempts");
        // Other routes are not limited.
        expect((await limited.inject({ method: "GET", url: "/healthz" })).statusCode).toBe(200);
        now += 2000;
        expect((await attempt(ADMIN_PASSWORD)).statusCode).toBe(200);
      } finally {
        await limited.close();
      }
    });

    it("changing your password needs the current one and ends the session", async () => {
      const email = `${unique("pw")}@example.com`;
      const caller = await t.userWith([], email);
      expectError(
        await t.request(caller, {
          method: "POST",
          url: "/api/auth/password",
          payload: { currentPassword: "wrong wrong wrong", newPassword: "a fresh long password" },
        }),
        401,
        "invalid_credentials",
      );
      const weak = await t.request(caller, {
        method: "POST",
        url: "/api/auth/password",
        payload: { currentPassword: ADMIN_PASSWORD, newPassword: "short" },
      });
      expect(expectError(weak, 400, "weak_password").message).toContain("password");
      const ok = await t.request(caller, {
        method: "POST",
        url: "/api/auth/password",
        payload: { currentPassword: ADMIN_PASSWORD, newPassword: "a fresh long password" },
      });
      expect(ok.statusCode, ok.body).toBe(204);
      expectError(await t.request(caller, { method: "GET", url: "/api/auth/me" }), 401, "unauthenticated");
      expect((await login(email, "a fresh long password")).statusCode).toBe(200);
    });
  });
});
