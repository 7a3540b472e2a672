import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom, type Mailroom } from "../../src/app.js";
import { type AttemptRecord, claimDueMessages, type Settlement, settleMessages } from "../../src/queue/outbox.js";
import { migrateToLatest } from "../../src/storage/db.js";
import { BatchWriter } from "../../src/storage/group-commit.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";

describe.each(await availableDialects())("settling results on %s", (dialect) => {
  let mailroom: Mailroom;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const fresh = await freshConfig(dialect);
    drop = fresh.drop;
    mailroom = createMailroom(fresh.config);
    await migrateToLatest(mailroom.ctx.db);
  });
  afterAll(async () => {
    await mailroom.close();
    await drop();
  });

  async function queue(ids: string[]): Promise<void> {
    const now = Date.now() - 1000;
    await mailroom.ctx.db
      .insertInto("messages")
      .values(
        ids.map((id) => ({
          id,
          server_id: "s1",
          server_name: "One",
          status: "queued" as const,
          from_address: "app@example.com",
          from_name: "",
          recipients: JSON.stringify({ to: [{ address: "a@example.com" }], cc: [], bcc: [], replyTo: [] }),
          recipient_search: "a@example.com",
          subject: "settle",
          payload: JSON.stringify({ text: "Hello.", headers: {}, attachments: [] }),
          message_id: `${id}@example.com`,
          idempotency_scope: null,
          idempotency_key: null,
          attempts: 0,
          max_attempts: 6,
          next_attempt_at: now,
          lease_owner: null,
          last_error_code: "earlier_error",
          last_error: "An earlier error.",
          provider_message_id: null,
          created_by: null,
          created_at: now,
          updated_at: now,
          sent_at: null,
        })),
      )
      .execute();
  }

  const attempt = (messageId: string, outcome: string, extra: Partial<AttemptRecord> = {}): AttemptRecord => ({
    messageId,
    serverId: "s1",
    serverName: "One",
    startedAt: 1000,
    durationMs: 12,
    outcome,
    ...extra,
  });

  it("writes every outcome of a group as the per-message path would, and nothing for a lease that is not ours", async () => {
    await queue(["sent", "retry", "failed", "held", "waited", "stolen"]);
    const { db } = mailroom.ctx;
    const dialectName = mailroom.ctx.storage.dialect;
    const claimed = await claimDueMessages(db, dialectName, "me", [{ serverId: "s1", limit: 10 }], 10, 60_000);
    expect(claimed.map((m) => m.id).sort()).toEqual(["failed", "held", "retry", "sent", "stolen", "waited"]);
    // Another worker took this one over after our lease ran out.
    await db.updateTable("messages").set({ lease_owner: "other" }).where("id", "=", "stolen").execute();

    const settlements: Settlement[] = [
      {
        id: "sent",
        outcome: { status: "sent", errorCode: null, providerMessageId: "<p1@sink>" },
        attempt: attempt("sent", "sent", { providerMessageId: "<p1@sink>", remote: { response: "250 OK" } }),
      },
      {
        id: "retry",
        outcome: { status: "queued", nextAttemptAt: 4_000_000_000_000, errorCode: "smtp_temporary", error: "451 later" },
        attempt: attempt("retry", "transient", {
          errorCode: "smtp_temporary",
          remote: { code: 451, command: "DATA", response: `451 ${"x".repeat(3000)}` },
        }),
      },
      {
        id: "failed",
        outcome: { status: "failed", errorCode: "recipient_rejected", error: "550 no such user" },
        attempt: attempt("failed", "recipient", { errorCode: "recipient_rejected", remote: { code: 550 } }),
      },
      // Held without an attempt (the server was not ready), and a rate-limit wait: neither uses an attempt up.
      {
        id: "held",
        outcome: { status: "held", errorCode: "server_not_ready", error: "failing", uncountAttempt: true },
      },
      { id: "waited", outcome: { status: "queued", nextAttemptAt: 4_000_000_000_000, uncountAttempt: true } },
      { id: "stolen", outcome: { status: "sent", errorCode: null }, attempt: attempt("stolen", "sent") },
    ];
    const before = Date.now();
    const applied = await settleMessages(db, dialectName, "me", settlements);
    expect(applied).toEqual([true, true, true, true, true, false]);

    const rows = new Map((await db.selectFrom("messages").selectAll().execute()).map((r) => [r.id, r]));
    const sent = rows.get("sent");
    expect(sent).toMatchObject({ status: "sent", lease_owner: null, attempts: 1, provider_message_id: "<p1@sink>" });
    expect(sent?.last_error_code).toBeNull();
    expect(Number(sent?.sent_at)).toBeGreaterThanOrEqual(before);
    expect(Number(sent?.next_attempt_at)).toBeGreaterThanOrEqual(before);
    expect(rows.get("retry")).toMatchObject({
      status: "queued",
      attempts: 1,
      next_attempt_at: 4_000_000_000_000,
      last_error_code: "smtp_temporary",
      last_error: "451 later",
      sent_at: null,
    });
    expect(rows.get("failed")).toMatchObject({ status: "failed", last_error_code: "recipient_rejected", attempts: 1 });
    expect(rows.get("held")).toMatchObject({ status: "held", last_error_code: "server_not_ready", attempts: 0 });
    // An outcome without an error code keeps the last error.
    expect(rows.get("waited")).toMatchObject({ status: "queued", attempts: 0, last_error_code: "earlier_error" });
    expect(rows.get("stolen")).toMatchObject({ status: "sending", lease_owner: "other", sent_at: null });

    const attempts = await db.selectFrom("message_attempts").selectAll().orderBy("message_id").execute();
    expect(attempts.map((a) => [a.message_id, a.outcome, a.error_code])).toEqual([
      ["failed", "recipient", "recipient_rejected"],
      ["retry", "transient", "smtp_temporary"],
      ["sent", "sent", null],
    ]);
    const retry = attempts.find((a) => a.message_id === "retry");
    expect(retry).toMatchObject({ remote_code: 451, remote_command: "DATA", duration_ms: 12, server_name: "One" });
    expect(retry?.remote_response).toHaveLength(2000);
    expect(attempts.find((a) => a.message_id === "sent")?.provider_message_id).toBe("<p1@sink>");

    // A second result for a message already settled applies to nothing.
    expect(await settleMessages(db, dialectName, "me", [settlements[0]])).toEqual([false]);
  });
});

describe("batch writer", () => {
  it("writes what arrives together in one call, and a failing batch item by item", async () => {
    const calls: number[][] = [];
    const writer = new BatchWriter<number, number>(async (items) => {
      calls.push(items);
      if (items.includes(7)) throw new Error("seven is bad");
      return items.map((i) => i * 2);
    });
    const results = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => writer.write(i)));
    expect(results.map((r) => (r.status === "fulfilled" ? r.value : (r.reason as Error).message))).toEqual([
      0,
      2,
      4,
      6,
      8,
      10,
      12,
      "seven is bad",
      16,
      18,
    ]);
    // The batch of ten failed, then each item was written alone.
    expect(calls).toEqual([Array.from({ length: 10 }, (_, i) => i), ...Array.from({ length: 10 }, (_, i) => [i])]);

    calls.length = 0;
    expect(await Promise.all([writer.write(1), writer.write(2), writer.write(3)])).toEqual([2, 4, 6]);
    expect(calls).toEqual([[1, 2, 3]]);
  });
});
