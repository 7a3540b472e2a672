import fs from "node:fs";
import path from "node:path";
import SQLite from "better-sqlite3";
import {
  Kysely,
  type Migration,
  type MigrationProvider,
  Migrator,
  PostgresDialect,
  type SqliteDatabase,
  SqliteDialect,
} from "kysely";
import pg from "pg";
import type { DialectName } from "./dialect.js";
import * as m001 from "./migrations/001_initial.js";
import * as m002 from "./migrations/002_messages.js";
import * as m003 from "./migrations/003_oauth.js";
import * as m005 from "./migrations/005_breakers.js";
import type { Database } from "./schema.js";

// bigint columns hold epoch milliseconds, which fit a JS number exactly.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** Every migration, in order. A new one is a file in migrations/ and a line here. */
const migrations: Record<string, Migration> = {
  "001_initial": m001,
  "002_messages": m002,
  "003_oauth": m003,
  "005_breakers": m005,
};

const provider: MigrationProvider = { getMigrations: async () => migrations };

export interface Storage {
  db: Kysely<Database>;
  dialect: DialectName;
  /** Where the SQLite file lives; undefined on PostgreSQL. */
  sqlitePath?: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  dataDir: string;
  databaseUrl?: string;
  /** PostgreSQL pool size. */
  poolSize?: number;
  onPoolError?: (error: Error) => void;
  /** How long an SQLite write waits for another writer before failing with SQLITE_BUSY. */
  busyTimeoutMs?: number;
}

export function openStorage(options: OpenOptions): Storage {
  if (options.databaseUrl) {
    const pool = new pg.Pool({ connectionString: options.databaseUrl, max: options.poolSize ?? 10 });
    // An idle connection dropped by the server must not crash the process: the pool
    // replaces it, and the next query reports any lasting outage as storage_busy.
    pool.on("error", (error) => options.onPoolError?.(error));
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
    return { db, dialect: "postgres", close: () => db.destroy() };
  }
  fs.mkdirSync(options.dataDir, { recursive: true });
  const sqlitePath = path.join(options.dataDir, "mailroom.db");
  const sqlite = new SQLite(sqlitePath);
  sqlite.pragma("journal_mode = WAL");
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  // Wait for a competing writer (the CLI beside a running server) instead of failing at once.
  sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database: withStatementCache(sqlite) }) });
  return { db, dialect: "sqlite", sqlitePath, close: () => db.destroy() };
}

/**
 * Kysely prepares every query anew; the queue runs the same few statements thousands of
 * times a second, so prepared statements are kept (up to a bound) and reused.
 */
function withStatementCache(sqlite: SQLite.Database, limit = 200): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      let statement = cache.get(text);
      if (!statement) {
        statement = sqlite.prepare(text);
        // Oldest first: a Map iterates in insertion order.
        if (cache.size >= limit) cache.delete(cache.keys().next().value as string);
        cache.set(text, statement);
      }
      return statement;
    },
  };
}

/** Brings the schema up to date. Safe to call from several processes: Kysely takes a lock. */
export async function migrateToLatest(db: Kysely<Database>): Promise<string[]> {
  const migrator = new Migrator({ db, provider });
  const { error, results } = await migrator.migrateToLatest();
  if (error) throw error;
  return (results ?? []).filter((r) => r.status === "Success").map((r) => r.migrationName);
}
