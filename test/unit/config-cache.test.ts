/**
 * The configuration reads that accepting a message makes (token, owner, default server,
 * routes) are kept for a moment (src/storage/config-cache.ts): a change in this process
 * applies at once, another connection's on SQLite at once, another process's on PostgreSQL
 * within the cache's second.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom, type Mailroom } from "../../src/app.js";
import { systemActor } from "../../src/core/audit.js";
import { ConfigCache } from "../../src/storage/config-cache.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

describe("config cache", () => {
  it("keeps a value for its time, forgets it on a write, keeps nothing read just after one, nor a failed read", async () => {
    let now = 0;
    let elsewhere = false;
    const cache = new ConfigCache(
      1000,
      () => elsewhere,
      () => now,
    );
    let loads = 0;
    const load = async () => ++loads;
    expect(await cache.get("k", load)).toBe(1);
    now = 999;
    expect(await cache.get("k", load)).toBe(1);
    now = 1000;
    expect(await cache.get("k", load)).toBe(2);

    // A write: forgotten at once, and what is read in the next second is not kept.
    cache.written();
    expect(await cache.get("k", load)).toBe(3);
    now = 1500;
    expect(await cache.get("k", load)).toBe(4);
    now = 2000;
    expect(await cache.get("k", load)).toBe(5);
    now = 2100;
    expect(await cache.get("k", load)).toBe(5);

    // Another connection wrote (SQLite's data_version moved): forgotten at once.
    elsewhere = true;
    expect(await cache.get("k", load)).toBe(6);
    elsewhere = false;

    // A failed read is not kept.
    now = 5000;
    await expect(cache.get("f", async () => Promise.reject(new Error("database away")))).rejects.toThrow("database away");
    expect(await cache.get("f", async () => "back")).toBe("back");
  });
});

describe.each(await availableDialects())("config cache on %s", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect, { MAILROOM_WORKERS: "off" });
  });
  afterAll(() => t.close());

  it("is emptied by a write to a config table through the database handle, not by other writes", async () => {
    let now = 0;
    const cache = new ConfigCache(1000, undefined, () => now);
    const db = t.mailroom.ctx.db.withPlugin(cache.plugin());
    let loads = 0;
    const read = () => cache.get("k", async () => ++loads);
    expect(await read()).toBe(1);
    // Messages, and a token's last use (recorded once a minute), leave it.
    await db.updateTable("messages").set({ updated_at: 1 }).where("id", "=", "none").execute();
    await db.updateTable("api_tokens").set({ last_used_at: 1 }).where("id", "=", "none").execute();
    expect(await read()).toBe(1);
    for (const write of [
      () => db.updateTable("email_servers").set({ updated_at: 1 }).where("id", "=", "none").execute(),
      () => db.updateTable("api_tokens").set({ revoked_at: 1 }).where("id", "=", "none").execute(),
      () => db.deleteFrom("routes").where("id", "=", "none").execute(),
      () => db.deleteFrom("user_groups").where("user_id", "=", "none").execute(),
      () => db.transaction().execute((trx) => trx.updateTable("users").set({ disabled: 0 }).where("id", "=", "none").execute()),
    ]) {
      // A second after the last write a read is kept again; the write forgets it at once.
      now += 1000;
      const kept = await read();
      expect(await read()).toBe(kept);
      await write();
      expect(await read()).toBe(kept + 1);
    }
  });

  it("applies a change made in this process to the next request at once: a revoked token, a new default server", async () => {
    const { token, view } = await t.mailroom.tokens.create({ name: "cached", permissions: ["messages.send"] }, systemActor, null);
    const caller = { headers: { authorization: `Bearer ${token}` } };
    const send = () =>
      t.request(caller, { method: "POST", url: "/api/messages", payload: { to: "a@example.com", subject: "s", text: "x" } });
    const first = await send();
    expect(first.statusCode).toBe(202);
    expect((await t.mailroom.messages.getRow(first.json().id)).server_name).toBe("Capture");

    const other = await t.mailroom.servers.create(
      { name: "New default", driver: "capture", fromAddress: "new@example.com", isDefault: true },
      systemActor,
    );
    const second = await send();
    expect(second.statusCode).toBe(202);
    expect((await t.mailroom.messages.getRow(second.json().id)).server_id).toBe(other.id);

    await t.mailroom.tokens.revoke(view.id, systemActor);
    expect((await send()).statusCode).toBe(401);
  });
});

describe.each(await availableDialects())("config cache between two processes on %s", (dialect) => {
  let t: TestApp;
  let other: Mailroom;
  // The time the cache reads: the test moves it instead of waiting.
  let now = Date.now();
  beforeAll(async () => {
    t = await startTestApp(dialect, { MAILROOM_WORKERS: "off" }, { clock: () => now });
    other = createMailroom(t.mailroom.ctx.config);
  });
  afterAll(async () => {
    await other.close();
    await t.close();
  });

  it(`sees a token revoked by the other ${dialect === "sqlite" ? "connection at once" : "process once its second has passed"}`, async () => {
    const { token, view } = await t.mailroom.tokens.create({ name: "shared", permissions: ["messages.send"] }, systemActor, null);
    // A second after the write that created it, a read of it is kept.
    now += 1000;
    expect(await t.mailroom.tokens.authenticate(token)).not.toBeNull();

    await other.tokens.revoke(view.id, systemActor);
    if (dialect === "sqlite") {
      // Another connection committed: SQLite's data_version says so at the next turn of the
      // event loop (the next request), and the cache forgets.
      await new Promise((r) => setImmediate(r));
      expect(await t.mailroom.tokens.authenticate(token)).toBeNull();
    } else {
      // Kept for the rest of its second, then read again.
      now += 999;
      expect(await t.mailroom.tokens.authenticate(token)).not.toBeNull();
      now += 1;
      expect(await t.mailroom.tokens.authenticate(token)).toBeNull();
    }
  });
});
