import { execFile } from "node:child_process";
import { createHash } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import SQLite from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom } from "../../src/app.js";
import { type RunningMailroom, startMailroom } from "../../src/cli/serve.js";
import { loadConfig } from "../../src/config.js";
import { systemActor } from "../../src/core/audit.js";
import { migrateToLatest } from "../../src/storage/db.js";
import { generateKeyText, KEY_FILE } from "../../src/storage/secrets.js";
import { tempDir } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);
const PEER_PASSWORD = "restored-peer-password-93c1";

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** `mailroom <args>` as a real process (dist/ is built by test/global-setup.ts), with only these settings. */
async function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  const clean = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("MAILROOM_") && k !== "DATABASE_URL"),
  );
  try {
    const { stdout, stderr } = await run(process.execPath, ["bin/mailroom.js", ...args], {
      cwd: root,
      env: { ...clean, MAILROOM_LOG_LEVEL: "silent", ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

const configFor = (dataDir: string, key: string) =>
  loadConfig({
    MAILROOM_DATA_DIR: dataDir,
    MAILROOM_PORT: "0",
    MAILROOM_SMTP_PORT: "off",
    MAILROOM_LOG_LEVEL: "silent",
    MAILROOM_POLL_MS: "20",
    // A message the backup caught mid-send is claimable again this soon after the restore.
    MAILROOM_LEASE_SECONDS: "2",
    MAILROOM_SECRET_KEY: key,
  });

const sha = (file: string) => createHash("sha256").update(fs.readFileSync(file)).digest("hex");
const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

/** Counts of the backup's messages by status, read straight from the file. */
function statusesIn(file: string): Record<string, number> {
  const db = new SQLite(file, { readonly: true });
  try {
    const rows = db.prepare("select status, count(*) as n from messages group by status").all() as {
      status: string;
      n: number;
    }[];
    return Object.fromEntries(rows.map((r) => [r.status, r.n]));
  } finally {
    db.close();
  }
}

describe("mailroom backup and restore (SQLite)", () => {
  const key = generateKeyText();
  let peer: SmtpPeer;
  let dataDir: string;
  let work: string;
  let running: RunningMailroom | undefined;
  let token: string;
  let backupFile: string;

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none", auth: { user: "app", password: PEER_PASSWORD } });
    work = tempDir("mailroom-backup-");
    dataDir = path.join(work, "data");
    running = await startMailroom(configFor(dataDir, key));
    await running.mailroom.servers.create(
      {
        name: "Peer",
        driver: "smtp",
        fromAddress: "app@example.com",
        isDefault: true,
        settings: { host: "127.0.0.1", port: peer.port, security: "none", username: "app", password: PEER_PASSWORD },
      },
      systemActor,
    );
    token = (await running.mailroom.tokens.create({ name: "app", permissions: ["messages.send"] }, systemActor, null)).token;
  });
  afterAll(async () => {
    await running?.stop();
    await peer.close();
    fs.rmSync(work, { recursive: true, force: true });
  });

  const send = (url: string, subject: string) =>
    fetch(`${url}/api/messages`, {
      method: "POST",
      headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
      body: JSON.stringify({ to: "reader@example.com", subject, text: `body of ${subject}` }),
    });

  it("takes a consistent copy while messages are accepted and delivered, 0600, and says the key is not in it", async () => {
    const live = running as RunningMailroom;
    let accepted = 0;
    let stop = false;
    // The application keeps sending for the whole backup: the database is written all along.
    const writer = (async () => {
      while (!stop) {
        const res = await send(live.url, `during backup ${accepted}`);
        expect(res.status).toBe(202);
        accepted++;
      }
    })();
    await waitFor("mail flowing", async () => peer.received.length >= 5);
    backupFile = path.join(work, "backup.db");
    const acceptedBefore = accepted;
    const res = await cli(["backup", "--output", backupFile], { MAILROOM_DATA_DIR: dataDir, MAILROOM_SECRET_KEY: key });
    const acceptedDuring = accepted - acceptedBefore;
    stop = true;
    await writer;
    expect(res.code, res.stderr).toBe(0);
    expect(acceptedDuring, "messages were accepted while the backup ran").toBeGreaterThan(0);
    expect(res.stdout).toContain("The secret key is NOT in the backup");
    expect(res.stdout).toContain("MAILROOM_SECRET_KEY");
    expect(res.stdout).toContain("separately");
    expect(res.stdout).not.toContain(key);
    expect(mode(backupFile)).toBe("600");
    // One self-contained file: nothing of it lives in a -wal beside it.
    expect(fs.existsSync(`${backupFile}-wal`)).toBe(false);
    const integrity = new SQLite(backupFile, { readonly: true });
    expect(integrity.pragma("integrity_check", { simple: true })).toBe("ok");
    integrity.close();
    const statuses = statusesIn(backupFile);
    expect(statuses.sent, JSON.stringify(statuses)).toBeGreaterThanOrEqual(5);
    // The secrets are in it encrypted, never in plain text.
    expect(fs.readFileSync(backupFile).includes(PEER_PASSWORD)).toBe(false);
  });

  it("restore refuses while Mailroom runs on the data folder, and changes nothing", async () => {
    const res = await cli(["restore", "--input", backupFile], { MAILROOM_DATA_DIR: dataDir, MAILROOM_SECRET_KEY: key });
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("stop it first");
    expect(res.stderr).toContain("nothing was changed");
    expect(fs.readdirSync(dataDir).filter((f) => f.includes("restore"))).toEqual([]);
  });

  it("restore refuses clearly without the key, or with another key, before writing anything", async () => {
    const elsewhere = path.join(work, "no-key");
    const none = await cli(["restore", "--input", backupFile], { MAILROOM_DATA_DIR: elsewhere });
    expect(none.code).toBe(1);
    expect(none.stderr).toContain("no key is set: set MAILROOM_SECRET_KEY to that key");
    expect(fs.existsSync(path.join(elsewhere, "mailroom.db"))).toBe(false);
    // The refusal made no key file either: a new key would never read this backup.
    expect(fs.existsSync(path.join(elsewhere, KEY_FILE))).toBe(false);

    const other = await cli(["restore", "--input", backupFile], {
      MAILROOM_DATA_DIR: elsewhere,
      MAILROOM_SECRET_KEY: generateKeyText(),
    });
    expect(other.code).toBe(1);
    expect(other.stderr).toContain("this backup's secrets were encrypted with another key");
    expect(other.stderr).toContain("set MAILROOM_SECRET_KEY to that key");
    expect(fs.existsSync(path.join(elsewhere, "mailroom.db"))).toBe(false);
  });

  it("with the key, the restored Mailroom delivers what was queued and sends new mail through the restored server", async () => {
    await running?.stop();
    running = undefined;
    const restoredDir = path.join(work, "restored");
    const res = await cli(["restore", "--input", backupFile], { MAILROOM_DATA_DIR: restoredDir, MAILROOM_SECRET_KEY: key });
    expect(res.code, res.stderr).toBe(0);
    // The Capture server made at first start, and Peer.
    const inBackup = Object.values(statusesIn(backupFile)).reduce((a, b) => a + b, 0);
    expect(res.stdout).toContain(`2 email server(s), ${inBackup} message(s)`);
    expect(mode(path.join(restoredDir, "mailroom.db"))).toBe("600");

    peer.clear();
    const restored = await startMailroom(configFor(restoredDir, key));
    try {
      // Every message the backup holds ends up sent: those it caught queued or mid-send are delivered now.
      await waitFor("the restored queue to drain", async () => {
        const { total } = await restored.mailroom.messages.list({ status: "queued", limit: 1 });
        const sending = await restored.mailroom.messages.list({ status: "sending", limit: 1 });
        return total === 0 && sending.total === 0;
      });
      const res = await send(restored.url, "after restore");
      expect(res.status).toBe(202);
      const { id } = (await res.json()) as { id: string };
      const message = await waitFor("the new message to be sent", async () => {
        const m = await restored.mailroom.messages.get(id);
        return m.status === "sent" || m.status === "failed" ? m : null;
      });
      expect(message.status).toBe("sent");
      const got = peer.received.find((m) => m.subject === "after restore");
      // The restored server logged in with the password decrypted from the backup.
      expect(got?.user).toBe("app");
    } finally {
      await restored.stop();
    }
  });

  it("a restore over a database keeps the previous one as a dated 0600 file", async () => {
    const before = sha(path.join(dataDir, "mailroom.db"));
    const res = await cli(["restore", "--input", backupFile], { MAILROOM_DATA_DIR: dataDir, MAILROOM_SECRET_KEY: key });
    expect(res.code, res.stderr).toBe(0);
    const kept = fs.readdirSync(dataDir).filter((f) => f.startsWith("mailroom.db.before-restore-"));
    expect(kept).toHaveLength(1);
    expect(res.stdout).toContain(kept[0]);
    expect(mode(path.join(dataDir, kept[0]))).toBe("600");
    // The kept copy is the old database, whole (its -wal content included): it opens and has its messages.
    const keptStatuses = statusesIn(path.join(dataDir, kept[0]));
    expect(Object.values(keptStatuses).reduce((a, b) => a + b, 0)).toBeGreaterThan(
      Object.values(statusesIn(backupFile)).reduce((a, b) => a + b, 0),
    );
    expect(sha(path.join(dataDir, "mailroom.db"))).not.toBe(before);
    expect(fs.readdirSync(dataDir).filter((f) => f.endsWith(".tmp"))).toEqual([]);
  });

  describe("refuses a file that is not a Mailroom backup of this version, and changes nothing", () => {
    const refused = async (file: string, expected: string) => {
      const target = path.join(dataDir, "mailroom.db");
      const before = sha(target);
      const res = await cli(["restore", "--input", file], { MAILROOM_DATA_DIR: dataDir, MAILROOM_SECRET_KEY: key });
      expect(res.code).toBe(1);
      expect(res.stderr).toContain(expected);
      expect(res.stderr).toContain("nothing was changed");
      expect(sha(target)).toBe(before);
    };

    it("random bytes", async () => {
      const file = path.join(work, "random.bin");
      fs.writeFileSync(file, Buffer.alloc(8192, 7));
      await refused(file, "is not a SQLite database or is damaged");
    });

    it("another application's SQLite database", async () => {
      const file = path.join(work, "other.db");
      const db = new SQLite(file);
      db.exec("create table notes (id integer primary key, text text)");
      db.close();
      await refused(file, "not a Mailroom database");
    });

    it("a backup cut short", async () => {
      const file = path.join(work, "cut.db");
      const bytes = fs.readFileSync(backupFile);
      fs.writeFileSync(file, bytes.subarray(0, Math.floor(bytes.length / 2)));
      await refused(file, "damaged");
    });

    it("a backup of a newer schema", async () => {
      const file = path.join(work, "newer.db");
      fs.copyFileSync(backupFile, file);
      const db = new SQLite(file);
      db.prepare("insert into kysely_migration (name, timestamp) values ('999_from_the_future', '2030-01-01')").run();
      db.close();
      await refused(file, "was made by a newer Mailroom (its schema has 999_from_the_future");
    });

    it("a backup whose secret was altered", async () => {
      const file = path.join(work, "altered.db");
      fs.copyFileSync(backupFile, file);
      const db = new SQLite(file);
      const row = db.prepare("select id, secrets from email_servers where name = 'Peer'").get() as {
        id: string;
        secrets: string;
      };
      const secrets = JSON.parse(row.secrets) as Record<string, string>;
      const [k, v] = Object.entries(secrets)[0];
      secrets[k] = `${v.slice(0, -4)}AAAA`;
      db.prepare("update email_servers set secrets = ? where id = ?").run(JSON.stringify(secrets), row.id);
      db.close();
      await refused(file, "was altered or damaged");
    });
  });

  it("on PostgreSQL both commands point at pg_dump / pg_restore and the docs", async () => {
    const env = { MAILROOM_DATA_DIR: path.join(work, "pg"), DATABASE_URL: "postgres://mailroom@127.0.0.1:1/mailroom" };
    const backup = await cli(["backup", "--output", path.join(work, "pg.db")], env);
    expect(backup.code).toBe(1);
    expect(backup.stderr).toContain("pg_dump");
    expect(backup.stderr).toContain("docs/operations.md");
    const restore = await cli(["restore", "--input", backupFile], env);
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain("pg_restore");
  });

  it("a fresh data folder's migrate still works on the restored schema (no migration is lost)", async () => {
    const m = createMailroom(configFor(dataDir, key));
    try {
      expect(await migrateToLatest(m.ctx.db)).toEqual([]);
    } finally {
      await m.close();
    }
  });
});
