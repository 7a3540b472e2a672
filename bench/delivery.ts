/**
 * End-to-end delivery: N messages posted through the HTTP API (in batches, and by single
 * requests), delivered by the SMTP driver to a local sink, timed from the first request to
 * the last `sent`; in the same run, the same N sent by a bare nodemailer pooled transport.
 *
 *   npm run bench -- delivery --n=20000 --db=sqlite|postgres [--modes=batch,single|none] [--rounds=3] [--poll=1000]
 *     [--concurrency=N] [--bare-lanes=16] [--bare=off] [--probe] [--cpu-profile=<file prefix>] [--built]
 *
 * `--built` runs the compiled Mailroom (`npm run build`, dist/) that `npm start` runs, instead
 * of the TypeScript sources through tsx (whose transform adds a call to every function it
 * creates: a few percent of Mailroom's CPU that bare nodemailer, plain JavaScript, never pays).
 *
 * `--probe` prints sends in flight over time, each stage's time and (PostgreSQL) statements
 * per message (bench/probe.ts); `--cpu-profile` a V8 profile of each measured window.
 *
 * Besides the rates, the CPU time of this process per message (Mailroom or bare nodemailer;
 * the sink, autocannon and PostgreSQL run in processes of their own): a figure the machine's
 * other load disturbs far less than a rate. Then PostgreSQL's own CPU per message, and the
 * whole machine's (every process: on a machine of few cores the sum is what caps the rate).
 */
import fs from "node:fs";
import { Session } from "node:inspector/promises";
import nodemailer from "nodemailer";
import { systemActor } from "../src/core/audit.js";
import { arg, autocannon, type BenchDialect, benchConfig, report, startSinkProcess } from "./lib.js";
import { Level, probeMailroom, Stage, StatementCount } from "./probe.js";

const { startMailroom } = (await import(
  process.argv.includes("--built") ? "../dist/cli/serve.js" : "../src/cli/serve.js"
)) as typeof import("../src/cli/serve.js");

const N = Number(arg("n", "20000"));
const dialect = arg("db", "sqlite") as BenchDialect;
const POOL = 5;
const modes = arg("modes", "batch,single")
  .split(",")
  .filter((m) => m === "batch" || m === "single");
// The machine's noise is large next to the difference measured: alternate and take medians.
const rounds = Number(arg("rounds", "3"));
const BATCH = 1000;
// The default poll: enqueues and completions wake the worker; the poll only finds retries that came due.
const POLL_MS = arg("poll", "1000");
// `--probe`: print sends in flight over time and the time of each stage (bench/probe.ts).
const PROBE = process.argv.includes("--probe");
const GOALS: Record<BenchDialect, Record<string, number>> = {
  postgres: { batch: 0.9, single: 0.75 },
  sqlite: { batch: 0.95, single: 0.8 },
};

interface Run {
  rate: number;
  cpuMsPerMessage: number;
  /** PostgreSQL's own processes (the server's backends), per message: the database's share of the machine. */
  databaseCpuMsPerMessage: number;
  /** Every process of the machine (this one, the sink, autocannon, PostgreSQL, and whatever else runs), per message. */
  machineCpuMsPerMessage: number;
}

/** CPU time (ms) the whole machine has spent busy, from /proc/stat (all cores; 10 ms ticks). */
function machineCpuMs(): number {
  const [, user, nice, system, , , irq, softirq, steal] = fs
    .readFileSync("/proc/stat", "utf8")
    .split("\n")[0]
    .trim()
    .split(/\s+/);
  return [user, nice, system, irq, softirq, steal].reduce((sum, t) => sum + Number(t), 0) * 10;
}

/** CPU time (ms) of every `postgres` process so far, from /proc (10 ms ticks; enough over thousands of messages). */
function postgresCpuMs(): number {
  let ticks = 0;
  for (const pid of fs.readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
    try {
      const stat = fs.readFileSync(`/proc/${pid}/stat`, "utf8");
      if (!stat.includes("(postgres)")) continue;
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // The process ended meanwhile.
    }
  }
  return ticks * 10;
}

/**
 * Runs `work` (which handles N messages) and measures its rate and this process's CPU per message.
 * `--cpu-profile=<file>`: a V8 CPU profile of the measured window alone (the last run's).
 */
async function measured(work: () => Promise<void>, label: string): Promise<Run> {
  const profile = arg("cpu-profile", "");
  const session = profile ? new Session() : undefined;
  if (session) {
    session.connect();
    await session.post("Profiler.enable");
    await session.post("Profiler.start");
  }
  const cpu = process.cpuUsage();
  const database = dialect === "postgres" ? postgresCpuMs() : 0;
  const machine = machineCpuMs();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  if (session) {
    const { profile: taken } = await session.post("Profiler.stop");
    fs.writeFileSync(`${profile}.${label}.cpuprofile`, JSON.stringify(taken));
    session.disconnect();
  }
  return {
    rate: N / seconds,
    cpuMsPerMessage: (used.user + used.system) / 1000 / N,
    databaseCpuMsPerMessage: dialect === "postgres" ? (postgresCpuMs() - database) / N : 0,
    machineCpuMsPerMessage: (machineCpuMs() - machine) / N,
  };
}

