/**
 * Webhook deliveries are as durable as mail: the event's row is written in the same commit as
 * the status change (a process gone before dispatching leaves it to the next), a claim whose
 * process died is taken over after its lease, and two processes on one PostgreSQL database
 * never deliver one event twice.
 */
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, createMailroom, type Mailroom } from "../../src/app.js";
import type { Principal } from "../../src/auth/permissions.js";
import type { Config } from "../../src/config.js";
import { systemActor } from "../../src/core/audit.js";
import { eraseRecipientData } from "../../src/core/erasure.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type Receiver, startReceiver } from "./receiver.js";

const itWhen = (applies: boolean): typeof it => (applies ? it : ((() => {}) as unknown as typeof it));
const quiet = pino({ level: "silent" });

/** A token with what an application needs, as the principal its requests would have. */
async function application(m: Mailroom): Promise<Principal> {
  const { token } = await m.tokens.create({ name: "app", permissions: ["messages.send", "webhooks.manage"] }, systemActor, null);
  return (await m.tokens.authenticate(token)) as Principal;
}

const count = async (m: Mailroom, table: "messages" | "webhook_deliveries") =>
  Number(
    (
      await m.ctx.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .executeTakeFirstOrThrow()
    ).n,
  );

describe.each(await availableDialects())("webhook durability on %s", (dialect) => {
  let receiver: Receiver;
  let config: Config;
  let drop: () => Promise<void>;
  let ahead = 0;
  const clock = () => Date.now() + ahead;
  const open: Mailroom[] = [];

  async function start(): Promise<Mailroom> {
    const m = createMailroom(config, quiet, { clock });
    open.push(m);
    await bootstrap(m);
    return m;
  }

  beforeAll(async () => {
    receiver = await startReceiver();
    ({ config, drop } = await freshConfig(dialect, { MAILROOM_POLL_MS: "20", MAILROOM_ALLOWED_ENDPOINTS: "127.0.0.1" }));
  });
  afterAll(async () => {
    for (const m of open) await m.close().catch(() => {});
    await drop?.();
    await receiver?.close();
  });

  it("the event is stored with the status change: closed before dispatching, the next process delivers it", async () => {
    const first = await start();
    const app = await application(first);
    const hook = await first.webhooks.service.create(
      { url: `${receiver.url}/restart`, events: ["queued", "sent"] },
      app,
      systemActor,
    );
    // Delivery runs, the dispatcher does not: the events wait in their table.
    first.worker.start();
    const { id } = await first.messages.enqueue({ to: "someone@example.com", subject: "S", text: "T" }, app);
    await waitFor("sent", async () => (await first.messages.getRow(id)).status === "sent");
    const stored = await first.ctx.db
      .selectFrom("webhook_deliveries")
      .select(["event_type", "status"])
      .where("webhook_id", "=", hook.id)
      .execute();
    expect(stored.map((d) => d.event_type).sort()).toEqual(["queued", "sent"]);
    await first.close();
    expect(receiver.received.filter((r) => r.path === "/restart")).toHaveLength(0);

    const second = await start();
    second.webhooks.dispatcher.start();
    await waitFor("both events", async () => receiver.received.filter((r) => r.path === "/restart").length === 2);
    expect(receiver.received.filter((r) => r.path === "/restart").map((r) => r.json.data.id)).toEqual([id, id]);
    await second.close();
  });

  it("nothing half-written: when the event cannot be stored, neither is the message, nor a settled status", async () => {
    const m = await start();
    const app = await application(m);
    await m.webhooks.service.create({ url: `${receiver.url}/atomic`, events: ["queued", "sent"] }, app, systemActor);
    const record = m.webhooks.registry.record.bind(m.webhooks.registry);
    let failing = true;
    let refusedSettles = 0;
    m.webhooks.registry.record = async (db, events) => {
      await record(db, events);
      if (!failing) return;
      if (events.some((e) => e.type === "sent")) refusedSettles++;
      throw new Error("the events table is unwritable");
    };
    const [messagesBefore, deliveriesBefore] = [await count(m, "messages"), await count(m, "webhook_deliveries")];
    await expect(m.messages.enqueue({ to: "someone@example.com", subject: "S", text: "T" }, app)).rejects.toThrow(/unwritable/);
    expect(await count(m, "messages")).toBe(messagesBefore);
    expect(await count(m, "webhook_deliveries")).toBe(deliveriesBefore);

    // Accepted; then the settle cannot store its event: the message is not marked sent without it.
    failing = false;
    const { id } = await m.messages.enqueue({ to: "someone@example.com", subject: "S", text: "T" }, app);
    failing = true;
    m.worker.start();
    await waitFor("a settle refused twice", async () => refusedSettles >= 2);
    expect((await m.messages.getRow(id)).status).toBe("sending");
    failing = false;
    await waitFor("sent, with its event", async () => (await m.messages.getRow(id)).status === "sent");
    const events = await m.ctx.db.selectFrom("webhook_deliveries").select("event_type").where("message_id", "=", id).execute();
    expect(events.map((e) => e.event_type).sort()).toEqual(["queued", "sent"]);
    await m.close();
  });

  it("every way into and out of the queue tells: SMTP's raw message, erasure, a deleted server's mail", async () => {
    const m = await start();
    const app = await application(m);
    const hook = await m.webhooks.service.create(
      { url: `${receiver.url}/paths`, events: ["queued", "failed"] },
      app,
      systemActor,
    );
    const events = async (id: string) =>
      (
        await m.ctx.db
          .selectFrom("webhook_deliveries")
          .selectAll()
          .where("webhook_id", "=", hook.id)
          .where("message_id", "=", id)
          .execute()
      ).map((d) => ({ type: d.event_type, payload: JSON.parse(d.payload) }));
    const address = { address: "erase.me@example.com" };
    const raw = await m.messages.enqueueRaw(
      {
        mime: Buffer.from("From: noreply@mailroom.localhost\r\nTo: erase.me@example.com\r\nSubject: raw\r\n\r\nHello.\r\n"),
        from: { address: "noreply@mailroom.localhost" },
        to: [address],
        cc: [],
        bcc: [],
        replyTo: [],
        subject: "raw",
        messageId: "raw-1@example.com",
        source: { clientIp: "127.0.0.1" },
      },
      app,
    );
    expect((await events(raw.id)).map((e) => e.type)).toEqual(["queued"]);

    // Erased before it was sent: failed with message_erased, and no event body names the address.
    await eraseRecipientData(m.ctx, address.address, systemActor);
    const erased = await events(raw.id);
    expect(erased.map((e) => e.type).sort()).toEqual(["failed", "queued"]);
    expect(erased.find((e) => e.type === "failed")?.payload.data.error.code).toBe("message_erased");
    expect(JSON.stringify(erased)).not.toContain("erase.me@example.com");

    // A server deleted with mail waiting: that mail fails, and says why.
    const doomed = await m.servers.create(
      { name: "Doomed", driver: "capture", fromAddress: "noreply@mailroom.localhost" },
      systemActor,
    );
    const waiting = await m.messages.enqueue({ server: "Doomed", to: "x@example.com", subject: "S", text: "T" }, app);
    await m.servers.remove(doomed.id, systemActor);
    const orphan = await events(waiting.id);
    expect(orphan.map((e) => e.type)).toEqual(["queued", "failed"]);
    expect(orphan[1].payload.data).toMatchObject({ status: "failed", error: { code: "email_server_not_found" } });
    await m.close();
  });

  it("a delivery claimed by a process that died is taken over once its lease has run out", async () => {
    const m = await start();
    const app = await application(m);
    const hook = await m.webhooks.service.create({ url: `${receiver.url}/lease`, events: ["queued"] }, app, systemActor);
    await m.messages.enqueue({ to: "someone@example.com", subject: "S", text: "T" }, app);
    // As a dead process leaves it: claimed, attempt counted, lease running.
    await m.ctx.db
      .updateTable("webhook_deliveries")
      .set({ lease_owner: "dead-process", attempts: 1, next_attempt_at: clock() + 60_000 })
      .where("webhook_id", "=", hook.id)
      .execute();
    m.webhooks.dispatcher.start();
    await m.webhooks.dispatcher.purge();
    expect(receiver.received.filter((r) => r.path === "/lease")).toHaveLength(0);
    ahead += 61_000;
    m.webhooks.dispatcher.wake();
    await waitFor("taken over", async () => receiver.received.filter((r) => r.path === "/lease").length === 1);
    await waitFor("delivered", async () => {
      const row = await m.ctx.db
        .selectFrom("webhook_deliveries")
        .selectAll()
        .where("webhook_id", "=", hook.id)
        .executeTakeFirst();
      return row?.status === "delivered" && row.attempts === 2;
    });
    await m.close();
  });

  itWhen(dialect === "postgres")("two processes on one database deliver each of 60 events exactly once", async () => {
    const [a, b] = [await start(), await start()];
    const app = await application(a);
    await a.webhooks.service.create({ url: `${receiver.url}/pair`, events: ["queued"] }, app, systemActor);
    const attempts = { a: 0, b: 0 };
    for (const [name, m] of [
      ["a", a],
      ["b", b],
    ] as const) {
      const attempt = m.webhooks.dispatcher.attempt.bind(m.webhooks.dispatcher);
      m.webhooks.dispatcher.attempt = (delivery, hook) => {
        attempts[name]++;
        return attempt(delivery, hook);
      };
    }
    // A receiver slow enough that both dispatchers have claims in flight at once.
    receiver.answer = async () => {
      await new Promise((r) => setTimeout(r, 15));
      return { status: 200 };
    };
    a.webhooks.dispatcher.start();
    b.webhooks.dispatcher.start();
    const queued = await a.messages.enqueueBatch(
      Array.from({ length: 60 }, (_, i) => ({ to: `r${i}@example.com`, subject: `${i}`, text: "x" })),
      app,
    );
    await waitFor(
      "60 events",
      async () => new Set(receiver.received.filter((r) => r.path === "/pair").map((r) => r.id)).size === 60,
    );
    await waitFor("all delivered", async () => {
      const rows = await a.ctx.db.selectFrom("webhook_deliveries").select("status").where("event_type", "=", "queued").execute();
      return rows.filter((r) => r.status === "delivered").length >= 60;
    });
    const pair = receiver.received.filter((r) => r.path === "/pair");
    expect(pair).toHaveLength(60);
    expect(new Set(pair.map((r) => r.json.data.id))).toEqual(new Set(queued.map((q) => q.id)));
    expect(attempts.a + attempts.b).toBe(60);
    expect(attempts.b, "the second process took part").toBeGreaterThan(0);
    receiver.answer = () => ({ status: 200 });
  });
});
