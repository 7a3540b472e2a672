import type { Kysely } from "kysely";

// App-only tokens (client credentials, service accounts) live in oauth_tokens too, with an
// empty refresh token. credentials_version is the server's updated_at when the token was
// obtained: a token counts only for the credentials, mailbox and method it was obtained with.
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable("oauth_tokens").addColumn("credentials_version", "bigint").execute();
}
