import { createCipheriv, createDecipheriv, createHash, createHmac, hkdfSync, randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { MailroomError } from "../kernel/errors.js";
import { ensurePrivateFolder, tightenPrivateFile } from "./private-files.js";

/**
 * AES-256-GCM for every secret at rest. A ciphertext reads `mr1:<keyId>:<base64url of
 * iv | tag | ciphertext>`; the key id lets several keys live side by side while
 * `mailroom keys rotate` re-encrypts everything with the newest.
 */
const PREFIX = "mr1";
const IV_BYTES = 12;
const TAG_BYTES = 16;

export interface SecretKey {
  id: string;
  key: Buffer;
}

export function keyId(key: Buffer): string {
  return createHash("sha256").update(key).digest("hex").slice(0, 8);
}

export function parseKey(text: string, where: string): SecretKey {
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== 32) {
    throw new Error(`${where}: a key is 32 random bytes in base64 (e.g. from 'openssl rand -base64 32').`);
  }
  return { id: keyId(key), key };
}

export function generateKeyText(): string {
  return randomBytes(32).toString("base64");
}

export class SecretBox {
  /** The first key encrypts; every key decrypts. */
  constructor(readonly keys: SecretKey[]) {
    if (keys.length === 0) throw new Error("SecretBox needs at least one key");
  }

  get currentKeyId(): string {
    return this.keys[0].id;
  }

  encrypt(plain: string): string {
    const { id, key } = this.keys[0];
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", key, iv);
    const body = Buffer.concat([cipher.update(plain, "utf8"), cipher.final()]);
    return `${PREFIX}:${id}:${Buffer.concat([iv, cipher.getAuthTag(), body]).toString("base64url")}`;
  }

  decrypt(token: string): string {
    const [prefix, id, payload] = token.split(":");
    const entry = this.keys.find((k) => k.id === id);
    if (prefix !== PREFIX || !payload || !entry) {
      throw new MailroomError("secret_key_missing", `A stored secret was encrypted with key ${id}, which is not loaded.`);
    }
    const raw = Buffer.from(payload, "base64url");
    try {
      const decipher = createDecipheriv("aes-256-gcm", entry.key, raw.subarray(0, IV_BYTES));
      decipher.setAuthTag(raw.subarray(IV_BYTES, IV_BYTES + TAG_BYTES));
      return Buffer.concat([decipher.update(raw.subarray(IV_BYTES + TAG_BYTES)), decipher.final()]).toString("utf8");
    } catch {
      // GCM's tag check failed (or the payload is cut short): the stored value was altered.
      // Answer with the catalogue's code and its fix instead of crypto's bare message.
      throw new MailroomError(
        "secret_key_missing",
        `A stored secret could not be decrypted with key ${id}: it was altered or damaged; set the secret again.`,
      );
    }
  }

  /**
   * `<keyId>:<hex HMAC-SHA256>` of `value` under a key derived from the current key for
   * `purpose`: it can be checked against a given value later (with that key loaded), but the
   * database alone does not let anyone test guesses. Never the encryption key itself.
   */
  keyedHash(purpose: string, value: string, keyId = this.currentKeyId): string {
    const entry = this.keys.find((k) => k.id === keyId);
    if (!entry) throw new MailroomError("secret_key_missing", `The key ${keyId} is not loaded.`);
    const hashKey = Buffer.from(hkdfSync("sha256", entry.key, Buffer.alloc(0), `mailroom ${purpose}`, 32));
    return `${entry.id}:${createHmac("sha256", hashKey).update(value).digest("hex")}`;
  }

  /** True when the ciphertext was made with an older key. */
  isStale(token: string): boolean {
    return token.split(":")[1] !== this.currentKeyId;
  }
}

export const KEY_FILE = "mailroom.key";

/**
 * Loads the keys: from MAILROOM_SECRET_KEY (comma-separated, newest first) when set,
 * otherwise from the key file in the data folder, created with mode 0600 on first start.
 */
export function loadSecretBox(dataDir: string, secretKeyEnv?: string): SecretBox {
  if (secretKeyEnv) {
    return new SecretBox(secretKeyEnv.split(",").map((k) => parseKey(k, "MAILROOM_SECRET_KEY")));
  }
  const file = path.join(dataDir, KEY_FILE);
  ensurePrivateFolder(dataDir);
  if (!fs.existsSync(file)) {
    // "wx": never overwrite a key another process created a moment ago.
    try {
      fs.writeFileSync(file, `${generateKeyText()}\n`, { mode: 0o600, flag: "wx" });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== "EEXIST") throw error;
    }
  }
  tightenPrivateFile(file);
  const lines = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .filter((l) => l.trim() !== "");
  return new SecretBox(lines.map((l) => parseKey(l, file)));
}

/**
 * Replaces the key file all at once (a crash never leaves it cut short, which would lose
 * every secret) and with mode 0600 even if the old file was readable by others.
 */
function writeKeyFile(file: string, text: string): void {
  const temporary = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(temporary, text, { mode: 0o600 });
  fs.chmodSync(temporary, 0o600);
  fs.renameSync(temporary, file);
}

/** Writes the key file with a new key first, keeping the old ones for decryption. */
export function addKeyToFile(dataDir: string): SecretKey {
  const file = path.join(dataDir, KEY_FILE);
  const text = generateKeyText();
  const old = fs.existsSync(file) ? fs.readFileSync(file, "utf8") : "";
  ensurePrivateFolder(dataDir);
  writeKeyFile(file, `${text}\n${old}`);
  return parseKey(text, file);
}

/** Keeps only the newest key in the file, once nothing is encrypted with the others. */
export function pruneKeyFile(dataDir: string): void {
  const file = path.join(dataDir, KEY_FILE);
  const first = fs
    .readFileSync(file, "utf8")
    .split("\n")
    .find((l) => l.trim() !== "");
  writeKeyFile(file, `${first}\n`);
}
