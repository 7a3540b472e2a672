/**
 * Latency at idle: single messages posted one at a time (the next once the last is sent),
 * delivered by the SMTP driver to a local sink.
 *
 * - accept → sent: from the request reaching Mailroom (created_at) to its result written
 *   (sent_at), one process that accepts and delivers.
 * - pickup (PostgreSQL): one process accepts with its workers off, another process delivers;
 *   from created_at to the delivering process starting the send (the attempt's started_at),
 *   and accept → sent on that path. Both processes run the default poll (1 s), so a pickup
 *   well under it is the other process being told, not finding the message by polling.
 *
 *   npm run bench -- latency --n=50 --db=sqlite|postgres [--signal=off]
 *
 * `--signal=off`: the delivering process does not listen for other processes' messages (as
 * before LISTEN/NOTIFY), for the comparison.
 */
import { spawn } from "node:child_process";
import nodemailer from "nodemailer";
import { type RunningMailroom, startMailroom } from "../src/cli/serve.js";
import { loadConfig } from "../src/config.js";
import { systemActor } from "../src/core/audit.js";
import { arg, type BenchDialect, benchConfig, report, startSinkProcess } from "./lib.js";

if (arg("role", "") === "deliver") {
  // The delivering process, started by the main one below with the same database.
  const running = await startMailroom(loadConfig(process.env));
  if (arg("signal", "on") === "off") await running.mailroom.queueSignal.stop();
  console.log("delivering");
  process.on("SIGTERM", () => void running.stop().then(() => process.exit(0)));
} else {
  await main();
}

async function main(): Promise<void> {
  const N = Number(arg("n", "50"));
  const dialect = arg("db", "sqlite") as BenchDialect;
  const pollMs = arg("poll", "1000");
  const sink = await startSinkProcess();
  const percentile = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))];
  try {
    console.log(`# latency: ${N} single messages at idle, ${dialect}, poll ${pollMs} ms, node ${process.version}`);
    // The floor: the same single sends at idle by a bare nodemailer pool, on this machine at this moment.
    report("latency_bare_nodemailer_send_p50", percentile(await bareSends(sink.port, N), 0.5), "ms");
    {
      const { config, drop } = await benchConfig(dialect, { MAILROOM_POLL_MS: pollMs });
      const running = await startMailroom(config);
      try {
        const rows = await sendOneByOne(running, sink.port, N);
        const sent = rows.map((r) => r.sentAt - r.createdAt);
        report(`latency_${dialect}_accept_to_sent_p50`, percentile(sent, 0.5), "ms");
        report(`latency_${dialect}_accept_to_sent_p90`, percentile(sent, 0.9), "ms");
        // Where the time goes: until the send starts (store, wake, claim, server read), then the send and its result.
        report(
          `latency_${dialect}_accept_to_send_start_p50`,
          percentile(
            rows.map((r) => r.startedAt - r.createdAt),
            0.5,
          ),
          "ms",
        );
        report(
          `latency_${dialect}_send_start_to_sent_p50`,
          percentile(
            rows.map((r) => r.sentAt - r.startedAt),
            0.5,
          ),
          "ms",
        );
      } finally {
        await running.stop();
        await drop();
      }
    }
    if (dialect === "postgres") {
      const { config, drop } = await benchConfig(dialect, { MAILROOM_POLL_MS: pollMs, MAILROOM_WORKERS: "off" });
      const accepting = await startMailroom(config);
      const child = spawn(
        process.execPath,
        ["--import", "tsx", new URL(import.meta.url).pathname, "--role=deliver", `--signal=${arg("signal", "on")}`],
        {
          env: {
            ...process.env,
            MAILROOM_DATA_DIR: config.dataDir,
            DATABASE_URL: config.databaseUrl,
            MAILROOM_PORT: "0",
            MAILROOM_SMTP_PORT: "off",
            MAILROOM_LOG_LEVEL: "warn",
            MAILROOM_POLL_MS: pollMs,
          },
          stdio: ["ignore", "pipe", "inherit"],
        },
      );
      try {
        await new Promise<void>((resolve, reject) => {
          child.stdout.on("data", (d) => String(d).includes("delivering") && resolve());
          child.on("exit", (code) => reject(new Error(`the delivering process exited ${code}`)));
        });
        const rows = await sendOneByOne(accepting, sink.port, N);
        const pickup = rows.map((r) => r.startedAt - r.createdAt);
        const sent = rows.map((r) => r.sentAt - r.createdAt);
        report("latency_postgres_other_process_pickup_p50", percentile(pickup, 0.5), "ms");
        report("latency_postgres_other_process_pickup_p90", percentile(pickup, 0.9), "ms");
        report("latency_postgres_other_process_accept_to_sent_p50", percentile(sent, 0.5), "ms");
      } finally {
        child.kill("SIGTERM");
        await new Promise((r) => child.once("exit", r));
        await accepting.stop();
        await drop();
      }
    }
  } finally {
    await sink.close();
  }
}

async function bareSends(port: number, n: number): Promise<number[]> {
  const transport = nodemailer.createTransport({ host: "127.0.0.1", port, secure: false, ignoreTLS: true, pool: true });
  const times: number[] = [];
  for (let i = 0; i <= n; i++) {
    const started = performance.now();
    await transport.sendMail({ from: "bench@example.com", to: `r${i}@example.com`, subject: `latency ${i}`, text: "Hello." });
    if (i > 0) times.push(performance.now() - started);
    await new Promise((r) => setTimeout(r, 30));
  }
  transport.close();
  return times;
}

/** Posts N messages, each once the one before is sent and a pause has passed; their timestamps. */
async function sendOneByOne(
  running: RunningMailroom,
  sinkPort: number,
  n: number,
): Promise<{ createdAt: number; startedAt: number; sentAt: number }[]> {
  const server = await running.mailroom.servers.create(
    {
      name: "Sink",
      driver: "smtp",
      fromAddress: "bench@example.com",
      isDefault: true,
      settings: { host: "127.0.0.1", port: sinkPort, security: "none" },
    },
    systemActor,
  );
  const { token } = await running.mailroom.tokens.create(
    { name: "bench", permissions: ["messages.send"], serverIds: [server.id] },
    systemActor,
    null,
  );
  const db = running.mailroom.ctx.db;
  const out: { createdAt: number; startedAt: number; sentAt: number }[] = [];
  // One more than measured: the first opens the SMTP connection.
  for (let i = 0; i <= n; i++) {
    const res = await fetch(`${running.url}/api/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ to: `r${i}@example.com`, subject: `latency ${i}`, text: "Hello from the benchmark." }),
    });
    if (res.status !== 202) throw new Error(`${res.status} ${await res.text()}`);
    const { id } = (await res.json()) as { id: string };
    for (;;) {
      const row = await db
        .selectFrom("messages")
        .innerJoin("message_attempts as a", "a.message_id", "messages.id")
        .select(["messages.created_at", "messages.sent_at", "a.started_at"])
        .where("messages.id", "=", id)
        .where("messages.status", "=", "sent")
        .executeTakeFirst();
      if (row) {
        if (i > 0) out.push({ createdAt: row.created_at, startedAt: row.started_at, sentAt: Number(row.sent_at) });
        break;
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    // Idle between messages: nothing in flight, every worker waiting.
    await new Promise((r) => setTimeout(r, 30));
  }
  return out;
}
