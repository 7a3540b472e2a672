import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { drivers } from "../../src/drivers/registry.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import {
  auditEntries,
  createServer,
  driverIds,
  expectError,
  fixtureFor,
  listServers,
  secretKeysOf,
  serverBody,
} from "./fixtures.js";

describe.each(await availableDialects())("email servers on %s", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(() => t.close());

  const get = (id: string) => t.request(t.admin, { method: "GET", url: `/api/email-servers/${encodeURIComponent(id)}` });

  describe("drivers", () => {
    it("lists every registered driver with its fields", async () => {
      const res = await t.request(t.admin, { method: "GET", url: "/api/drivers" });
      expect(res.statusCode).toBe(200);
      const body = res.json();
      expect(body.total).toBe(drivers.length);
      expect(body.items.map((d: { id: string }) => d.id)).toEqual(driverIds);
      for (const d of body.items) {
        expect(d.fields.length).toBeGreaterThan(0);
        for (const f of d.fields) {
          expect(f).toMatchObject({ key: expect.any(String), label: expect.any(String), type: expect.any(String) });
          expect(typeof f.required).toBe("boolean");
          expect(typeof f.secret).toBe("boolean");
          expect(typeof f.help).toBe("string");
        }
      }
      const smtp = body.items.find((d: { id: string }) => d.id === "smtp");
      expect(smtp.fields.find((f: { key: string }) => f.key === "port")).toMatchObject({ default: 587, min: 1, max: 65535 });
      expect(smtp.fields.find((f: { key: string }) => f.key === "password")).toMatchObject({ secret: true });
    });

    it("gives each driver's own error codes with their status and fix (the shared ones are in docs/errors.md)", async () => {
      const items = (await t.request(t.admin, { method: "GET", url: "/api/drivers" })).json().items as {
        id: string;
        errors: { code: string; status: number; summary: string }[];
      }[];
      const sendmail = items.find((d) => d.id === "sendmail");
      expect(sendmail?.errors).toContainEqual({
        code: "sendmail_command_unknown",
        status: 409,
        summary: expect.stringContaining("MAILROOM_SENDMAIL_COMMANDS"),
      });
      expect(items.find((d) => d.id === "smtp")?.errors).toEqual([]);
    });
  });

  describe("create and read, every driver", () => {
    it.each(driverIds)("creates a %s server with valid settings and reads it back", async (driver) => {
      const fixture = fixtureFor(driver);
      const created = await createServer(t, serverBody(driver, `Create ${driver}`));
      expect(created).toMatchObject({
        id: expect.any(String),
        name: `Create ${driver}`,
        driver,
        fromAddress: "noreply@example.com",
        fromName: "Example Sender",
        isDefault: false,
        status: fixture.status,
        missingSettings: [],
      });
      expect(Date.parse(created.createdAt)).not.toBeNaN();
      expect(Date.parse(created.updatedAt)).not.toBeNaN();
      for (const [key, value] of Object.entries(fixture.settings)) {
        if (secretKeysOf(driver).includes(key)) expect(created.settings[key]).toEqual({ set: true });
        else expect(created.settings[key]).toEqual(value);
      }
      // Every field of the driver is in the view, defaults filled in.
      const fields = drivers.find((d) => d.id === driver)!.fields;
      expect(Object.keys(created.settings).sort()).toEqual(fields.map((f) => f.key).sort());
      for (const f of fields) {
        if (!f.secret && !f.readOnly && fixture.settings[f.key] === undefined && f.default !== undefined && f.default !== null) {
          expect(created.settings[f.key], f.key).toEqual(f.default);
        }
      }

      const read = await get(created.id);
      expect(read.statusCode).toBe(200);
      expect(read.json()).toEqual(created);
      // By name too, case-insensitively.
      const byName = await get(`create ${driver.toUpperCase()}`);
      expect(byName.statusCode).toBe(200);
      expect(byName.json().id).toBe(created.id);

      const [entry] = await auditEntries(t, `&targetId=${created.id}`);
      expect(entry).toMatchObject({ action: "email_server.create", actor: { type: "user", label: "admin@example.com" } });
      expect(entry.after).toMatchObject({ name: `Create ${driver}`, driver });
    });

    it("an OAuth server shows its redirect URI from MAILROOM_PUBLIC_URL and no grant", async () => {
      const gmail = await createServer(t, serverBody("gmail", "Gmail redirect"));
      expect(gmail.settings).toMatchObject({
        redirectUri: "http://localhost:8025/oauth/google/callback",
        authorizedAccount: null,
        grantedScopes: null,
        authorizedAt: null,
        clientSecret: { set: true },
      });
      expect(gmail.status).toBe("not_authorized");
      expect(gmail.statusDetail).toMatch(/authorize/i);
      const ms = await createServer(t, serverBody("microsoft365", "MS redirect"));
      expect(ms.settings.redirectUri).toBe("http://localhost:8025/oauth/microsoft/callback");
      expect(ms.status).toBe("not_authorized");
    });

    it("answers 404 email_server_not_found for an unknown id", async () => {
      expectError(await get("00000000-0000-0000-0000-000000000000"), 404, "email_server_not_found");
    });
  });

  describe("incomplete servers", () => {
    it("saves a server missing required settings as incomplete and names them", async () => {
      const res = await createServer(t, { name: "Half done", driver: "smtp", settings: { port: 465, security: "tls" } });
      expect(res.status).toBe("incomplete");
      expect(res.missingSettings).toEqual(["fromAddress", "host"]);
      expect(res.statusDetail).toBe("Missing: From address, Host.");
      expect(res.settings).toMatchObject({ port: 465, security: "tls", host: null, password: { set: false } });
      expect((await get(res.id)).json().status).toBe("incomplete");
    });

    it("lists a missing secret among the missing settings", async () => {
      const res = await createServer(t, serverBody("mailgun", "Mailgun no key", { settings: { domain: "mg.example.com" } }));
      expect(res.status).toBe("incomplete");
      expect(res.missingSettings).toEqual(["apiKey"]);
      expect(res.settings.apiKey).toEqual({ set: false });
    });

    it("a gmail server with every setting but no grant is not_authorized", async () => {
      const res = await createServer(t, serverBody("gmail", "Gmail no grant"));
      expect(res.status).toBe("not_authorized");
      expect(res.missingSettings).toEqual([]);
      // Without its client secret it is incomplete first.
      const half = await createServer(t, serverBody("gmail", "Gmail no secret", { settings: { clientId: "abc" } }));
      expect(half.status).toBe("incomplete");
      expect(half.missingSettings).toEqual(["clientSecret"]);
    });
  });

  describe("statuses", () => {
    it("a failing server stays failing after an edit, with a probe of the new settings due at once", async () => {
      const created = await createServer(t, serverBody("smtp", "Fault then fix"));
      await t.mailroom.servers.setFault(created.id, "failing", "535 authentication failed");
      expect((await get(created.id)).json()).toMatchObject({
        status: "failing",
        statusDetail: "535 authentication failed",
        delivery: { state: "open", heldMessages: 0 },
      });
      const before = Date.now();
      const res = await t.request(t.admin, {
        method: "PATCH",
        url: `/api/email-servers/${created.id}/settings/password`,
        payload: { value: "the right password" },
      });
      // Its mail stays held until the probe (src/queue/prober.ts, not running here) passes.
      expect(res.json()).toMatchObject({ status: "failing" });
      const delivery = (await get(created.id)).json().delivery;
      expect(delivery.state).toBe("open");
      expect(Date.parse(delivery.nextProbeAt)).toBeLessThanOrEqual(Date.now());
      expect(Date.parse(delivery.nextProbeAt)).toBeGreaterThanOrEqual(before - 1000);
    });

    it("reauthorization_required stays through setting changes until a new grant", async () => {
      const created = await createServer(t, serverBody("gmail", "Revoked grant"));
      await t.mailroom.ctx.db.transaction().execute((trx) =>
        t.mailroom.servers.recordGrant(trx, created.id, {
          account: "me@example.com",
          scopes: "https://mail.google.com/",
          authorizedAt: Date.now(),
          expiresAt: null,
        }),
      );
      expect((await get(created.id)).json().status).toBe("ready");
      await t.mailroom.servers.setFault(created.id, "reauthorization_required", "invalid_grant");
      expect((await get(created.id)).json().status).toBe("reauthorization_required");
      const res = await t.request(t.admin, {
        method: "PATCH",
        url: `/api/email-servers/${created.id}/settings/messagesPerDay`,
        payload: { value: 500 },
      });
      expect(res.json().status).toBe("reauthorization_required");
      // An incomplete configuration says so first: that is what the admin must fix.
      const cleared = await t.request(t.admin, {
        method: "DELETE",
        url: `/api/email-servers/${created.id}/settings/clientSecret`,
      });
      expect(cleared.json()).toMatchObject({ status: "incomplete", missingSettings: ["clientSecret"] });
    });
  });

  describe("concurrent writers", () => {
    it("two creates with the same name: one 201, the other 409 name_taken", async () => {
      const replies = await Promise.all(
        [1, 2, 3, 4].map((n) =>
          t.request(t.admin, {
            method: "POST",
            url: "/api/email-servers",
            payload: serverBody("capture", n % 2 ? "Racer" : "RACER"),
          }),
        ),
      );
      expect(replies.map((r) => r.statusCode).sort()).toEqual([201, 409, 409, 409]);
      for (const r of replies.filter((x) => x.statusCode === 409)) expect(r.json().code).toBe("name_taken");
      expect((await listServers(t, "racer")).total).toBe(1);
    });
  });

  describe("list and search", () => {
    let ids: Record<string, string>;
    beforeAll(async () => {
      ids = {};
      ids.alpha = (
        await createServer(
          t,
          serverBody("smtp", "Zeta Alpha Relay", {
            fromAddress: "billing@alpha-corp.example",
            settings: { host: "relay.alphahost.example", username: "alpha-login", password: "needle-in-a-secret" },
          }),
        )
      ).id;
      ids.beta = (await createServer(t, serverBody("postmark", "Beta Notifications", { fromAddress: "news@beta.example" }))).id;
      ids.gamma = (
        await createServer(
          t,
          serverBody("ses", "Gamma SES", { settings: { region: "ap-south-1", accessKeyId: "AKIAGAMMA", secretAccessKey: "x" } }),
        )
      ).id;
    });

    const names = async (q: string) => (await listServers(t, q)).items.map((s) => s.name);

    it("lists with the default first, with items and total", async () => {
      const all = await listServers(t);
      expect(all.total).toBe(all.items.length);
      expect(all.items[0]).toMatchObject({ name: "Capture", isDefault: true });
      expect(all.items.filter((s) => (s as unknown as { isDefault: boolean }).isDefault)).toHaveLength(1);
    });

    it("pages with limit and offset", async () => {
      const all = await listServers(t);
      const res = await t.request(t.admin, { method: "GET", url: "/api/email-servers?limit=2&offset=1" });
      expect(res.statusCode).toBe(200);
      const page = res.json();
      expect(page.total).toBe(all.total);
      expect(page.items.map((s: { id: string }) => s.id)).toEqual(all.items.slice(1, 3).map((s) => s.id));
    });

    it("matches the name, case-insensitively", async () => {
      expect(await names("zeta alpha")).toEqual(["Zeta Alpha Relay"]);
      expect(await names("BETA NOTIF")).toEqual(["Beta Notifications"]);
    });

    it("matches the driver id and label", async () => {
      expect(await names("postmark")).toContain("Beta Notifications");
      expect(await names("amazon ses")).toContain("Gamma SES");
    });

    it("matches the host and the from address", async () => {
      expect(await names("ALPHAHOST")).toEqual(["Zeta Alpha Relay"]);
      expect(await names("news@beta")).toEqual(["Beta Notifications"]);
      expect(await names("alpha-corp")).toEqual(["Zeta Alpha Relay"]);
    });

    it("matches labels and values of settings that are not secret", async () => {
      expect(await names("alpha-login")).toEqual(["Zeta Alpha Relay"]);
      expect(await names("ap-south-1")).toEqual(["Gamma SES"]);
      expect(await names("broadcast")).toContain("Beta Notifications");
      // "Message stream" is a label of a postmark setting.
      expect(await names("message stream")).toContain("Beta Notifications");
      expect(await names("verify certificate")).toContain("Zeta Alpha Relay");
    });

    it("never matches a secret value", async () => {
      expect((await listServers(t, "needle-in-a-secret")).total).toBe(0);
      expect((await listServers(t, "needle")).total).toBe(0);
    });

    it("treats % and _ literally and answers an empty list for no match", async () => {
      expect((await listServers(t, "%")).total).toBe(0);
      expect((await listServers(t, "_")).total).toBe(0);
      expect(await listServers(t, "no such server anywhere")).toEqual({ items: [], total: 0 });
    });

    it("search reflects edits: a renamed host is found by its new value only", async () => {
      // The saved password goes only to the old host: it is cleared before the host changes.
      await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${ids.alpha}/settings/password` });
      const res = await t.request(t.admin, {
        method: "PATCH",
        url: `/api/email-servers/${ids.alpha}/settings/host`,
        payload: { value: "mx.omegahost.example" },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(await names("omegahost")).toEqual(["Zeta Alpha Relay"]);
      expect(await names("alphahost")).toEqual([]);
    });
  });

  describe("PUT replaces atomically", () => {
    it("keeps an omitted secret, resets omitted settings to defaults, and replaces the rest", async () => {
      const created = await createServer(
        t,
        serverBody("smtp", "Put target", {
          settings: {
            host: "old.example.com",
            port: 465,
            security: "tls",
            username: "old-user",
            password: "keep-me",
            verifyCertificate: false,
            timeoutSeconds: 90,
          },
        }),
      );
      const res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${created.id}`,
        payload: {
          name: "Put target renamed",
          driver: "smtp",
          fromAddress: "new@example.com",
          fromName: "New Name",
          // Where the password goes stays as it was (else it must come again): the rest is omitted.
          settings: { host: "old.example.com", port: 465, security: "tls", username: "old-user", verifyCertificate: false },
        },
      });
      expect(res.statusCode, res.body).toBe(200);
      const view = res.json();
      expect(view).toMatchObject({
        id: created.id,
        name: "Put target renamed",
        fromAddress: "new@example.com",
        fromName: "New Name",
        status: "ready",
      });
      // Every omitted setting is back at its default (or empty); the secret is kept.
      const expected: Record<string, unknown> = {};
      for (const f of drivers.find((d) => d.id === "smtp")!.fields) {
        expected[f.key] = f.secret ? { set: true } : (f.default ?? null);
      }
      const destination = { host: "old.example.com", port: 465, security: "tls", username: "old-user", verifyCertificate: false };
      expect(view.settings).toEqual({ ...expected, ...destination });
      expect(view.settings).toMatchObject({ timeoutSeconds: 30, allowedFromAddresses: [] });
      expect(view.createdAt).toBe(created.createdAt);
      expect(Date.parse(view.updatedAt)).toBeGreaterThanOrEqual(Date.parse(created.updatedAt));
      // The kept secret is the old one, not an empty one.
      const row = await t.mailroom.servers.getRow(created.id);
      expect(t.mailroom.servers.secretsOf(row)).toEqual({ password: "keep-me" });

      const [entry] = await auditEntries(t, `&targetId=${created.id}&action=email_server.update`);
      expect(entry.before).toMatchObject({
        name: "Put target",
        settings: { host: "old.example.com", password: "[secret unchanged]" },
      });
      expect(entry.after).toMatchObject({ name: "Put target renamed", settings: { password: "[secret unchanged]" } });
    });

    it("replaces a secret given, and clears a secret set to null", async () => {
      const created = await createServer(t, serverBody("smtp", "Put secrets"));
      let res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${created.id}`,
        payload: { ...serverBody("smtp", "Put secrets"), settings: { host: "h.example.com", password: "new-pass" } },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(created.id))).toEqual({ password: "new-pass" });
      const [changed] = await auditEntries(t, `&targetId=${created.id}&action=email_server.update`);
      expect(changed.after).toMatchObject({ settings: { password: "[secret changed]" } });

      res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${created.id}`,
        payload: { ...serverBody("smtp", "Put secrets"), settings: { host: "h.example.com", password: null } },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().settings.password).toEqual({ set: false });
      expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(created.id))).toEqual({});
    });

    it("a required secret cleared with null makes the server incomplete", async () => {
      const created = await createServer(t, serverBody("postmark", "Put postmark"));
      const res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${created.id}`,
        payload: { ...serverBody("postmark", "Put postmark"), settings: { serverToken: null } },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ status: "incomplete", missingSettings: ["serverToken"] });
    });

    it("changes nothing when one part is invalid", async () => {
      const created = await createServer(t, serverBody("smtp", "Put atomic"));
      const before = (await get(created.id)).json();
      const res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${created.id}`,
        payload: {
          name: "Put atomic renamed",
          driver: "smtp",
          fromAddress: "other@example.com",
          settings: { host: "fine.example.com", port: 70000 },
        },
      });
      const body = expectError(res, 400, "invalid_setting");
      expect(body.message).toContain("settings.port");
      expect((await get(created.id)).json()).toEqual(before);
    });

    it("refuses a name another server has (any case) with 409 name_taken, but allows a case change of its own", async () => {
      const a = await createServer(t, serverBody("capture", "Put name A"));
      await createServer(t, serverBody("capture", "Put name B"));
      expectError(
        await t.request(t.admin, {
          method: "PUT",
          url: `/api/email-servers/${a.id}`,
          payload: serverBody("capture", "PUT NAME b"),
        }),
        409,
        "name_taken",
      );
      const res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${a.id}`,
        payload: serverBody("capture", "PUT NAME A"),
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().name).toBe("PUT NAME A");
    });

    it("changing the driver drops the old driver's secrets", async () => {
      const created = await createServer(t, serverBody("smtp", "Put driver change"));
      const res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${created.id}`,
        payload: serverBody("mailgun", "Put driver change", { settings: { domain: "mg.example.com" } }),
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ driver: "mailgun", status: "incomplete", missingSettings: ["apiKey"] });
      expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(created.id))).toEqual({});
    });

    it("answers 404 for an unknown server", async () => {
      expectError(
        await t.request(t.admin, { method: "PUT", url: "/api/email-servers/nope", payload: serverBody("capture", "x") }),
        404,
        "email_server_not_found",
      );
    });
  });

  describe("one setting: PATCH and DELETE", () => {
    const patch = (id: string, key: string, value: unknown) =>
      t.request(t.admin, { method: "PATCH", url: `/api/email-servers/${id}/settings/${key}`, payload: { value } });
    const clear = (id: string, key: string) =>
      t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${id}/settings/${key}` });
    /** An smtp server without a password: its host, port and username may change one at a time. */
    const passwordless = (name: string) =>
      serverBody("smtp", name, { settings: { ...serverBody("smtp", name).settings, password: null } });

    it("refuses to move a saved password one setting at a time: it must come with the change", async () => {
      const created = await createServer(t, serverBody("smtp", "Patch moved"));
      const body = expectError(await patch(created.id, "port", 465), 409, "secret_destination_changed");
      expect(body.message).toMatch(/^Port changed, so enter Password again/);
      expect(body.details).toEqual([{ field: "settings.password", message: "enter it again: Port changed" }]);
      expectError(await clear(created.id, "host"), 409, "secret_destination_changed");
      expect((await get(created.id)).json()).toEqual(created);
    });

    it("edits one setting and leaves the others", async () => {
      const created = await createServer(t, serverBody("smtp", "Patch one"));
      const res = await patch(created.id, "timeoutSeconds", 45);
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().settings).toEqual({ ...created.settings, timeoutSeconds: 45 });
      const [entry] = await auditEntries(t, `&targetId=${created.id}&action=email_server.setting.update`);
      expect(entry.before).toMatchObject({ settings: { timeoutSeconds: 30 } });
      expect(entry.after).toMatchObject({ settings: { timeoutSeconds: 45, password: "[secret unchanged]" } });
    });

    it("sets a secret through PATCH without showing it", async () => {
      const created = await createServer(t, serverBody("smtp", "Patch secret", { settings: { host: "h.example.com" } }));
      expect(created.settings.password).toEqual({ set: false });
      const res = await patch(created.id, "password", "patched-secret");
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().settings.password).toEqual({ set: true });
      expect(res.body).not.toContain("patched-secret");
      expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(created.id))).toEqual({ password: "patched-secret" });
      const [entry] = await auditEntries(t, `&targetId=${created.id}&action=email_server.setting.update`);
      expect(entry.after).toMatchObject({ settings: { password: "[secret changed]" } });
    });

    it("validates the value and names the setting", async () => {
      const created = await createServer(t, serverBody("smtp", "Patch invalid"));
      for (const [key, value] of [
        ["port", "587"],
        ["port", 0],
        ["security", "ssl"],
        ["host", "not a host"],
        ["verifyCertificate", "yes"],
      ] as const) {
        const body = expectError(await patch(created.id, key, value), 400, "invalid_setting");
        expect(body.message, `${key}=${value}`).toContain(key);
        expect(JSON.stringify(body.details)).toContain(`settings.${key}`);
      }
      expect((await get(created.id)).json()).toEqual(created);
    });

    it("refuses the read-only redirectUri with read_only_setting, both to edit and to clear", async () => {
      const gmail = await createServer(t, serverBody("gmail", "Patch gmail"));
      let body = expectError(await patch(gmail.id, "redirectUri", "https://evil.example/cb"), 400, "read_only_setting");
      expect(body.message).toContain("Redirect URI");
      body = expectError(await clear(gmail.id, "redirectUri"), 400, "read_only_setting");
      expect(body.details).toMatchObject({ field: "redirectUri" });
      expectError(await patch(gmail.id, "authorizedAccount", "me@example.com"), 400, "read_only_setting");
      expect((await get(gmail.id)).json().settings.redirectUri).toBe("http://localhost:8025/oauth/google/callback");
    });

    it("refuses an unknown key with unknown_setting listing the driver's settings", async () => {
      const created = await createServer(t, serverBody("smtp", "Patch unknown"));
      let body = expectError(await patch(created.id, "hostname", "x.example.com"), 400, "unknown_setting");
      expect(body.message).toContain("hostname");
      expect(body.details).toMatchObject({ field: "hostname", settings: expect.arrayContaining(["host", "port"]) });
      body = expectError(await clear(created.id, "hostname"), 400, "unknown_setting");
    });

    it("clearing the smtp host makes the server incomplete and names it", async () => {
      const created = await createServer(t, passwordless("Clear host"));
      expect(created.status).toBe("ready");
      const res = await clear(created.id, "host");
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ status: "incomplete", missingSettings: ["host"] });
      expect(res.json().settings.host).toBeNull();
      expect((await get(created.id)).json().status).toBe("incomplete");
      // Setting it again makes it ready.
      const again = await patch(created.id, "host", "smtp.example.org");
      expect(again.json()).toMatchObject({ status: "ready", missingSettings: [] });
      const [entry] = await auditEntries(t, `&targetId=${created.id}&action=email_server.setting.clear`);
      expect(entry.before).toMatchObject({ settings: { host: "smtp.example.com" } });
    });

    it("clearing a setting with a default resets it to the default", async () => {
      const created = await createServer(t, passwordless("Clear port"));
      expect(created.settings.port).toBe(2525);
      const res = await clear(created.id, "port");
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json().settings.port).toBe(587);
      expect(res.json().status).toBe("ready");
      // PATCH with null or "" does the same.
      await patch(created.id, "security", "tls");
      const viaNull = await patch(created.id, "security", null);
      expect(viaNull.json().settings.security).toBe("starttls");
      await patch(created.id, "username", "someone");
      const viaBlank = await patch(created.id, "username", "   ");
      expect(viaBlank.statusCode, viaBlank.body).toBe(200);
      expect(viaBlank.json().settings.username).toBeNull();
    });

    it("clearing a required secret forgets it and makes the server incomplete", async () => {
      const created = await createServer(t, serverBody("ses", "Clear secret"));
      const res = await clear(created.id, "secretAccessKey");
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ status: "incomplete", missingSettings: ["secretAccessKey"] });
      expect(res.json().settings.secretAccessKey).toEqual({ set: false });
      expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(created.id))).toEqual({});
    });

    it("a blank required non-secret setting is missing, not set to an empty string", async () => {
      const created = await createServer(t, passwordless("Patch blank host"));
      const res = await patch(created.id, "host", "  ");
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ status: "incomplete", missingSettings: ["host"] });
    });

    it("answers 404 for an unknown server", async () => {
      expectError(await patch("nope", "host", "a.example.com"), 404, "email_server_not_found");
      expectError(await clear("nope", "host"), 404, "email_server_not_found");
    });
  });

  describe("copy", () => {
    it('names copies "X (copy)", "X (copy 2)", non-default, with the secrets copied but hidden', async () => {
      const source = await createServer(t, serverBody("smtp", "Copy source"));
      await t.request(t.admin, { method: "POST", url: `/api/email-servers/${source.id}/default` });
      const first = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${source.id}/copy` });
      expect(first.statusCode, first.body).toBe(201);
      const copy1 = first.json();
      expect(copy1).toMatchObject({
        name: "Copy source (copy)",
        driver: "smtp",
        isDefault: false,
        status: "ready",
        fromAddress: source.fromAddress,
        notice: null,
      });
      expect(copy1.id).not.toBe(source.id);
      expect(copy1.settings).toEqual(source.settings);
      expect(copy1.settings.password).toEqual({ set: true });
      expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(copy1.id))).toEqual({ password: "smtp-pass" });

      const second = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${source.id}/copy` });
      expect(second.statusCode, second.body).toBe(201);
      expect(second.json().name).toBe("Copy source (copy 2)");
      // The source is still the one default.
      expect((await get(source.id)).json().isDefault).toBe(true);
      const defaults = (await listServers(t)).items.filter((s) => (s as unknown as { isDefault: boolean }).isDefault);
      expect(defaults.map((s) => s.id)).toEqual([source.id]);

      const [entry] = await auditEntries(t, `&targetId=${copy1.id}`);
      expect(entry).toMatchObject({ action: "email_server.copy", before: { copiedFrom: source.id } });
      expect(entry.after).toMatchObject({ name: "Copy source (copy)", settings: { password: "[secret unchanged]" } });

      // Give the default back to Capture for the other tests.
      const capture = (await listServers(t, "Capture")).items.find((s) => s.name === "Capture")!;
      await t.request(t.admin, { method: "POST", url: `/api/email-servers/${capture.id}/default` });
    });

    it("a long name is shortened so the copy fits 64 characters", async () => {
      const long = "L".repeat(64);
      const source = await createServer(t, serverBody("capture", long));
      const res = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${source.id}/copy` });
      expect(res.statusCode, res.body).toBe(201);
      expect(res.json().name).toHaveLength(64);
      expect(res.json().name.endsWith(" (copy)")).toBe(true);
    });

    it("a gmail copy is not_authorized and the reply says the grant was not copied", async () => {
      const source = await createServer(t, serverBody("gmail", "Gmail source"));
      // Give the source a grant, as the OAuth callback would.
      await t.mailroom.ctx.db.transaction().execute((trx) =>
        t.mailroom.servers.recordGrant(trx, source.id, {
          account: "sender@example.com",
          scopes: "https://mail.google.com/",
          authorizedAt: Date.now(),
          expiresAt: null,
        }),
      );
      const granted = (await get(source.id)).json();
      expect(granted).toMatchObject({ status: "ready", settings: { authorizedAccount: "sender@example.com" } });

      const res = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${source.id}/copy` });
      expect(res.statusCode, res.body).toBe(201);
      const copy = res.json();
      expect(copy).toMatchObject({ name: "Gmail source (copy)", status: "not_authorized", isDefault: false });
      expect(copy.notice).toMatch(/authoriz/i);
      expect(copy.settings).toMatchObject({
        authorizedAccount: null,
        grantedScopes: null,
        authorizedAt: null,
        clientSecret: { set: true },
      });
      // The source keeps its grant.
      expect((await get(source.id)).json().status).toBe("ready");
    });

    it("answers 404 for an unknown server", async () => {
      expectError(
        await t.request(t.admin, { method: "POST", url: "/api/email-servers/nope/copy" }),
        404,
        "email_server_not_found",
      );
    });
  });

  describe("default and delete", () => {
    const defaults = async () =>
      (await listServers(t)).items.filter((s) => (s as unknown as { isDefault: boolean }).isDefault).map((s) => s.id);

    it("make default moves the one default", async () => {
      const a = await createServer(t, serverBody("capture", "Default A"));
      const b = await createServer(t, serverBody("capture", "Default B"));
      const capture = (await defaults())[0];
      let res = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${a.id}/default` });
      expect(res.statusCode, res.body).toBe(200);
      expect(res.json()).toMatchObject({ id: a.id, isDefault: true });
      // The reply is the server as stored now.
      expect(res.json()).toEqual((await get(a.id)).json());
      expect(await defaults()).toEqual([a.id]);
      res = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${b.id}/default` });
      expect(await defaults()).toEqual([b.id]);
      // Again on the default: still exactly one.
      res = await t.request(t.admin, { method: "POST", url: `/api/email-servers/${b.id}/default` });
      expect(res.statusCode).toBe(200);
      expect(await defaults()).toEqual([b.id]);
      const [entry] = await auditEntries(t, `&targetId=${b.id}&action=email_server.default`);
      expect(entry.before).toMatchObject({ default: { id: a.id } });

      // Creating with isDefault moves it too.
      const c = await createServer(t, serverBody("capture", "Default C", { isDefault: true }));
      expect(c.isDefault).toBe(true);
      expect(await defaults()).toEqual([c.id]);
      // PUT with isDefault moves it.
      res = await t.request(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${capture}`,
        payload: { ...serverBody("capture", "Capture"), fromAddress: "noreply@mailroom.localhost", isDefault: true },
      });
      expect(res.statusCode, res.body).toBe(200);
      expect(await defaults()).toEqual([capture]);
    });

    it("concurrent make-default calls leave exactly one default", async () => {
      const servers = await Promise.all([1, 2, 3, 4].map((n) => createServer(t, serverBody("capture", `Race ${n}`))));
      const capture = (await defaults())[0];
      const replies = await Promise.all(
        servers.map((s) => t.request(t.admin, { method: "POST", url: `/api/email-servers/${s.id}/default` })),
      );
      for (const r of replies) expect([200, 503]).toContain(r.statusCode);
      expect(await defaults()).toHaveLength(1);
      await t.request(t.admin, { method: "POST", url: `/api/email-servers/${capture}/default` });
    });

    it("refuses to delete the default with 409 default_server_delete", async () => {
      const [id] = await defaults();
      const body = expectError(
        await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${id}` }),
        409,
        "default_server_delete",
      );
      expect(body.message).toMatch(/make another server the default first/);
      expect((await get(id)).statusCode).toBe(200);
    });

    it("keeps the delivery history of a deleted server", async () => {
      const server = await createServer(t, serverBody("capture", "Has history"));
      const sent = await t.request(t.admin, {
        method: "POST",
        url: "/api/messages",
        payload: { server: server.id, to: "someone@example.com", subject: "Kept", text: "History" },
      });
      expect(sent.statusCode, sent.body).toBe(202);
      const { id } = sent.json();
      expect((await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${server.id}` })).statusCode).toBe(204);
      const message = await t.request(t.admin, { method: "GET", url: `/api/messages/${id}` });
      expect(message.statusCode, message.body).toBe(200);
      expect(message.body).toContain("Has history");
    });

    it("deletes another server, frees its name and never reuses its id", async () => {
      const doomed = await createServer(t, serverBody("smtp", "Doomed"));
      const res = await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${doomed.id}` });
      expect(res.statusCode, res.body).toBe(204);
      expectError(await get(doomed.id), 404, "email_server_not_found");
      expectError(
        await t.request(t.admin, { method: "DELETE", url: `/api/email-servers/${doomed.id}` }),
        404,
        "email_server_not_found",
      );
      const [entry] = await auditEntries(t, `&targetId=${doomed.id}&action=email_server.delete`);
      expect(entry.before).toMatchObject({ name: "Doomed", settings: { password: "[secret unchanged]" } });
      const again = await createServer(t, serverBody("smtp", "DOOMED"));
      expect(again.id).not.toBe(doomed.id);
    });
  });
});
