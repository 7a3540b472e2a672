import { type Kysely, sql } from "kysely";

// Provider events (issue 16): what Mailgun, Postmark and SES report after "sent" (a delivery,
// a bounce, a complaint), where each server receives them, and the suppression list they feed.
export async function up(db: Kysely<unknown>): Promise<void> {
  // Events are matched to messages by the provider's id for the message.
  await sql`CREATE INDEX messages_provider_id ON messages (provider_message_id) WHERE provider_message_id IS NOT NULL`.execute(
    db,
  );

  // Retention's partial indexes name the finished statuses: delivered, bounced and complained are too.
  await sql`DROP INDEX messages_body_retention`.execute(db);
  await sql`DROP INDEX messages_retention`.execute(db);
  await sql`CREATE INDEX messages_body_retention ON messages (updated_at) WHERE status IN ('sent', 'failed', 'delivered', 'bounced', 'complained') AND body_purged_at IS NULL`.execute(
    db,
  );
  await sql`CREATE INDEX messages_retention ON messages (updated_at) WHERE status IN ('sent', 'failed', 'delivered', 'bounced', 'complained')`.execute(
    db,
  );

  // One row per provider event and recipient. Purged with its message (core/retention.ts).
  await db.schema
    .createTable("message_events")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("message_id", "text", (c) => c.notNull())
    .addColumn("server_id", "text", (c) => c.notNull())
    .addColumn("provider", "text", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("bounce_kind", "text")
    .addColumn("recipient", "text")
    .addColumn("diagnostic", "text")
    .addColumn("provider_event_id", "text", (c) => c.notNull())
    .addColumn("at", "bigint", (c) => c.notNull())
    .addColumn("received_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("message_events_message").on("message_events").columns(["message_id", "at"]).execute();
  // A provider that sends the same event again (a retry, a replay) adds nothing.
  await db.schema
    .createIndex("message_events_dedup")
    .unique()
    .on("message_events")
    .columns(["server_id", "provider", "provider_event_id"])
    .execute();
  // The overview's bounce and complaint rates read events by time.
  await db.schema.createIndex("message_events_at").on("message_events").columns(["at"]).execute();

  // Addresses Mailroom refuses at accept time. server_id NULL: for every server.
  await db.schema
    .createTable("suppressions")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("address", "text", (c) => c.notNull())
    .addColumn("server_id", "text", (c) => c.references("email_servers.id").onDelete("cascade"))
    .addColumn("reason", "text", (c) => c.notNull())
    .addColumn("detail", "text")
    .addColumn("message_id", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("created_by", "text", (c) => c.notNull())
    .execute();
  // One entry per address and scope; the accept-time check looks addresses up through it.
  await sql`CREATE UNIQUE INDEX suppressions_address ON suppressions (address, coalesce(server_id, ''))`.execute(db);
  await db.schema.createIndex("suppressions_created").on("suppressions").columns(["created_at"]).execute();

  // Each server's sources of provider events, as an admin set them up.
  await db.schema
    .createTable("event_sources")
    .addColumn("server_id", "text", (c) => c.notNull().references("email_servers.id").onDelete("cascade"))
    .addColumn("provider", "text", (c) => c.notNull())
    // Mailgun's webhook signing key, encrypted (storage/secrets.ts): the HMAC needs it whole.
    .addColumn("signing_key", "text")
    // sha256 of what Mailroom generated and showed once (Postmark's password, SES's URL secret).
    .addColumn("credential_hash", "text")
    .addColumn("username", "text")
    // SES: the SNS topic whose subscription was last confirmed.
    .addColumn("topic_arn", "text")
    .addColumn("accepted", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("unmatched", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("refused", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_event_at", "bigint")
    .addColumn("last_refused_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("updated_by", "text", (c) => c.notNull())
    .addPrimaryKeyConstraint("event_sources_pk", ["server_id", "provider"])
    .execute();

  // Mailgun tokens seen in the last 15 minutes: a signed request is taken once.
  await db.schema
    .createTable("provider_event_nonces")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("seen_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("provider_event_nonces_seen").on("provider_event_nonces").column("seen_at").execute();
}
