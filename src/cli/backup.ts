import fs from "node:fs";
import path from "node:path";
import type { Config } from "../config.js";
import { MailroomError } from "../kernel/errors.js";
import { knownMigrations } from "../storage/db.js";
import { runningMarkerOf, runningProcess } from "../storage/running-marker.js";
import { KEY_FILE, loadSecretBox, type SecretBox } from "../storage/secrets.js";
import { backupSqlite, RestoreRefused, readBackup, replaceSqliteDatabase, sqliteFileOf } from "../storage/sqlite-backup.js";

const POSTGRES_DOCS = "docs/operations.md, section 'Backup and restore on PostgreSQL'";

/** Where the key that reads the backup's secrets is, in words an operator can act on. */
function keyLocation(config: Config): string {
  return config.secretKey
    ? "the key in MAILROOM_SECRET_KEY (set in this Mailroom's environment)"
    : `the key file ${path.join(config.dataDir, KEY_FILE)}`;
}

/** `mailroom backup --output FILE`: a consistent copy of the SQLite database, taken while Mailroom runs. */
export async function backupCommand(config: Config, output: string | undefined): Promise<number> {
  if (config.databaseUrl) {
    console.error(
      `mailroom: DATABASE_URL is a PostgreSQL database: back it up with pg_dump (see ${POSTGRES_DOCS}), and keep the secret key separately.`,
    );
    return 1;
  }
  if (!output) throw new MailroomError("validation_failed", "backup needs --output FILE: where to write the copy.");
  const source = sqliteFileOf(config.dataDir);
  if (!fs.existsSync(source)) {
    throw new MailroomError("validation_failed", `There is no database at ${source}: check MAILROOM_DATA_DIR (or --data-dir).`);
  }
  const target = path.resolve(output);
  if (target === source || target.startsWith(`${source}-`)) {
    throw new MailroomError("validation_failed", `--output ${output} is the live database itself: write the backup elsewhere.`);
  }
  fs.statSync(path.dirname(target)); // a missing folder is named as such, not by the temporary file's name
  const { bytes } = await backupSqlite(source, target);
  console.log(`Backup written to ${target} (${bytes} bytes, readable by this user only).`);
  console.log(
    [
      "",
      "The secret key is NOT in the backup. The email servers' passwords, API keys and OAuth tokens in it",
      `can only be decrypted with ${keyLocation(config)}.`,
      "Keep a copy of that key separately from the backups (not in the same place): without it a restore",
      "loses those secrets; with it, anyone who holds a backup can read them.",
    ].join("\n"),
  );
  return 0;
}

/** `mailroom restore --input FILE`: checks everything first, then replaces the database in one rename. */
export async function restoreCommand(config: Config, input: string | undefined): Promise<number> {
  if (config.databaseUrl) {
    console.error(`mailroom: DATABASE_URL is a PostgreSQL database: restore it with pg_restore (see ${POSTGRES_DOCS}).`);
    return 1;
  }
  if (!input) throw new MailroomError("validation_failed", "restore needs --input FILE: a file made by 'mailroom backup'.");
  try {
    const pid = runningProcess(config.dataDir);
    if (pid !== null) {
      throw new RestoreRefused(
        `Mailroom is running on ${config.dataDir} (process ${pid}): stop it first, then run restore again. ` +
          `If no Mailroom is running there, ${runningMarkerOf(config.dataDir)} was left by a crash: delete it.`,
      );
    }
    const backup = readBackup(input);
    const unknown = backup.migrations.filter((name) => !knownMigrations.includes(name));
    if (unknown.length) {
      throw new RestoreRefused(
        `${input} was made by a newer Mailroom (its schema has ${unknown.join(", ")}, which this version does not know): ` +
          "restore it with that version of Mailroom or a newer one.",
      );
    }
    const keyId = checkSecrets(config, backup.ciphertexts);
    const { previous } = await replaceSqliteDatabase(config.dataDir, input);
    console.log(
      `Restored ${input} into ${sqliteFileOf(config.dataDir)}: ${backup.emailServers} email server(s), ${backup.messages} message(s).`,
    );
    if (backup.ciphertexts.length) console.log(`Its ${backup.ciphertexts.length} secret(s) decrypt with key ${keyId}.`);
    if (previous) console.log(`The previous database is kept as ${previous}.`);
    console.log("Start Mailroom with the same key; it brings the schema up to date and delivers what was queued.");
    return 0;
  } catch (error) {
    if (!(error instanceof RestoreRefused)) throw error;
    console.error(`mailroom: restore refused, nothing was changed: ${error.message}`);
    return 1;
  }
}

/**
 * Decrypts every secret of the backup with the key this Mailroom would start with, so a
 * restore never replaces a working database with one whose secrets are unreadable.
 * Returns the id of the key that reads them.
 */
function checkSecrets(config: Config, ciphertexts: string[]): string | undefined {
  if (ciphertexts.length === 0) return undefined;
  const keyFile = path.join(config.dataDir, KEY_FILE);
  const wanted = [...new Set(ciphertexts.map((c) => c.split(":")[1]))].join(", ");
  // Without MAILROOM_SECRET_KEY nor a key file, loadSecretBox would make a new key: that is never the right one.
  if (!config.secretKey && !fs.existsSync(keyFile)) {
    throw new RestoreRefused(
      `this backup's ${ciphertexts.length} secret(s) were encrypted with key ${wanted}, and no key is set: ` +
        `set MAILROOM_SECRET_KEY to that key (or put the key file of the Mailroom that made the backup at ${keyFile}), then run restore again.`,
    );
  }
  const box: SecretBox = loadSecretBox(config.dataDir, config.secretKey);
  const loaded = box.keys.map((k) => k.id);
  for (const ciphertext of ciphertexts) {
    const id = ciphertext.split(":")[1];
    if (!loaded.includes(id)) {
      throw new RestoreRefused(
        `this backup's secrets were encrypted with another key (${wanted}; this Mailroom has ${loaded.join(", ")} from ${keyLocation(config)}): ` +
          "set MAILROOM_SECRET_KEY to that key (the one in use when the backup was made), then run restore again.",
      );
    }
    try {
      box.decrypt(ciphertext);
    } catch {
      throw new RestoreRefused(
        `a secret in this backup does not decrypt with key ${id}, although the key id matches: the backup was altered or damaged; use another backup file.`,
      );
    }
  }
  return loaded.find((id) => ciphertexts.some((c) => c.split(":")[1] === id));
}
