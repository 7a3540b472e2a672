/**
 * The queue's own database work, without SMTP: what the delivery worker's claims and results
 * cost per message, in time and in this process's CPU. Messages are claimed in groups (as the
 * worker claims them) and their results written as `sent` with an attempt each, either by a
 * statement of their own or carried by the next claim.
 *
 *   npm run bench -- queue --n=20000 --group=16 --db=sqlite|postgres [--carry]
 *
 * The delivery benchmark's figures move with the machine's load; these hardly do, so a change
 * to a claim or a result's write is measured here first.
 */
import { createMailroom } from "../src/app.js";
import { systemActor } from "../src/core/audit.js";
import { claimWithServers, type Settlement, settleMessages } from "../src/queue/outbox.js";
import { migrateToLatest } from "../src/storage/db.js";
import { arg, type BenchDialect, benchConfig, report } from "./lib.js";

const N = Number(arg("n", "20000"));
const GROUP = Number(arg("group", "16"));
const CARRY = process.argv.includes("--carry");
const dialect = arg("db", "sqlite") as BenchDialect;
const { config, drop } = await benchConfig(dialect, { MAILROOM_WORKERS: "off" });
const mailroom = createMailroom(config);
const db = mailroom.ctx.db;
try {
  await migrateToLatest(db);
  const server = await mailroom.servers.create(
    {
      name: "Sink",
      driver: "smtp",
      fromAddress: "bench@example.com",
      settings: { host: "127.0.0.1", port: 2525, security: "none" },
    },
    systemActor,
  );
  const { token } = await mailroom.tokens.create({ name: "bench", permissions: ["messages.send"] }, systemActor, null);
  const principal = await mailroom.tokens.authenticate(token);
  if (!principal) throw new Error("bench token did not authenticate");
  for (let i = 0; i < N; i += 1000) {
    const inputs = Array.from({ length: Math.min(1000, N - i) }, (_, k) => ({
      server: server.id,
      to: [`r${i + k}@example.com`],
      subject: `bench ${i + k}`,
      text: "Hello from the benchmark.",
    }));
    await mailroom.messages.enqueueBatch(inputs, principal);
  }
  console.log(
    `# queue: ${N} messages, groups of ${GROUP}, ${dialect}${CARRY ? ", results carried by claims" : ""}, node ${process.version}`,
  );
  const owner = "bench";
  let claimMs = 0;
  let settleMs = 0;
  let pending: Settlement[] = [];
  const cpu = process.cpuUsage();
  const started = performance.now();
  for (let done = 0; done < N; ) {
    const t0 = performance.now();
    const now = Date.now();
    const claimed = await claimWithServers(
      db,
      mailroom.ctx.storage.dialect,
      owner,
      { quotas: [{ serverId: server.id, limit: GROUP }], others: 0, limit: GROUP, leaseMs: 60_000, now },
      CARRY ? pending : [],
    );
    const t1 = performance.now();
    claimMs += t1 - t0;
    if (!CARRY && pending.length) {
      await settleMessages(db, mailroom.ctx.storage.dialect, owner, pending, Date.now());
      settleMs += performance.now() - t1;
    }
    if (claimed.messages.length === 0 && pending.length === 0) throw new Error(`nothing to claim after ${done}`);
    done += pending.length;
    pending = claimed.messages.map((m) => ({
      id: m.id,
      serverId: m.server_id,
      outcome: { status: "sent", providerMessageId: `<${m.id}@sink>` },
      attempt: {
        messageId: m.id,
        serverId: m.server_id,
        serverName: m.server_name,
        startedAt: now,
        durationMs: 3,
        outcome: "sent",
        remote: { code: 250, response: "250 2.0.0 Ok: queued" },
        providerMessageId: `<${m.id}@sink>`,
      },
    }));
  }
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const claims = Math.ceil(N / GROUP) + 1;
  report(`queue_${dialect}_rate`, N / seconds, "msg/s");
  report(`queue_${dialect}_cpu_per_message`, (used.user + used.system) / 1000 / N, "ms");
  report(`queue_${dialect}_claim_ms`, claimMs / claims, "ms per claim");
  if (!CARRY) report(`queue_${dialect}_settle_ms`, settleMs / claims, "ms per group of results");
} finally {
  await mailroom.close();
  await drop();
}
