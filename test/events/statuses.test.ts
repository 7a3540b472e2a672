import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Retention } from "../../src/core/retention.js";
import { countSentSince } from "../../src/queue/outbox.js";
import { expectError } from "../api/fixtures.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { sendAndSettle } from "./support.js";

const DAY = 24 * 60 * 60 * 1000;

// The provider's statuses count as sent wherever "sent" counted: retention, the daily limit, the log's filter.
describe.each(await availableDialects())("delivered, bounced and complained on %s", (dialect) => {
  let t: TestApp;
  const ids: string[] = [];
  const statuses = ["delivered", "bounced", "complained", "sent"] as const;
  beforeAll(async () => {
    t = await startTestApp(dialect, { MAILROOM_POLL_MS: "20" });
    t.mailroom.worker.start();
    for (const [i, status] of statuses.entries()) {
      const row = await sendAndSettle(t, t.admin, "Capture", `status-${i}@example.org`);
      await t.mailroom.ctx.db.updateTable("messages").set({ status }).where("id", "=", row.id).execute();
      await t.mailroom.ctx.db
        .insertInto("message_events")
        .values({
          id: `event-${dialect}-${i}`,
          message_id: row.id,
          server_id: row.server_id,
          provider: "postmark",
          type: status === "sent" ? "delivered" : status,
          bounce_kind: status === "bounced" ? "hard" : null,
          recipient: `status-${i}@example.org`,
          diagnostic: `550 5.1.1 <status-${i}@example.org>: Recipient address rejected`,
          provider_event_id: `pe-${i}`,
          at: Date.now(),
          received_at: Date.now(),
        })
        .execute();
      ids.push(row.id);
    }
    await t.mailroom.worker.stop();
  });
  afterAll(() => t.close());

  const retention = (offsetMs: number) =>
    new Retention(t.mailroom.ctx, t.mailroom.retention.policy, {
      intervalMs: 60_000,
      batchSize: 2,
      clock: () => Date.now() + offsetMs,
    });

  it("filter the delivery log and count toward the daily limit", async () => {
    for (const status of statuses) {
      const res = await t.request(t.admin, { method: "GET", url: `/api/messages?status=${status}` });
      expect(res.json().items.map((m: { status: string }) => m.status)).toEqual([status]);
    }
    expectError(await t.request(t.admin, { method: "GET", url: "/api/messages?status=returned" }), 400, "validation_failed");
    const serverId = (await t.mailroom.servers.getRow("Capture")).id;
    expect(await countSentSince(t.mailroom.ctx.db, serverId, Date.now() - DAY)).toBe(4);
  });

  it("an erasure replaces the address in the reports and their diagnostics; the suppression list keeps it", async () => {
    const address = "status-1@example.org";
    const added = await t.request(t.admin, { method: "POST", url: "/api/suppressions", payload: { address } });
    expect(added.statusCode, added.body).toBe(201);
    const erased = await t.request(t.admin, { method: "DELETE", url: `/api/recipients/${address}/data` });
    expect(erased.statusCode, erased.body).toBe(200);
    const [event] = await t.mailroom.ctx.db.selectFrom("message_events").selectAll().where("message_id", "=", ids[1]).execute();
    expect(event.recipient).toMatch(/^erased-[0-9a-f]{16}@erased\.invalid$/);
    expect(event.diagnostic).toBe(`550 5.1.1 <${event.recipient}>: Recipient address rejected`);
    expect(JSON.stringify(await t.mailroom.ctx.db.selectFrom("message_events").selectAll().execute())).not.toContain(address);
    // What stops mail to the person stays.
    const again = await t.request(t.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { to: address, subject: "s", text: "t" },
    });
    expect(again.json().code).toBe("recipient_suppressed");
  });

  it("are purged by retention like sent, their reports with them", async () => {
    expect(await retention(31 * DAY).purge()).toMatchObject({ bodies: 4, messages: 0, audit: 0 });
    expect(await retention(366 * DAY).purge()).toMatchObject({ messages: 4 });
    const left = await t.mailroom.ctx.db.selectFrom("message_events").select("id").where("message_id", "in", ids).execute();
    expect(left).toEqual([]);
  });
});
