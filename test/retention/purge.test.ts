import fs from "node:fs";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom } from "../../src/app.js";
import { Retention } from "../../src/core/retention.js";
import type { MessageStatus } from "../../src/storage/schema.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";

/** Defines a test only where it applies: a dialect- or driver-specific case is not a skip. */
const itWhen = (applies: boolean): typeof it => (applies ? it : ((() => {}) as unknown as typeof it));

const DAY = 24 * 60 * 60 * 1000;
const dialects = await availableDialects();

describe.each(dialects)("retention on %s", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(() => t.close());

  /** A Retention of this Mailroom whose clock reads `offset` from now. */
  const at = (offsetMs: number, batchSize = 2) => {
    const base = Date.now();
    return new Retention(t.mailroom.ctx, t.mailroom.retention.policy, {
      intervalMs: 60_000,
      batchSize,
      clock: () => base + offsetMs,
    });
  };
  const row = (id: string) => t.mailroom.ctx.db.selectFrom("messages").selectAll().where("id", "=", id).executeTakeFirst();
  const attempts = async (id: string) =>
    (await t.mailroom.ctx.db.selectFrom("message_attempts").select("id").where("message_id", "=", id).execute()).length;

  it("removes bodies after their period and keeps metadata; never touches queued, sending or held mail", async () => {
    t.mailroom.worker.start();
    const ids: string[] = [];
    for (let i = 0; i < 6; i++) {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/messages",
        payload: {
          to: `r${i}@example.com`,
          subject: `Invoice ${i}`,
          text: `BODY-MARKER-${i} text`,
          html: `<p>BODY-MARKER-${i} html</p>`,
          attachments: [{ filename: "a.txt", contentType: "text/plain", content: Buffer.from(`ATTACH-${i}`).toString("base64") }],
        },
      });
      expect(res.statusCode).toBe(202);
      ids.push(res.json().id);
    }
    await waitFor("every message sent", async () => {
      const rows = await Promise.all(ids.map(row));
      return rows.every((r) => r?.status === "sent");
    });
    await t.mailroom.worker.stop();
    // Finished: sent, sent, failed. Still to send: queued, sending, held (as if moved back; their age is the same).
    const statuses: MessageStatus[] = ["sent", "sent", "failed", "queued", "sending", "held"];
    for (const [i, id] of ids.entries()) {
      await t.mailroom.ctx.db.updateTable("messages").set({ status: statuses[i] }).where("id", "=", id).execute();
    }
    await t.mailroom.ctx.db
      .insertInto("message_raw")
      .values({ message_id: ids[0], mime: Buffer.from("RAW-MIME-MARKER") })
      .execute();

    expect(await at(29 * DAY).purge()).toEqual({ bodies: 0, messages: 0, audit: 0, copies: 0 });
    // Batches of 2: three finished messages take two batches. They went through the default
    // Capture server: its copies lose their bodies too (test/retention/capture.test.ts).
    expect(await at(31 * DAY).purge()).toEqual({ bodies: 3, messages: 0, audit: 0, copies: 3 });

    for (const [i, id] of ids.entries()) {
      const r = await row(id);
      const finished = i < 3;
      expect(r?.payload.includes(`BODY-MARKER-${i}`), `message ${i} (${statuses[i]})`).toBe(!finished);
      expect(r?.payload.includes(Buffer.from(`ATTACH-${i}`).toString("base64"))).toBe(!finished);
      expect(r?.body_purged_at != null).toBe(finished);
      // Metadata stays.
      expect(r?.subject).toBe(`Invoice ${i}`);
      expect(r?.recipient_search).toBe(`r${i}@example.com`);
    }
    expect(await t.mailroom.ctx.db.selectFrom("message_raw").selectAll().where("message_id", "=", ids[0]).execute()).toEqual([]);
    expect(await attempts(ids[0])).toBe(1);

    // The API says what happened, and is no error.
    const detail = await t.request(t.admin, { method: "GET", url: `/api/messages/${ids[0]}` });
    expect(detail.statusCode).toBe(200);
    const day = new Date(Date.now() + 31 * DAY).toISOString().slice(0, 10);
    expect(detail.json()).toMatchObject({
      status: "sent",
      subject: "Invoice 0",
      bodyNote: `Body removed by retention on ${day}.`,
      attempts: [expect.objectContaining({ outcome: "sent" })],
    });
    expect(detail.json().bodyRemovedAt.slice(0, 10)).toBe(day);
    expect((await t.request(t.admin, { method: "GET", url: `/api/messages/${ids[3]}` })).json()).toMatchObject({
      bodyNote: null,
      bodyRemovedAt: null,
    });
    // A failed message without its body cannot be sent again: it says so.
    const retry = await t.request(t.admin, { method: "POST", url: `/api/messages/${ids[2]}/retry` });
    expect(retry.statusCode).toBe(409);
    expect(retry.json()).toMatchObject({
      code: "message_not_retryable",
      message: expect.stringContaining("removed by retention"),
    });
    expect((await row(ids[2]))?.status).toBe("failed");

    const status = await t.mailroom.retention.status();
    expect(status.messages).toEqual({ full: 3, metadataOnly: 3 });
    expect(status.lastPurge).toMatchObject({ bodies: 3, messages: 0, error: null });
    expect(status.databaseBytes).toBeGreaterThan(0);
    const metrics = (await t.request(null, { method: "GET", url: "/metrics" })).body;
    expect(metrics).toContain('mailroom_messages_by_tier{tier="metadata_only"} 3');
    expect(metrics).toContain('mailroom_messages_by_tier{tier="full"} 3');
    expect(metrics).toContain('mailroom_retention_last_purge_removed{kind="bodies"} 3');
    expect(metrics).toMatch(/mailroom_database_size_bytes [1-9]\d*/);
    expect(metrics).toMatch(/mailroom_retention_last_purge_timestamp_seconds [1-9]\d*/);

    // After the metadata period the finished messages go whole, attempts included.
    expect(await at(364 * DAY).purge()).toMatchObject({ messages: 0 });
    expect(await at(366 * DAY).purge()).toMatchObject({ messages: 3 });
    for (const [i, id] of ids.entries()) {
      expect(await row(id), `message ${i} (${statuses[i]})`)[i < 3 ? "toBeUndefined" : "toBeDefined"]();
      if (i < 3) expect(await attempts(id)).toBe(0);
    }
    const purges = await t.mailroom.ctx.db
      .selectFrom("audit_log")
      .select("after")
      .where("action", "=", "retention.purge")
      .execute();
    expect(purges.map((p) => JSON.parse(p.after ?? "{}"))).toEqual([
      { bodies: 3, messages: 0, audit: 0, copies: 3 },
      { bodies: 0, messages: 3, audit: 0, copies: 3 },
    ]);
  });

  it("takes turns with other processes: a held lease is left alone until it expires, and the work is done once", async () => {
    const other = t.mailroom.ctx.db;
    const base = Date.now();
    const ids = await insertFinished(t, 25, base - 40 * DAY);
    // Another process is purging (or died purging): its lease runs 10 more minutes.
    await other
      .updateTable("retention_runs")
      .set({ lease_owner: "elsewhere:1", lease_until: base + 10 * 60_000 })
      .execute();
    const mine = (offset: number) =>
      new Retention(t.mailroom.ctx, t.mailroom.retention.policy, {
        intervalMs: 60_000,
        batchSize: 4,
        clock: () => base + offset,
      });
    expect(await mine(0).purge()).toBeNull();
    expect((await row(ids[0]))?.body_purged_at).toBeNull();
    // Past the lease, the work is picked up.
    expect(await mine(11 * 60_000).purge()).toMatchObject({ bodies: 25 });

    // Two processes at once: each message's body is removed by exactly one of them.
    const more = await insertFinished(t, 40, base - 40 * DAY);
    const processes = [1, 2, 3, 4].map(() => mine(12 * 60_000));
    const results = await Promise.all(processes.map((p) => p.purge()));
    const removed = results.reduce((n, r) => n + (r?.bodies ?? 0), 0);
    expect(removed).toBe(40);
    expect(results.filter((r) => r === null).length).toBeGreaterThanOrEqual(1);
    const left = await other
      .selectFrom("messages")
      .select("id")
      .where("id", "in", more)
      .where("body_purged_at", "is", null)
      .execute();
    expect(left).toEqual([]);
    const run = await other.selectFrom("retention_runs").selectAll().executeTakeFirstOrThrow();
    expect(run.lease_owner).toBeNull();
  });

  itWhen(dialect === "postgres")(
    "two Mailroom processes on one PostgreSQL purge once between them while delivery goes on",
    async () => {
      const second = createMailroom(t.mailroom.ctx.config);
      try {
        const old = await insertFinished(t, 600, Date.now() - 40 * DAY);
        const purgerOf = (m: typeof second) =>
          new Retention(m.ctx, m.retention.policy, { intervalMs: 60_000, batchSize: 25, clock: () => Date.now() });
        t.mailroom.worker.start();
        const purges = Promise.all([purgerOf(t.mailroom).purge(), purgerOf(second).purge()]);
        const fresh: string[] = [];
        for (let i = 0; i < 10; i++) {
          const res = await t.request(t.admin, {
            method: "POST",
            url: "/api/messages",
            payload: { to: "b@example.com", subject: "now", text: "FRESH" },
          });
          fresh.push(res.json().id);
        }
        const results = await purges;
        await waitFor("the fresh messages sent", async () =>
          (await Promise.all(fresh.map(row))).every((r) => r?.status === "sent"),
        );
        await t.mailroom.worker.stop();
        expect(results.reduce((n, r) => n + (r?.bodies ?? 0), 0)).toBe(600);
        expect(results.filter((r) => r === null)).toHaveLength(1);
        const kept = await t.mailroom.ctx.db
          .selectFrom("messages")
          .select("id")
          .where("id", "in", old)
          .where("body_purged_at", "is", null)
          .execute();
        expect(kept).toEqual([]);
        for (const id of fresh) expect((await row(id))?.payload).toContain("FRESH");
      } finally {
        await second.close();
      }
    },
  );

  itWhen(dialect === "sqlite")("gives the space of purged messages back to the file system", async () => {
    const file = t.mailroom.ctx.storage.sqlitePath as string;
    const pragma = async (name: string) =>
      Number(Object.values((await sql.raw(`pragma ${name}`).execute(t.mailroom.ctx.db)).rows[0] as object)[0]);
    expect(await pragma("auto_vacuum")).toBe(2);
    const base = Date.now();
    await insertFinished(t, 400, base - 400 * DAY, "x".repeat(20_000));
    await sql.raw("pragma wal_checkpoint(TRUNCATE)").execute(t.mailroom.ctx.db);
    const full = fs.statSync(file).size;
    expect(full).toBeGreaterThan(400 * 20_000);
    expect(await at(0, 100).purge()).toMatchObject({ messages: 400 });
    await sql.raw("pragma wal_checkpoint(TRUNCATE)").execute(t.mailroom.ctx.db);
    expect(await pragma("freelist_count")).toBe(0);
    expect(fs.statSync(file).size).toBeLessThan(full / 4);
  });
});

