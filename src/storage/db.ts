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
  type SqliteStatement,
} from "kysely";
import pg from "pg";
import { ConfigCache } from "./config-cache.js";
import type { DialectName } from "./dialect.js";
import { type HealthLog, StorageHealth } from "./health.js";
import * as m001 from "./migrations/001_initial.js";
import * as m002 from "./migrations/002_messages.js";
import * as m003 from "./migrations/003_oauth.js";
import * as m004 from "./migrations/004_trust.js";
import * as m005 from "./migrations/005_breakers.js";
import * as m006 from "./migrations/006_smtp_intake.js";
import * as m007 from "./migrations/007_sendmail_commands.js";
import * as m008 from "./migrations/008_test_messages.js";
import * as m011 from "./migrations/011_routes.js";
import * as m012 from "./migrations/012_app_credentials.js";
import * as m013 from "./migrations/013_retention.js";
import * as m014 from "./migrations/014_provider_events.js";
import * as m015 from "./migrations/015_webhooks.js";
import * as m016 from "./migrations/016_alerts.js";
import * as m017 from "./migrations/017_queue_indexes.js";
import { ensurePrivateFile, ensurePrivateFolder, tightenPrivateFile } from "./private-files.js";
import type { Database } from "./schema.js";
import { type AutoVacuum, ensureIncrementalVacuum, zeroDeletedContent } from "./space.js";

// bigint columns hold epoch milliseconds, which fit a JS number exactly.
pg.types.setTypeParser(pg.types.builtins.INT8, (value) => Number(value));

/** Every migration, in order. A new one is a file in migrations/ and a line here. */
const migrations: Record<string, Migration> = {
  "001_initial": m001,
  "002_messages": m002,
  "003_oauth": m003,
  "004_trust": m004,
  "005_breakers": m005,
  "006_smtp_intake": m006,
  "007_sendmail_commands": m007,
  "008_test_messages": m008,
  "011_routes": m011,
  "012_app_credentials": m012,
  "013_retention": m013,
  "014_provider_events": m014,
  "015_webhooks": m015,
  "016_alerts": m016,
  "017_queue_indexes": m017,
};

/** The migrations this version knows: a database that has applied another one is newer. */
export const knownMigrations: readonly string[] = Object.keys(migrations);

const provider: MigrationProvider = { getMigrations: async () => migrations };

export interface Storage {
  db: Kysely<Database>;
  dialect: DialectName;
  /** Where the SQLite file lives; undefined on PostgreSQL. */
  sqlitePath?: string;
  /** SQLite: whether purged pages go back to the file system (see space.ts); PostgreSQL: "off". */
  autoVacuum: AutoVacuum;
  /** Whether the database answers and can write; what a failure means for the caller. */
  health: StorageHealth;
  /** Configuration reads kept for a moment (tokens, servers, routes); emptied by this process's writes to them. */
  configCache: ConfigCache;
  close(): Promise<void>;
}

export interface OpenOptions {
  dataDir: string;
  databaseUrl?: string;
  /** PostgreSQL pool size. */
  poolSize?: number;
  /** Hears of outages (once when each starts and ends). */
  log?: HealthLog;
  /** How long an SQLite write waits for another writer before failing with SQLITE_BUSY. */
  busyTimeoutMs?: number;
  /** The time the config cache reads (tests move it). */
  clock?: () => number;
}

