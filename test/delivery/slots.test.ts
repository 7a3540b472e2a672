/**
 * How many of a process's sending slots a server may hold, and that the worker never sits
 * idle with slots free and messages due (docs/benchmarks.md, issue 17).
 */
import pg from "pg";
import { afterEach, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { drillSender } from "../helpers/drill.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const itWhen = (applies: boolean): typeof it => (applies ? it : ((() => {}) as unknown as typeof it));

describe.each(await availableDialects())("sending slots on %s", (dialect) => {
  let t: TestApp | undefined;
  const peers: SmtpPeer[] = [];
  afterEach(async () => {
    await t?.close();
    t = undefined;
    for (const p of peers.splice(0)) await p.close();
  });

  async function server(name: string, peer: SmtpPeer) {
    return t!.mailroom.servers.create(
      {
        name,
        driver: "smtp",
        fromAddress: "app@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
  }

  async function queue(serverId: string, n: number, subject: string): Promise<string[]> {
    const results = await t!.mailroom.messages.enqueueBatch(
      Array.from({ length: n }, (_, i) => ({ server: serverId, to: `r${i}@example.com`, subject: `${subject} ${i}`, text: "x" })),
      drillSender,
    );
    return results.map((r) => r.id);
  }

  async function sending(serverId: string): Promise<number> {
    const { n } = await t!.mailroom.ctx.db
      .selectFrom("messages")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("server_id", "=", serverId)
      .where("status", "=", "sending")
      .executeTakeFirstOrThrow();
    return Number(n);
  }

  it("a server that sent lately may use the concurrency but a pool's worth; one that has not, twice its pool", async () => {
    let release = () => {};
    const held = new Promise<void>((r) => {
      release = r;
    });
    const healthyPeer = await startSmtpPeer({ security: "none" });
    const newPeer = await startSmtpPeer({ security: "none", faults: { holdMessages: () => held } });
    peers.push(healthyPeer, newPeer);
    t = await startTestApp(dialect, {
      MAILROOM_POLL_MS: "50",
      MAILROOM_WORKER_CONCURRENCY: "24",
      MAILROOM_POOL_SIZE: "2",
    });
    const healthy = await server("Healthy", healthyPeer);
    const fresh = await server("Fresh", newPeer);
    t.mailroom.worker.start();
    // One message sent makes "Healthy" healthy; then its peer holds every message.
    const [first] = await queue(healthy.id, 1, "first");
    await waitFor("the first message to be sent", async () => (await t!.mailroom.messages.getRow(first)).status === "sent");
    healthyPeer.setFaults({ holdMessages: () => held });

    await queue(fresh.id, 20, "fresh");
    await queue(healthy.id, 40, "healthy");
    // 24 slots: the new server holds twice its pool (4), the healthy one all but a pool (22), in all 24 at most.
    await waitFor(
      "both servers to fill their slots",
      async () => (await sending(fresh.id)) === 4 && (await sending(healthy.id)) >= 18,
    );
    const [onFresh, onHealthy] = [await sending(fresh.id), await sending(healthy.id)];
    console.log(`slots: a new server ${onFresh} of 24 (pool 2), a healthy one ${onHealthy}`);
    expect(onFresh).toBe(4);
    expect(onHealthy).toBeGreaterThan(2 * 2);
    expect(onHealthy).toBeLessThanOrEqual(24 - 2);
    expect(onFresh + onHealthy).toBeLessThanOrEqual(24);

    release();
    await waitFor("every message to be sent", async () => (await sending(fresh.id)) + (await sending(healthy.id)) === 0, 30_000);
    expect(newPeer.received).toHaveLength(20);
    expect(healthyPeer.received).toHaveLength(41);
  }, 60_000);

  // On PostgreSQL a claim is a round trip: what is queued meanwhile must start another claim
  // at once, not wait for the poll. The claim is held on a lock while a message is queued.
  itWhen(dialect === "postgres")(
    "a message queued while a claim is under way is claimed next, not at the poll",
    async () => {
      const peer = await startSmtpPeer({ security: "none" });
      peers.push(peer);
      // The clock the claim reads: the message is queued "after" the held claim began, so that claim cannot take it.
      let now = Date.now();
      t = await startTestApp(
        dialect,
        // Far longer than the test: a wait for the poll would fail it.
        { MAILROOM_POLL_MS: "60000" },
        { clock: () => now },
      );
      const relay = await server("Relay", peer);
      t.mailroom.worker.start();
      const lock = new pg.Client({ connectionString: t.mailroom.ctx.config.databaseUrl });
      await lock.connect();
      try {
        // Every claim reads server_breakers: with the table locked, the next claim waits.
        await lock.query("begin");
        await lock.query("lock table server_breakers in access exclusive mode");
        t.mailroom.worker.wake();
        await waitFor("the claim to wait for the lock", async () => {
          const { rows } = await lock.query(
            "select 1 from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like '%quota as%'",
          );
          return rows.length > 0;
        });
        now += 1000;
        const [id] = await queue(relay.id, 1, "queued during a claim");
        await lock.query("commit");
        await waitFor("the message to be sent", async () => (await t!.mailroom.messages.getRow(id)).status === "sent", 10_000);
      } finally {
        await lock.end();
      }
    },
    60_000,
  );
});
