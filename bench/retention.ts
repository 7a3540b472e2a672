/**
 * Retention soak: `--n` sent messages spread over `--days` simulated days, a purge after each
 * day with the clock advanced (bodies kept 30 days, messages 365: the defaults), printing the
 * database's size as it levels off. Then a month without purges and one catch-up purge, timing
 * the queue's claim while it runs (what delivery waits for).
 *
 *   npm run bench -- retention --n=1000000 --days=400 --body=2048 --db=sqlite|postgres
 *     [--body-days=30 --metadata-days=365]  (shorter periods reach the plateau in fewer days)
 *     [--catch-up-days=30]  (the days without purges before the last one)
 *     [--pg-vacuum=daily]   (PostgreSQL: a plain VACUUM after each day, as autovacuum would do)
 *
 * Bodies of 2 KB are the default: transactional mail (a receipt, a reset link) is 1–2 KB of
 * text and HTML; bodies over 4 KB behave differently on SQLite (overflow pages).
 */
import { sql } from "kysely";
import { createMailroom } from "../src/app.js";
import { Retention } from "../src/core/retention.js";
import { claimDueMessages, releaseLeases } from "../src/queue/outbox.js";
import { migrateToLatest } from "../src/storage/db.js";
import { databaseBytes, freePages } from "../src/storage/space.js";
import { arg, type BenchDialect, benchConfig, report } from "./lib.js";

const DAY = 24 * 60 * 60 * 1000;
const total = Number(arg("n", "100000"));
const days = Number(arg("days", "400"));
const bodyBytes = Number(arg("body", "2048"));
const dialect = arg("db", "sqlite") as BenchDialect;
const perDay = Math.ceil(total / days);
const catchUpDays = Number(arg("catch-up-days", "30"));
const pgVacuumDaily = dialect === "postgres" && arg("pg-vacuum", "off") === "daily";
const { config, drop } = await benchConfig(dialect, {
  MAILROOM_RETENTION_BODY_DAYS: arg("body-days", "30"),
  MAILROOM_RETENTION_METADATA_DAYS: arg("metadata-days", "365"),
});
const mailroom = createMailroom(config);
const db = mailroom.ctx.db;
const start = Date.now() - days * DAY - 60 * DAY;
let clock = start;
const retention = new Retention(mailroom.ctx, mailroom.retention.policy, {
  intervalMs: DAY,
  batchSize: config.retention.batchSize,
  clock: () => clock,
});
const recipients = JSON.stringify({ to: [{ address: "someone@example.com" }], cc: [], bcc: [], replyTo: [] });
const payload = JSON.stringify({ text: "x".repeat(bodyBytes), headers: {}, attachments: [] });
const mb = async () => (await databaseBytes(db, mailroom.ctx.storage.dialect)) / 1024 / 1024;

let written = 0;
/** Rows a statement and a transaction: few round trips, and SQLite's write lock taken once per 5,000. */
const ROWS_PER_INSERT = 500;
const ROWS_PER_TRANSACTION = 5000;
async function write(n: number, at: number, status: "sent" | "queued") {
  for (let done = 0; done < n; done += ROWS_PER_TRANSACTION) {
    const count = Math.min(ROWS_PER_TRANSACTION, n - done);
    const rows = Array.from({ length: count }, () => {
      const id = `bench-${written++}`;
      return {
        id,
        server_id: "bench",
        server_name: "bench",
        status,
        from_address: "bench@example.com",
        from_name: "",
        recipients,
        recipient_search: "someone@example.com",
        subject: "Your invoice",
        payload,
        message_id: `${id}@example.com`,
        attempts: status === "sent" ? 1 : 0,
        max_attempts: 6,
        next_attempt_at: at,
        provider_message_id: status === "sent" ? `provider-${id}` : null,
        created_at: at,
        updated_at: at,
        sent_at: status === "sent" ? at : null,
      };
    });
    await db.transaction().execute(async (trx) => {
      // 19 columns a row: 9,500 parameters a statement (SQLite allows 32,766, PostgreSQL 65,535).
      for (let i = 0; i < rows.length; i += ROWS_PER_INSERT)
        await trx
          .insertInto("messages")
          .values(rows.slice(i, i + ROWS_PER_INSERT))
          .execute();
    });
  }
}

