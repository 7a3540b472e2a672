import fs from "node:fs";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MailroomError } from "../../src/kernel/errors.js";
import {
  addKeyToFile,
  generateKeyText,
  KEY_FILE,
  keyId,
  loadSecretBox,
  parseKey,
  pruneKeyFile,
  SecretBox,
} from "../../src/storage/secrets.js";
import { tempDir } from "../helpers/databases.js";

const box = (...texts: string[]) => new SecretBox(texts.map((t) => parseKey(t, "test")));

function expectSecretKeyMissing(fn: () => unknown, ...mustNotContain: string[]): MailroomError {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught).toBeInstanceOf(MailroomError);
  const error = caught as MailroomError;
  expect(error.code).toBe("secret_key_missing");
  expect(error.status).toBe(500);
  for (const text of mustNotContain) expect(error.message).not.toContain(text);
  return error;
}

describe("SecretBox", () => {
  const keyA = generateKeyText();
  const keyB = generateKeyText();

  it("round-trips any text, including empty and non-ASCII", () => {
    const b = box(keyA);
    for (const plain of ["hunter2", "", "päss wörd ✉️ 密码", "x".repeat(5000), "a:b:c"]) {
      expect(b.decrypt(b.encrypt(plain))).toBe(plain);
    }
  });

  it("writes mr1:<key id>:<payload>, never the plain text, with a fresh IV each time", () => {
    const b = box(keyA);
    const one = b.encrypt("the same secret");
    const two = b.encrypt("the same secret");
    expect(one).toMatch(new RegExp(`^mr1:${b.currentKeyId}:[A-Za-z0-9_-]+$`));
    expect(b.currentKeyId).toBe(keyId(Buffer.from(keyA, "base64")));
    expect(b.currentKeyId).toMatch(/^[0-9a-f]{8}$/);
    expect(one).not.toBe(two);
    expect(one).not.toContain("the same secret");
    expect(Buffer.from(one.split(":")[2], "base64url").toString("latin1")).not.toContain("same secret");
  });

  it("detects tampering: any changed byte of the payload fails the GCM tag", () => {
    const b = box(keyA);
    const token = b.encrypt("do not touch");
    const [prefix, id, payload] = token.split(":");
    const raw = Buffer.from(payload, "base64url");
    for (const index of [0, 12, 20, raw.length - 1]) {
      const changed = Buffer.from(raw);
      changed[index] ^= 0x01;
      expectSecretKeyMissing(() => b.decrypt(`${prefix}:${id}:${changed.toString("base64url")}`), "do not touch");
    }
    // Cut short, or with a payload from another secret's tag.
    expectSecretKeyMissing(() => b.decrypt(`${prefix}:${id}:${raw.subarray(0, 20).toString("base64url")}`));
    expectSecretKeyMissing(() => b.decrypt(`${prefix}:${id}:`));
  });

  it("a secret encrypted with another key is secret_key_missing, naming the key id", () => {
    const token = box(keyA).encrypt("made with A");
    const error = expectSecretKeyMissing(() => box(keyB).decrypt(token), "made with A", keyA);
    expect(error.message).toContain(box(keyA).currentKeyId);
  });

  it("a malformed value is secret_key_missing too", () => {
    expectSecretKeyMissing(() => box(keyA).decrypt("plain text"));
    expectSecretKeyMissing(() => box(keyA).decrypt(`mr0:${box(keyA).currentKeyId}:abc`));
  });

  it("with several keys, the first encrypts and every one decrypts; isStale spots older keys", () => {
    const old = box(keyA);
    const oldToken = old.encrypt("from before");
    const rotated = box(keyB, keyA);
    expect(rotated.currentKeyId).toBe(box(keyB).currentKeyId);
    expect(rotated.decrypt(oldToken)).toBe("from before");
    expect(rotated.isStale(oldToken)).toBe(true);
    const fresh = rotated.encrypt("from now");
    expect(rotated.isStale(fresh)).toBe(false);
    expect(old.isStale(oldToken)).toBe(false);
    expect(box(keyB).decrypt(fresh)).toBe("from now");
  });

  it("refuses a key that is not 32 bytes of base64, and an empty key list", () => {
    expect(() => parseKey("too short", "MAILROOM_SECRET_KEY")).toThrow(/MAILROOM_SECRET_KEY: a key is 32 random bytes/);
    expect(() => parseKey(Buffer.alloc(16).toString("base64"), "x")).toThrow(/32 random bytes/);
    expect(() => new SecretBox([])).toThrow();
  });
});

describe("the key file", () => {
  const dirs: string[] = [];
  afterEach(() => {
    for (const dir of dirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
  });
  const fresh = () => {
    const dir = path.join(tempDir(), "data");
    dirs.push(path.dirname(dir));
    return dir;
  };
  const mode = (file: string) => (fs.statSync(file).mode & 0o777).toString(8);

  it("is created on first start with mode 0600 and reused afterwards", () => {
    const dir = fresh();
    const first = loadSecretBox(dir);
    const file = path.join(dir, KEY_FILE);
    expect(mode(file)).toBe("600");
    const token = first.encrypt("kept across restarts");
    const second = loadSecretBox(dir);
    expect(second.currentKeyId).toBe(first.currentKeyId);
    expect(second.decrypt(token)).toBe("kept across restarts");
  });

  it("is not created when MAILROOM_SECRET_KEY is set; its keys are used, newest first", () => {
    const dir = fresh();
    const [a, b] = [generateKeyText(), generateKeyText()];
    const fromEnv = loadSecretBox(dir, `${b},${a}`);
    expect(fs.existsSync(path.join(dir, KEY_FILE))).toBe(false);
    expect(fromEnv.currentKeyId).toBe(box(b).currentKeyId);
    expect(fromEnv.decrypt(box(a).encrypt("old"))).toBe("old");
  });

  it("rotation adds a new first key, keeps the old ones until pruned, and stays 0600", () => {
    const dir = fresh();
    const before = loadSecretBox(dir);
    const token = before.encrypt("rotate me");
    const added = addKeyToFile(dir);
    const file = path.join(dir, KEY_FILE);
    expect(mode(file)).toBe("600");
    const during = loadSecretBox(dir);
    expect(during.currentKeyId).toBe(added.id);
    expect(during.keys.map((k) => k.id)).toEqual([added.id, before.currentKeyId]);
    const reencrypted = during.encrypt(during.decrypt(token));
    pruneKeyFile(dir);
    expect(mode(file)).toBe("600");
    const after = loadSecretBox(dir);
    expect(after.keys.map((k) => k.id)).toEqual([added.id]);
    expect(after.decrypt(reencrypted)).toBe("rotate me");
    expect(() => after.decrypt(token)).toThrow(MailroomError);
  });

  it("rotation makes a key file that others could read private again", () => {
    const dir = fresh();
    loadSecretBox(dir);
    const file = path.join(dir, KEY_FILE);
    fs.chmodSync(file, 0o644);
    addKeyToFile(dir);
    expect(mode(file)).toBe("600");
    fs.chmodSync(file, 0o644);
    pruneKeyFile(dir);
    expect(mode(file)).toBe("600");
    expect(fs.readdirSync(dir)).toEqual([KEY_FILE]);
  });

  it("a damaged key file is refused with a message naming the file", () => {
    const dir = fresh();
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, KEY_FILE), "not a key\n", { mode: 0o600 });
    expect(() => loadSecretBox(dir)).toThrow(new RegExp(`${KEY_FILE}: a key is 32 random bytes`));
  });
});
