import { type Kysely, PostgresAdapter, sql } from "kysely";

export type DialectName = "sqlite" | "postgres";

export function isPostgres(db: Kysely<unknown>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/**
 * Whether `error` is the database refusing a duplicate in the unique index `index`, told by
 * the drivers' error codes rather than by message text. PostgreSQL names the index in
 * `constraint`; SQLite names an expression index only in its message ("index 'name'").
 */
export function isUniqueViolation(error: unknown, index: string): boolean {
  const e = error as { code?: unknown; constraint?: unknown; message?: unknown } | null;
  if (e?.code === "23505") return e.constraint === index;
  return e?.code === "SQLITE_CONSTRAINT_UNIQUE" && String(e.message).includes(`index '${index}'`);
}

/**
 * SQLite: makes a transaction a writer from its first statement, as BEGIN IMMEDIATE would
 * (Kysely begins DEFERRED). A deferred transaction that reads, then writes, fails at once with
 * SQLITE_BUSY_SNAPSHOT when another process wrote in between (the CLI beside a running
 * server, say); one that writes first waits for the other writer (busy_timeout), then reads
 * the latest rows. An UPDATE that matches no row takes the write lock all the same.
 * Nothing on PostgreSQL, whose row locks need no such thing.
 */
// biome-ignore lint/suspicious/noExplicitAny: any schema: the statement names its table itself.
export async function writeFromTheStart(trx: Kysely<any>): Promise<void> {
  if (!isPostgres(trx)) await sql`update messages set id = id where 0 = 1`.execute(trx);
}
