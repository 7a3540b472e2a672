import type { Kysely } from "kysely";
import { isPostgres } from "../dialect.js";

// SMTP submission: where each message came from, and the bytes of messages stored as sent.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("messages")
    .addColumn("source", "text", (c) => c.notNull().defaultTo("api"))
    .execute();
  // JSON: token name, SMTP username, client IP, EHLO name. Never a secret.
  await db.schema.alterTable("messages").addColumn("source_detail", "text").execute();

  // Kept apart from `messages` so the queue's claims and the log's lists never read
  // megabytes of MIME they do not need; read once, when the message is sent.
  await db.schema
    .createTable("message_raw")
    .addColumn("message_id", "text", (c) => c.primaryKey())
    .addColumn("mime", isPostgres(db) ? "bytea" : "blob", (c) => c.notNull())
    .execute();
}
