import { type Kysely, sql } from "kysely";

// Alerts for admins (issue 16): where they go, what happened, and what was sent about it.
export async function up(db: Kysely<unknown>): Promise<void> {
  // A channel an admin configured: a signed webhook, a Slack/Teams incoming webhook, or email.
  await db.schema
    .createTable("alert_channels")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    .addColumn("type", "text", (c) => c.notNull())
    .addColumn("enabled", "integer", (c) => c.notNull().defaultTo(1))
    // The generic webhook's URL (shown); NULL for Slack, whose URL is the secret.
    .addColumn("url", "text")
    // What the UI shows of where it posts: the host.
    .addColumn("url_host", "text")
    // Encrypted (storage/secrets.ts): the webhook's signing secret, or the Slack/Teams URL.
    .addColumn("secret", "text")
    // Email: the server chosen to carry alerts and the recipients (JSON array).
    .addColumn("server_id", "text", (c) => c.references("email_servers.id").onDelete("set null"))
    .addColumn("recipients", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();

  // One row per incident: a condition (kind + subject) from when it started to when it ended.
  await db.schema
    .createTable("alert_incidents")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("kind", "text", (c) => c.notNull())
    // The server's id, or '' for a condition of the whole installation.
    .addColumn("subject", "text", (c) => c.notNull())
    .addColumn("subject_label", "text", (c) => c.notNull())
    // kind + subject (+ a stage, for the client secret's warnings): what identifies the condition.
    .addColumn("key", "text", (c) => c.notNull())
    // The key while open, NULL once resolved: its unique index lets exactly one process open
    // an incident, however many evaluate at once (NULLs never collide, on both databases).
    .addColumn("open_key", "text", (c) => c.unique())
    .addColumn("title", "text", (c) => c.notNull())
    .addColumn("detail", "text", (c) => c.notNull())
    // JSON: the values that opened it, then the last ones seen while open.
    .addColumn("last_values", "text", (c) => c.notNull())
    .addColumn("opened_at", "bigint", (c) => c.notNull())
    .addColumn("resolved_at", "bigint")
    .addColumn("resolution", "text")
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("alert_incidents_opened").on("alert_incidents").column("opened_at").execute();

  // Each alert sent, or to send, to one channel: an outbox with a lease and retries.
  await db.schema
    .createTable("alert_notifications")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("incident_id", "text", (c) => c.notNull().references("alert_incidents.id").onDelete("cascade"))
    // The channel as it was (it may be deleted later; the record stays).
    .addColumn("channel_id", "text")
    .addColumn("channel_name", "text", (c) => c.notNull())
    .addColumn("channel_type", "text", (c) => c.notNull())
    // opened | resolved
    .addColumn("event", "text", (c) => c.notNull())
    // pending | delivered | queued (email handed to the outbox) | failed | not_sent
    .addColumn("status", "text", (c) => c.notNull())
    .addColumn("attempts", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("next_attempt_at", "bigint", (c) => c.notNull())
    .addColumn("lease_owner", "text")
    .addColumn("lease_until", "bigint")
    .addColumn("error_code", "text")
    .addColumn("error", "text")
    .addColumn("response_status", "integer")
    // Email: the message queued, and the server it went through.
    .addColumn("message_id", "text")
    .addColumn("server_name", "text")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("finished_at", "bigint")
    .execute();
  await db.schema.createIndex("alert_notifications_incident").on("alert_notifications").column("incident_id").execute();
  await sql`CREATE INDEX alert_notifications_due ON alert_notifications (next_attempt_at) WHERE status = 'pending'`.execute(db);
}
