import { sql } from "kysely";
import type { Storage } from "./db.js";

/**
 * Makes what was just deleted or overwritten unreadable in the database file itself. SQLite
 * leaves old bytes in free pages, in the unused space of pages it reorganised long ago, and in
 * the -wal file: VACUUM rebuilds the file from the live rows only, and a TRUNCATE checkpoint
 * writes its pages home and empties the log. VACUUM takes the write lock for as long as it
 * copies the file (docs/operations.md, Erasure, has the measured time); writers wait meanwhile
 * (MAILROOM_SQLITE_BUSY_MS). Returns whether the log was emptied at once (a reader holding an
 * old snapshot can keep it for a moment; the next checkpoint finishes the work).
 *
 * PostgreSQL keeps dead row versions until VACUUM: plain VACUUM (autovacuum) makes them
 * unreachable, only VACUUM FULL rewrites the table's files, which the operator schedules.
 */
export async function scrubFreedSpace(storage: Storage): Promise<{ walEmptied: boolean }> {
  if (storage.dialect !== "sqlite") return { walEmptied: true };
  await sql`vacuum`.execute(storage.db);
  const { rows } = await sql<{ busy: number }>`pragma wal_checkpoint(TRUNCATE)`.execute(storage.db);
  return { walEmptied: rows[0]?.busy === 0 };
}
