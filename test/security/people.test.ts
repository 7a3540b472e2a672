import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, createMailroom } from "../../src/app.js";
import type { Permission } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { buildServer } from "../../src/http/server.js";
import { expectError } from "../api/fixtures.js";
import { ADMIN_PASSWORD, type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";

/**
 * Issue 9, finding 3, as a users.manage holder would try it: taking over someone who holds
 * more than they do, deleting or widening groups that grant what they lack, revoking other
 * people's tokens; and one-time passwords, so a password a manager set is not a way in.
 */
describe.each(await availableDialects())("a hostile users.manage holder on %s", (dialect) => {
  let t: TestApp;
  let manager: Caller;
  let managerId: string;
  let seq = 0;

  /** A user in a new group granting `permissions`, with a token of their own. */
  async function someone(permissions: Permission[]) {
    const email = `someone-${++seq}@example.com`;
    const group = await t.mailroom.users.createGroup({ name: `group-${seq}`, permissions }, systemActor);
    const { user } = await t.mailroom.users.create({ email, password: ADMIN_PASSWORD, groupIds: [group.id] }, systemActor);
    const { token, view } = await t.mailroom.tokens.create({ name: `token of ${email}`, permissions }, systemActor, {
      superAdmin: false,
      permissions: new Set(permissions),
      serverIds: null,
      userId: user.id,
    });
    return { email, id: user.id, groupId: group.id, token, tokenId: view.id };
  }

  beforeAll(async () => {
    t = await startTestApp(dialect);
    manager = await t.userWith(["users.manage", "messages.view"], "manager@example.com");
    managerId = (await t.request(manager, { method: "GET", url: "/api/auth/me" })).json().user.id;
  });
  afterAll(() => t.close());

  it("cannot set the password of someone holding email-servers.update, nor sign in as them", async () => {
    const target = await someone(["email-servers.update"]);
    const res = await t.request(manager, {
      method: "PATCH",
      url: `/api/users/${target.id}`,
      payload: { password: "the manager's choice" },
    });
    const body = expectError(res, 403, "user_not_manageable");
    expect(body.message).toBe(
      `You cannot change ${target.email}: they hold “Edit email servers” (email-servers.update), which you do not have.`,
    );
    expect(body.details).toEqual({ permissions: ["email-servers.update"] });
    expectError(
      await t.request(null, {
        method: "POST",
        url: "/api/auth/login",
        payload: { email: target.email, password: "the manager's choice" },
      }),
      401,
      "invalid_credentials",
    );
    expect((await t.login(target.email, ADMIN_PASSWORD)).headers.cookie).toBeTruthy();
  });

  it("cannot change the email, groups, or disable or delete someone holding more", async () => {
    const target = await someone(["audit.view", "messages.view"]);
    for (const payload of [{ email: "mine@example.com" }, { groupIds: [] }, { disabled: true }, { name: "Renamed" }]) {
      const res = await t.request(manager, { method: "PATCH", url: `/api/users/${target.id}`, payload });
      expect(expectError(res, 403, "user_not_manageable").message).toContain("audit.view");
    }
    expectError(await t.request(manager, { method: "DELETE", url: `/api/users/${target.id}` }), 403, "user_not_manageable");
    expect(await t.mailroom.users.get(target.id)).toMatchObject({ email: target.email, disabled: false, name: "" });
  });

  it("may still change someone holding only what the manager holds", async () => {
    const target = await someone(["messages.view"]);
    const res = await t.request(manager, { method: "PATCH", url: `/api/users/${target.id}`, payload: { name: "Managed" } });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({ name: "Managed", manageable: true, notManageableReason: null });
  });

  it("cannot delete, rename or narrow a group that grants what the manager lacks", async () => {
    const target = await someone(["email-servers.update"]);
    expectError(
      await t.request(manager, { method: "DELETE", url: `/api/groups/${target.groupId}` }),
      403,
      "group_not_manageable",
    );
    const narrowed = await t.request(manager, {
      method: "PUT",
      url: `/api/groups/${target.groupId}`,
      payload: { name: "Harmless", permissions: [] },
    });
    expect(expectError(narrowed, 403, "group_not_manageable").message).toContain("email-servers.update");
    expect(await t.mailroom.users.getGroup(target.groupId)).toMatchObject({ permissions: ["email-servers.update"] });
    // A group of what the manager holds they may delete.
    const own = await t.mailroom.users.createGroup({ name: "Viewers", permissions: ["messages.view"] }, systemActor);
    expect((await t.request(manager, { method: "DELETE", url: `/api/groups/${own.id}` })).statusCode).toBe(204);
  });

  it("cannot revoke the token of someone holding more; may revoke its own and those of people it manages", async () => {
    const stronger = await someone(["audit.view"]);
    const res = await t.request(manager, { method: "DELETE", url: `/api/tokens/${stronger.tokenId}` });
    expect(expectError(res, 403, "token_not_manageable").message).toContain("audit.view");
    const list = (await t.request(manager, { method: "GET", url: "/api/tokens" })).json();
    expect(list.items.find((x: { id: string }) => x.id === stronger.tokenId)).toMatchObject({ manageable: false });
    expect(
      (await t.request({ headers: { authorization: `Bearer ${stronger.token}` } }, { method: "GET", url: "/api/audit" }))
        .statusCode,
    ).toBe(200);

    const weaker = await someone(["messages.view"]);
    expect((await t.request(manager, { method: "DELETE", url: `/api/tokens/${weaker.tokenId}` })).statusCode).toBe(204);
    const own = await t.request(manager, {
      method: "POST",
      url: "/api/tokens",
      payload: { name: "manager's own", permissions: ["messages.view"] },
    });
    expect(own.json().createdBy).toBe(managerId);
    expect((await t.request(manager, { method: "DELETE", url: `/api/tokens/${own.json().id}` })).statusCode).toBe(204);
  });

  it("cannot revoke a token made by the operator that carries what the manager lacks", async () => {
    const { view } = await t.mailroom.tokens.create(
      { name: "operator's", permissions: ["email-servers.update"] },
      systemActor,
      null,
    );
    expectError(await t.request(manager, { method: "DELETE", url: `/api/tokens/${view.id}` }), 403, "token_not_manageable");
  });

  it("a password the manager sets is one-time: signed in with it, only the password can be changed", async () => {
    const target = await someone(["messages.view"]);
    const set = await t.request(manager, {
      method: "PATCH",
      url: `/api/users/${target.id}`,
      payload: { password: "manager knows this" },
    });
    expect(set.statusCode, set.body).toBe(200);
    const login = await t.request(null, {
      method: "POST",
      url: "/api/auth/login",
      payload: { email: target.email, password: "manager knows this" },
    });
    expect(login.json().mustChangePassword).toBe(true);
    const session = await t.login(target.email, "manager knows this");
    for (const [method, url] of [
      ["GET", "/api/messages"],
      ["GET", "/api/email-servers"],
      ["GET", "/api/users"],
      ["POST", "/api/tokens"],
    ] as const) {
      const res = await t.request(session, { method, url, ...(method === "POST" ? { payload: {} } : {}) });
      expect(expectError(res, 403, "password_change_required").message).toContain("choose your own");
    }
    expect((await t.request(session, { method: "GET", url: "/api/auth/me" })).statusCode).toBe(200);
    // The manager's own password, set on their own page, is not one-time.
    const self = await t.request(manager, {
      method: "PATCH",
      url: `/api/users/${managerId}`,
      payload: { password: ADMIN_PASSWORD },
    });
    expect(self.json().mustChangePassword).toBe(false);
    manager = await t.login("manager@example.com", ADMIN_PASSWORD);
  });
});

describe("the first admin's generated password", () => {
  it("is one-time: it must be changed at the first sign-in", async () => {
    const [dialect] = await availableDialects();
    const { config, drop } = await freshConfig(dialect, { MAILROOM_ADMIN_EMAIL: "first@example.com" });
    const mailroom = createMailroom(config);
    try {
      const boot = await bootstrap(mailroom);
      const password = boot.admin?.generatedPassword as string;
      expect(password).toMatch(/^\S{20}$/);
      const app = await buildServer(mailroom);
      try {
        const login = await app.inject({
          method: "POST",
          url: "/api/auth/login",
          payload: { email: "first@example.com", password },
        });
        expect(login.json()).toMatchObject({ mustChangePassword: true, user: { superAdmin: true } });
        const cookie = login.cookies.find((c) => c.name === "mailroom_session")?.value;
        const headers = { cookie: `mailroom_session=${cookie}`, "x-csrf-token": login.json().csrfToken };
        expectError(await app.inject({ method: "GET", url: "/api/email-servers", headers }), 403, "password_change_required");
        const changed = await app.inject({
          method: "POST",
          url: "/api/auth/password",
          headers,
          payload: { currentPassword: password, newPassword: "the admin's own choice" },
        });
        expect(changed.statusCode, changed.body).toBe(204);
        const again = await app.inject({
          method: "POST",
          url: "/api/auth/login",
          payload: { email: "first@example.com", password: "the admin's own choice" },
        });
        expect(again.json().mustChangePassword).toBe(false);
      } finally {
        await app.close();
      }
    } finally {
      await mailroom.close();
      await drop();
    }
  });
});
