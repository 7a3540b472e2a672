/**
 * SMTP submission: N messages sent to Mailroom's SMTP listener by a nodemailer client in a
 * process of its own (pooled connections, STARTTLS, AUTH with a token), delivered by the
 * SMTP driver to a sink in a third process. Reports the rate at which messages were
 * accepted (250 after each is stored) and the rate from the first message to the last `sent`.
 * First, the same client sends the same N straight to the sink (plain text, no login): the
 * client's own ceiling on this machine at this moment, to read the other figures against.
 *
 *   npm run bench -- smtp --n=5000 --connections=4 --db=sqlite|postgres
 */
import { spawn } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { startMailroom } from "../src/cli/serve.js";
import { systemActor } from "../src/core/audit.js";
import { arg, type BenchDialect, benchConfig, report, startSinkProcess } from "./lib.js";

const N = Number(arg("n", "5000"));
const connections = Number(arg("connections", "4"));
const dialect = arg("db", "sqlite") as BenchDialect;

function runClient(
  port: number,
  token: string,
  caFile: string,
): Promise<{ accepted: number; rejected: number; seconds: number }> {
  const script = new URL("./smtp-client.ts", import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    ["--import", "tsx", script, String(port), token, String(N), String(connections), caFile],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  let out = "";
  child.stdout.on("data", (d) => {
    out += d;
  });
  return new Promise((resolve, reject) =>
    child.on("exit", (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`client exited ${code}`)))),
  );
}

const sink = await startSinkProcess();
const { config, drop } = await benchConfig(dialect, {
  MAILROOM_SMTP_MAX_CONNECTIONS_PER_IP: String(connections + 4),
  MAILROOM_WORKERS: arg("workers", "on"),
});
const running = await startMailroom(config);
try {
  const server = await running.mailroom.servers.create(
    {
      name: "Sink",
      driver: "smtp",
      fromAddress: "bench@example.com",
      isDefault: true,
      settings: { host: "127.0.0.1", port: sink.port, security: "none" },
    },
    systemActor,
  );
  const { token } = await running.mailroom.tokens.create(
    { name: "bench", permissions: ["messages.send"], serverIds: [server.id] },
    systemActor,
    null,
  );
  const cert = running.mailroom.smtp.certificate;
  const port = running.mailroom.smtp.port("smtp");
  if (!cert || port === undefined) throw new Error("SMTP submission did not start");
  const caFile = path.join(config.dataDir, "bench-ca.pem");
  fs.writeFileSync(caFile, cert.cert);
  console.log(`# smtp: ${N} messages, ${connections} connections (STARTTLS), ${dialect}, node ${process.version}`);

  const bare = await runClient(sink.port, "-", caFile);
  report("smtp_client_to_sink_per_second", bare.accepted / bare.seconds, "msg/s");

  const started = performance.now();
  const client = await runClient(port, token, caFile);
  const db = running.mailroom.ctx.db;
  for (;;) {
    const { n } = await db
      .selectFrom("messages")
      .select((eb) => eb.fn.countAll<number>().as("n"))
      .where("status", "=", "sent")
      .executeTakeFirstOrThrow();
    if (Number(n) >= client.accepted || !config.delivery.enabled) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const delivered = (performance.now() - started) / 1000;
  report(`smtp_${dialect}_accepted_per_second`, client.accepted / client.seconds, "msg/s");
  report(`smtp_${dialect}_delivered_per_second`, client.accepted / delivered, "msg/s");
  report(`smtp_${dialect}_rejected`, client.rejected, "messages");
} finally {
  await running.stop();
  await drop();
  await sink.close();
}
