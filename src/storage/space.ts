import type SQLite from "better-sqlite3";
import { type Kysely, sql } from "kysely";
import type { DialectName } from "./dialect.js";
import type { Database } from "./schema.js";

/** Above this an existing SQLite file is not rewritten at start (see ensureIncrementalVacuum). */
const CONVERT_AT_START_MAX_BYTES = 512 * 1024 * 1024;

export type AutoVacuum = "incremental" | "off";

/**
 * Lets SQLite give the pages of purged rows back to the file system (PRAGMA incremental_vacuum
 * after a purge). A new database takes the setting before its first table; an existing one
 * only by a VACUUM, which rewrites the whole file: done at start up to 512 MB, and skipped
 * (tried again at the next start) when another process holds the file. Without it freed pages
 * are still reused by new rows, so the file stops growing but does not shrink.
 */
export function ensureIncrementalVacuum(sqlite: SQLite.Database, fileBytes: number): AutoVacuum {
  if (sqlite.pragma("auto_vacuum", { simple: true }) === 2) return "incremental";
  sqlite.pragma("auto_vacuum = INCREMENTAL");
  const { n } = sqlite.prepare("select count(*) as n from sqlite_master").get() as { n: number };
  if (n === 0) return "incremental";
  if (fileBytes > CONVERT_AT_START_MAX_BYTES) return "off";
  try {
    sqlite.exec("VACUUM");
  } catch {
    return "off";
  }
  return sqlite.pragma("auto_vacuum", { simple: true }) === 2 ? "incremental" : "off";
}

/** Bytes the database takes: the SQLite file's pages, or PostgreSQL's pg_database_size. */
export async function databaseBytes(db: Kysely<Database>, dialect: DialectName): Promise<number> {
  if (dialect === "postgres") {
    const { rows } = await sql<{ bytes: number }>`select pg_database_size(current_database()) as bytes`.execute(db);
    return Number(rows[0]?.bytes ?? 0);
  }
  const count = await sql<{ page_count: number }>`pragma page_count`.execute(db);
  const size = await sql<{ page_size: number }>`pragma page_size`.execute(db);
  return Number(count.rows[0]?.page_count ?? 0) * Number(size.rows[0]?.page_size ?? 0);
}

/**
 * Gives up to `pages` free pages back to the file system (SQLite with auto_vacuum=INCREMENTAL;
 * a no-op otherwise and on PostgreSQL, whose autovacuum reuses the space). Bounded, so one
 * call holds the write lock only briefly; returns the pages still free.
 */
export async function reclaimSpace(db: Kysely<Database>, dialect: DialectName, pages = 500): Promise<number> {
  if (dialect !== "sqlite") return 0;
  await sql`pragma incremental_vacuum(${sql.lit(pages)})`.execute(db);
  return (await freePages(db)).free;
}

/** SQLite: pages in the file, and those of them free (reused by new rows before the file grows). */
export async function freePages(db: Kysely<Database>): Promise<{ free: number; total: number }> {
  const free = await sql<{ freelist_count: number }>`pragma freelist_count`.execute(db);
  const total = await sql<{ page_count: number }>`pragma page_count`.execute(db);
  return { free: Number(free.rows[0]?.freelist_count ?? 0), total: Number(total.rows[0]?.page_count ?? 0) };
}

/**
 * Bit of SQLite's PRAGMA user_version (unused otherwise): since the file was made or last
 * rebuilt, every delete and update overwrote what it removed from its page (secure_delete).
 * Kept in the file's header, so a backup and a restore carry it; a database from before (or
 * written by a tool without secure_delete) lacks it and is rebuilt once, by the next erasure.
 */
export const DELETES_ZEROED = 1;

/**
 * SQLite: whatever a delete or an update removes is overwritten with zeros at once, in its page
 * and in the pages it frees (PRAGMA secure_delete=ON, on every connection Mailroom opens), so
 * an erasure needs no VACUUM (scrub.ts). Not FAST: that leaves freed pages as they were, and a
 * freed overflow page reused as the last page of another long row keeps the old bytes in its
 * tail, out of reach of any later clean-up (measured: docs/operations.md, Erasure). ON costs
 * retention's purges the writing of the pages they free (docs/benchmarks.md). A new database
 * is marked as holding no old bytes.
 */
export function zeroDeletedContent(sqlite: SQLite.Database, newDatabase: boolean): void {
  sqlite.pragma("secure_delete = ON");
  if (newDatabase) markDeletesZeroed(sqlite);
}

function markDeletesZeroed(sqlite: SQLite.Database): void {
  const version = Number(sqlite.pragma("user_version", { simple: true }));
  sqlite.pragma(`user_version = ${version | DELETES_ZEROED}`);
}
