/**
 * Erasure: the time one `DELETE /api/recipients/:address/data` takes on a log of N sent
 * messages (2 kB bodies, 20 of them to the erased address), and the database file before and
 * after. On SQLite most of it is the VACUUM that rebuilds the file, during which other writers
 * wait; the backup of the same database is timed for comparison.
 *
 *   npm run bench -- erasure --sizes=10000,100000 --db=sqlite|postgres
 */
import fs from "node:fs";
import path from "node:path";
import { createMailroom } from "../src/app.js";
import { cliActor } from "../src/core/audit.js";
import { eraseRecipientData } from "../src/core/erasure.js";
import { migrateToLatest } from "../src/storage/db.js";
import { backupSqlite } from "../src/storage/sqlite-backup.js";
import { arg, type BenchDialect, benchConfig, report } from "./lib.js";

const sizes = arg("sizes", "10000,100000").split(",").map(Number);
const dialect = arg("db", "sqlite") as BenchDialect;
const TARGET = "erase.me@example.org";

for (const size of sizes) {
  const { config, drop } = await benchConfig(dialect);
  const mailroom = createMailroom(config);
  const db = mailroom.ctx.db;
  try {
    await migrateToLatest(db);
    const body = JSON.stringify({ text: "x".repeat(2000), headers: {}, attachments: [] });
    const now = Date.now();
    for (let have = 0; have < size; have += 5000) {
      const rows = Array.from({ length: Math.min(5000, size - have) }, (_, i) => {
        const n = have + i;
        const to = n % Math.floor(size / 20) === 0 ? TARGET : `someone${n}@example.com`;
        return {
          id: `bench-${n}`,
          server_id: "bench",
          server_name: "bench",
          status: "sent" as const,
          from_address: "bench@example.com",
          from_name: "",
          recipients: JSON.stringify({ to: [{ address: to }], cc: [], bcc: [], replyTo: [] }),
          recipient_search: to,
          subject: "erasure bench",
          payload: body,
          message_id: `bench-${n}@example.com`,
          idempotency_scope: null,
          idempotency_key: null,
          attempts: 1,
          max_attempts: 6,
          next_attempt_at: now,
          lease_owner: null,
          last_error_code: null,
          last_error: null,
          provider_message_id: null,
          created_by: null,
          created_at: now,
          updated_at: now,
          sent_at: now,
        };
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
    const started = performance.now();
    const result = await eraseRecipientData(mailroom.ctx, TARGET, cliActor);
    report(`erasure_${dialect}_${size}_erase`, performance.now() - started, "ms");
    report(`erasure_${dialect}_${size}_messages_erased`, result.messages, "messages");
    if (file) report(`erasure_${dialect}_${size}_db_after`, mb(), "MB");
  } finally {
    await mailroom.close();
    await drop();
  }
}
