import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

/** The routes API: rules, their checks, their audit, the tester. Delivery along routes: test/delivery/routing.test.ts. */
describe.each(await availableDialects())("routes API on %s", (dialect) => {
  let t: TestApp;
  let a: { id: string; name: string };
  let b: { id: string; name: string };

  beforeAll(async () => {
    t = await startTestApp(dialect);
    const server = (name: string, allowed: string[]) =>
      t.mailroom.servers.create(
        {
          name,
          driver: "capture",
          fromAddress: `noreply@${name.toLowerCase()}.example.com`,
          settings: { allowedFromAddresses: allowed },
        },
        systemActor,
      );
    a = await server("Alpha", ["*@shared.example.com"]);
    b = await server("Beta", ["*@shared.example.com", "*@beta-only.example.com"]);
  });
  afterAll(() => t.close());

  const post = (payload: unknown) => t.request(t.admin, { method: "POST", url: "/api/routes", payload: payload as object });

  it("creates, orders, replaces and deletes rules, each change audited", async () => {
    const first = await post({ name: "shared", match: { from: "Shared.Example.com" }, servers: ["Alpha", b.id] });
    expect(first.statusCode, first.body).toBe(201);
    expect(first.json()).toMatchObject({
      name: "shared",
      position: 1,
      match: { from: "shared.example.com", token: null, tag: null, recipientDomain: null },
      servers: [
        { id: a.id, name: "Alpha" },
        { id: b.id, name: "Beta" },
      ],
    });
    const second = await post({ name: "news", match: { tag: "newsletter" }, servers: ["Beta"], position: 1 });
    expect(second.statusCode).toBe(201);
    const list = (await t.request(t.admin, { method: "GET", url: "/api/routes" })).json();
    expect(list.items.map((r: { name: string; position: number }) => [r.name, r.position])).toEqual([
      ["news", 1],
      ["shared", 2],
    ]);

    const put = await t.request(t.admin, {
      method: "PUT",
      url: `/api/routes/${first.json().id}`,
      payload: { name: "shared", match: { from: "shared.example.com", recipientDomain: "example.net" }, servers: ["Beta"] },
    });
    expect(put.statusCode, put.body).toBe(200);
    expect(put.json()).toMatchObject({ position: 2, match: { recipientDomain: "example.net" }, servers: [{ name: "Beta" }] });

    const del = await t.request(t.admin, { method: "DELETE", url: `/api/routes/${second.json().id}` });
    expect(del.statusCode).toBe(204);
    expect((await t.request(t.admin, { method: "GET", url: `/api/routes/${second.json().id}` })).json().code).toBe(
      "route_not_found",
    );
    expect((await t.mailroom.routes.get("shared")).position).toBe(1);

    const audit = await t.mailroom.ctx.db.selectFrom("audit_log").selectAll().where("target_type", "=", "route").execute();
    expect(audit.map((e) => e.action)).toEqual(["route.create", "route.create", "route.update", "route.delete"]);
    expect(JSON.parse(audit[2].before ?? "{}").servers).toEqual([a.id, b.id]);
    expect(JSON.parse(audit[2].after ?? "{}").servers).toEqual([b.id]);
    await t.mailroom.routes.delete("shared", systemActor);
  });

  it("refuses bad rules with a 4xx naming each field, and writes nothing", async () => {
    const cases: [unknown, number, string, string][] = [
      [{ name: "x\r\nBcc: evil", match: { tag: "t" }, servers: ["Alpha"] }, 400, "control_characters", "name"],
      [{ name: " ", match: { tag: "t" }, servers: ["Alpha"] }, 400, "validation_failed", "name"],
      [{ name: "x", match: {}, servers: ["Alpha"] }, 400, "validation_failed", "match"],
      [{ name: "x", match: { from: "not an address" }, servers: ["Alpha"] }, 400, "validation_failed", "match.from"],
      [{ name: "x", match: { tag: "has space" }, servers: ["Alpha"] }, 400, "validation_failed", "match.tag"],
      [{ name: "x", match: { recipientDomain: "nodot" }, servers: ["Alpha"] }, 400, "validation_failed", "match.recipientDomain"],
      [{ name: "x", match: { token: "no-such-token" }, servers: ["Alpha"] }, 400, "validation_failed", "match.token"],
      [{ name: "x", match: { tag: "t" }, servers: [] }, 400, "validation_failed", "servers"],
      [{ name: "x", match: { tag: "t" }, servers: ["Nowhere"] }, 400, "validation_failed", "servers[0]"],
      [{ name: "x", match: { tag: "t" }, servers: ["Alpha", "alpha"] }, 400, "validation_failed", "servers[1]"],
      [{ name: "x", match: { tag: "t" }, servers: ["Alpha"], shell: "rm -rf /" }, 400, "unknown_field", ""],
      [{ name: "x", match: { tag: "t", server: "x" }, servers: ["Alpha"] }, 400, "unknown_field", ""],
      [{ name: "x", match: { tag: 5 }, servers: ["Alpha"] }, 400, "validation_failed", ""],
      [{ name: "x", match: { tag: "t" }, servers: Array.from({ length: 11 }, () => "Alpha") }, 400, "validation_failed", ""],
    ];
    for (const [body, status, code, field] of cases) {
      const res = await post(body);
      expect(res.statusCode, JSON.stringify(body)).toBe(status);
      expect(res.json().code, JSON.stringify(body)).toBe(code);
      if (field) expect(JSON.stringify(res.json().details), JSON.stringify(body)).toContain(`"field":"${field}"`);
    }
    expect((await t.mailroom.routes.list()).total).toBe(0);
    // Names are unique.
    expect((await post({ name: "dup", match: { tag: "t" }, servers: ["Alpha"] })).statusCode).toBe(201);
    expect((await post({ name: "dup", match: { tag: "u" }, servers: ["Alpha"] })).json()).toMatchObject({
      code: "validation_failed",
      details: { field: "name" },
    });
    await t.mailroom.routes.delete("dup", systemActor);
  });

  it("says which route a message would take, which servers may send its From, and which would send", async () => {
    await post({ name: "beta-first", match: { from: "shared.example.com" }, servers: ["Beta", "Alpha"] });
    const explain = (payload: object) => t.request(t.admin, { method: "POST", url: "/api/routes/explain", payload });

    const shared = (await explain({ from: "info@shared.example.com", to: ["x@example.net"] })).json();
    expect(shared).toMatchObject({
      route: { name: "beta-first" },
      servers: [
        { name: "Beta", fromAllowed: true, status: "ready" },
        { name: "Alpha", fromAllowed: true, status: "ready" },
      ],
      chosen: { name: "Beta" },
    });
    expect(shared.reason).toContain("sent through 'Beta'");

    await t.mailroom.servers.setFault(b.id, "failing", "test: down");
    const failover = (await explain({ from: "info@shared.example.com" })).json();
    expect(failover.chosen).toMatchObject({ name: "Alpha" });
    await t.mailroom.servers.setFault(b.id, null, null);

    const unmatched = (await explain({ from: "someone@elsewhere.example.org" })).json();
    expect(unmatched.route).toBeNull();
    expect(unmatched.reason).toContain("No route matches");

    await post({ name: "beta-only", match: { from: "stranger.example.com" }, servers: ["Alpha"] });
    const refused = (await explain({ from: "x@stranger.example.com" })).json();
    expect(refused).toMatchObject({ chosen: null, servers: [{ name: "Alpha", fromAllowed: false }] });
    expect(refused.reason).toContain("refused");

    const bad = await explain({ from: "x@example.com", extra: 1 });
    expect(bad.statusCode).toBe(400);
  });

  it("lets a token limited to some servers see and change only the rules within them", async () => {
    await t.mailroom.routes.create({ name: "alpha-only", match: { tag: "scope-a" }, servers: ["Alpha"] }, systemActor);
    const both = await t.mailroom.routes.create(
      { name: "both", match: { tag: "scope-b" }, servers: ["Beta", "Alpha"] },
      systemActor,
    );
    const { token } = await t.mailroom.tokens.create(
      { name: "alpha-admin", permissions: ["email-servers.view", "email-servers.update"], serverIds: [a.id] },
      systemActor,
      null,
    );
    const caller = { headers: { authorization: `Bearer ${token}` } };
    const listed = (await t.request(caller, { method: "GET", url: "/api/routes" })).json();
    expect(listed.items.map((r: { name: string }) => r.name)).toContain("alpha-only");
    expect(listed.items.map((r: { name: string }) => r.name)).not.toContain("both");
    const before = (await t.mailroom.routes.list()).total;
    const made = await t.request(caller, {
      method: "POST",
      url: "/api/routes",
      payload: { name: "sneaky", match: { tag: "x" }, servers: ["Alpha", "Beta"] },
    });
    expect(made.statusCode).toBe(403);
    expect(made.json().code).toBe("server_not_allowed");
    expect((await t.mailroom.routes.list()).total).toBe(before);
    for (const method of ["PUT", "DELETE"] as const) {
      const res = await t.request(caller, {
        method,
        url: `/api/routes/${both.id}`,
        ...(method === "PUT" ? { payload: { name: "both", match: { tag: "scope-b" }, servers: ["Alpha"] } } : {}),
      });
      expect(res.statusCode, method).toBe(403);
    }
    expect((await t.mailroom.routes.get(both.id)).servers.map((s) => s.name)).toEqual(["Beta", "Alpha"]);
    const explained = (
      await t.request(caller, {
        method: "POST",
        url: "/api/routes/explain",
        payload: { from: "x@shared.example.com", tag: "scope-b" },
      })
    ).json();
    expect(explained.servers.map((s: { name: string }) => s.name)).toEqual(["Alpha"]);
  });

  it("routes a token limited to one server only through the servers it may use", async () => {
    await post({ name: "limited", match: { tag: "limited" }, servers: ["Beta", "Alpha"] });
    const { token } = await t.mailroom.tokens.create(
      { name: "only-alpha", permissions: ["messages.send", "messages.view"], serverIds: [a.id] },
      systemActor,
      null,
    );
    const caller = { headers: { authorization: `Bearer ${token}` } };
    const res = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.net", subject: "s", tag: "limited", from: "app@shared.example.com" },
    });
    expect(res.statusCode, res.body).toBe(202);
    const row = await t.mailroom.messages.getRow(res.json().id);
    expect(row.server_id).toBe(a.id);
    expect(JSON.parse(row.route_servers ?? "[]")).toEqual([a.id]);

    // A From only Beta may send: this token has no server of the route that may.
    const refused = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.net", subject: "s", tag: "limited", from: "app@beta-only.example.com" },
    });
    expect(refused.statusCode).toBe(400);
    expect(refused.json().code).toBe("from_not_allowed");
    expect(refused.json().message).not.toContain("Beta");

    const badTag = await t.request(caller, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.net", subject: "s", tag: "a\r\nb" },
    });
    expect(badTag.statusCode).toBe(400);
    expect(badTag.json()).toMatchObject({ code: expect.stringMatching(/validation_failed|control_characters/) });
  });
});
