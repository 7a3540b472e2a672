/**
 * Erasure: the time one `DELETE /api/recipients/:address/data` takes on a log of N sent
 * messages (2 kB bodies, 20 of them to the erased address), the database file before and
 * after, and how long the queue's claim waits meanwhile (a VACUUM, when the file must be
 * rebuilt, holds the write lock throughout). The backup of the same database is timed too.
 * `--rebuild` makes the erasure rebuild the file (VACUUM) as a database from before
 * secure_delete does, for comparison.
 *
 *   npm run bench -- erasure --sizes=10000,100000 --db=sqlite|postgres
 */
import fs from "node:fs";
import path from "node:path";
import { Worker } from "node:worker_threads";
import { createMailroom } from "../src/app.js";
import { cliActor } from "../src/core/audit.js";
import { eraseRecipientData } from "../src/core/erasure.js";
import { migrateToLatest } from "../src/storage/db.js";
import { backupSqlite } from "../src/storage/sqlite-backup.js";
import { arg, type BenchDialect, benchConfig, report } from "./lib.js";

const sizes = arg("sizes", "10000,100000").split(",").map(Number);
const dialect = arg("db", "sqlite") as BenchDialect;
const TARGET = "erase.me@example.org";
const rebuild = process.argv.includes("--rebuild");

for (const size of sizes) {
  const { config, drop } = await benchConfig(dialect);
  const mailroom = createMailroom(config);
  const db = mailroom.ctx.db;
  try {
    await migrateToLatest(db);
    const body = JSON.stringify({ text: "x".repeat(2000), headers: {}, attachments: [] });
    const now = Date.now();
    const row = (n: number, to: string) => ({
      id: `bench-${n}`,
      server_id: "bench",
      server_name: "bench",
      status: "sent" as "sent" | "queued",
      from_address: "bench@example.com",
      from_name: "",
      recipients: JSON.stringify({ to: [{ address: to }], cc: [], bcc: [], replyTo: [] }),
      recipient_search: to,
      subject: "erasure bench",
      payload: body,
      message_id: `bench-${n}@example.com`,
      attempts: 1,
      max_attempts: 6,
      next_attempt_at: now,
      created_at: now,
      updated_at: now,
      sent_at: now,
    });
    for (let have = 0; have < size; have += 5000) {
      const rows = Array.from({ length: Math.min(5000, size - have) }, (_, i) => {
        const n = have + i;
        return row(n, n % Math.floor(size / 20) === 0 ? TARGET : `someone${n}@example.com`);
      });
      await db.transaction().execute(async (trx) => {
        for (let i = 0; i < rows.length; i += 40)
          await trx
            .insertInto("messages")
            .values(rows.slice(i, i + 40))
            .execute();
      });
    }
    const file = mailroom.ctx.storage.sqlitePath;
    const mb = () => (file ? fs.statSync(file).size / 1024 / 1024 : 0);
    if (file) report(`erasure_${dialect}_${size}_db_before`, mb(), "MB");
    if (file) {
      const started = performance.now();
      await backupSqlite(file, path.join(config.dataDir, "bench-backup.db"));
      report(`erasure_${dialect}_${size}_backup`, performance.now() - started, "ms");
    }
    // Another writer meanwhile, on its own connection in a thread (as another process would):
    // it updates one queued row in a loop and times each write, so a VACUUM's hold on the
    // write lock shows as one long wait.
    await db
      .insertInto("messages")
      .values({ ...row(size, "queued@example.com"), id: "bench-queued", status: "queued" as const })
      .execute();
    const writer = file ? startWriter(file) : null;
    await writer?.ready;
    const started = performance.now();
    const result = await eraseRecipientData(mailroom.ctx, TARGET, cliActor, { rebuild });
    report(`erasure_${dialect}_${size}_erase${rebuild ? "_rebuilt" : ""}`, performance.now() - started, "ms");
    if (writer) {
      const waits = (await writer.stop()).sort((a, b) => a - b);
      report(`erasure_${dialect}_${size}_other_writer_p50`, waits[Math.floor(waits.length / 2)] ?? 0, "ms");
      report(`erasure_${dialect}_${size}_other_writer_max`, waits.at(-1) ?? 0, "ms");
    }
    report(`erasure_${dialect}_${size}_messages_erased`, result.messages, "messages");
    if (file) report(`erasure_${dialect}_${size}_db_after`, mb(), "MB");
  } finally {
    await mailroom.close();
    await drop();
  }
}

/** A thread that writes to the SQLite file in a loop until stopped; resolves with each write's time (ms). */
function startWriter(file: string): { ready: Promise<void>; stop: () => Promise<number[]> } {
  const worker = new Worker(
    `const { parentPort, workerData } = require("node:worker_threads");
     const db = new (require("better-sqlite3"))(workerData.file);
     db.pragma("busy_timeout = 120000");
     const write = db.prepare("update messages set next_attempt_at = ? where id = 'bench-queued'");
     const waits = [];
     let stop = false;
     parentPort.on("message", () => { stop = true; });
     parentPort.postMessage("ready");
     const loop = () => {
       const t0 = performance.now();
       write.run(Date.now());
       waits.push(performance.now() - t0);
       if (stop) { parentPort.postMessage(waits); db.close(); return; }
       setTimeout(loop, 5);
     };
     loop();`,
    { eval: true, workerData: { file } },
  );
  const ready = new Promise<void>((resolve) => worker.once("message", () => resolve()));
  return {
    ready,
    stop: () =>
      new Promise((resolve, reject) => {
        worker.once("message", (waits: number[]) => {
          void worker.terminate();
          resolve(waits);
        });
        worker.once("error", reject);
        worker.postMessage("stop");
      }),
  };
}
