import { type Kysely, sql } from "kysely";

// Issue 9, the trust model: one-time passwords, who sent a message, failed sign-ins, token owners.
export async function up(db: Kysely<unknown>): Promise<void> {
  // Set when someone else chose the password (a manager, the first start, the CLI):
  // until the user picks their own, the session may do nothing else.
  await db.schema
    .alterTable("users")
    .addColumn("must_change_password", "integer", (c) => c.notNull().defaultTo(0))
    .execute();

  // messages.created_by holds a user's or a token's id; this says which, so a token that
  // may only send can still read the status of what it sent.
  await db.schema.alterTable("messages").addColumn("created_by_type", "text").execute();
  await sql`UPDATE messages SET created_by_type = 'token' WHERE created_by IN (SELECT id FROM api_tokens)`.execute(db);
  await sql`UPDATE messages SET created_by_type = 'user' WHERE created_by IN (SELECT id FROM users)`.execute(db);

  // Failed sign-ins and password changes, per account and per client address
  // (src/auth/throttle.ts). Only failures are written; a row is forgotten a day after its last.
  await db.schema
    .createTable("auth_failures")
    .addColumn("key", "text", (c) => c.primaryKey())
    .addColumn("failures", "integer", (c) => c.notNull())
    .addColumn("last_failure_at", "bigint", (c) => c.notNull())
    .addColumn("blocked_until", "bigint", (c) => c.notNull())
    .execute();
  await db.schema.createIndex("auth_failures_last").on("auth_failures").column("last_failure_at").execute();

  // A token acts as its owner, narrowed. Tokens made by a token named that token as their
  // creator: name the user behind it instead (a chain is at most a few links long).
  for (let i = 0; i < 8; i++) {
    await sql`UPDATE api_tokens SET created_by = (SELECT p.created_by FROM api_tokens p WHERE p.id = api_tokens.created_by)
      WHERE created_by IN (SELECT id FROM api_tokens)`.execute(db);
  }
}
