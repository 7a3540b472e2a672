import type { Kysely } from "kysely";

// Routing and failover (docs/routing.md): the route rules, and on each message the ordered
// list of servers it may go through (its current one is server_id).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable("routes")
    .addColumn("id", "text", (c) => c.primaryKey())
    .addColumn("name", "text", (c) => c.notNull())
    // Rules are tried in this order; the first that matches wins.
    .addColumn("position", "integer", (c) => c.notNull())
    // What a rule matches (NULL: anything); every condition set must hold.
    .addColumn("match_from", "text")
    .addColumn("match_token_id", "text")
    .addColumn("match_tag", "text")
    .addColumn("match_recipient_domain", "text")
    // JSON array of email server ids: the primary first, then the fallbacks.
    .addColumn("server_ids", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("routes_name").unique().on("routes").column("name").execute();

  // JSON array of server ids the message may go through, in order; NULL: only server_id.
  await db.schema.alterTable("messages").addColumn("route_servers", "text").execute();
  await db.schema.alterTable("messages").addColumn("route_name", "text").execute();
  // The tag an application gave the message (routes match on it).
  await db.schema.alterTable("messages").addColumn("tag", "text").execute();
}
