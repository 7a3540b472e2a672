import { type Kysely, sql } from "kysely";

// Retention (issue 18): when a message's body was removed, settings kept in the database,
// and the one row through which processes take turns purging.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("messages").addColumn("body_purged_at", "bigint").execute();
  // What each purge looks for: finished messages by the time they finished (updated_at),
  // bodies among those still holding one. Partial, so queued mail and purged rows cost nothing.
  await sql`CREATE INDEX messages_body_retention ON messages (updated_at) WHERE status IN ('sent', 'failed') AND body_purged_at IS NULL`.execute(
    db,
  );
  await sql`CREATE INDEX messages_retention ON messages (updated_at) WHERE status IN ('sent', 'failed')`.execute(db);

  // Settings an admin changes in the UI, overriding the environment: key -> JSON value.
  await db.schema
    .createTable("app_settings")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("value", "text", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .addColumn("updated_by", "text", (c) => c.notNull())
    .execute();

  // One row: who purges now (a lease, so two processes never do the same work) and what the
  // last purge did (shown on the overview and in /metrics).
  await db.schema
    .createTable("retention_runs")
    .addColumn("id", "integer", (c) => c.primaryKey())
    .addColumn("lease_owner", "text")
    .addColumn("lease_until", "bigint")
    .addColumn("last_started_at", "bigint")
    .addColumn("last_finished_at", "bigint")
    .addColumn("last_bodies", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_messages", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_audit", "integer", (c) => c.notNull().defaultTo(0))
    .addColumn("last_error", "text")
    .execute();
  await sql`INSERT INTO retention_runs (id) VALUES (1)`.execute(db);
}
