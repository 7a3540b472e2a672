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
if (reason) console.warn(`[skip] failover across two processes on one PostgreSQL: ${reason}`);

const TOTAL = 400;

describe.skipIf(!!reason)("failover across two Mailroom processes sharing one PostgreSQL queue", () => {
  let primary: SmtpPeer;
  let backup: SmtpPeer;
  beforeAll(async () => {
    primary = await startSmtpPeer({ security: "none", auth: { user: "app", password: "right-password" } });
    backup = await startSmtpPeer({ security: "none" });
  });
  afterAll(async () => {
    await primary.close();
    await backup.close();
  });

  it("sends every routed message once, through the backup, while the primary refuses logins", async () => {
    const secretKey = generateKeyText();
    const { config, drop } = await freshConfig("postgres", { MAILROOM_SECRET_KEY: secretKey });
    const setup = createMailroom(config);
    let token: string;
    try {
      await bootstrap(setup);
      const smtp = (port: number, password?: string) => ({
        host: "127.0.0.1",
        port,
        security: "none",
        ...(password ? { username: "app", password } : {}),
      });
      await setup.servers.create(
        { name: "Primary", driver: "smtp", fromAddress: "app@example.com", settings: smtp(primary.port, "wrong-password") },
        systemActor,
      );
      await setup.servers.create(
        { name: "Backup", driver: "smtp", fromAddress: "app@example.com", settings: smtp(backup.port) },
        systemActor,
      );
      await setup.routes.create({ name: "failover", match: { tag: "cluster" }, servers: ["Primary", "Backup"] }, systemActor);
      ({ token } = await setup.tokens.create({ name: "cluster", permissions: ["messages.send"] }, systemActor, null));
    } finally {
      await setup.close();
    }

    const env = (i: number) => ({
      DATABASE_URL: config.databaseUrl as string,
      MAILROOM_SECRET_KEY: secretKey,
      MAILROOM_DATA_DIR: tempDir(`mailroom-route${i}-`),
      MAILROOM_POLL_MS: "50",
      MAILROOM_WORKER_CONCURRENCY: "8",
      MAILROOM_PROBE_SCHEDULE: "600",
    });
    const nodes: MailroomProcess[] = await Promise.all([0, 1].map((i) => spawnMailroom(env(i))));
    try {
      const messages = Array.from({ length: TOTAL }, (_, k) => ({
        to: `r${k}@example.com`,
        subject: `route ${k}`,
        tag: "cluster",
      }));
      // Half through each process, so both accept and both deliver.
      for (const [i, node] of nodes.entries()) {
        const res = await fetch(`${node.url}/api/messages/batch`, {
          method: "POST",
          headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
          body: JSON.stringify({ messages: messages.slice((i * TOTAL) / 2, ((i + 1) * TOTAL) / 2) }),
        });
        expect(res.status).toBe(202);
      }
      await waitFor("every message at the backup", async () => backup.received.length >= TOTAL, 120_000);
    } finally {
      for (const node of nodes) node.child.kill("SIGTERM");
      await Promise.all(nodes.map((n) => n.exited));
    }

    const counts = new Map<string, number>();
    for (const m of backup.received) counts.set(m.messageId ?? "", (counts.get(m.messageId ?? "") ?? 0) + 1);
    expect(counts.size).toBe(TOTAL);
    expect([...counts.values()].filter((n) => n > 1)).toEqual([]);
    expect(primary.received).toHaveLength(0);

    const check = createMailroom(config);
    try {
      const rows = await check.ctx.db.selectFrom("messages").select(["status", "server_name"]).execute();
      expect(rows.filter((r) => r.status !== "sent" || r.server_name !== "Backup")).toEqual([]);
      const sentAttempts = await check.ctx.db
        .selectFrom("message_attempts")
        .select(["message_id", "server_name"])
        .where("outcome", "=", "sent")
        .execute();
      expect(sentAttempts).toHaveLength(TOTAL);
      // The primary's refusals opened its breaker; after that, mail went to the backup from the start.
      expect((await check.servers.get("Primary")).status).toBe("failing");
      const refusals = await check.ctx.db
        .selectFrom("message_attempts")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("server_name", "=", "Primary")
        .where("outcome", "=", "server")
        .executeTakeFirstOrThrow();
      console.log(`failover across two processes: ${TOTAL} messages, ${Number(refusals.n)} refused logins at the primary`);
      expect(Number(refusals.n)).toBeGreaterThanOrEqual(3);
    } finally {
      await check.close();
      await drop();
    }
  }, 180_000);
});
