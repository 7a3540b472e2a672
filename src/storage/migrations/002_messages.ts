import { type Kysely, sql } from "kysely";
import { isPostgres } from "../dialect.js";

export async function up(db: Kysely<unknown>): Promise<void> {
  const pg = isPostgres(db);

  // What an OAuth grant shows on its server (the tokens themselves live in src/oauth's table).
  await db.schema.alterTable("email_servers").addColumn("oauth_account", "text").execute();
  await db.schema.alterTable("email_servers").addColumn("oauth_scopes", "text").execute();
  await db.schema.alterTable("email_servers").addColumn("oauth_authorized_at", "bigint").execute();
  await db.schema.alterTable("email_servers").addColumn("oauth_expires_at", "bigint").execute();

  // The outbox: this table is both the queue and the delivery log.
  await db.schema
    .createTable("messages")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("server_id", "text", (c) => c.notNull())
    // Kept so the log still names a server after it is deleted.
    .addColumn("server_name", "text", (c) => c.notNull())
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("from_address", "text", (c) => c.notNull())
    .addColumn("from_name", "text", (c) => c.notNull())
    .addColumn("recipients", "text", (c) => c.notNull())
    .addColumn("recipient_search", "text", (c) => c.notNull())
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("payload", "text", (c) => c.notNull())
    .addColumn("message_id", "text", (c) => c.notNull())
    .addColumn("idempotency_scope", "text")
    .addColumn("idempotency_key", "text")
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("max_attempts", "integer", (c) => c.notNull())
    // When it may next be claimed. While 'sending' this is the lease's end, so a message
    // whose worker died becomes claimable again through the same index.
    .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
    .addColumn("lease_owner", "text")
    .addColumn("last_error_code", "text")
    .addColumn("last_error", "text")
    .addColumn("provider_message_id", "text")
    .addColumn("created_by", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("sent_at", "bigint")
    .execute();
  await sql`CREATE INDEX messages_claim ON messages (next_attempt_at) WHERE status IN ('queued', 'sending')`.execute(db);
  await db.schema.createIndex("messages_server").on("messages").columns(["server_id", "created_at"]).execute();
  await db.schema.createIndex("messages_created").on("messages").column("created_at").execute();
  await db.schema.createIndex("messages_status").on("messages").columns(["status", "created_at"]).execute();
  await sql`CREATE UNIQUE INDEX messages_idempotency ON messages (idempotency_scope, idempotency_key) WHERE idempotency_key IS NOT NULL`.execute(
    db,
  );

  await db.schema
    .createTable("message_attempts")
    .addColumn("id", pg ? "bigserial" : "integer", (c) => (pg ? c.primaryKey() : c.primaryKey().autoIncrement()))
    .addColumn("message_id", "text", (c) => c.notNull())
    .addColumn("server_id", "text", (c) => c.notNull())
    .addColumn("server_name", "text", (c) => c.notNull())
    .addColumn("started_at", "bigint", (c) => c.notNull())
    .addColumn("duration_ms", "integer", (c) => c.notNull())
    .addColumn("outcome", "text", (c) => c.notNull())
    .addColumn("error_code", "text")
    .addColumn("remote_code", "integer")
    .addColumn("remote_command", "text")
    .addColumn("remote_response", "text")
    .addColumn("provider_message_id", "text")
    .execute();
  await db.schema.createIndex("message_attempts_message").on("message_attempts").column("message_id").execute();
}
