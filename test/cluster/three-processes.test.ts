import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { bootstrap, createMailroom } from "../../src/app.js";
import { systemActor } from "../../src/core/audit.js";
import { generateKeyText } from "../../src/storage/secrets.js";
import { freshConfig, postgresUnavailableReason, tempDir } from "../helpers/databases.js";
import { type MailroomProcess, spawnMailroom } from "../helpers/process.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const reason = await postgresUnavailableReason();
if (reason && process.env.CI) throw new Error(`CI needs PostgreSQL: ${reason}`);
if (reason) console.warn(`[skip] three processes on one PostgreSQL: ${reason}`);

const TOTAL = 5000;

describe.skipIf(!!reason)("three Mailroom processes sharing one PostgreSQL queue", () => {
  let peer: SmtpPeer;
  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none" });
  });
  afterAll(() => peer.close());

  it("delivers every message when one process is killed halfway", async () => {
    const secretKey = generateKeyText();
    const { config, drop } = await freshConfig("postgres", { MAILROOM_SECRET_KEY: secretKey });
    const setup = createMailroom(config);
    let token: string;
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
      ({ token } = await setup.tokens.create({ name: "cluster", permissions: ["messages.send"] }, systemActor, null));
    } finally {
      await setup.close();
    }

    const env = (i: number) => ({
      DATABASE_URL: config.databaseUrl as string,
      MAILROOM_SECRET_KEY: secretKey,
      MAILROOM_DATA_DIR: tempDir(`mailroom-node${i}-`),
      MAILROOM_LEASE_SECONDS: "3",
      MAILROOM_POLL_MS: "50",
      MAILROOM_WORKER_CONCURRENCY: "8",
    });
    const nodes: MailroomProcess[] = await Promise.all([0, 1, 2].map((i) => spawnMailroom(env(i))));
    try {
      for (let i = 0; i < TOTAL; i += 1000) {
        const messages = Array.from({ length: 1000 }, (_, k) => ({
          to: `r${i + k}@example.com`,
          subject: `cluster ${i + k}`,
          text: "x",
        }));
        const res = await fetch(`${nodes[0].url}/api/messages/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ messages }),
        });
        expect(res.status).toBe(202);
      }
      await waitFor("half of the messages", async () => peer.received.length >= TOTAL / 2, 60_000);
      nodes[1].child.kill("SIGKILL");
      await nodes[1].exited;
      await waitFor("every message", async () => new Set(peer.received.map((m) => m.messageId)).size >= TOTAL, 120_000);
    } finally {
      for (const node of nodes) node.child.kill("SIGTERM");
      await Promise.all(nodes.map((n) => n.exited));
    }

    const counts = new Map<string, number>();
    for (const m of peer.received) counts.set(m.messageId ?? "", (counts.get(m.messageId ?? "") ?? 0) + 1);
    const duplicated = [...counts.values()].filter((n) => n > 1).length;
    console.log(
      `three processes: ${TOTAL} messages, ${peer.received.length} deliveries, ${duplicated} duplicated (in flight at the SIGKILL)`,
    );

    const check = createMailroom(config);
    try {
      const rows = await check.ctx.db.selectFrom("messages").select(["status"]).execute();
      expect(rows).toHaveLength(TOTAL);
      expect(rows.filter((r) => r.status !== "sent")).toEqual([]);
    } finally {
      await check.close();
      await drop();
    }
    expect(counts.size).toBe(TOTAL);
    // Only what the killed process had in flight may arrive twice: at most its concurrency.
    expect(duplicated).toBeLessThanOrEqual(8);
  }, 240_000);
});
