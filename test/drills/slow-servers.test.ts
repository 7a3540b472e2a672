/**
 * Drills of time against Mailroom as a real process: a server slower than the lease, a
 * server that never answers beside a healthy one, a result that cannot be written, and a
 * SIGTERM in the middle of delivery. Each counts sent, arrived unique, duplicates, lost.
 */
import net from "node:net";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { countDeliveries, type Drill, startDrill } from "../helpers/drill.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

describe("drill: slow servers, lost writes and shutdowns", () => {
  let drill: Drill | undefined;
  const closers: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    await drill?.close();
    drill = undefined;
    for (const close of closers.splice(0)) await close();
  });

  async function smtpServer(d: Drill, peer: SmtpPeer, extra: Record<string, unknown> = {}) {
    return d.db.servers.create(
      {
        name: "Relay",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none", timeoutSeconds: 30, ...extra },
      },
      systemActor,
    );
  }

  it("a greeting slower than the lease: the lease is renewed, no other process sends the message again", async () => {
    // The greeting takes 2.5 leases; without renewal the lease runs out and the other
    // process, seeing the message due, claims it and sends it again. A pool of two keeps the
    // sending process from claiming its own messages back (which would hide a missing renewal).
    const peer = await startSmtpPeer({ security: "none", faults: { greetingDelayMs: 2500 } });
    closers.push(() => peer.close());
    drill = await startDrill({ MAILROOM_LEASE_SECONDS: "1", MAILROOM_POLL_MS: "50", MAILROOM_POOL_SIZE: "2" });
    const server = await smtpServer(drill, peer);
    const ids = await drill.queue(
      Array.from({ length: 2 }, (_, i) => ({ server: server.id, to: `r${i}@example.com`, subject: `slow ${i}` })),
    );
    const processes = [await drill.spawn(), await drill.spawn()];
    const d = drill;
    await waitFor("both messages to be sent", async () => (await d.statuses(ids)).sent === 2, 30_000);
    // A second send, if one had started, ends within the shutdown's grace: count after it.
    for (const p of processes) p.child.kill("SIGTERM");
    await Promise.all(processes.map((p) => p.exited));
    const counts = await countDeliveries(d, ids, peer.received);
    console.log(
      `slow greeting (2.5 s, lease 1 s, two processes): sent ${counts.sent}, arrived unique ${counts.arrivedUnique}, duplicates ${counts.duplicates}, lost ${counts.lost}`,
    );
    expect(counts).toEqual({ sent: 2, arrivedUnique: 2, duplicates: 0, lost: 0 });
  }, 60_000);

  it("a black-holed server beside Capture: Capture's message is sent within 2 s", async () => {
    // Accepts connections and never says a word: every send to it hangs until its timeout.
    const sockets = new Set<net.Socket>();
    const hole = net.createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    await new Promise<void>((resolve) => hole.listen(0, "127.0.0.1", resolve));
    closers.push(async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => hole.close(r));
    });
    drill = await startDrill({ MAILROOM_POLL_MS: "100", MAILROOM_WORKER_CONCURRENCY: "16", MAILROOM_POOL_SIZE: "5" });
    const blackHole = await drill.db.servers.create(
      {
        name: "Black hole",
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: (hole.address() as net.AddressInfo).port, security: "none", timeoutSeconds: 45 },
      },
      systemActor,
    );
    const stuck = await drill.queue(
      Array.from({ length: 32 }, (_, i) => ({ server: blackHole.id, to: `r${i}@example.com`, subject: `hole ${i}` })),
    );
    await drill.spawn();
    const d = drill;
    await waitFor("the black hole's messages to be in flight", async () => ((await d.statuses(stuck)).sending ?? 0) > 0);

    const queuedAt = Date.now();
    const [capture] = await drill.queue([{ server: "Capture", to: "someone@example.com", subject: "beside the hole" }]);
    const sent = await waitFor("Capture's message to be sent", async () => {
      const row = await d.db.messages.getRow(capture);
      return row.status === "sent" ? row : null;
    });
    const tookMs = Date.now() - queuedAt;
    const inFlight = (await d.statuses(stuck)).sending ?? 0;
    const stored = await d.db.ctx.db
      .selectFrom("messages")
      .select("id")
      .where("id", "=", capture)
      .where("provider_message_id", "is not", null)
      .execute();
    console.log(
      `black hole beside Capture: ${inFlight} of 32 in flight to the hole (16 slots); Capture's message sent in ${tookMs} ms ` +
        `(sent 1, arrived unique ${stored.length}, duplicates 0, lost ${1 - stored.length})`,
    );
    expect(sent.status).toBe("sent");
    expect(stored).toHaveLength(1);
    expect(tookMs).toBeLessThan(2000);
    // The hole may use twice its pool's size of the 16 slots (a message on each connection
    // and one ready for it), never all of them.
    expect(inFlight).toBeLessThanOrEqual(2 * 5);
  }, 60_000);

  it("a result that cannot be written is kept and written later: the message is not sent again", async () => {
    const peer = await startSmtpPeer({ security: "none" });
    closers.push(() => peer.close());
    drill = await startDrill({ MAILROOM_LEASE_SECONDS: "1", MAILROOM_POLL_MS: "50" });
    const server = await smtpServer(drill, peer);
    // The database refuses to record a success, as a full disk does: the send works, the write does not.
    await sql`CREATE TRIGGER drill_no_space BEFORE UPDATE OF status ON messages WHEN NEW.status = 'sent'
              BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`.execute(drill.db.ctx.db);
    const ids = await drill.queue([{ server: server.id, to: "r@example.com", subject: "unwritable" }]);
    const mailroom = await drill.spawn();
    const d = drill;
    await peer.waitForMessages(1, 20_000);
    // Several leases pass while the write keeps failing (each retry is logged).
    await waitFor(
      "five failed writes of the result",
      async () => (mailroom.output().match(/could not write a delivery result/g) ?? []).length >= 5,
      30_000,
    );
    expect((await d.statuses(ids)).sending).toBe(1);
    await sql`DROP TRIGGER drill_no_space`.execute(drill.db.ctx.db);
    await waitFor("the result to be written", async () => (await d.statuses(ids)).sent === 1, 30_000);
    const counts = await countDeliveries(d, ids, peer.received);
    console.log(
      `unwritable result (lease 1 s, ${(mailroom.output().match(/could not write a delivery result/g) ?? []).length} failed writes): ` +
        `sent ${counts.sent}, arrived unique ${counts.arrivedUnique}, duplicates ${counts.duplicates}, lost ${counts.lost}`,
    );
    expect(counts).toEqual({ sent: 1, arrivedUnique: 1, duplicates: 0, lost: 0 });
    const attempts = await d.db.messages.get(ids[0]);
    expect(attempts.attempts.map((a) => a.outcome)).toEqual(["sent"]);
  }, 60_000);

  it("SIGTERM in the middle of delivery: what was sent is recorded, the rest goes out after the restart, each once", async () => {
    const COUNT = 300;
    const peer = await startSmtpPeer({ security: "none" });
    closers.push(() => peer.close());
    drill = await startDrill({ MAILROOM_POLL_MS: "50" });
    const server = await smtpServer(drill, peer);
    const ids = await drill.queue(
      Array.from({ length: COUNT }, (_, i) => ({ server: server.id, to: `r${i}@example.com`, subject: `term ${i}` })),
    );
    const first = await drill.spawn();
    await peer.waitForMessages(30, 30_000);
    first.child.kill("SIGTERM");
    expect(await first.exited).toBe(0);
    const d = drill;
    const atStop = await d.statuses(ids);
    // A graceful stop leaves nothing claimed: everything is sent or back in the queue.
    expect(atStop.sending ?? 0).toBe(0);
    const beforeRestart = peer.received.length;

    const second = await drill.spawn();
    await waitFor("every message to be sent", async () => (await d.statuses(ids)).sent === COUNT, 60_000);
    second.child.kill("SIGTERM");
    await second.exited;
    const counts = await countDeliveries(d, ids, peer.received);
    console.log(
      `SIGTERM mid-delivery: ${beforeRestart} delivered before the stop (${atStop.sent ?? 0} recorded sent, ${atStop.queued ?? 0} given back); ` +
        `sent ${counts.sent}, arrived unique ${counts.arrivedUnique}, duplicates ${counts.duplicates}, lost ${counts.lost}`,
    );
    expect(atStop.sent).toBe(beforeRestart);
    expect(counts).toEqual({ sent: COUNT, arrivedUnique: COUNT, duplicates: 0, lost: 0 });
  }, 120_000);
});
