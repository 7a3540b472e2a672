import type { Kysely } from "kysely";

// A server test's email is written to the delivery log, already settled: is_test = 1 marks it
// there, and keeps it out of retries (a test is run again, not retried).
export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable("messages")
    .addColumn("is_test", "integer", (c) => c.notNull().defaultTo(0))
    .execute();
}
