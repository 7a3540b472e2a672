import { type Kysely, sql } from "kysely";

// The failure model's storage: each server's circuit breaker, shared by every process on
// the database, and the index the per-server claim reads.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("server_breakers")
    .addColumn("server_id", "text", (c) => c.primaryKey().references("email_servers.id").onDelete("cascade"))
    // Server-problem results in a row (auth, TLS, DNS, unreachable); a success resets it.
    .addColumn("consecutive_failures", "integer", (c) => c.notNull().defaultTo(0))
    // Set while open (the server is `failing`): its mail is held, only probes reach it.
    .addColumn("opened_at", "bigint")
    // When the next probe is due; NULL while open means "now" (an edit, or "Check now").
    .addColumn("next_probe_at", "bigint")
    // Probes that failed since it opened: the step of the probe schedule.
    .addColumn("probes", "integer", (c) => c.notNull().defaultTo(0))
    // One process probes at a time: whoever sets the lease.
    .addColumn("probe_owner", "text")
    .addColumn("probe_until", "bigint")
    .addColumn("last_probe_at", "bigint")
    .addColumn("last_probe_error", "text")
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();

  // The claim serves servers in turn: per server, its due messages in order.
  await sql`CREATE INDEX messages_server_due ON messages (server_id, next_attempt_at) WHERE status IN ('queued', 'sending')`.execute(
    db,
  );
  // The per-server claim replaces the global one that read this index.
  await sql`DROP INDEX messages_claim`.execute(db);
}
