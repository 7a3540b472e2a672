import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Retention } from "../../src/core/retention.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { auditEntries, expectError } from "./fixtures.js";

const DAY = 24 * 60 * 60 * 1000;

// The API's checks are the same on both databases; SQLite keeps this file quick.
describe("retention settings (GET/PUT/DELETE /api/settings/retention)", () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp("sqlite", { MAILROOM_RETENTION_BODY_DAYS: "20", MAILROOM_RETENTION_AUDIT_DAYS: "800" });
  });
  afterAll(() => t.close());

  const put = (payload: unknown, caller = t.admin) =>
    t.request(caller, { method: "PUT", url: "/api/settings/retention", payload: payload as object });
  const get = () => t.request(t.admin, { method: "GET", url: "/api/settings/retention" });

  it("shows the environment's periods, the database size, messages by tier and the last purge", async () => {
    const res = await get();
    expect(res.statusCode, res.body).toBe(200);
    const environment = { bodyDays: 20, metadataDays: 365, auditDays: 800 };
    expect(res.json()).toMatchObject({ effective: environment, environment, source: "environment", override: null });
    expect(res.json().status).toMatchObject({
      autoVacuum: "incremental",
      messages: { full: 0, metadataOnly: 0 },
      lastPurge: null,
    });
    expect(res.json().status.databaseBytes).toBeGreaterThan(0);
  });

  it("refuses wrong types, out-of-range days, unknown and missing fields with a code, and changes nothing", async () => {
    const valid = { bodyDays: 10, metadataDays: 100, auditDays: null };
    const cases: [unknown, string, string][] = [
      [{ ...valid, bodyDays: "10" }, "validation_failed", "bodyDays"],
      [{ ...valid, bodyDays: 1.5 }, "validation_failed", "bodyDays"],
      [{ ...valid, metadataDays: -1 }, "validation_failed", "metadataDays"],
      [{ ...valid, metadataDays: 0 }, "validation_failed", "metadataDays"],
      [{ ...valid, auditDays: 36_501 }, "validation_failed", "auditDays"],
      [{ ...valid, auditDays: true }, "validation_failed", "auditDays"],
      [{ bodyDays: 10, metadataDays: 100 }, "validation_failed", "auditDays"],
      [{ ...valid, purgeNow: true }, "unknown_field", "purgeNow"],
      [{ ...valid, "bodyDays\r\nX-Injected": 1 }, "control_characters", "CR"],
      [{ ...valid, bodyDays: 200 }, "validation_failed", "bodyDays"],
      [[1, 2, 3], "validation_failed", "body"],
    ];
    for (const [payload, code, field] of cases) {
      const error = expectError(await put(payload), 400, code);
      expect(error.message, JSON.stringify(payload)).toContain(field);
    }
    // A body kept longer than its message is named as such, with the fix.
    expect(expectError(await put({ ...valid, bodyDays: 200 }), 400, "validation_failed").message).toMatch(/at most 100/);
    expect((await get()).json()).toMatchObject({ source: "environment", override: null });
    expect((await auditEntries(t)).filter((e) => e.action.startsWith("settings.retention"))).toEqual([]);
  });

  it("needs settings.update to change, which messages.view alone does not give", async () => {
    const viewer = await t.userWith(["messages.view"]);
    expect((await t.request(viewer, { method: "GET", url: "/api/settings/retention" })).statusCode).toBe(200);
    expectError(await put({ bodyDays: 1, metadataDays: 2, auditDays: 3 }, viewer), 403, "forbidden");
    expectError(await t.request(viewer, { method: "DELETE", url: "/api/settings/retention" }), 403, "forbidden");
    const editor = await t.userWith(["settings.update"]);
    expect((await put({ bodyDays: 7, metadataDays: 90, auditDays: null }, editor)).statusCode).toBe(200);
    expect((await t.request(editor, { method: "DELETE", url: "/api/settings/retention" })).statusCode).toBe(200);
  });

  it("overrides the environment until reset, audited, and purges follow the saved periods", async () => {
    const res = await put({ bodyDays: 2, metadataDays: 90, auditDays: null });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.json()).toMatchObject({
      source: "settings",
      effective: { bodyDays: 2, metadataDays: 90, auditDays: null },
      environment: { bodyDays: 20 },
      override: { bodyDays: 2, updatedBy: "admin@example.com" },
    });
    const [entry] = (await auditEntries(t)).filter((e) => e.action === "settings.retention.update");
    expect(entry).toMatchObject({
      before: { bodyDays: 20, metadataDays: 365, auditDays: 800 },
      after: { bodyDays: 2, auditDays: null },
    });

    const sent = await t.request(t.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "a@example.com", subject: "s", text: "t" },
    });
    const id = sent.json().id as string;
    await t.mailroom.ctx.db.updateTable("messages").set({ status: "sent" }).where("id", "=", id).execute();
    const in3days = new Retention(t.mailroom.ctx, t.mailroom.retention.policy, {
      intervalMs: 60_000,
      batchSize: 10,
      clock: () => Date.now() + 3 * DAY,
    });
    expect(await in3days.purge()).toMatchObject({ bodies: 1 });

    const reset = await t.request(t.admin, { method: "DELETE", url: "/api/settings/retention" });
    expect(reset.json()).toMatchObject({ source: "environment", override: null, effective: { bodyDays: 20 } });
    expect((await auditEntries(t)).some((e) => e.action === "settings.retention.reset")).toBe(true);
    expect((await get()).json().status).toMatchObject({ messages: { metadataOnly: 1 }, lastPurge: { bodies: 1 } });
  });
});
