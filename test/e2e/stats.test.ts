/**
 * GET /api/stats, the overview's data, on SQLite and PostgreSQL: sent and failed per server
 * in hourly and daily buckets, the queue, servers needing attention, last delivery.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import type { MessagesTable } from "../../src/storage/schema.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

interface Range {
  start: string;
  bucketMs: number;
  buckets: number;
  series: { serverId: string; serverName: string; sent: number[]; failed: number[] }[];
  totals: { sent: number; failed: number };
}

describe.each(await availableDialects())("GET /api/stats on %s", (dialect) => {
  let t: TestApp;
  let viewer: Caller;
  let captureId: string;
  let n = 0;
  const now = Date.now();

  function message(status: MessagesTable["status"], at: number, serverId: string, serverName: string): MessagesTable {
    n++;
    return {
      id: `stats-${n}`,
      server_id: serverId,
      server_name: serverName,
      status,
      from_address: "app@example.com",
      from_name: "",
      recipients: JSON.stringify({ to: [{ address: "a@example.com" }], cc: [], bcc: [], replyTo: [] }),
      recipient_search: "a@example.com",
      subject: `message ${n}`,
      payload: JSON.stringify({ text: "hi", headers: {}, attachments: [] }),
      message_id: `stats-${n}@example.com`,
      idempotency_scope: null,
      idempotency_key: null,
      attempts: status === "queued" ? 0 : 1,
      max_attempts: 6,
      next_attempt_at: at,
      lease_owner: null,
      last_error_code: status === "failed" ? "recipient_rejected" : null,
      last_error: status === "failed" ? "refused" : null,
      provider_message_id: null,
      created_by: null,
      created_at: at - 1000,
      updated_at: at,
      sent_at: status === "sent" ? at : null,
    };
  }

  beforeAll(async () => {
    t = await startTestApp(dialect);
    viewer = await t.userWith(["messages.view"], `stats-viewer-${dialect}@example.com`);
    captureId = (await t.mailroom.servers.getRow("Capture")).id;
    const incomplete = await t.mailroom.servers.create(
      { name: "Half done", driver: "smtp", fromAddress: "a@example.com", settings: {} },
      systemActor,
    );
    const rows = [
      message("sent", now, captureId, "Capture"),
      message("sent", now - 10_000, captureId, "Capture"),
      message("failed", now - 2 * HOUR, captureId, "Capture"),
      message("sent", now - 3 * DAY, captureId, "Capture"),
      message("sent", now - 40 * DAY, captureId, "Capture"),
      // A server deleted since: still counted, under the name it had.
      message("sent", now - 5 * HOUR, "gone-server", "Old relay"),
      message("queued", now + 60_000, captureId, "Capture"),
      message("queued", now, incomplete.id, "Half done"),
      message("held", now, incomplete.id, "Half done"),
    ];
    await t.mailroom.ctx.db.insertInto("messages").values(rows).execute();
  });
  afterAll(() => t.close());

  it("counts sent and failed per server, per hour over 24 hours and per day over 30 days", async () => {
    const res = await t.request(viewer, { method: "GET", url: "/api/stats" });
    expect(res.statusCode, res.body).toBe(200);
    const body = res.json() as { ranges: Record<"24h" | "30d", Range> };
    const day = body.ranges["24h"];
    expect(day.buckets).toBe(24);
    expect(day.bucketMs).toBe(HOUR);
    const capture = day.series.find((s) => s.serverId === captureId)!;
    expect(capture.sent).toHaveLength(24);
    // The last bucket is the current hour.
    expect(capture.sent[23]).toBe(2);
    expect(capture.failed.reduce((a, b) => a + b, 0)).toBe(1);
    expect(day.totals).toEqual({ sent: 3, failed: 1 });
    expect(day.series.find((s) => s.serverId === "gone-server")?.serverName).toBe("Old relay");
    // Every bucket starts where the one before ends, and the last one holds now.
    const start = Date.parse(day.start);
    expect(start + 24 * HOUR).toBeGreaterThan(now);
    expect(start + 23 * HOUR).toBeLessThanOrEqual(now);

    const month = body.ranges["30d"];
    expect(month.buckets).toBe(30);
    const captureMonth = month.series.find((s) => s.serverId === captureId)!;
    expect(captureMonth.sent.reduce((a, b) => a + b, 0)).toBe(3);
    expect(captureMonth.sent[29]).toBe(2);
    expect(month.totals).toEqual({ sent: 4, failed: 1 });
  });

  it("reports the queue, the servers needing attention and each server's last delivery", async () => {
    const body = (await t.request(viewer, { method: "GET", url: "/api/stats" })).json() as {
      queue: { queued: number; sending: number; held: number; oldestQueuedAt: string | null };
      attention: { name: string; status: string; statusDetail: string | null }[];
      lastSent: { serverId: string; at: string }[];
    };
    expect(body.queue).toMatchObject({ queued: 2, sending: 0, held: 1 });
    expect(body.queue.oldestQueuedAt).not.toBeNull();
    expect(body.attention).toEqual([expect.objectContaining({ name: "Half done", status: "incomplete" })]);
    expect(body.attention[0].statusDetail).toMatch(/host/i);
    expect(body.lastSent).toEqual([{ serverId: captureId, at: new Date(now).toISOString() }]);
  });

  it("needs messages.view", async () => {
    const other = await t.userWith(["email-servers.view"], `stats-other-${dialect}@example.com`);
    expect((await t.request(other, { method: "GET", url: "/api/stats" })).statusCode).toBe(403);
    expect((await t.request(null, { method: "GET", url: "/api/stats" })).statusCode).toBe(401);
  });
});
