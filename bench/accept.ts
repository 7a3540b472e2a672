/**
 * Accepting: single-message POST /api/messages from a second process (autocannon) with
 * delivery paused, then batches of 1,000.
 *
 *   npm run bench -- accept --seconds=20 --db=sqlite|postgres
 */
import { startMailroom } from "../src/cli/serve.js";
import { systemActor } from "../src/core/audit.js";
import { arg, autocannon, type BenchDialect, benchConfig, report } from "./lib.js";

const seconds = Number(arg("seconds", "20"));
const dialect = arg("db", "sqlite") as BenchDialect;
const connections = Number(arg("connections", "10"));

const { config, drop } = await benchConfig(dialect, { MAILROOM_WORKERS: "off" });
const running = await startMailroom(config);
try {
  await running.mailroom.servers.create(
    { name: "Paused", driver: "capture", fromAddress: "bench@example.com", isDefault: true },
    systemActor,
  );
  const { token } = await running.mailroom.tokens.create({ name: "bench", permissions: ["messages.send"] }, systemActor, null);
  console.log(`# accept: ${seconds}s, ${connections} connections, ${dialect}, delivery paused, node ${process.version}`);

  // autocannon runs in its own process so the load generator does not share Mailroom's event loop.
  const body = JSON.stringify({ to: "someone@example.com", subject: "Accept bench", text: "Hello." });
  const result = await autocannon([
    "-c",
    String(connections),
    "-d",
    String(seconds),
    "-m",
    "POST",
    "-H",
    `authorization=Bearer ${token}`,
    "-H",
    "content-type=application/json",
    "-b",
    body,
    `${running.url}/api/messages`,
  ]);
  report(`accept_${dialect}_requests_per_second`, result.requests.average, "req/s");
  report(`accept_${dialect}_latency_p50`, result.latency.p50, "ms");
  report(`accept_${dialect}_latency_p99`, result.latency.p99, "ms");
  report(`accept_${dialect}_non_2xx`, result.non2xx + result.errors, "responses");

  const batch = Array.from({ length: 1000 }, (_, i) => ({ to: `r${i}@example.com`, subject: `b${i}`, text: "Hello." }));
  const payload = JSON.stringify({ messages: batch });
  const rounds = 20;
  const started = performance.now();
  for (let i = 0; i < rounds; i++) {
    const res = await fetch(`${running.url}/api/messages/batch`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: payload,
    });
    if (res.status !== 202) throw new Error(`batch: ${res.status}`);
  }
  report(`accept_${dialect}_batch_messages_per_second`, (rounds * 1000) / ((performance.now() - started) / 1000), "msg/s");
} finally {
  await running.stop();
  await drop();
}
