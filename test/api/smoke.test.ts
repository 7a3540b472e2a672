import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

describe.each(await availableDialects())("first start on %s", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(() => t.close());

  it("has a Capture server as the default and an admin who can sign in", async () => {
    const res = await t.request(t.admin, { method: "GET", url: "/api/email-servers" });
    expect(res.statusCode).toBe(200);
    const body = res.json();
    expect(body.total).toBe(1);
    expect(body.items[0]).toMatchObject({ name: "Capture", driver: "capture", isDefault: true, status: "ready" });
  });
});

describe("security headers", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("sqlite", { MAILROOM_PUBLIC_URL: "https://mail.example.com" });
  });
  afterAll(() => t.close());

  it("every response carries helmet's headers, the admin UI's policy and, over https, the upgrade", async () => {
    for (const url of ["/api/email-servers", "/api/nothing-here", "/"]) {
      const res = await t.request(t.admin, { method: "GET", url });
      expect(res.headers["x-content-type-options"], url).toBe("nosniff");
      expect(res.headers["strict-transport-security"], url).toMatch(/^max-age=\d+/);
      expect(res.headers["x-frame-options"], url).toBe("SAMEORIGIN");
      const csp = String(res.headers["content-security-policy"]);
      expect(csp, url).toContain("script-src 'self'");
      expect(csp, url).toContain("img-src 'self' data:");
      expect(csp, url).toContain("upgrade-insecure-requests");
      expect(res.headers["x-powered-by"], url).toBeUndefined();
    }
  });
});
