import type { Kysely } from "kysely";

// OAuth: authorizations in progress (state + PKCE) and each server's tokens.
// Every token and verifier is stored encrypted (SecretBox); times are epoch ms.
export async function up(db: Kysely<unknown>): Promise<void> {
  // One row per "Authorize account" click. The state itself is never stored, only its
  // sha256, so a database read cannot forge a callback.
  await db.schema
    .createTable("oauth_authorizations")
    .addColumn("state_hash", "text", (c) => c.primaryKey())
    .addColumn("server_id", "text", (c) => c.notNull().references("email_servers.id").onDelete("cascade"))
    .addColumn("provider", "text", (c) => c.notNull())
    // The admin and the session that started it: only they may finish it.
    .addColumn("user_id", "text", (c) => c.notNull())
    .addColumn("session_hash", "text", (c) => c.notNull())
    .addColumn("code_verifier", "text", (c) => c.notNull())
    .addColumn("redirect_uri", "text", (c) => c.notNull())
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("expires_at", "bigint", (c) => c.notNull())
    // Set by the first callback that names this state: a state works once.
    .addColumn("used_at", "bigint")
    .execute();
  await db.schema.createIndex("oauth_authorizations_expires").on("oauth_authorizations").column("expires_at").execute();

  await db.schema
    .createTable("oauth_tokens")
    .addColumn("server_id", "text", (c) => c.primaryKey().references("email_servers.id").onDelete("cascade"))
    .addColumn("provider", "text", (c) => c.notNull())
    .addColumn("account", "text", (c) => c.notNull())
    .addColumn("scopes", "text", (c) => c.notNull())
    .addColumn("refresh_token", "text", (c) => c.notNull())
    .addColumn("access_token", "text")
    // Absolute: when the access token stops working, and when it was obtained.
    .addColumn("access_expires_at", "bigint")
    .addColumn("access_obtained_at", "bigint")
    // When the grant itself ends (refresh_token_expires_in), if the provider said.
    .addColumn("grant_expires_at", "bigint")
    // Bumped by every stored token change: a refresh stores its result only if nobody
    // stored one since it started, and waiters know a new token has arrived.
    .addColumn("generation", "integer", (c) => c.notNull().defaultTo(0))
    // Cross-process single flight: whoever sets the lease refreshes, the others wait.
    .addColumn("lease_owner", "text")
    .addColumn("lease_until", "bigint")
    .addColumn("refreshed_at", "bigint")
    .addColumn("refresh_error_code", "text")
    .addColumn("refresh_error", "text")
    .addColumn("refresh_error_at", "bigint")
    .addColumn("created_at", "bigint", (c) => c.notNull())
    .addColumn("updated_at", "bigint", (c) => c.notNull())
    .execute();
  // The daily health check walks the grants least recently refreshed first.
  await db.schema.createIndex("oauth_tokens_refreshed").on("oauth_tokens").column("refreshed_at").execute();
}