async function bareNodemailer(port: number): Promise<Run> {
  const transport = nodemailer.createTransport({
    host: "127.0.0.1",
    port,
    secure: false,
    ignoreTLS: true,
    pool: true,
    maxConnections: POOL,
  });
  let next = 0;
  const inFlight = new Level();
  const send = new Stage();
  const run = await measured(async () => {
    // Sends in flight (`--bare-lanes`, default 16): more than its 5 connections take at once, so they never wait.
    const lanes = Array.from({ length: Number(arg("bare-lanes", "16")) }, async () => {
      while (next < N) {
        const i = next++;
        const started = performance.now();
        inFlight.up();
        await transport.sendMail({
          from: "bench@example.com",
          to: `r${i}@example.com`,
          subject: `bench ${i}`,
          text: "Hello from the benchmark.",
        });
        inFlight.down();
        send.add(performance.now() - started);
      }
    });
    await Promise.all(lanes);
  }, "bare");
  transport.close();
  if (PROBE) {
    console.log("# probe bare nodemailer");
    console.log(`#   in flight (sendMail not answered): ${inFlight.summary(POOL)}`);
    console.log(`#   sendMail: ${send.summary()}; the first ended after ${send.times[0]?.toFixed(0)} ms`);
  }
  return run;
}

async function mailroom(port: number, mode: "batch" | "single"): Promise<Run> {
  const { config, drop } = await benchConfig(dialect, {
    MAILROOM_POOL_SIZE: String(POOL),
    MAILROOM_POLL_MS: POLL_MS,
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
    // The steady state: for a second after a configuration write (the server and token just
    // made) the intake keeps none of its reads (src/storage/config-cache.ts), which no
    // application sending with an older token meets.
    await new Promise((r) => setTimeout(r, 1000));
    const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };
    const message = (i: number) => ({ to: `r${i}@example.com`, subject: `bench ${i}`, text: "Hello from the benchmark." });
    const probe = PROBE ? probeMailroom(running.mailroom, POOL) : undefined;
    const statements = new StatementCount();
    if (PROBE && dialect === "postgres") statements.start();
    const run = await measured(async () => {
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
    }, `${dialect}-${mode}`);
    statements.stop();
    probe?.report(`mailroom ${dialect} ${mode}`);
    if (PROBE && dialect === "postgres") console.log(`#   statements: ${statements.summary(N)}`);
    return run;
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
  const runs: Record<string, Run[]> = { bare: [] };
  for (let r = 0; r < rounds; r++) {
    // `--bare=off`: Mailroom alone (for a CPU profile of its own work).
    if (arg("bare", "on") === "on") runs.bare.push(await bareNodemailer(sink.port));
    for (const mode of modes as ("batch" | "single")[]) {
      runs[mode] ??= [];
      runs[mode].push(await mailroom(sink.port, mode));
    }
  }
  const bare = median(runs.bare.map((r) => r.rate));
  if (runs.bare.length) {
    report("bare_nodemailer_rate", bare, "msg/s");
    report("bare_nodemailer_cpu_per_message", median(runs.bare.map((r) => r.cpuMsPerMessage)), "ms");
    report("bare_nodemailer_machine_cpu_per_message", median(runs.bare.map((r) => r.machineCpuMsPerMessage)), "ms");
  }
  for (const mode of modes) {
    const rate = median(runs[mode].map((r) => r.rate));
    report(`mailroom_${dialect}_${mode}_rate`, rate, "msg/s");
    report(`mailroom_${dialect}_${mode}_cpu_per_message`, median(runs[mode].map((r) => r.cpuMsPerMessage)), "ms");
    report(`mailroom_${dialect}_${mode}_machine_cpu_per_message`, median(runs[mode].map((r) => r.machineCpuMsPerMessage)), "ms");
    if (dialect === "postgres") {
      report(
        `mailroom_${dialect}_${mode}_database_cpu_per_message`,
        median(runs[mode].map((r) => r.databaseCpuMsPerMessage)),
        "ms",
      );
    }
    console.log(
      `#   ${mode} per round: cpu ${runs[mode].map((r) => r.cpuMsPerMessage.toFixed(2)).join(", ")} ms; rate ${runs[mode].map((r) => r.rate.toFixed(0)).join(", ")} msg/s; bare ${runs.bare.map((r) => r.rate.toFixed(0)).join(", ")} msg/s`,
    );
    const goal = GOALS[dialect][mode];
    if (!runs.bare.length) continue;
    console.log(
      `mailroom_${dialect}_${mode}_ratio ${(rate / bare).toFixed(2)} x   (goal >= ${goal}: ${rate / bare >= goal ? "met" : "NOT met"}; per round: ${runs[mode].map((r, i) => (r.rate / runs.bare[i].rate).toFixed(2)).join(", ")})`,
    );
  }
} finally {
  await sink.close();
}
