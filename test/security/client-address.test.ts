import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { buildServer } from "../../src/http/server.js";
import { auditEntries, expectError } from "../api/fixtures.js";
import { startTestApp, type TestApp } from "../helpers/app.js";

/**
 * Behind a load balancer every request comes from the balancer: without trusting it, the
 * limits per address throttle everyone at once and the audit names the balancer. With
 * MAILROOM_TRUST_PROXY, X-Forwarded-For is believed from those proxies only.
 */
describe("MAILROOM_TRUST_PROXY", () => {
  const parse = (value: string | undefined) => loadConfig({ MAILROOM_TRUST_PROXY: value }).trustProxy;

  it("accepts nothing (the default), a hop count, or addresses and CIDR ranges", () => {
    expect(parse(undefined)).toBe(false);
    expect(parse("")).toBe(false);
    expect(parse("0")).toBe(false);
    expect(parse("1")).toBe(1);
    expect(parse("10.0.0.0/8, 192.168.1.5,fd00::/8,loopback")).toEqual(["10.0.0.0/8", "192.168.1.5", "fd00::/8", "loopback"]);
  });

  it("refuses anything else with a line naming the variable and what it accepts", () => {
    for (const bad of ["true", "10.0.0.0/33", "proxy.example.com", "-1", "1.2.3.4/8/9", "100"]) {
      expect(() => parse(bad), bad).toThrow(ConfigError);
      expect(() => parse(bad), bad).toThrow(/MAILROOM_TRUST_PROXY.*(number of proxies|addresses and CIDR ranges)/);
    }
  });

  async function failedSignInFrom(t: TestApp, forwardedFor: string): Promise<string | null> {
    const email = `probe-${Math.random().toString(36).slice(2)}@example.com`;
    await t.app.inject({
      method: "POST",
      url: "/api/auth/login",
      payload: { email, password: "wrong password" },
      headers: { "x-forwarded-for": forwardedFor },
    });
    const entry = (await auditEntries(t, "&action=auth.login_failed")).find((e) => JSON.stringify(e.after).includes(email));
    return (entry as unknown as { ip: string | null }).ip;
  }

  describe("unset", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp("sqlite");
    });
    afterAll(() => t.close());

    it("X-Forwarded-For is ignored: a client cannot choose its address", async () => {
      expect(await failedSignInFrom(t, "198.51.100.1")).toBe("127.0.0.1");
    });
  });

  describe("another proxy's address", () => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp("sqlite", { MAILROOM_TRUST_PROXY: "10.0.0.1" });
    });
    afterAll(() => t.close());

    it("X-Forwarded-For from an address that is not that proxy is ignored", async () => {
      expect(await failedSignInFrom(t, "198.51.100.1")).toBe("127.0.0.1");
    });
  });

  describe.each([
    ["the balancer's address", "127.0.0.1"],
    ["a hop count", "1"],
  ])("set to %s", (_label, value) => {
    let t: TestApp;
    beforeAll(async () => {
      t = await startTestApp("sqlite", { MAILROOM_TRUST_PROXY: value });
    });
    afterAll(() => t.close());

    it("the audit records the client's address", async () => {
      expect(await failedSignInFrom(t, "198.51.100.1")).toBe("198.51.100.1");
    });

    it("the limit per address slows one client, not everyone behind the balancer", async () => {
      const app = await buildServer(t.mailroom, { signInLimits: { perAccount: 1000, perAddress: 3 } });
      try {
        const attempt = (client: string) =>
          app.inject({
            method: "POST",
            url: "/api/auth/login",
            payload: { email: `nobody-${client}@example.com`, password: "wrong password" },
            headers: { "x-forwarded-for": client },
          });
        for (let i = 0; i < 3; i++) expectError(await attempt("198.51.100.7"), 401, "invalid_credentials");
        expectError(await attempt("198.51.100.7"), 429, "too_many_attempts");
        expectError(await attempt("198.51.100.8"), 401, "invalid_credentials");
      } finally {
        await app.close();
      }
    });
  });
});
