/**
 * End-to-end delivery: N messages posted through the HTTP API (in batches, and by single
 * requests), delivered by the SMTP driver to a local sink, timed from the first request to
 * the last `sent`; in the same run, the same N sent by a bare nodemailer pooled transport.
 *
 *   npm run bench -- delivery --n=20000 --db=sqlite|postgres
 */
import nodemailer from "nodemailer";
import { startMailroom } from "../src/cli/serve.js";
import { systemActor } from "../src/core/audit.js";
import { arg, autocannon, type BenchDialect, benchConfig, report, startSinkProcess } from "./lib.js";

const N = Number(arg("n", "20000"));
const dialect = arg("db", "sqlite") as BenchDialect;
const POOL = 5;
const modes = arg("modes", "batch,single").split(",");
// The machine's noise is large next to the difference measured: alternate and take medians.
const rounds = Number(arg("rounds", "3"));
const BATCH = 1000;

async function bareNodemailer(port: number): Promise<number> {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: POOL,
  });
  const started = performance.now();
  let next = 0;
  // As many sends in flight as Mailroom's workers keep.
  const lanes = Array.from({ length: 16 }, async () => {
    while (next < N) {
      const i = next++;
      await transport.sendMail({
        from: "bench@example.com",
        to: `r${i}@example.com`,
        subject: `bench ${i}`,
        text: "Hello from the benchmark.",
      });
    }
  });
  await Promise.all(lanes);
  const seconds = (performance.now() - started) / 1000;
  transport.close();
  return N / seconds;
}

async function mailroom(port: number, mode: "batch" | "single"): Promise<number> {
  const { config, drop } = await benchConfig(dialect, {
    MAILROOM_POOL_SIZE: String(POOL),
    ...(arg("concurrency", "") ? { MAILROOM_WORKER_CONCURRENCY: arg("concurrency", "") } : {}),
  });
  const running = await startMailroom(config);
  try {
    const server = await running.mailroom.servers.create(
      {
        name: "Sink",
        driver: "smtp",
        fromAddress: "bench@example.com",
        isDefault: true,
        settings: { host: "127.0.0.1", port, security: "none" },
      },
      systemActor,
    );
    const { token } = await running.mailroom.tokens.create(
      { name: "bench", permissions: ["messages.send"], serverIds: [server.id] },
      systemActor,
      null,
    );
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const message = (i: number) => ({ to: `r${i}@example.com`, subject: `bench ${i}`, text: "Hello from the benchmark." });
    const started = performance.now();
    if (mode === "batch") {
      for (let i = 0; i < N; i += BATCH) {
        const messages = Array.from({ length: Math.min(BATCH, N - i) }, (_, k) => message(i + k));
        const res = await fetch(`${running.url}/api/messages/batch`, {
          method: "POST",
          headers,
          body: JSON.stringify({ messages }),
        });
        if (res.status !== 202) throw new Error(`batch: ${res.status} ${await res.text()}`);
      }
    } else {
      // The client is its own process (autocannon), as an application would be.
      const result = await autocannon([
        "-c",
        "32",
        "-a",
        String(N),
        "-m",
        "POST",
        "-H",
        `authorization=Bearer ${token}`,
        "-H",
        "content-type=application/json",
        "-b",
        JSON.stringify(message(0)),
        `${running.url}/api/messages`,
      ]);
      if (result.non2xx + result.errors > 0) throw new Error(`single: ${result.non2xx} non-2xx, ${result.errors} errors`);
    }
    const db = running.mailroom.ctx.db;
    for (;;) {
      const { n } = await db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll<number>().as("n"))
        .where("status", "=", "sent")
        .executeTakeFirstOrThrow();
      if (Number(n) >= N) break;
      // A count every 100 ms: often enough to time the end, rare enough not to load the database.
      await new Promise((r) => setTimeout(r, 100));
    }
    return N / ((performance.now() - started) / 1000);
  } finally {
    await running.stop();
    await drop();
  }
}

const sink = await startSinkProcess();
try {
  console.log(
    `# delivery: ${N} messages, ${dialect}, pool ${POOL}, ${rounds} alternating rounds (medians), node ${process.version}`,
  );
  const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rates: Record<string, number[]> = { bare: [] };
  for (let r = 0; r < rounds; r++) {
    rates.bare.push(await bareNodemailer(sink.port));
    for (const mode of modes as ("batch" | "single")[]) {
      rates[mode] ??= [];
      rates[mode].push(await mailroom(sink.port, mode));
    }
  }
  const bare = median(rates.bare);
  report("bare_nodemailer_rate", bare, "msg/s");
  for (const mode of modes) {
    report(`mailroom_${dialect}_${mode}_rate`, median(rates[mode]), "msg/s");
    report(`mailroom_${dialect}_${mode}_ratio`, median(rates[mode]) / bare, "x");
  }
} finally {
  await sink.close();
}
