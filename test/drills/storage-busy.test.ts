import path from "node:path";
import SQLite from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";

describe("a locked SQLite database", () => {
  let t: TestApp;
  let app: Caller;
  beforeAll(async () => {
    t = await startTestApp("sqlite", { MAILROOM_SQLITE_BUSY_MS: "200" });
    const { token } = await t.mailroom.tokens.create(
      { name: "busy", permissions: ["messages.send", "email-servers.update"] },
      systemActor,
      null,
    );
    app = { headers: { authorization: `Bearer ${token}` } };
  });
  afterAll(() => t.close());

  it("answers 503 storage_busy, writes nothing half-way, and works again once the lock is gone", async () => {
    const file = path.join(t.mailroom.ctx.config.dataDir, "mailroom.db");
    const before = await t.mailroom.servers.list();
    const auditBefore = (await t.request(t.admin, { method: "GET", url: "/api/audit?limit=1" })).json().total;

    // Another process (the CLI, a backup tool) holds the write lock longer than Mailroom waits.
    const other = new SQLite(file);
    other.exec("BEGIN EXCLUSIVE");
    try {
      const create = await t.request(app, {
        method: "POST",
        url: "/api/email-servers",
        payload: { name: "Busy", driver: "capture", fromAddress: "a@example.com" },
      });
      expect(create.statusCode).toBe(503);
      expect(create.json().code).toBe("storage_busy");
      const send = await t.request(app, { method: "POST", url: "/api/messages", payload: { to: "a@example.com", subject: "x" } });
      expect(send.statusCode).toBe(503);
      expect(send.json().code).toBe("storage_busy");
    } finally {
      other.exec("ROLLBACK");
      other.close();
    }

    expect((await t.mailroom.servers.list()).total).toBe(before.total);
    expect((await t.request(t.admin, { method: "GET", url: "/api/audit?limit=1" })).json().total).toBe(auditBefore);
    const retry = await t.request(app, {
      method: "POST",
      url: "/api/email-servers",
      payload: { name: "Busy", driver: "capture", fromAddress: "a@example.com" },
    });
    expect(retry.statusCode).toBe(201);
  });
});
