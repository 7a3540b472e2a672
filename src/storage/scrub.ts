import { sql } from "kysely";
import type { Storage } from "./db.js";
import { DELETES_ZEROED } from "./space.js";

/**
 * Makes what was just deleted or overwritten unreadable in the SQLite file itself.
 *
 * - SQLite overwrote it with zeros as it was deleted, in its page and in the pages it freed
 *   (secure_delete=ON on every connection since the file was made or last rebuilt: space.ts).
 * - A file from before that, or `rebuild`, is rebuilt from its live rows (VACUUM), which holds
 *   the write lock for as long as it copies the file (docs/operations.md, Erasure, has the
 *   figures and the one case for `rebuild`); the rebuilt file is marked, so once is enough.
 * - The -wal file still holds the pages as they were: a TRUNCATE checkpoint writes its pages
 *   home and empties it.
 *
 * Returns whether the log was emptied at once (a reader holding an old snapshot can keep it
 * for a moment; the next checkpoint finishes the work) and whether the file was rebuilt.
 *
 * PostgreSQL keeps dead row versions until VACUUM: plain VACUUM (autovacuum) makes them
 * unreachable, only VACUUM FULL rewrites the table's files, which the operator schedules.
 */
export async function scrubFreedSpace(
  storage: Storage,
  { rebuild = false }: { rebuild?: boolean } = {},
): Promise<{ walEmptied: boolean; rebuilt: boolean }> {
  if (storage.dialect !== "sqlite") return { walEmptied: true, rebuilt: false };
  const { db } = storage;
  const { rows: header } = await sql<{ user_version: number }>`pragma user_version`.execute(db);
  const version = Number(header[0]?.user_version ?? 0);
  const rebuilt = rebuild || (version & DELETES_ZEROED) === 0;
  if (rebuilt) {
    await sql`vacuum`.execute(db);
    await sql.raw(`pragma user_version = ${version | DELETES_ZEROED}`).execute(db);
  }
  const { rows } = await sql<{ busy: number }>`pragma wal_checkpoint(TRUNCATE)`.execute(db);
  return { walEmptied: rows[0]?.busy === 0, rebuilt };
}
