/**
 * Backlog: with 10k, 100k and 1M queued messages, the time to claim the next one and the
 * process's resident memory. The claim must use the index, not a scan (one server's queue:
 * the claim reads it through messages_server_due).
 *
 *   npm run bench -- backlog --sizes=10000,100000,1000000 --db=sqlite|postgres
 */
import v8 from "node:v8";
import vm from "node:vm";
import { sql } from "kysely";
import { createMailroom } from "../src/app.js";
import { claimDueMessages, releaseLeases } from "../src/queue/outbox.js";
import { migrateToLatest } from "../src/storage/db.js";
import { arg, type BenchDialect, benchConfig, report } from "./lib.js";

v8.setFlagsFromString("--expose-gc");
const collectGarbage = vm.runInNewContext("gc") as () => void;

const sizes = arg("sizes", "10000,100000,1000000").split(",").map(Number);
const dialect = arg("db", "sqlite") as BenchDialect;
const { config, drop } = await benchConfig(dialect);
const mailroom = createMailroom(config);
const db = mailroom.ctx.db;
try {
  await migrateToLatest(db);
  console.log(`# backlog: ${dialect}, node ${process.version}`);
  let have = 0;
  const payload = JSON.stringify({ text: "Hello.", headers: {}, attachments: [] });
  const recipients = JSON.stringify({ to: [{ address: "a@example.com" }], cc: [], bcc: [], replyTo: [] });
  for (const size of sizes) {
    // Rows are written straight into the table: this measures the claim, not the API.
    while (have < size) {
      const chunk = Math.min(5000, size - have);
      const now = Date.now();
      const rows = Array.from({ length: chunk }, (_, i) => ({
        id: `bench-${have + i}`,
        server_id: "bench",
        server_name: "bench",
        status: "queued" as const,
        from_address: "bench@example.com",
        from_name: "",
        recipients,
        recipient_search: "a@example.com",
        subject: "backlog",
        payload,
        message_id: `bench-${have + i}@example.com`,
        idempotency_scope: null,
        idempotency_key: null,
        attempts: 0,
        max_attempts: 6,
        next_attempt_at: now - (size - have - i),
        lease_owner: null,
        last_error_code: null,
        last_error: null,
        provider_message_id: null,
        created_by: null,
        created_at: now,
        updated_at: now,
        sent_at: null,
      }));
      await db.transaction().execute(async (trx) => {
        // Parameter limits: 999 on old SQLite builds, 65535 on PostgreSQL; 24 columns a row.
        for (let i = 0; i < rows.length; i += 40)
          await trx
            .insertInto("messages")
            .values(rows.slice(i, i + 40))
            .execute();
      });
      have += chunk;
    }
    if (dialect === "postgres") await sql`analyze messages`.execute(db);
    const times: number[] = [];
    for (let i = 0; i < 50; i++) {
      const started = performance.now();
      const [row] = await claimDueMessages(
        db,
        mailroom.ctx.storage.dialect,
        "bench",
        [{ serverId: "bench", limit: 1 }],
        1,
        60_000,
      );
      times.push(performance.now() - started);
      await releaseLeases(db, "bench", [row.id]);
    }
    times.sort((a, b) => a - b);
    report(`backlog_${dialect}_${size}_claim_p50`, times[25], "ms");
    report(`backlog_${dialect}_${size}_claim_p99`, times[49], "ms");
    report(`backlog_${dialect}_${size}_rss`, process.memoryUsage().rss / 1024 / 1024, "MB");
    // What the process holds once the benchmark's own garbage (a million rows written through
    // it) is collected: the queue itself stays in the database.
    collectGarbage();
    const after = process.memoryUsage();
    report(`backlog_${dialect}_${size}_rss_after_gc`, after.rss / 1024 / 1024, "MB");
    report(`backlog_${dialect}_${size}_heap_used_after_gc`, after.heapUsed / 1024 / 1024, "MB");
  }
} finally {
  await mailroom.close();
  await drop();
}
