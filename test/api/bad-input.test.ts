import type { InjectOptions } from "fastify";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { drivers, driverIds as registeredDrivers } from "../../src/drivers/registry.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { auditTotal, createServer, expectError, listServers, serverBody } from "./fixtures.js";

/** [driver, key] of every list-type setting: each gets the list checks. */
const listFields = drivers.flatMap((d) =>
  d.fields.filter((f) => f.type === "list" && !f.readOnly).map((f) => [d.id, f.key] as const),
);

/**
 * Every bad request gets a 4xx with a stable code and leaves nothing behind: after each
 * one, the list of servers and the audit log are exactly as before.
 */
describe.each(await availableDialects())("bad input on %s", (dialect) => {
  let t: TestApp;
  let existingId: string;
  let before: { servers: unknown; audit: number };

  beforeAll(async () => {
    t = await startTestApp(dialect);
    existingId = (await createServer(t, serverBody("smtp", "Existing Relay"))).id;
  });
  afterAll(() => t.close());

  const snapshot = async () => ({ servers: await listServers(t), audit: await auditTotal(t) });
  beforeEach(async () => {
    before = await snapshot();
  });
  const expectNothingStored = async () => {
    expect(await snapshot()).toEqual(before);
  };

  const post = (payload: unknown, extra: Partial<InjectOptions> = {}) =>
    t.request(t.admin, { method: "POST", url: "/api/email-servers", payload: payload as InjectOptions["payload"], ...extra });
  const put = (payload: unknown) =>
    t.request(t.admin, { method: "PUT", url: `/api/email-servers/${existingId}`, payload: payload as InjectOptions["payload"] });

  describe("unknown fields", () => {
    it("refuses an unknown top-level field with unknown_field naming it", async () => {
      const body = expectError(await post({ ...serverBody("smtp", "Typo"), isDefualt: true }), 400, "unknown_field");
      expect(body.message).toContain("isDefualt");
      expect(body.details).toEqual(expect.arrayContaining([expect.objectContaining({ field: "isDefualt" })]));
      await expectNothingStored();
    });

    it("names the unknown field even when other fields are also wrong", async () => {
      const body = expectError(await post({ driver: "smtp", colour: "blue" }), 400, "unknown_field");
      expect(body.message).toContain("colour");
      await expectNothingStored();
    });

    it("refuses an unknown field on PUT, PATCH and the other writes", async () => {
      let body = expectError(await put({ ...serverBody("smtp", "Existing Relay"), extra: 1 }), 400, "unknown_field");
      expect(body.message).toContain("extra");
      body = expectError(
        await t.request(t.admin, {
          method: "PATCH",
          url: `/api/email-servers/${existingId}/settings/port`,
          payload: { value: 25, force: true },
        }),
        400,
        "unknown_field",
      );
      expect(body.message).toContain("force");
      body = expectError(
        await t.request(t.admin, {
          method: "POST",
          url: "/api/groups",
          payload: { name: "g", permissions: [], description: "x" },
        }),
        400,
        "unknown_field",
      );
      expect(body.message).toContain("description");
      body = expectError(await t.request(t.admin, { method: "GET", url: "/api/email-servers?query=x" }), 400, "unknown_field");
      expect(body.message).toContain("query");
      await expectNothingStored();
    });

    it("refuses an unknown setting key, naming it and the driver's settings", async () => {
      const body = expectError(
        await post(serverBody("smtp", "Unknown setting", { settings: { host: "a.example.com", hostname: "x" } })),
        400,
        "unknown_setting",
      );
      expect(body.message).toContain("settings.hostname");
      expect(body.message).toContain("host");
      await expectNothingStored();
    });
  });

  describe("wrong types", () => {
    it('a port given as the string "587" is an invalid setting naming settings.port', async () => {
      // Bodies are not coerced: "587" is not a number. The setting check names the field.
      const body = expectError(
        await post(serverBody("smtp", "String port", { settings: { host: "a.example.com", port: "587" } })),
        400,
        "invalid_setting",
      );
      expect(body.message).toContain("settings.port");
      expect(body.message).toBe('settings.port: must be a whole number from 1 to 65535 sent as a JSON number: 587, not "587"');
      expect(body.details).toEqual([{ field: "settings.port", message: expect.any(String) }]);
      await expectNothingStored();
    });

    it("wrong types of the server's own fields are validation_failed naming the field", async () => {
      for (const [field, value] of [
        ["name", 42],
        ["isDefault", "true"],
        ["fromAddress", ["a@example.com"]],
        ["settings", "host=a"],
        ["driver", null],
      ] as const) {
        const body = expectError(await post({ ...serverBody("smtp", "Types"), [field]: value }), 400, "validation_failed");
        expect(body.message, field).toContain(field);
      }
      expectError(await post([serverBody("smtp", "Array body")]), 400, "validation_failed");
      const missing = expectError(await post({ driver: "smtp" }), 400, "validation_failed");
      expect(missing.message).toContain("name");
      await expectNothingStored();
    });

    it("wrong setting types: boolean, integer, list", async () => {
      for (const [key, value, message] of [
        ["verifyCertificate", "false", /true or false/],
        ["timeoutSeconds", 1.5, /whole number/],
        ["port", 0, /at least 1/],
        ["port", 65536, /at most 65535/],
        ...listFields.filter(([d]) => d === "smtp").map(([, key]) => [key, "a@example.com", /list/] as const),
      ] as const) {
        const body = expectError(
          await post(serverBody("smtp", "Setting types", { settings: { host: "a.example.com", [key]: value } })),
          400,
          "invalid_setting",
        );
        expect(body.message, key).toContain(`settings.${key}`);
        expect(body.message, key).toMatch(message);
      }
      await expectNothingStored();
    });
  });

  describe("body size and syntax", () => {
    it("refuses a body over 100 KB with 413 body_too_large", async () => {
      const big = serverBody("smtp", "Big", { fromName: "x".repeat(101 * 1024) });
      const res = await post(big);
      expectError(res, 413, "body_too_large");
      // Just under the limit is parsed (and then refused for the long name, with 400).
      const under = serverBody("capture", "Under", { fromName: "y".repeat(90 * 1024) });
      expect((await post(under)).statusCode).toBe(400);
      await expectNothingStored();
    });

    it("refuses malformed JSON with invalid_json", async () => {
      for (const payload of ['{"name": "Broken", "driver": "smtp"', "{name: 'x'}", "not json", '{"a":1}}']) {
        const res = await post(payload, { headers: { "content-type": "application/json" } });
        expectError(res, 400, "invalid_json");
      }
      await expectNothingStored();
    });

    it("refuses an empty JSON body with invalid_json", async () => {
      const res = await post("", { headers: { "content-type": "application/json" } });
      expectError(res, 400, "invalid_json");
      await expectNothingStored();
    });

    it("refuses a body that is not JSON with 415 unsupported_media_type", async () => {
      const res = await post("name=x&driver=smtp", { headers: { "content-type": "application/x-www-form-urlencoded" } });
      expectError(res, 415, "unsupported_media_type");
      await expectNothingStored();
    });
  });

  describe("control characters", () => {
    it.each([
      ["name", "Evil\r\nBcc: victim@example.com"],
      ["name", "Trailing newline\n"],
      ["name", "Tab\tinside"],
      ["fromName", "Sales\r\nX-Injected: 1"],
      ["fromName", "Sales\n"],
    ])("refuses CR/LF or other control characters in %s with control_characters", async (field, value) => {
      const body = expectError(await post(serverBody("smtp", "Control", { [field]: value })), 400, "control_characters");
      expect(body.message).toContain(field);
      expectError(await put(serverBody("smtp", "Existing Relay", { [field]: value })), 400, "control_characters");
      await expectNothingStored();
    });

    it("refuses control characters in a setting value with invalid_setting naming it", async () => {
      const body = expectError(
        await post(serverBody("smtp", "Control setting", { settings: { host: "a.example.com", username: "me\r\nRCPT TO:<x>" } })),
        400,
        "invalid_setting",
      );
      expect(body.message).toContain("settings.username");
      const secret = expectError(
        await post(serverBody("smtp", "Control secret", { settings: { host: "a.example.com", password: "p\r\nQUIT" } })),
        400,
        "invalid_setting",
      );
      expect(secret.message).toContain("settings.password");
      // The refused secret is not echoed back.
      expect(JSON.stringify(secret)).not.toContain("QUIT");
      await expectNothingStored();
    });
  });

  describe("names", () => {
    it("refuses a duplicate name, in any case, with 409 name_taken", async () => {
      for (const name of ["Existing Relay", "existing relay", "EXISTING RELAY", "  Existing Relay  "]) {
        const body = expectError(await post(serverBody("capture", name)), 409, "name_taken");
        expect(body.message).toContain("Existing Relay");
        expect(body.message).toMatch(/choose another name/);
      }
      await expectNothingStored();
    });

    it("refuses an empty or over-long name with validation_failed", async () => {
      for (const name of ["", "   ", "n".repeat(65)]) {
        const body = expectError(await post(serverBody("capture", name)), 400, "validation_failed");
        expect(body.message).toContain("name");
        expect(body.message).toMatch(/1 to 64 characters/);
      }
      await expectNothingStored();
    });
  });

  describe("drivers and setting values", () => {
    it("refuses an unknown driver with unknown_driver listing the valid ones", async () => {
      const body = expectError(
        await post(serverBody("smtp", "Unknown driver", { driver: "carrier-pigeon" })),
        400,
        "unknown_driver",
      );
      expect(body.message).toContain("carrier-pigeon");
      expect(body.details).toEqual({ field: "driver", validDrivers: registeredDrivers });
      for (const d of registeredDrivers) expect(body.message).toContain(d);
      expectError(await put(serverBody("smtp", "Existing Relay", { driver: "SMTP" })), 400, "unknown_driver");
      await expectNothingStored();
    });

    it.each<[string, string, unknown, RegExp]>([
      ["smtp", "host", "not a host name", /host name or IP address/],
      ["smtp", "host", "-bad-.example.com", /host name or IP address/],
      ["smtp", "security", "ssl", /one of: starttls, tls, none/],
      ["mailgun", "region", "asia", /one of: us, eu/],
      ["mailgun", "domain", "mg example com", /host name/],
      ["mailgun", "baseUrl", "ftp://api.example.com", /http:\/\/ or https:\/\//],
      ["postmark", "baseUrl", "not a url", /http:\/\/ or https:\/\//],
      ["ses", "endpoint", "javascript:alert(1)", /http:\/\/ or https:\/\//],
      ["capture", "retention", 0, /at least 1/],
      ...listFields.map(([driver, key]): [string, string, unknown, RegExp] => [
        driver,
        key,
        ["ok@example.com", "a\nb"],
        /control characters/,
      ]),
    ])("%s: refuses a bad %s (%s) with invalid_setting naming it", async (driver, key, value, message) => {
      const body = expectError(
        await post(serverBody(driver, `Bad ${key}`, { settings: { ...serverBody(driver, "x").settings, [key]: value } })),
        400,
        "invalid_setting",
      );
      expect(body.message).toContain(`settings.${key}`);
      expect(body.message).toMatch(message);
      expect(body.details).toEqual(expect.arrayContaining([{ field: `settings.${key}`, message: expect.any(String) }]));
      await expectNothingStored();
    });

    it("refuses a bad from address with validation_failed naming fromAddress", async () => {
      for (const fromAddress of ["not-an-address", "a@b", "two@@example.com", "a b@example.com"]) {
        const body = expectError(await post(serverBody("smtp", "Bad from", { fromAddress })), 400, "validation_failed");
        expect(body.message).toContain("fromAddress");
        expect(body.message).toMatch(/email address/);
      }
      await expectNothingStored();
    });

    it("refuses editing a read-only setting through create or PUT", async () => {
      const body = expectError(
        await post(
          serverBody("gmail", "Sneaky", {
            settings: { clientId: "x", clientSecret: "y", redirectUri: "https://evil.example/cb" },
          }),
        ),
        400,
        "invalid_setting",
      );
      expect(body.message).toContain("settings.redirectUri");
      await expectNothingStored();
    });

    it("reports every bad setting at once in details", async () => {
      const body = expectError(
        await post(serverBody("smtp", "Many bad", { settings: { host: "bad host", port: -1, security: "ssl" } })),
        400,
        "invalid_setting",
      );
      expect((body.details as { field: string }[]).map((d) => d.field).sort()).toEqual([
        "settings.host",
        "settings.port",
        "settings.security",
      ]);
      expect(body.message).toMatch(/and 2 more/);
      await expectNothingStored();
    });
  });

  describe("routes and ids", () => {
    it("answers an unknown route with 404 not_found", async () => {
      expectError(await t.request(t.admin, { method: "GET", url: "/api/nothing-here" }), 404, "not_found");
    });

    it("refuses a bad query value with validation_failed naming it", async () => {
      const body = expectError(
        await t.request(t.admin, { method: "GET", url: "/api/email-servers?limit=lots" }),
        400,
        "validation_failed",
      );
      expect(body.message).toContain("limit");
      expectError(await t.request(t.admin, { method: "GET", url: "/api/email-servers?limit=0" }), 400, "validation_failed");
      expectError(await t.request(t.admin, { method: "GET", url: "/api/audit?offset=-1" }), 400, "validation_failed");
    });
  });
});
