import { type Kysely, sql } from "kysely";

// Issue 17: the claim reads each server's queue through messages_server_due (migration 005);
// messages_claim, the whole queue by time, no longer answers any query, and every insert,
// claim and result paid for keeping it.
export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`DROP INDEX IF EXISTS messages_claim`.execute(db);
}
