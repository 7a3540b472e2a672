import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunningMailroom, startMailroom } from "../../src/cli/serve.js";
import { loadConfig } from "../../src/config.js";
import { systemActor } from "../../src/core/audit.js";
import { freshConfig, postgresUnavailableReason } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const reason = await postgresUnavailableReason();
if (reason && process.env.CI) throw new Error(`CI needs PostgreSQL: ${reason}`);
if (reason) console.warn(`[skip] the queue signal between processes: ${reason}`);

// Far longer than any wait below: a message found in time was not found by the poll.
const POLL_MS = "60000";

describe.skipIf(!!reason)("a message accepted by one process is picked up by another at once (LISTEN/NOTIFY)", () => {
  let peer: SmtpPeer;
  let accepting: RunningMailroom;
  let delivering: RunningMailroom;
  let drop: () => Promise<void>;
  let token: string;
  let databaseUrl: string;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none" });
    const fresh = await freshConfig("postgres", { MAILROOM_WORKERS: "off", MAILROOM_POLL_MS: POLL_MS });
    drop = fresh.drop;
    databaseUrl = fresh.config.databaseUrl as string;
    accepting = await startMailroom(fresh.config);
    const server = await accepting.mailroom.servers.create(
      {
        name: "Peer",
        driver: "smtp",
        fromAddress: "app@example.com",
        isDefault: true,
        settings: { host: "127.0.0.1", port: peer.port, security: "none" },
      },
      systemActor,
    );
    ({ token } = await accepting.mailroom.tokens.create(
      { name: "signal", permissions: ["messages.send"], serverIds: [server.id] },
      systemActor,
      null,
    ));
    delivering = await startMailroom(
      loadConfig({
        MAILROOM_DATA_DIR: fresh.config.dataDir,
        DATABASE_URL: databaseUrl,
        MAILROOM_PORT: "0",
        MAILROOM_SMTP_PORT: "0",
        MAILROOM_LOG_LEVEL: "silent",
        MAILROOM_POLL_MS: POLL_MS,
      }),
    );
  });
  afterAll(async () => {
    await delivering?.stop();
    await accepting?.stop();
    await drop?.();
    await peer?.close();
  });

  async function send(subject: string): Promise<void> {
    const res = await fetch(`${accepting.url}/api/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ to: "someone@example.com", subject, text: "Hello." }),
    });
    expect(res.status).toBe(202);
  }

  const listeners = async (admin: pg.Client) =>
    (
      await admin.query<{ pid: number }>(
        "select pid from pg_stat_activity where datname = current_database() and application_name = 'mailroom-queue-listener'",
      )
    ).rows.map((r) => r.pid);

  it("wakes the other process's worker, and again after its notification connection was cut", async () => {
    await send("first");
    await waitFor("the delivering process to send the first message", async () =>
      peer.received.some((m) => m.subject === "first"),
    );

    const admin = new pg.Client({ connectionString: databaseUrl });
    await admin.connect();
    try {
      // Only the delivering process listens: the accepting one has no worker to wake.
      const [cut] = await listeners(admin);
      expect(await listeners(admin)).toHaveLength(1);
      await admin.query("select pg_terminate_backend($1)", [cut]);
      await waitFor("the listener to reconnect", async () => {
        const now = await listeners(admin);
        return now.length === 1 && now[0] !== cut;
      });
    } finally {
      await admin.end();
    }
    await send("second");
    await waitFor("the delivering process to send the second message", async () =>
      peer.received.some((m) => m.subject === "second"),
    );
    // The peer has the message before its result is written: wait for the result too.
    await waitFor("both results written", async () => {
      const rows = await delivering.mailroom.ctx.db.selectFrom("messages").select("status").execute();
      return rows.length === 2 && rows.every((m) => m.status === "sent");
    });
  });
});
