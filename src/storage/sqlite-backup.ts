/**
 * Backup and restore of the SQLite database (`mailroom backup`, `mailroom restore`). The copy
 * is made with SQLite's online backup API, never a file copy: a file copy taken while
 * Mailroom writes can be torn, and misses what is still in the -wal file.
 */
import fs from "node:fs";
import path from "node:path";
import SQLite from "better-sqlite3";
import { ensurePrivateFolder, PRIVATE_FILE_MODE } from "./private-files.js";

export const SQLITE_FILE = "mailroom.db";

/** sqlite3_backup_step's page count for "all of it": one step, so one consistent snapshot. */
const ALL_PAGES = 0x7fffffff;

export function sqliteFileOf(dataDir: string): string {
  return path.join(dataDir, SQLITE_FILE);
}

/**
 * Copies the database at `source` into `output`, consistent as of one moment, while other
 * processes keep writing (a reader in WAL mode holds no writer up). The file appears whole or
 * not at all (written beside, then renamed), mode 0600, as one file (journal mode DELETE, so
 * no -wal beside it is needed).
 */
export async function backupSqlite(source: string, output: string): Promise<{ bytes: number }> {
  const temporary = path.join(path.dirname(output), `.${path.basename(output)}.${process.pid}.tmp`);
  // Created 0600 before SQLite writes to it: the copy holds message bodies and password hashes.
  fs.closeSync(fs.openSync(temporary, "w", PRIVATE_FILE_MODE));
  try {
    const db = new SQLite(source, { fileMustExist: true });
    try {
      db.pragma("busy_timeout = 5000");
      await db.backup(temporary, { progress: () => ALL_PAGES });
    } finally {
      db.close();
    }
    const copy = new SQLite(temporary);
    try {
      copy.pragma("journal_mode = DELETE");
    } finally {
      copy.close();
    }
    fs.chmodSync(temporary, PRIVATE_FILE_MODE);
    fs.renameSync(temporary, output);
  } catch (error) {
    fs.rmSync(temporary, { force: true });
    throw error;
  }
  return { bytes: fs.statSync(output).size };
}

/** Why a file cannot be restored; `message` says what to do. */
export class RestoreRefused extends Error {}

/** What restore reads from a backup before it changes anything. */
export interface BackupContents {
  /** Migrations applied in the backup, in order. */
  migrations: string[];
  /** Every stored ciphertext: servers' secrets, OAuth tokens, PKCE verifiers. */
  ciphertexts: string[];
  emailServers: number;
  messages: number;
}

/**
 * Opens `file` read-only and checks it is a whole SQLite database holding Mailroom's tables.
 * Refuses (RestoreRefused) with what is wrong: not a database, damaged, not Mailroom's.
 */
export function readBackup(file: string): BackupContents {
  let db: SQLite.Database;
  try {
    db = new SQLite(file, { readonly: true, fileMustExist: true });
  } catch (error) {
    throw new RestoreRefused(`cannot open ${file}: ${(error as Error).message}.`);
  }
  try {
    let integrity: string[];
    try {
      integrity = (db.pragma("quick_check") as { quick_check: string }[]).map((r) => r.quick_check);
    } catch (error) {
      // SQLITE_NOTADB, SQLITE_CORRUPT: not a database at all, or its header is damaged.
      throw new RestoreRefused(
        `${file} is not a SQLite database or is damaged (${(error as Error).message}): use another backup file.`,
      );
    }
    if (integrity.join() !== "ok") {
      throw new RestoreRefused(`${file} is damaged (${integrity.slice(0, 3).join("; ")}): use another backup file.`);
    }
    const tables = new Set(
      (db.prepare("select name from sqlite_master where type = 'table'").all() as { name: string }[]).map((r) => r.name),
    );
    const missing = ["kysely_migration", "email_servers", "messages"].filter((t) => !tables.has(t));
    if (missing.length) {
      throw new RestoreRefused(
        `${file} is a SQLite database but not a Mailroom database (no ${missing.join(", ")} table): restore a file made by 'mailroom backup'.`,
      );
    }
    const column = (query: string) => (db.prepare(query).pluck().all() as (string | null)[]).filter((v) => v !== null);
    const ciphertexts = column("select secrets from email_servers").flatMap((json) => Object.values(JSON.parse(json) as object));
    if (tables.has("oauth_tokens")) {
      ciphertexts.push(...column("select refresh_token from oauth_tokens"), ...column("select access_token from oauth_tokens"));
    }
    if (tables.has("oauth_authorizations")) ciphertexts.push(...column("select code_verifier from oauth_authorizations"));
    if (tables.has("event_sources")) ciphertexts.push(...column("select signing_key from event_sources"));
    return {
      migrations: column("select name from kysely_migration order by name"),
      ciphertexts: ciphertexts as string[],
      emailServers: db.prepare("select count(*) from email_servers").pluck().get() as number,
      messages: db.prepare("select count(*) from messages").pluck().get() as number,
    };
  } finally {
    db.close();
  }
}

/** A time for a file name: 2026-12-01T17-40-05Z (no colons, which some systems refuse). */
function fileStamp(now: Date): string {
  return now
    .toISOString()
    .replace(/\.\d+Z$/, "Z")
    .replaceAll(":", "-");
}

/**
 * Puts the backup at `file` in place of the data folder's database. The current database is
 * first copied beside it as `mailroom.db.before-restore-<time>` (through the backup API, so
 * what its -wal file held is in the copy), the backup written beside as a temporary file,
 * and then renamed over `mailroom.db`: at every moment the database is the old one or the
 * new one, whole. Call only once Mailroom is stopped: a running process would keep writing
 * to the old file.
 */
export async function replaceSqliteDatabase(dataDir: string, file: string, now = new Date()): Promise<{ previous?: string }> {
  ensurePrivateFolder(dataDir);
  const target = sqliteFileOf(dataDir);
  let previous: string | undefined;
  if (fs.existsSync(target) && fs.statSync(target).size > 0) {
    previous = `${target}.before-restore-${fileStamp(now)}`;
    await backupSqlite(target, previous);
  }
  const incoming = `${target}.restore-${process.pid}.tmp`;
  await backupSqlite(file, incoming);
  // What is left of the old database's write-ahead log would be replayed onto the new file.
  // Opening and closing the old database checkpoints it and removes them; then they go.
  if (fs.existsSync(target)) new SQLite(target).close();
  for (const suffix of ["-wal", "-shm", "-journal"]) fs.rmSync(`${target}${suffix}`, { force: true });
  fs.renameSync(incoming, target);
  return { previous };
}