/** `n` sent messages that finished at `finishedAt`, written as the outbox writes them. */
async function insertFinished(t: TestApp, n: number, finishedAt: number, body = "BODY"): Promise<string[]> {
  const ids = Array.from({ length: n }, (_, i) => `ret-${finishedAt}-${i}-${Math.random().toString(36).slice(2)}`);
  const server = (await t.mailroom.servers.list({ limit: 1 })).items[0];
  for (let i = 0; i < ids.length; i += 50) {
    await t.mailroom.ctx.db
      .insertInto("messages")
      .values(
        ids.slice(i, i + 50).map((id) => ({
          id,
          server_id: server.id,
          server_name: server.name,
          status: "sent" as const,
          from_address: "noreply@mailroom.localhost",
          from_name: "",
          recipients: JSON.stringify({ to: [{ address: "a@example.com" }], cc: [], bcc: [], replyTo: [] }),
          recipient_search: "a@example.com",
          subject: "s",
          payload: JSON.stringify({ text: body, headers: {}, attachments: [] }),
          message_id: `${id}@x`,
          attempts: 1,
          max_attempts: 6,
          next_attempt_at: finishedAt,
          created_at: finishedAt,
          updated_at: finishedAt,
          sent_at: finishedAt,
        })),
      )
      .execute();
  }
  return ids;
}
