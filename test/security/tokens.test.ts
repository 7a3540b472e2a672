import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { permissions } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { createCaptureTransport } from "../../src/drivers/capture/transport.js";
import { routePermissions, serverParamOf } from "../../src/http/route-permissions.js";
import { createServer, expectError, serverBody } from "../api/fixtures.js";
import { sampleMessage } from "../drivers/sample.js";
import { ADMIN_PASSWORD, type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

/**
 * Issue 9, findings 4 and 5, as an attacker holding an API token would try them: a token
 * limited to server A reaching server B, and tokens outliving (or outranking) their owner.
 */
describe.each(await availableDialects())("a hostile API token on %s", (dialect) => {
  let t: TestApp;
  let serverA: { id: string; name: string };
  let serverB: { id: string; name: string };
  /** A token of the super admin with most permissions, limited to server A. */
  let scoped: Caller;
  let scopedId: string;
  let messageOfB: string;
  let capturedOfB: string;

  const bearer = (token: string): Caller => ({ headers: { authorization: `Bearer ${token}` } });
  const send = (caller: Caller, server: string) =>
    t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { server, to: "someone@example.com", subject: "hello", text: "hi" },
    });

  beforeAll(async () => {
    t = await startTestApp(dialect);
    serverA = await createServer(t, serverBody("capture", "Server A"));
    serverB = await createServer(t, serverBody("capture", "Server B"));
    const created = await t.request(t.admin, {
      method: "POST",
      url: "/api/tokens",
      payload: {
        name: "limited to A",
        permissions: ["messages.send", "messages.view", "email-servers.view", "email-servers.test", "users.manage"],
        serverIds: [serverA.id],
      },
    });
    expect(created.statusCode, created.body).toBe(201);
    scoped = bearer(created.json().token);
    scopedId = created.json().id;

    const sentB = await send(t.admin, serverB.id);
    expect(sentB.statusCode, sentB.body).toBe(202);
    messageOfB = sentB.json().id;
    expect((await send(scoped, serverA.id)).statusCode).toBe(202);
    // Mail server B kept (written by its own transport, as the worker would).
    const captured = await createCaptureTransport({
      serverId: serverB.id,
      serverName: "Server B",
      fromAddress: "noreply@example.com",
      settings: { retention: 50 },
      secrets: {},
      dataDir: t.mailroom.ctx.config.dataDir,
      log: pino({ level: "silent" }),
      poolSize: 1,
    }).send(sampleMessage());
    capturedOfB = captured.providerMessageId as string;
  });
  afterAll(() => t.close());

  describe("a token limited to server A", () => {
    it("cannot send through B (as before)", async () => {
      expectError(await send(scoped, serverB.id), 403, "server_not_allowed");
    });

    it("lists only A's messages, and is refused B's by filter", async () => {
      const res = await t.request(scoped, { method: "GET", url: "/api/messages?limit=500" });
      expect(res.statusCode, res.body).toBe(200);
      const servers = res.json().items.map((m: { server: { id: string } }) => m.server.id);
      expect(servers.length).toBeGreaterThan(0);
      expect(new Set(servers)).toEqual(new Set([serverA.id]));
      expect(res.json().total).toBe(servers.length);
      expectError(
        await t.request(scoped, { method: "GET", url: `/api/messages?server=${serverB.id}` }),
        403,
        "server_not_allowed",
      );
    });

    it("cannot read or retry B's message", async () => {
      expectError(await t.request(scoped, { method: "GET", url: `/api/messages/${messageOfB}` }), 403, "server_not_allowed");
      expectError(
        await t.request(scoped, { method: "POST", url: `/api/messages/${messageOfB}/retry` }),
        403,
        "server_not_allowed",
      );
    });

    it("cannot read B's captured mail, listed or one by one", async () => {
      const list = await t.request(scoped, { method: "GET", url: `/api/capture/${serverB.id}/messages` });
      expectError(list, 403, "server_not_allowed");
      expect(list.body).not.toContain(capturedOfB);
      const one = await t.request(scoped, { method: "GET", url: `/api/capture/${serverB.id}/messages/${capturedOfB}` });
      expectError(one, 403, "server_not_allowed");
      // By name as well as by id.
      expectError(
        await t.request(scoped, { method: "GET", url: `/api/capture/${encodeURIComponent("server b")}/messages` }),
        403,
        "server_not_allowed",
      );
      // Its own server's mail it may read.
      expect((await t.request(scoped, { method: "GET", url: `/api/capture/${serverA.id}/messages` })).statusCode).toBe(200);
    });

    it("cannot test B, saved or as a draft based on it", async () => {
      expectError(
        await t.request(scoped, {
          method: "POST",
          url: `/api/email-servers/${serverB.id}/test`,
          payload: { mode: "check", to: "tester@example.com" },
        }),
        403,
        "server_not_allowed",
      );
      expectError(
        await t.request(scoped, {
          method: "POST",
          url: "/api/email-servers/test",
          payload: { mode: "check", to: "tester@example.com", basedOn: serverB.id, server: { driver: "capture", settings: {} } },
        }),
        403,
        "server_not_allowed",
      );
      const own = await t.request(scoped, {
        method: "POST",
        url: `/api/email-servers/${serverA.id}/test`,
        payload: { mode: "check", to: "tester@example.com" },
      });
      expect(own.statusCode, own.body).toBe(200);
    });

    it("is refused B on every route that names a server, present and future, before anything happens", async () => {
      // Every permission, so only the server limit stands in the way.
      const wide = await t.request(t.admin, {
        method: "POST",
        url: "/api/tokens",
        payload: { name: "every permission, A only", permissions: [...permissions], serverIds: [serverA.id] },
      });
      expect(wide.statusCode, wide.body).toBe(201);
      const caller = bearer(wide.json().token);
      const routes = Object.keys(routePermissions).filter((key) => serverParamOf(key.split(" ")[1]));
      // The probe ("Check now"), captured-mail delete, download and release were added after the rule.
      expect(routes.length).toBeGreaterThanOrEqual(15);
      for (const key of routes) {
        const [method, pattern] = key.split(" ");
        const url = pattern
          .replace(/:id(?=\/|$)/, pattern.startsWith("/api/capture/") ? capturedOfB : serverB.id)
          .replace(":serverId", serverB.id)
          .replace(":key", "host")
          .replace(/:[A-Za-z]+/g, "x");
        const answer = await t.request(caller, {
          method: method as "GET",
          url,
          ...(method === "GET" || method === "DELETE" ? {} : { payload: {} }),
        });
        expect(`${key} → ${answer.statusCode} ${answer.json().code}`).toBe(`${key} → 403 server_not_allowed`);
      }
      // Nothing happened to B: it and its captured mail are still there.
      expect((await t.request(t.admin, { method: "GET", url: `/api/email-servers/${serverB.id}` })).statusCode).toBe(200);
      const kept = await t.request(t.admin, { method: "GET", url: `/api/capture/${serverB.id}/messages/${capturedOfB}` });
      expect(kept.statusCode).toBe(200);
    });

    it("sees only A among the servers and in the statistics", async () => {
      const list = (await t.request(scoped, { method: "GET", url: "/api/email-servers" })).json();
      expect(list.items.map((s: { id: string }) => s.id)).toEqual([serverA.id]);
      expect(list.total).toBe(1);
      expectError(await t.request(scoped, { method: "GET", url: `/api/email-servers/${serverB.id}` }), 403, "server_not_allowed");
      const stats = await t.request(scoped, { method: "GET", url: "/api/stats" });
      expect(stats.statusCode, stats.body).toBe(200);
      expect(stats.body).not.toContain(serverB.id);
      expect(stats.json().queue.queued + stats.json().queue.held).toBe(1);
    });

    it("cannot create a token wider than itself: no server limit, another server, or more permissions", async () => {
      const create = (payload: Record<string, unknown>) =>
        t.request(scoped, { method: "POST", url: "/api/tokens", payload: { name: "child", ...payload } });
      const unlimited = await create({ permissions: ["messages.send"] });
      expectError(unlimited, 403, "server_not_allowed");
      expectError(await create({ permissions: ["messages.send"], serverIds: [serverB.id] }), 403, "server_not_allowed");
      expectError(await create({ permissions: ["audit.view"], serverIds: [serverA.id] }), 403, "forbidden");
      // Narrower is fine, and the child belongs to the same user, not to the token.
      const child = await create({ permissions: ["messages.send"], serverIds: [serverA.id] });
      expect(child.statusCode, child.body).toBe(201);
      const adminId = (await t.request(t.admin, { method: "GET", url: "/api/auth/me" })).json().user.id;
      expect(child.json().createdBy).toBe(adminId);
      expectError(await send(bearer(child.json().token), serverB.id), 403, "server_not_allowed");
    });

    it("cannot create a token that outlives itself: a child ends when its parent does, at the latest", async () => {
      const inAnHour = new Date(Date.now() + 3_600_000).toISOString();
      const parent = await t.request(t.admin, {
        method: "POST",
        url: "/api/tokens",
        payload: {
          name: "expiring",
          permissions: ["messages.send", "users.manage"],
          serverIds: [serverA.id],
          expiresAt: inAnHour,
        },
      });
      expect(parent.statusCode, parent.body).toBe(201);
      const create = (payload: Record<string, unknown>) =>
        t.request(bearer(parent.json().token), {
          method: "POST",
          url: "/api/tokens",
          payload: { name: "child", permissions: ["messages.send"], serverIds: [serverA.id], ...payload },
        });
      const later = await create({ expiresAt: new Date(Date.now() + 7_200_000).toISOString() });
      expectError(later, 400, "validation_failed");
      expect(later.json().message + JSON.stringify(later.json())).toContain("no later than");
      const unbounded = await create({});
      expect(unbounded.statusCode, unbounded.body).toBe(201);
      expect(unbounded.json().expiresAt).toBe(parent.json().expiresAt);
      const sooner = new Date(Date.now() + 600_000).toISOString();
      const shorter = await create({ expiresAt: sooner });
      expect(shorter.statusCode, shorter.body).toBe(201);
      expect(shorter.json().expiresAt).toBe(sooner);
    });

    it("cannot create an email server (it would be outside its limit)", async () => {
      const token = (
        await t.mailroom.tokens.create(
          { name: "updater", permissions: ["email-servers.update"], serverIds: [serverA.id] },
          systemActor,
          null,
        )
      ).token;
      expectError(
        await t.request(bearer(token), { method: "POST", url: "/api/email-servers", payload: serverBody("capture", "Mine") }),
        403,
        "server_not_allowed",
      );
      expectError(
        await t.request(bearer(token), {
          method: "PATCH",
          url: `/api/email-servers/${serverB.id}/settings/retention`,
          payload: { value: 1 },
        }),
        403,
        "server_not_allowed",
      );
      expectError(
        await t.request(bearer(token), { method: "POST", url: `/api/email-servers/${serverB.id}/default` }),
        403,
        "server_not_allowed",
      );
    });
  });

  describe("a token belongs to its owner", () => {
    async function ownerWithToken(email: string, permissions: ("messages.send" | "messages.view" | "audit.view")[]) {
      const group = await t.mailroom.users.createGroup({ name: `g-${email}`, permissions }, systemActor);
      await t.mailroom.users.create({ email, password: ADMIN_PASSWORD, groupIds: [group.id] }, systemActor);
      const owner = await t.login(email, ADMIN_PASSWORD);
      // The owner holds no users.manage, so the token is made for them through the service.
      const ownerId = (await t.request(owner, { method: "GET", url: "/api/auth/me" })).json().user.id as string;
      const { token, view } = await t.mailroom.tokens.create({ name: `of ${email}`, permissions }, systemActor, {
        superAdmin: false,
        permissions: new Set(permissions),
        serverIds: null,
        userId: ownerId,
      });
      return { ownerId, groupId: group.id, token: bearer(token), tokenId: view.id };
    }

    it("stops working when its owner is deleted (401), and the delete said how many would", async () => {
      const { ownerId, token } = await ownerWithToken("leaver@example.com", ["messages.view"]);
      expect((await t.request(token, { method: "GET", url: "/api/messages" })).statusCode).toBe(200);
      expect((await t.request(t.admin, { method: "GET", url: `/api/users/${ownerId}` })).json().activeTokens).toBe(1);
      expect((await t.request(t.admin, { method: "DELETE", url: `/api/users/${ownerId}` })).statusCode).toBe(204);
      expectError(await t.request(token, { method: "GET", url: "/api/messages" }), 401, "invalid_token");
    });

    it("stops working while its owner is disabled", async () => {
      const { ownerId, token } = await ownerWithToken("paused@example.com", ["messages.view"]);
      await t.request(t.admin, { method: "PATCH", url: `/api/users/${ownerId}`, payload: { disabled: true } });
      expectError(await t.request(token, { method: "GET", url: "/api/messages" }), 401, "invalid_token");
      await t.request(t.admin, { method: "PATCH", url: `/api/users/${ownerId}`, payload: { disabled: false } });
      expect((await t.request(token, { method: "GET", url: "/api/messages" })).statusCode).toBe(200);
    });

    it("acts with no more than its owner holds now", async () => {
      const { groupId, token } = await ownerWithToken("demoted@example.com", ["messages.view", "audit.view"]);
      expect((await t.request(token, { method: "GET", url: "/api/audit" })).statusCode).toBe(200);
      await t.mailroom.users.updateGroup(groupId, { name: "g-demoted@example.com", permissions: ["messages.view"] }, systemActor);
      expectError(await t.request(token, { method: "GET", url: "/api/audit" }), 403, "forbidden");
      expect((await t.request(token, { method: "GET", url: "/api/auth/me" })).json().token.permissions).toEqual([
        "messages.view",
      ]);
    });

    it("a send-only token reads the status of what it sent, and nothing else", async () => {
      const { token } = await ownerWithToken("sender@example.com", ["messages.send"]);
      const sent = await send(token, serverA.id);
      expect(sent.statusCode, sent.body).toBe(202);
      const own = await t.request(token, { method: "GET", url: `/api/messages/${sent.json().id}` });
      expect(own.statusCode, own.body).toBe(200);
      expect(own.json()).toMatchObject({ id: sent.json().id, status: expect.any(String) });
      const other = expectError(await t.request(token, { method: "GET", url: `/api/messages/${messageOfB}` }), 403, "forbidden");
      expect(other.details).toEqual({ permission: "messages.view" });
      // An unknown id answers the same: existence is not revealed.
      expectError(
        await t.request(token, { method: "GET", url: "/api/messages/00000000-0000-4000-8000-000000000000" }),
        403,
        "forbidden",
      );
      expectError(await t.request(token, { method: "GET", url: "/api/messages" }), 403, "forbidden");
    });
  });

  it("the scoped token itself still works for A after all this", async () => {
    expect((await t.request(scoped, { method: "GET", url: "/api/auth/me" })).json().token.id).toBe(scopedId);
  });
});
