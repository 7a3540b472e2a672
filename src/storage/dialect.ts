import { type Kysely, PostgresAdapter } from "kysely";

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
