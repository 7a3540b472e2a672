import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, createMailroom } from "../../src/app.js";
import type { Principal } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { freshConfig } from "../helpers/databases.js";
import { spawnMailroom } from "../helpers/process.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const sender: Principal = {
  kind: "user",
  id: "crash-test",
  label: "crash test",
  email: null,
  superAdmin: true,
  permissions: new Set(),
  serverIds: null,
  userId: null,
};

describe("a worker killed with messages in flight", () => {
  let peer: SmtpPeer;
  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none" });
  });
  afterAll(() => peer.close());

  it("loses none of 200 messages: the next process takes over the expired leases", async () => {
    const { config, drop } = await freshConfig("sqlite");
    const env = {
      MAILROOM_DATA_DIR: config.dataDir,
      MAILROOM_LEASE_SECONDS: "2",
      MAILROOM_POLL_MS: "50",
      MAILROOM_WORKER_CONCURRENCY: "4",
      MAILROOM_POOL_SIZE: "2",
    };
    const setup = createMailroom(config);
    const ids: string[] = [];
    try {
      await bootstrap(setup);
      const server = await setup.servers.create(
        {
          name: "Peer",
          driver: "smtp",
          fromAddress: "app@example.com",
          isDefault: true,
          settings: { host: "127.0.0.1", port: peer.port, security: "none" },
        },
        systemActor,
      );
      expect(server.status).toBe("ready");
      const queued = await setup.messages.enqueueBatch(
        Array.from({ length: 200 }, (_, i) => ({ to: `r${i}@example.com`, subject: `crash ${i}`, text: "x" })),
        sender,
      );
      ids.push(...queued.map((q) => q.id));
    } finally {
      await setup.close();
    }

    const first = await spawnMailroom(env);
    await waitFor("the first deliveries", async () => peer.received.length >= 20);
    first.child.kill("SIGKILL");
    await first.exited;
    const deliveredBeforeKill = new Set(peer.received.map((m) => m.messageId)).size;

    const second = await spawnMailroom(env);
    try {
      await waitFor("all 200 messages", async () => new Set(peer.received.map((m) => m.messageId)).size >= 200, 30_000);
    } finally {
      second.child.kill("SIGTERM");
      await second.exited;
    }

    const counts = new Map<string, number>();
    for (const m of peer.received) counts.set(m.messageId ?? "", (counts.get(m.messageId ?? "") ?? 0) + 1);
    const duplicates = [...counts.values()].filter((n) => n > 1).length;
    console.log(
      `crash test: ${deliveredBeforeKill} delivered before SIGKILL, ${peer.received.length} deliveries in all, ${duplicates} duplicated (in flight at the kill)`,
    );
    // Every message arrived; only those in flight at the kill (at most the worker's concurrency) twice.
    const check = createMailroom(config);
    try {
      for (const id of ids) {
        const row = await check.messages.getRow(id);
        expect(row.status).toBe("sent");
        expect(counts.get(row.message_id.replace(/^<|>$/g, "")) ?? counts.get(`<${row.message_id}>`)).toBeGreaterThanOrEqual(1);
      }
    } finally {
      await check.close();
      await drop();
    }
    expect(counts.size).toBe(200);
    expect(duplicates).toBeLessThanOrEqual(4);
  }, 90_000);
});
