import { type Kysely, sql } from "kysely";
import { isPostgres } from "../dialect.js";

// Application webhooks (issue 16, docs/events.md): who listens for which message events and
// where, each event to deliver (an outbox, like messages), and every attempt at delivering it.
export async function up(db: Kysely<unknown>): Promise<void> {
  const pg = isPostgres(db);

  await db.schema
    .createTable("webhooks")
    .addColumn("id", "text", (c) => c.primaryKey())
    // Who registered it, and so which messages it hears of: an API token (the messages it
    // sent) or a user (every message they may view).
    .addColumn("owner_type", "text", (c) => c.notNull())
    .addColumn("owner_id", "text", (c) => c.notNull())
    .addColumn("owner_label", "text", (c) => c.notNull())
    .addColumn("url", "text", (c) => c.notNull())
    // The signing secret, encrypted (SecretBox); during a rotation the previous one signs too, until previous_secret_until.
    .addColumn("secret", "text", (c) => c.notNull())
    .addColumn("previous_secret", "text")
    .addColumn("previous_secret_until", "bigint")
    // JSON array of event types.
    .addColumn("events", "text", (c) => c.notNull())
    .addColumn("enabled", "integer", (c) => c.notNull().defaultTo(1))
    .addColumn("description", "text", (c) => c.notNull().defaultTo(""))
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("created_by", "text", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("webhooks_owner").on("webhooks").columns(["owner_type", "owner_id"]).execute();

  await db.schema
    .createTable("webhook_deliveries")
    // Also the webhook-id header: the same on every attempt and replay, so receivers de-duplicate.
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("webhook_id", "text", (c) => c.notNull())
    // NULL for a test ping.
    .addColumn("message_id", "text")
    .addColumn("event_type", "text", (c) => c.notNull())
    // The exact body sent (and signed).
    .addColumn("payload", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    // When it may next be claimed; while an attempt runs, the lease's end (as for messages).
    .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
    .addColumn("lease_owner", "text")
    .addColumn("last_error", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("delivered_at", "bigint")
    .execute();
  // Only what is due costs anything to find: delivered and failed rows are outside the index.
  await sql`CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending'`.execute(db);
  await db.schema
    .createIndex("webhook_deliveries_webhook")
    .on("webhook_deliveries")
    .columns(["webhook_id", "created_at"])
    .execute();
  await db.schema.createIndex("webhook_deliveries_message").on("webhook_deliveries").column("message_id").execute();
  await sql`CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (updated_at) WHERE status <> 'pending'`.execute(db);

  await db.schema
    .createTable("webhook_attempts")
    .addColumn("id", pg ? "bigserial" : "integer", (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn("delivery_id", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("duration_ms", "integer", (c) => c.notNull())
    .addColumn("http_status", "integer")
    .addColumn("error", "text")
    // The first characters of the receiver's answer, never a secret.
    .addColumn("response_excerpt", "text")
    .execute();
  await db.schema.createIndex("webhook_attempts_delivery").on("webhook_attempts").column("delivery_id").execute();
}
