import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { createMailroom, type Mailroom } from "../../src/app.js";
import { systemActor } from "../../src/core/audit.js";
import {
  type AttemptRecord,
  claimDueMessages,
  claimWithServers,
  type Settlement,
  settleMessages,
} from "../../src/queue/outbox.js";
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

  async function queue(ids: string[], serverId = "s1"): Promise<void> {
    const now = Date.now() - 1000;
    await mailroom.ctx.db
      .insertInto("messages")
      .values(
        ids.map((id) => ({
          id,
          server_id: serverId,
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

  it("a claim carries results: written as settleMessages writes them; a message one puts back in the queue waits for the next claim", async () => {
    const { db } = mailroom.ctx;
    const dialectName = mailroom.ctx.storage.dialect;
    const a = await mailroom.servers.create({ name: "Carry A", driver: "capture", fromAddress: "a@example.com" }, systemActor);
    const b = await mailroom.servers.create({ name: "Carry B", driver: "capture", fromAddress: "b@example.com" }, systemActor);
    await queue(["c-sent", "c-moved", "c-theirs"], a.id);
    const plan = () => ({ quotas: [], others: 10, limit: 10, leaseMs: 60_000, now: Date.now() });
    const first = await claimWithServers(db, dialectName, "me", plan());
    expect(first.messages.map((m) => m.id).sort()).toEqual(["c-moved", "c-sent", "c-theirs"]);
    // The claim read the claimed messages' server as it is now, and its breaker.
    expect(first.servers.get(a.id)).toMatchObject({ row: { id: a.id, name: "Carry A" }, failuresInARow: 0 });
    await db.updateTable("messages").set({ lease_owner: "other" }).where("id", "=", "c-theirs").execute();
    await queue(["c-new"], a.id);

    const carried: Settlement[] = [
      { id: "c-sent", outcome: { status: "sent", errorCode: null }, attempt: attempt("c-sent", "sent") },
      {
        id: "c-moved",
        outcome: { status: "queued", nextAttemptAt: Date.now() - 1, moveTo: { serverId: b.id, serverName: "Carry B" } },
        attempt: attempt("c-moved", "server", { errorCode: "smtp_auth_failed" }),
      },
      { id: "c-theirs", outcome: { status: "sent", errorCode: null }, attempt: attempt("c-theirs", "sent") },
    ];
    const second = await claimWithServers(db, dialectName, "me", plan(), carried);
    expect(second.settled).toEqual([true, true, false]);
    // The moved message is due on B now, but this claim wrote its move: not taken by it.
    expect(second.messages.map((m) => m.id)).toEqual(["c-new"]);
    const rows = new Map((await db.selectFrom("messages").selectAll().execute()).map((r) => [r.id, r]));
    expect(rows.get("c-sent")).toMatchObject({ status: "sent", lease_owner: null });
    expect(rows.get("c-moved")).toMatchObject({ status: "queued", server_id: b.id, server_name: "Carry B", attempts: 0 });
    expect(rows.get("c-theirs")).toMatchObject({ status: "sending", lease_owner: "other" });
    const attempts = await db
      .selectFrom("message_attempts")
      .select(["message_id", "outcome"])
      .where("message_id", "like", "c-%")
      .orderBy("message_id")
      .execute();
    expect(attempts).toEqual([
      { message_id: "c-moved", outcome: "server" },
      { message_id: "c-sent", outcome: "sent" },
    ]);

    const third = await claimWithServers(db, dialectName, "me", plan());
    expect(third.messages.map((m) => m.id)).toEqual(["c-moved"]);
    expect(third.servers.get(b.id)?.row?.name).toBe("Carry B");
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

  it("hands waiting items to a caller that writes them itself, and waits for its gate before writing", async () => {
    const calls: number[][] = [];
    let gate: Promise<void> | undefined;
    const writer = new BatchWriter<number, number>(
      async (items) => {
        calls.push(items);
        return items.map((i) => i * 2);
      },
      200,
      () => gate,
    );
    let open = () => {};
    gate = new Promise<void>((r) => {
      open = r;
    });
    const written = [writer.write(1), writer.write(2)];
    await new Promise((r) => setImmediate(r));
    // The gate is closed: nothing written yet; a caller takes both and writes them.
    expect(calls).toEqual([]);
    expect(writer.waiting).toBe(2);
    const taken = writer.take();
    expect(taken.items).toEqual([1, 2]);
    taken.done([10, 20]);
    gate = undefined;
    open();
    expect(await Promise.all(written)).toEqual([10, 20]);
    expect(calls).toEqual([]);
  });

  it("a first item waits as long as the linger says when it arrives: others share its write; alone, no wait", async () => {
    vi.useFakeTimers();
    try {
      const calls: number[][] = [];
      let othersUnderWay = true;
      const writer = new BatchWriter<number, number>(
        async (items) => {
          calls.push(items);
          return items;
        },
        200,
        undefined,
        () => (othersUnderWay ? 10 : 0),
      );
      const first = writer.write(1);
      await vi.advanceTimersByTimeAsync(9);
      expect(calls).toEqual([]);
      const second = writer.write(2);
      await vi.advanceTimersByTimeAsync(1);
      expect(await Promise.all([first, second])).toEqual([1, 2]);
      expect(calls).toEqual([[1, 2]]);

      othersUnderWay = false;
      const alone = writer.write(3);
      // No time passes: written in the next turn of the event loop.
      await vi.advanceTimersByTimeAsync(0);
      expect(calls).toEqual([[1, 2], [3]]);
      expect(await alone).toBe(3);
    } finally {
      vi.useRealTimers();
    }
  });
});