export function openStorage(options: OpenOptions): Storage {
  if (options.databaseUrl) {
    const health = new StorageHealth({ dialect: "postgres", dataDir: options.dataDir }, options.log);
    const pool = new pg.Pool({
      connectionString: options.databaseUrl,
      max: options.poolSize ?? 10,
      // A server that takes the connection but never answers must not hold callers forever.
      connectionTimeoutMillis: 10_000,
    });
    // A connection the server drops (a restart: 57P01) emits 'error'; without a listener
    // that ends the process. The pool listens only while a client is idle, so each client
    // gets a listener of its own for the time Kysely holds it. The dead client is then
    // discarded on release, and the next query connects anew (or answers storage_unavailable).
    const dropped = (error: Error) => health.failed(error);
    pool.on("error", dropped);
    pool.on("connect", (client) => client.on("error", dropped));
    // Other processes' changes are seen within a second.
    const configCache = new ConfigCache(1000, undefined, options.clock);
    const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }), plugins: [configCache.plugin()] });
    return { db, dialect: "postgres", autoVacuum: "off", health, configCache, close: () => db.destroy() };
  }
  ensurePrivateFolder(options.dataDir);
  const sqlitePath = path.join(options.dataDir, "mailroom.db");
  // SQLite would create the database 0644 less the umask; it gives the -wal and -shm files it
  // creates later the database file's own mode, so a 0600 database keeps all three private.
  ensurePrivateFile(sqlitePath);
  const fileBytes = fs.statSync(sqlitePath).size;
  const sqlite = new SQLite(sqlitePath);
  // Before WAL and the first table: a new database takes auto_vacuum without a rewrite.
  sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  const autoVacuum = ensureIncrementalVacuum(sqlite, fileBytes);
  sqlite.pragma("journal_mode = WAL");
  for (const suffix of ["-wal", "-shm"]) tightenPrivateFile(`${sqlitePath}${suffix}`);
  sqlite.pragma("synchronous = NORMAL");
  sqlite.pragma("foreign_keys = ON");
  // Erasure relies on it: what is deleted is overwritten, not left in the file (scrub.ts).
  zeroDeletedContent(sqlite, fileBytes === 0);
  // Wait for a competing writer (the CLI beside a running server) instead of failing at once.
  sqlite.pragma(`busy_timeout = ${options.busyTimeoutMs ?? 5000}`);
  const configCache = new ConfigCache(1000, changedByOtherConnections(sqlite), options.clock);
  const db = new Kysely<Database>({
    dialect: new SqliteDialect({ database: withStatementCache(sqlite) }),
    plugins: [configCache.plugin()],
  });
  const health = new StorageHealth({ dialect: "sqlite", dataDir: options.dataDir }, options.log);
  return { db, dialect: "sqlite", sqlitePath, autoVacuum, health, configCache, close: () => db.destroy() };
}

/**
 * SQLite's data_version changes when another connection (the CLI beside a running server)
 * commits: the config cache then forgets at the next turn of the event loop (the next
 * request) instead of after its second. Read once a turn, not at every read of the cache: the
 * pragma opens a read of the WAL, and a single-message request reads the cache three or four
 * times (4% of its CPU in the delivery benchmark's profile).
 */
function changedByOtherConnections(sqlite: SQLite.Database): () => boolean {
  const read = sqlite.prepare("PRAGMA data_version").pluck();
  let seen = read.get();
  let readThisTurn = false;
  const nextTurn = () => {
    readThisTurn = false;
  };
  return () => {
    if (!sqlite.open || readThisTurn) return false;
    readThisTurn = true;
    setImmediate(nextTurn);
    const now = read.get();
    if (now === seen) return false;
    seen = now;
    return true;
  };
}

const NOTHING_TO_ROLL_BACK: SqliteStatement = {
  reader: false,
  all: () => [],
  run: () => ({ changes: 0, lastInsertRowid: 0 }),
  iterate: () => [][Symbol.iterator](),
};

/**
 * Kysely prepares every query anew; the queue runs the same few statements thousands of
 * times a second, so prepared statements are kept (up to a bound) and reused.
 */
function withStatementCache(sqlite: SQLite.Database, limit = 200): SqliteDatabase {
  const cache = new Map<string, SQLite.Statement>();
  return {
    close: () => sqlite.close(),
    prepare(text: string) {
      // After SQLITE_FULL (and SQLITE_NOMEM, SQLITE_IOERR) SQLite has rolled the transaction
      // back itself. Kysely's ROLLBACK would then fail with "cannot rollback - no transaction
      // is active", and that error would replace the one that says what happened.
      if (text === "rollback" && !sqlite.inTransaction) return NOTHING_TO_ROLL_BACK;
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
