import { sql } from "kysely";
import type { Storage } from "./db.js";

/**
 * Runs `work` so that what it deletes or overwrites does not stay readable in the database
 * file. SQLite otherwise leaves a deleted row's bytes in free space and old page images in the
 * -wal file: with secure_delete the freed space is zeroed, and a TRUNCATE checkpoint then
 * writes the pages home and empties the log. Returns whether the log could be emptied (a
 * reader holding an old snapshot can keep it for a moment; the next checkpoint finishes).
 *
 * PostgreSQL keeps dead row versions until VACUUM reclaims them: autovacuum does so on its
 * own schedule, or the operator runs VACUUM (docs/operations.md, Erasure).
 */
export async function withFreedSpaceScrubbed<T>(storage: Storage, work: () => Promise<T>): Promise<{ result: T; walEmptied: boolean }> {
  if (storage.dialect !== "sqlite") return { result: await work(), walEmptied: true };
  // One connection serves the whole process: the pragma holds for the delivery writes made
  // meanwhile too, which costs them a little I/O and nothing else.
  await sql`pragma secure_delete = on`.execute(storage.db);
  try {
    const result = await work();
    const { rows } = await sql<{ busy: number; log: number; checkpointed: number }>`pragma wal_checkpoint(TRUNCATE)`.execute(
      storage.db,
    );
    return { result, walEmptied: rows[0]?.busy === 0 };
  } finally {
    await sql`pragma secure_delete = off`.execute(storage.db);
  }
}
