import fs from "node:fs";
import SQLite from "better-sqlite3";
import { afterEach, expect, it } from "vitest";
import { migrateToLatest, openStorage, type Storage } from "../../src/storage/db.js";
import { writeFromTheStart } from "../../src/storage/dialect.js";
import { tempDir } from "../helpers/databases.js";

let storage: Storage | undefined;
let other: SQLite.Database | undefined;
let dataDir: string;

afterEach(async () => {
  other?.close();
  await storage?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

// Erasure's and the body purge's transactions read, then write. Beside another writer (the CLI
// next to a running server), a transaction that began by reading fails with SQLITE_BUSY_SNAPSHOT
// when the other wrote in between; one that holds the write lock from its start cannot be.
it("a transaction that writes from the start holds SQLite's write lock before it reads", async () => {
  dataDir = tempDir();
  storage = openStorage({ dataDir });
  await migrateToLatest(storage.db);
  other = new SQLite(storage.sqlitePath as string);
  other.pragma("busy_timeout = 0");
  const otherWrites = () => other?.prepare("update retention_runs set last_error = 'other' where id = 1").run();

  await storage.db.transaction().execute(async (trx) => {
    await writeFromTheStart(trx);
    await trx.selectFrom("retention_runs").selectAll().execute();
    // Another process wants to write meanwhile: it waits (here: gives up at once), and cannot slip in.
    expect(otherWrites).toThrow(/locked|busy/i);
    await trx.updateTable("retention_runs").set({ last_error: "mine" }).where("id", "=", 1).execute();
  });
  otherWrites();
  const row = await storage.db.selectFrom("retention_runs").select("last_error").executeTakeFirstOrThrow();
  expect(row.last_error).toBe("other");
});
