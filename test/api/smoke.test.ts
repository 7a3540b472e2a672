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
