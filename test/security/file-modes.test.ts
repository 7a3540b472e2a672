import fs from "node:fs";
import path from "node:path";
import SQLite from "better-sqlite3";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateKeyText, KEY_FILE } from "../../src/storage/secrets.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { tempDir } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";

/** Every folder and file under `root` (itself included) with its permission bits, as octal text. */
function modes(root: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (target: string) => {
    const stat = fs.statSync(target);
    out[path.relative(root, target) || "."] = (stat.mode & 0o777).toString(8);
    if (stat.isDirectory()) for (const name of fs.readdirSync(target)) walk(path.join(target, name));
  };
  walk(root);
  return out;
}

function expectPrivate(root: string): Record<string, string> {
  const found = modes(root);
  const expected = Object.fromEntries(
    Object.keys(found).map((name) => [name, fs.statSync(path.join(root, name)).isDirectory() ? "700" : "600"]),
  );
  expect(found).toEqual(expected);
  return found;
}

// A umask can only take bits away: 022 is the usual one, 000 shows nothing relies on it at all.
describe.each([
  ["022", 0o022],
  ["000", 0o000],
])("the data folder under umask %s", (_, umask) => {
  let previous: number;
  let parent: string;
  let dataDir: string;
  let t: TestApp | undefined;

  beforeEach(() => {
    previous = process.umask(umask);
    parent = tempDir();
    dataDir = path.join(parent, "data");
  });
  afterEach(async () => {
    await t?.close();
    t = undefined;
    process.umask(previous);
    fs.rmSync(parent, { recursive: true, force: true });
  });

  async function startAndCapture(): Promise<void> {
    t = await startTestApp("sqlite", { MAILROOM_DATA_DIR: dataDir });
    const app = t;
    const res = await app.request(app.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "a@example.com", subject: "Private", text: "Message bodies are in the database and the capture folder." },
    });
    expect(res.statusCode, res.body).toBe(202);
    app.mailroom.worker.start();
    await waitFor("the message to be captured", async () => {
      const message = (await app.request(app.admin, { method: "GET", url: `/api/messages/${res.json().id}` })).json();
      return message.status === "sent";
    });
  }

  it("creates the folder 0700 and the database, its WAL and SHM, the key and captured mail 0600", async () => {
    await startAndCapture();
    const found = expectPrivate(dataDir);
    // The files the issue names are all there while the server runs.
    for (const name of ["mailroom.db", "mailroom.db-wal", "mailroom.db-shm", KEY_FILE, "capture"]) {
      expect(Object.keys(found)).toContain(name);
    }
    expect(Object.keys(found).filter((name) => name.endsWith(".eml"))).toHaveLength(1);
  });

  it("tightens a folder, database, WAL, SHM and key file an older version left readable by others", async () => {
    fs.mkdirSync(dataDir, { mode: 0o755 });
    fs.writeFileSync(path.join(dataDir, KEY_FILE), `${generateKeyText()}\n`);
    // An older Mailroom's database, still open, so that its WAL and SHM files exist too.
    const db = new SQLite(path.join(dataDir, "mailroom.db"));
    db.pragma("journal_mode = WAL");
    db.exec("create table leftover (x)");
    fs.chmodSync(dataDir, 0o755);
    for (const name of ["mailroom.db", "mailroom.db-wal", "mailroom.db-shm", KEY_FILE]) {
      fs.chmodSync(path.join(dataDir, name), 0o644);
    }
    try {
      await startAndCapture();
      expectPrivate(dataDir);
    } finally {
      db.close();
    }
  });
});
