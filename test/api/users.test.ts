import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { ADMIN_EMAIL, ADMIN_PASSWORD, type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { auditEntries, createServer, expectError, serverBody } from "./fixtures.js";

describe.each(await availableDialects())("users, groups, tokens and the audit log on %s", (dialect) => {
  let t: TestApp;
  let manager: Caller;
  beforeAll(async () => {
    t = await startTestApp(dialect);
    manager = await t.userWith(["users.manage"], "manager@example.com");
  });
  afterAll(() => t.close());

  const adminId = async () => (await t.request(t.admin, { method: "GET", url: "/api/auth/me" })).json().user.id as string;

  describe("users", () => {
    it("creates a user with a generated one-time password, shown once", async () => {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/users",
        payload: { email: "  New.Person@Example.com ", name: "New Person" },
      });
      expect(res.statusCode, res.body).toBe(201);
      const user = res.json();
      expect(user).toMatchObject({ email: "new.person@example.com", name: "New Person", superAdmin: false, disabled: false });
      expect(user.generatedPassword).toMatch(/^\S{20}$/);
      expect((await t.login("new.person@example.com", user.generatedPassword)).headers.cookie).toBeTruthy();
      const read = await t.request(t.admin, { method: "GET", url: `/api/users/${user.id}` });
      expect(read.json()).not.toHaveProperty("generatedPassword");
      expect(read.body).not.toContain("scrypt");
      const [entry] = await auditEntries(t, `&targetId=${user.id}`);
      expect(entry).toMatchObject({ action: "user.create", after: { email: "new.person@example.com" } });
      expect(JSON.stringify(entry)).not.toContain(user.generatedPassword);
    });

    it("refuses a taken email (any case), a bad email and a short password", async () => {
      expectError(
        await t.request(t.admin, { method: "POST", url: "/api/users", payload: { email: ADMIN_EMAIL.toUpperCase() } }),
        409,
        "email_taken",
      );
      const bad = expectError(
        await t.request(t.admin, { method: "POST", url: "/api/users", payload: { email: "nope" } }),
        400,
        "validation_failed",
      );
      expect(bad.message).toContain("email");
      const weak = expectError(
        await t.request(t.admin, {
          method: "POST",
          url: "/api/users",
          payload: { email: "weak@example.com", password: "short" },
        }),
        400,
        "weak_password",
      );
      expect(weak.message).toMatch(/password: must be at least 12 characters/);
    });

    it("a password change is audited as [secret changed], never the value or the hash", async () => {
      const { user } = await t.mailroom.users.create({ email: "pw-change@example.com", password: ADMIN_PASSWORD }, systemActor);
      const res = await t.request(t.admin, {
        method: "PATCH",
        url: `/api/users/${user.id}`,
        payload: { password: "an entirely new password" },
      });
      expect(res.statusCode, res.body).toBe(200);
      const [entry] = await auditEntries(t, `&targetId=${user.id}&action=user.update`);
      expect(entry.after).toMatchObject({ password: "[secret changed]" });
      expect(JSON.stringify(entry)).not.toContain("an entirely new password");
      expect(JSON.stringify(entry)).not.toContain("scrypt$");
    });

    it("a users.manage holder cannot take over a super admin: no password, email, disable or delete", async () => {
      const id = await adminId();
      for (const payload of [{ password: "taken over password" }, { email: "mine@example.com" }, { disabled: true }]) {
        const res = await t.request(manager, { method: "PATCH", url: `/api/users/${id}`, payload });
        expect(expectError(res, 403, "user_not_manageable").message).toContain("super admin");
      }
      expectError(await t.request(manager, { method: "DELETE", url: `/api/users/${id}` }), 403, "user_not_manageable");
      expectError(
        await t.request(manager, { method: "PATCH", url: `/api/users/${id}`, payload: { superAdmin: false } }),
        403,
        "forbidden",
      );
      // The admin can still sign in with the old password.
      expect((await t.login(ADMIN_EMAIL, ADMIN_PASSWORD)).headers.cookie).toBeTruthy();
      // Ordinary users they may manage.
      const { user } = await t.mailroom.users.create({ email: "managed@example.com", password: ADMIN_PASSWORD }, systemActor);
      const ok = await t.request(manager, { method: "PATCH", url: `/api/users/${user.id}`, payload: { name: "Managed" } });
      expect(ok.statusCode, ok.body).toBe(200);
    });

    it("a user's page says whether the caller may change them, why not, and how many tokens die with them", async () => {
      const auditors = await t.mailroom.users.createGroup({ name: "Auditors", permissions: ["audit.view"] }, systemActor);
      const { user } = await t.mailroom.users.create(
        { email: "auditor@example.com", password: ADMIN_PASSWORD, groupIds: [auditors.id] },
        systemActor,
      );
      await t.mailroom.tokens.create({ name: "auditor's", permissions: ["audit.view"] }, systemActor, {
        superAdmin: false,
        permissions: new Set(["audit.view"]),
        serverIds: null,
        userId: user.id,
      });
      const seen = (await t.request(manager, { method: "GET", url: `/api/users/${user.id}` })).json();
      expect(seen).toMatchObject({
        manageable: false,
        notManageableReason:
          "You cannot change auditor@example.com: they hold “View the audit log” (audit.view), which you do not have.",
        activeTokens: 1,
      });
      const listed = (await t.request(manager, { method: "GET", url: "/api/users?limit=500" })).json();
      expect(listed.items.find((u: { id: string }) => u.id === user.id)).toMatchObject({ manageable: false });
      expect((await t.request(t.admin, { method: "GET", url: `/api/users/${user.id}` })).json()).toMatchObject({
        manageable: true,
        notManageableReason: null,
      });
      const groups = (await t.request(manager, { method: "GET", url: "/api/groups" })).json();
      expect(groups.items.find((g: { id: string }) => g.id === auditors.id)).toMatchObject({
        manageable: false,
        notManageableReason:
          "You cannot change the group 'Auditors': it grants “View the audit log” (audit.view), which you do not have.",
      });
    });

    it("a password a manager sets is one-time: the user must change it before anything else", async () => {
      const created = (
        await t.request(manager, {
          method: "POST",
          url: "/api/users",
          payload: { email: "one-time@example.com", password: "chosen by the manager" },
        })
      ).json();
      expect(created.mustChangePassword).toBe(true);
      const login = await t.request(null, {
        method: "POST",
        url: "/api/auth/login",
        payload: { email: "one-time@example.com", password: "chosen by the manager" },
      });
      expect(login.statusCode).toBe(200);
      expect(login.json()).toMatchObject({ mustChangePassword: true, user: { mustChangePassword: true } });
      const session = await t.login("one-time@example.com", "chosen by the manager");
      const refused = expectError(
        await t.request(session, { method: "GET", url: "/api/users" }),
        403,
        "password_change_required",
      );
      expect(refused.message).toContain("POST /api/auth/password");
      expect((await t.request(session, { method: "GET", url: "/api/auth/me" })).json().user.mustChangePassword).toBe(true);
      // The same password again is not a change.
      expectError(
        await t.request(session, {
          method: "POST",
          url: "/api/auth/password",
          payload: { currentPassword: "chosen by the manager", newPassword: "chosen by the manager" },
        }),
        400,
        "validation_failed",
      );
      const changed = await t.request(session, {
        method: "POST",
        url: "/api/auth/password",
        payload: { currentPassword: "chosen by the manager", newPassword: "chosen by myself now" },
      });
      expect(changed.statusCode, changed.body).toBe(204);
      const fresh = await t.login("one-time@example.com", "chosen by myself now");
      expect((await t.request(fresh, { method: "GET", url: "/api/auth/me" })).json().user.mustChangePassword).toBe(false);
      // users.manage was never granted: the next refusal is the ordinary one.
      expectError(await t.request(fresh, { method: "GET", url: "/api/users" }), 403, "forbidden");

      // A manager's reset of an existing password is one-time too; the CLI's as well.
      await t.request(manager, {
        method: "PATCH",
        url: `/api/users/${created.id}`,
        payload: { password: "reset by the manager" },
      });
      expect((await t.mailroom.users.get(created.id)).mustChangePassword).toBe(true);
      await t.mailroom.users.update(created.id, { password: "mine once more!", mustChangePassword: false }, systemActor);
      await t.mailroom.users.resetPassword("one-time@example.com", systemActor);
      expect((await t.mailroom.users.get(created.id)).mustChangePassword).toBe(true);
    });

    it("never leaves Mailroom without an enabled super admin", async () => {
      const id = await adminId();
      expectError(
        await t.request(t.admin, { method: "PATCH", url: `/api/users/${id}`, payload: { superAdmin: false } }),
        409,
        "last_super_admin",
      );
      expectError(
        await t.request(t.admin, { method: "PATCH", url: `/api/users/${id}`, payload: { disabled: true } }),
        409,
        "last_super_admin",
      );
      expectError(await t.request(t.admin, { method: "DELETE", url: `/api/users/${id}` }), 409, "last_super_admin");
      // Nothing changed, the session still works.
      const me = await t.request(t.admin, { method: "GET", url: "/api/auth/me" });
      expect(me.json().user).toMatchObject({ superAdmin: true, disabled: false });
    });

    it("answers 404 user_not_found for an unknown id", async () => {
      expectError(await t.request(t.admin, { method: "GET", url: "/api/users/nope" }), 404, "user_not_found");
      expectError(
        await t.request(t.admin, { method: "PATCH", url: "/api/users/nope", payload: { name: "x" } }),
        404,
        "user_not_found",
      );
    });
  });

  describe("groups", () => {
    it("creates, renames, changes permissions and deletes a group; members gain and lose its permissions", async () => {
      let res = await t.request(t.admin, {
        method: "POST",
        url: "/api/groups",
        payload: { name: "Senders", permissions: ["messages.send"] },
      });
      expect(res.statusCode, res.body).toBe(201);
      const group = res.json();
      expect(group).toMatchObject({ name: "Senders", permissions: ["messages.send"], members: 0 });
      await t.mailroom.users.create({ email: "member@example.com", password: ADMIN_PASSWORD, groupIds: [group.id] }, systemActor);
      const member = await t.login("member@example.com", ADMIN_PASSWORD);
      expectError(await t.request(member, { method: "GET", url: "/api/email-servers" }), 403, "forbidden");

      res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/groups/${group.id}`,
        payload: { name: "Operators", permissions: ["messages.send", "email-servers.view"] },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ name: "Operators", members: 1 });
      expect((await t.request(member, { method: "GET", url: "/api/email-servers" })).statusCode).toBe(200);

      res = await t.request(t.admin, { method: "DELETE", url: `/api/groups/${group.id}` });
      expect(res.statusCode).toBe(204);
      expectError(await t.request(member, { method: "GET", url: "/api/email-servers" }), 403, "forbidden");
      expectError(await t.request(t.admin, { method: "GET", url: `/api/groups/${group.id}` }), 404, "group_not_found");

      const actions = (await auditEntries(t, `&targetId=${group.id}`)).map((e) => e.action);
      expect(actions).toEqual(["group.delete", "group.update", "group.create"]);
    });

    it("refuses an unknown permission (listing the valid ones) and a taken name", async () => {
      const body = expectError(
        await t.request(t.admin, { method: "POST", url: "/api/groups", payload: { name: "X", permissions: ["servers.all"] } }),
        400,
        "unknown_permission",
      );
      expect(body.message).toContain("servers.all");
      expect(body.details).toMatchObject({ validPermissions: expect.arrayContaining(["messages.send", "audit.view"]) });
      await t.request(t.admin, { method: "POST", url: "/api/groups", payload: { name: "Taken", permissions: [] } });
      expectError(
        await t.request(t.admin, { method: "POST", url: "/api/groups", payload: { name: "Taken", permissions: [] } }),
        409,
        "group_name_taken",
      );
    });

    it("refuses a user in a group that does not exist, and stores nothing", async () => {
      const before = (await t.request(t.admin, { method: "GET", url: "/api/users?limit=500" })).json().total;
      expectError(
        await t.request(t.admin, {
          method: "POST",
          url: "/api/users",
          payload: { email: "groupless@example.com", groupIds: ["no-such-group"] },
        }),
        404,
        "group_not_found",
      );
      expect((await t.request(t.admin, { method: "GET", url: "/api/users?limit=500" })).json().total).toBe(before);
    });
  });

  describe("API tokens", () => {
    it("creates a token limited to some servers, lists it without its value, and revokes it", async () => {
      const server = await createServer(t, serverBody("capture", "Token target"));
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/tokens",
        payload: { name: "app", permissions: ["messages.send"], serverIds: [server.id] },
      });
      expect(res.statusCode, res.body).toBe(201);
      const created = res.json();
      expect(created).toMatchObject({ name: "app", permissions: ["messages.send"], serverIds: [server.id] });
      const list = (await t.request(t.admin, { method: "GET", url: "/api/tokens" })).json();
      const listed = list.items.find((x: { id: string }) => x.id === created.id);
      expect(listed).toMatchObject({ name: "app", prefix: `mrt_${created.id}_…` });
      expect(listed).not.toHaveProperty("token");
      expect(JSON.stringify(list)).not.toContain(created.token);

      const me = await t.request(
        { headers: { authorization: `Bearer ${created.token}` } },
        { method: "GET", url: "/api/auth/me" },
      );
      expect(me.json().token).toMatchObject({ permissions: ["messages.send"], serverIds: [server.id] });

      expect((await t.request(t.admin, { method: "DELETE", url: `/api/tokens/${created.id}` })).statusCode).toBe(204);
      expectError(await t.request(t.admin, { method: "DELETE", url: `/api/tokens/${created.id}` }), 404, "token_not_found");
      const actions = (await auditEntries(t, `&targetId=${created.id}`)).map((e) => e.action);
      expect(actions).toEqual(["token.revoke", "token.create"]);
      expect(JSON.stringify(await auditEntries(t))).not.toContain(created.token.slice("mrt_0123456789abcdef_".length));
    });

    it("refuses a token without permissions, with an unknown server, or already expired", async () => {
      expectError(
        await t.request(t.admin, { method: "POST", url: "/api/tokens", payload: { name: "x", permissions: [] } }),
        400,
        "unknown_permission",
      );
      expectError(
        await t.request(t.admin, {
          method: "POST",
          url: "/api/tokens",
          payload: { name: "x", permissions: ["messages.send"], serverIds: ["no-such-server"] },
        }),
        404,
        "email_server_not_found",
      );
      const expired = expectError(
        await t.request(t.admin, {
          method: "POST",
          url: "/api/tokens",
          payload: { name: "x", permissions: ["messages.send"], expiresAt: "2001-01-01T00:00:00Z" },
        }),
        400,
        "validation_failed",
      );
      expect(expired.message).toContain("expiresAt");
    });
  });

  describe("the audit log", () => {
    it("lists newest first with who, when, what; filters by action and target; pages", async () => {
      const server = await createServer(t, serverBody("capture", "Audited"));
      await t.request(t.admin, {
        method: "PATCH",
        url: `/api/email-servers/${server.id}/settings/retention`,
        payload: { value: 7 },
      });
      const entries = await auditEntries(t, `&targetId=${server.id}`);
      expect(entries.map((e) => e.action)).toEqual(["email_server.setting.update", "email_server.create"]);
      expect(entries[0].id).toBeGreaterThan(entries[1].id);
      const res = await t.request(t.admin, { method: "GET", url: `/api/audit?targetId=${server.id}&limit=1&offset=1` });
      const page = res.json();
      expect(page.total).toBe(2);
      expect(page.items).toHaveLength(1);
      expect(page.items[0]).toMatchObject({
        action: "email_server.create",
        actor: { type: "user", label: ADMIN_EMAIL },
        target: { type: "email_server", id: server.id },
        ip: "127.0.0.1",
      });
      expect(Date.parse(page.items[0].at)).toBeGreaterThan(Date.now() - 60_000);
      const byAction = (await t.request(t.admin, { method: "GET", url: "/api/audit?action=email_server.setting.update" })).json();
      expect(byAction.items.every((e: { action: string }) => e.action === "email_server.setting.update")).toBe(true);
    });
  });
  describe("handing out permissions", () => {
    it("lets a users.manage holder grant only the permissions they hold", async () => {
      const wide = await t.request(manager, {
        method: "POST",
        url: "/api/groups",
        payload: { name: "Everything", permissions: ["users.manage", "email-servers.update"] },
      });
      expect(wide.statusCode).toBe(403);
      expect(wide.json()).toMatchObject({ code: "forbidden", details: { permission: "email-servers.update" } });

      const own = await t.request(manager, {
        method: "POST",
        url: "/api/groups",
        payload: { name: "Managers", permissions: ["users.manage"] },
      });
      expect(own.statusCode).toBe(201);

      const adminGroup = await t.mailroom.users.createGroup(
        { name: "Server admins", permissions: ["email-servers.update"] },
        systemActor,
      );
      const me = (await t.request(manager, { method: "GET", url: "/api/auth/me" })).json().user.id;
      const join = await t.request(manager, { method: "PATCH", url: `/api/users/${me}`, payload: { groupIds: [adminGroup.id] } });
      expect(join.statusCode).toBe(403);
      expect(join.json().code).toBe("forbidden");
      expect((await t.mailroom.users.get(me)).permissions).not.toContain("email-servers.update");
    });
  });
});