try {
  await migrateToLatest(db);
  console.log(
    `# retention: ${dialect}, ${total} messages over ${days} days (${perDay}/day, ${bodyBytes}-byte bodies), node ${process.version}`,
  );
  // Every simulated day: what the table holds, the file's size, and where the time went.
  console.log("day  messages  full  metadata_only  db_MB  free_MB  write_ms  purge_ms  status_ms  elapsed_s");
  let peak = 0;
  const runStart = performance.now();
  for (let day = 0; day < days; day++) {
    clock = start + day * DAY;
    let t0 = performance.now();
    await write(perDay, clock, "sent");
    const writeMs = performance.now() - t0;
    t0 = performance.now();
    await retention.purge();
    const purgeMs = performance.now() - t0;
    // A simulated day lasts a second: autovacuum, which in a real day reclaims the dead rows of
    // the purge for reuse, never gets its turn. --pg-vacuum=daily runs it in its place.
    if (pgVacuumDaily) await sql`vacuum messages, message_attempts`.execute(db);
    t0 = performance.now();
    const { messages } = await retention.status();
    const statusMs = performance.now() - t0;
    const size = await mb();
    const free = dialect === "sqlite" ? ((await freePages(db)).free * 4096) / 1024 / 1024 : 0;
    peak = Math.max(peak, size);
    console.log(
      [
        day + 1,
        messages.full + messages.metadataOnly,
        messages.full,
        messages.metadataOnly,
        size.toFixed(1),
        free.toFixed(1),
        writeMs.toFixed(0),
        purgeMs.toFixed(0),
        statusMs.toFixed(0),
        ((performance.now() - runStart) / 1000).toFixed(0),
      ].join("  "),
    );
  }
  report(`retention_${dialect}_${total}_db_peak`, peak, "MB");
  report(`retention_${dialect}_${total}_db_end`, await mb(), "MB");

  // Days without purging (a process down, say), then one purge that catches up, while the queue claims.
  clock += catchUpDays * DAY;
  await write(200, clock, "queued");
  const claims: number[] = [];
  let purging = true;
  const began = performance.now();
  const catchUp = retention.purge().finally(() => {
    purging = false;
  });
  while (purging) {
    const t0 = performance.now();
    const [row] = await claimDueMessages(db, mailroom.ctx.storage.dialect, "bench", [{ serverId: "bench", limit: 1 }], 1, 60_000);
    claims.push(performance.now() - t0);
    if (row) await releaseLeases(db, "bench", [row.id]);
    // better-sqlite3 answers synchronously: without a turn of the event loop the purge never runs.
    await new Promise((resolve) => setImmediate(resolve));
  }
  const counts = await catchUp;
  const ms = performance.now() - began;
  claims.sort((a, b) => a - b);
  report(`retention_${dialect}_catch_up_removed`, (counts?.bodies ?? 0) + (counts?.messages ?? 0), "rows");
  report(`retention_${dialect}_catch_up_purge`, ms, "ms");
  report(`retention_${dialect}_catch_up_rows_per_s`, (((counts?.bodies ?? 0) + (counts?.messages ?? 0)) / ms) * 1000, "rows/s");
  report(`retention_${dialect}_claim_during_purge_p50`, claims[Math.floor(claims.length / 2)] ?? 0, "ms");
  report(`retention_${dialect}_claim_during_purge_p99`, claims[Math.floor(claims.length * 0.99)] ?? 0, "ms");
  report(`retention_${dialect}_claim_during_purge_max`, claims.at(-1) ?? 0, "ms");
  report(`retention_${dialect}_rss`, process.memoryUsage().rss / 1024 / 1024, "MB");
} finally {
  await mailroom.close();
  await drop();
}
