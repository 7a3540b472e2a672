import fs from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { applies, checkValue, parseSettings } from "../../src/core/settings.js";
import { configuredDriver, drivers, secretFieldKeys } from "../../src/drivers/registry.js";
import type { OperatorPolicy } from "../../src/kernel/operator-policy.js";
import { createLogger } from "../../src/logger.js";

/** An installation that declares one sendmail command: fields the operator decides get their options. */
const operator: OperatorPolicy = {
  sendmailCommands: { sendmail: { program: "/usr/sbin/sendmail", args: ["-i"] } },
  allowedEndpoints: [],
};

/**
 * The credentials of the drivers this list names, written out here rather than read from the
 * registry's `secret` flags, so a flag dropped by mistake fails the test. A driver added later
 * is held by the naming rule below.
 */
const knownSecrets: Record<string, string[]> = {
  smtp: ["password"],
  gmail: ["clientSecret"],
  microsoft365: ["clientSecret"],
  mailgun: ["apiKey"],
  postmark: ["serverToken"],
  ses: ["secretAccessKey"],
};
/** A field named like a credential is one. */
const credentialName = /password|secret|token|apikey/i;

/** Everything a logger built as src/app.ts builds it writes, as one string. */
function logOutput(write: (log: ReturnType<typeof createLogger>) => void): string {
  const lines: string[] = [];
  write(createLogger("info", secretFieldKeys, { write: (line: string) => lines.push(line) }));
  return lines.join("");
}

const folders = fs
  .readdirSync(path.resolve("src/drivers"), { withFileTypes: true })
  .filter((d) => d.isDirectory())
  .map((d) => d.name);

describe("the driver contract", () => {
  it("registers every driver folder, and nothing that has no folder", () => {
    expect(drivers.map((d) => d.id).sort()).toEqual([...folders].sort());
  });

  describe.each(drivers.map((d) => [d.id, configuredDriver(d, operator)] as const))("%s", (_id, driver) => {
    it("describes itself and every field for the admin", () => {
      expect(driver.label.trim()).not.toBe("");
      expect(driver.description.trim()).not.toBe("");
      const keys = driver.fields.map((f) => f.key);
      expect(new Set(keys).size).toBe(keys.length);
      for (const f of driver.fields) {
        expect(f.label.trim(), f.key).not.toBe("");
        expect(f.help.trim(), f.key).not.toBe("");
        expect(f.key).toMatch(/^[a-z][A-Za-z0-9]*$/);
        if (f.type === "select") expect(f.options?.length, f.key).toBeGreaterThan(0);
        if (f.secret) {
          expect(f.type, f.key).toBe("text");
          expect(f.default, f.key).toBeUndefined();
        }
      }
      // A secret is bound to where it goes: a driver with one says which settings that is.
      if (driver.fields.some((f) => f.secret)) {
        expect(driver.fields.filter((f) => f.destination && !f.secret && !f.readOnly).length).toBeGreaterThan(0);
      }
    });

    it("flags its credentials as secret", () => {
      const secrets = driver.fields.filter((f) => f.secret).map((f) => f.key);
      for (const key of knownSecrets[driver.id] ?? []) expect(secrets, key).toContain(key);
      for (const f of driver.fields.filter((f) => credentialName.test(f.key))) expect(f.secret, f.key).toBe(true);
    });

    it("never has a secret written to the log, in the shapes settings are logged in", () => {
      for (const f of driver.fields.filter((f) => f.secret)) {
        const value = `never-logged-${driver.id}-${f.key}-${Math.random().toString(36).slice(2)}`;
        const output = logOutput((log) => {
          log.info({ [f.key]: value }, "flat");
          log.info({ settings: { [f.key]: value } }, "settings");
          log.info({ server: { settings: { [f.key]: value } } }, "a server's settings");
          log.info({ draft: { [f.key]: value } }, "nested");
        });
        expect(output, f.key).toContain("a server's settings");
        expect(output, f.key).not.toContain(value);
      }
    });

    it("has defaults that pass its own validation", () => {
      for (const f of driver.fields) {
        if (f.default === undefined || f.default === null || f.secret || f.readOnly) continue;
        expect(checkValue(f, f.default), f.key).toHaveProperty("value");
      }
      expect(parseSettings(driver, {}).problems).toEqual([]);
    });

    it("has an example that passes its own validation and sets every secret that applies to it", () => {
      expect(parseSettings(driver, driver.example).problems).toEqual([]);
      for (const f of driver.fields.filter((x) => x.secret && applies(driver, x, driver.example))) {
        expect(driver.example[f.key], f.key).toEqual(expect.any(String));
      }
    });

    it("makes fields conditional only on a choice it has, and offers each method it declares", () => {
      for (const f of driver.fields.filter((x) => x.when)) {
        // The shared OAuth fields are "delegated only"; a driver without app-only methods is always delegated.
        if (f.when?.key === "authMethod" && !driver.appOnly) {
          expect(f.when.values, f.key).toContain("delegated");
          continue;
        }
        const on = driver.fields.find((x) => x.key === f.when?.key);
        expect(on?.type, f.key).toBe("select");
        for (const value of f.when?.values ?? []) {
          expect(
            on?.options?.map((o) => o.value),
            f.key,
          ).toContain(value);
        }
      }
      if (driver.appOnly) {
        expect(driver.oauthProvider).toBeDefined();
        expect(driver.appOnly.scope).toMatch(/^https:\/\//);
        const methods = driver.fields.find((f) => f.key === "authMethod")?.options?.map((o) => o.value);
        expect(methods).toEqual(["delegated", ...driver.appOnly.methods]);
      }
    });

    it("can send, and lists what it needs before it can", () => {
      expect(typeof driver.createTransport).toBe("function");
      if (driver.oauthProvider) {
        expect(driver.fields.find((f) => f.key === "redirectUri")?.readOnly).toBe(true);
        expect(driver.derive?.({ publicUrl: "https://mail.example.com" }).redirectUri).toMatch(
          /^https:\/\/mail\.example\.com\/oauth\/(google|microsoft)\/callback$/,
        );
      }
    });
  });
});
