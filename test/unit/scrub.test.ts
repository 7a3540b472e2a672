import fs from "node:fs";
import path from "node:path";
import { sql } from "kysely";
import { afterEach, describe, expect, it } from "vitest";
import { migrateToLatest, openStorage, type Storage } from "../../src/storage/db.js";
import { scrubFreedSpace } from "../../src/storage/scrub.js";
import { tempDir } from "../helpers/databases.js";

const MARK = "scrub-mark-6b1e-personal";
let storage: Storage | undefined;
let dataDir: string;

afterEach(async () => {
  await storage?.close();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

async function open(): Promise<Storage> {
  storage = openStorage({ dataDir });
  await migrateToLatest(storage.db);
  return storage;
}

/** The database file and its -wal, as bytes: where a deleted row could still be read. */
function fileBytes(s: Storage): string {
  const file = s.sqlitePath as string;
  return [file, `${file}-wal`]
    .filter(fs.existsSync)
    .map((f) => fs.readFileSync(f).toString("latin1"))
    .join("");
}

/**
 * Rows that hold MARK in their page and, past 4 kB, in overflow pages, changed the way the
 * outbox changes them (each update rewrites the row), then deleted and shortened.
 */
async function writeAndForget(s: Storage): Promise<void> {
  const audit = (id: number, after: string) => ({
    actor_type: "system",
    actor_id: null,
    actor_label: "test",
    action: "test",
    target_type: "test",
    target_id: String(id),
    before: null,
    after,
    ip: null,
    at: Date.now(),
  });
  for (let i = 0; i < 40; i++) {
    const long = `${MARK} ${"y".repeat(i % 2 ? 12_000 : 300)} ${MARK}`;
    await s.db.insertInto("audit_log").values(audit(i, long)).execute();
    await s.db
      .updateTable("audit_log")
      .set({ after: `${long}!` })
      .where("target_id", "=", String(i))
      .execute();
  }
  await s.db.deleteFrom("audit_log").where("target_id", "<", "2").execute();
  await s.db.updateTable("audit_log").set({ after: "gone" }).where("action", "=", "test").execute();
  expect((await s.db.selectFrom("audit_log").select("after").where("after", "like", `%${MARK}%`).execute()).length).toBe(0);
}

describe("erasure's scrub of the SQLite file", () => {
  it("a new database overwrites what it deletes: no trace without a rebuild", async () => {
    dataDir = tempDir();
    const s = await open();
    await writeAndForget(s);
    expect(await scrubFreedSpace(s)).toEqual({ walEmptied: true, rebuilt: false });
    expect(fileBytes(s)).not.toContain(MARK);
    // ON, not FAST (2): FAST leaves freed pages, and reused ones, with their old bytes.
    expect(Number((await sql<{ secure_delete: number }>`pragma secure_delete`.execute(s.db)).rows[0].secure_delete)).toBe(1);
  });

  it("a database written without secure_delete keeps old bytes, and is rebuilt once", async () => {
    dataDir = tempDir();
    const s = await open();
    // As a database from before, or one a tool wrote to: the mark cleared, nothing zeroed.
    await sql`pragma user_version = 0`.execute(s.db);
    await sql`pragma secure_delete = OFF`.execute(s.db);
    await writeAndForget(s);
    await sql`pragma wal_checkpoint(TRUNCATE)`.execute(s.db);
    expect(fileBytes(s)).toContain(MARK);
    await sql`pragma secure_delete = ON`.execute(s.db);

    expect(await scrubFreedSpace(s)).toEqual({ walEmptied: true, rebuilt: true });
    expect(fileBytes(s)).not.toContain(MARK);
    expect(Number((await sql<{ user_version: number }>`pragma user_version`.execute(s.db)).rows[0].user_version)).toBe(1);
    expect((await scrubFreedSpace(s)).rebuilt).toBe(false);
    expect((await scrubFreedSpace(s, { rebuild: true })).rebuilt).toBe(true);
    expect(path.basename(s.sqlitePath as string)).toBe("mailroom.db");
  });
});
