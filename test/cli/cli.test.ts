import { execFile } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { createMailroom, type Mailroom } from "../../src/app.js";
import { loadConfig } from "../../src/config.js";
import { systemActor } from "../../src/core/audit.js";
import { buildServer } from "../../src/http/server.js";
import { migrateToLatest } from "../../src/storage/db.js";
import { generateKeyText, KEY_FILE } from "../../src/storage/secrets.js";
import { availableDialects, freshConfig, tempDir } from "../helpers/databases.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

/** Every migration file, in order: what a first `migrate` applies. */
async function migrationNames(): Promise<string[]> {
  return fs
    .readdirSync(path.join(root, "src/storage/migrations"))
    .filter((f) => /^\d+_.+\.ts$/.test(f))
    .map((f) => f.replace(/\.ts$/, ""))
    .sort();
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without any Mailroom setting of the machine running the tests. */
function cleanEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith("MAILROOM_") || key === "DATABASE_URL") delete env[key];
  return env;
}

async function cli(args: string[], env: Record<string, string>): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, ["bin/mailroom.js", ...args], {
      cwd: root,
      env: { ...cleanEnv(), ...env },
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    if (typeof e.code !== "number") throw error;
    return { code: e.code, stdout: e.stdout ?? "", stderr: e.stderr ?? "" };
  }
}

beforeAll(() => {
  // The CLI runs from dist/, which test/global-setup.ts builds from src/ once before any test
  // file runs (building here again would rewrite dist/ under other files' processes).
  expect(fs.existsSync(path.join(root, "dist/cli/main.js")), "dist/ is not built: run npm run build").toBe(true);
});

describe("configuration errors", () => {
  // Every variable's checks are unit tests (test/unit/config.test.ts); these prove the command
  // turns a ConfigError into one line and a non-zero exit, whatever the variable.
  it.each([
    [{ MAILROOM_PORT: "abc" }, "MAILROOM_PORT"],
    [{ MAILROOM_SECRET_KEY: "too-short" }, "MAILROOM_SECRET_KEY"],
    [{ DATABASE_URL: "mysql://u:hunter2@db/mailroom" }, "DATABASE_URL"],
    [{ DATABASE_URL: "postgres://mailroom:hunter2@127.0.0.1:1/mailroom" }, "DATABASE_URL"],
  ])("%o stops with one line naming %s", async (env, variable) => {
    const dataDir = tempDir();
    try {
      const res = await cli(["migrate"], { MAILROOM_DATA_DIR: dataDir, ...env });
      expect(res.code).not.toBe(0);
      const lines = res.stderr.trim().split("\n");
      expect(lines, res.stderr).toHaveLength(1);
      expect(lines[0]).toContain(variable);
      expect(lines[0]).not.toMatch(/^\s+at /);
      // A password in a URL is not repeated back.
      expect(res.stderr).not.toContain("hunter2");
      expect(res.stdout).toBe("");
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("a port in use stops serve with one line naming MAILROOM_PORT", async () => {
    const blocker = net.createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const port = (blocker.address() as net.AddressInfo).port;
    const dataDir = tempDir();
    try {
      const res = await cli(["serve"], { MAILROOM_DATA_DIR: dataDir, MAILROOM_PORT: String(port), MAILROOM_LOG_LEVEL: "silent" });
      expect(res.code).not.toBe(0);
      expect(res.stderr.trim().split("\n"), res.stderr).toHaveLength(1);
      expect(res.stderr).toContain("MAILROOM_PORT");
      expect(res.stderr).toContain(String(port));
    } finally {
      blocker.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("keys rotate with MAILROOM_SECRET_KEY: new key first, old after; one key alone says how", async () => {
    const dataDir = tempDir();
    const [oldKey, newKey] = [generateKeyText(), generateKeyText()];
    try {
      const base = { MAILROOM_DATA_DIR: dataDir, MAILROOM_LOG_LEVEL: "silent" };
      const before = createMailroom(loadConfig({ ...base, MAILROOM_SECRET_KEY: oldKey }));
      await migrateToLatest(before.ctx.db);
      await before.servers.create(
        { name: "Env key", driver: "postmark", fromAddress: "a@example.com", settings: { serverToken: "env-key-token" } },
        systemActor,
      );
      await before.close();

      const single = await cli(["keys", "rotate"], { ...base, MAILROOM_SECRET_KEY: oldKey });
      expect(single.code, single.stderr).toBe(0);
      expect(single.stdout).toContain("Re-encrypted 0 secret(s)");
      expect(single.stdout).toContain("'NEW,OLD'");

      const rotated = await cli(["keys", "rotate"], { ...base, MAILROOM_SECRET_KEY: `${newKey},${oldKey}` });
      expect(rotated.code, rotated.stderr).toBe(0);
      expect(rotated.stdout).toContain("Re-encrypted 1 secret(s)");
      expect(rotated.stdout).toContain("remove the others");
      expect(fs.existsSync(path.join(dataDir, KEY_FILE))).toBe(false);

      const after = createMailroom(loadConfig({ ...base, MAILROOM_SECRET_KEY: newKey }));
      try {
        expect(after.servers.secretsOf(await after.servers.getRow("Env key"))).toEqual({ serverToken: "env-key-token" });
      } finally {
        await after.close();
      }
    } finally {
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("a wrong flag value is refused the same way, naming the variable it stands for", async () => {
    const res = await cli(["migrate", "--port", "abc"], { MAILROOM_DATA_DIR: "/nonexistent" });
    expect(res.code).not.toBe(0);
    expect(res.stderr.trim().split("\n")).toHaveLength(1);
    expect(res.stderr).toContain("MAILROOM_PORT");
  });

  it("an unknown command exits 2 with usage help", async () => {
    const res = await cli(["frobnicate"], { MAILROOM_DATA_DIR: "/nonexistent" });
    expect(res.code).toBe(2);
    expect(res.stderr).toContain("unknown command 'frobnicate'");
    const help = await cli(["--help"], {});
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("servers export");
  });
});

describe.each(await availableDialects())("the mailroom command on %s", (dialect) => {
  let env: Record<string, string>;
  let dataDir: string;
  let drop: () => Promise<void>;
  let mailroom: Mailroom;
  const smtpPassword = "cli-smtp-password-7f3a9c";
  const mailgunKey = "cli-mailgun-key-52be01";

  /** A Mailroom in this process on the same database, to check what the CLI did. */
  const open = () => {
    const m = createMailroom({ ...configOf(), logLevel: "silent" });
    return m;
  };
  let configOf: () => ReturnType<typeof createMailroom>["ctx"]["config"];

  beforeAll(async () => {
    const fresh = await freshConfig(dialect);
    drop = fresh.drop;
    dataDir = fresh.config.dataDir;
    configOf = () => fresh.config;
    env = {
      MAILROOM_DATA_DIR: dataDir,
      MAILROOM_LOG_LEVEL: "silent",
      ...(fresh.config.databaseUrl ? { DATABASE_URL: fresh.config.databaseUrl } : {}),
    };
  });
  afterAll(async () => {
    await mailroom?.close();
    await drop();
  });

  it("migrate applies the migrations once", async () => {
    const first = await cli(["migrate"], env);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/^Applied: 001_initial, 002_messages/);
    expect(first.stdout.trim().split(": ")[1].split(", ")).toEqual(await migrationNames());
    const again = await cli(["migrate"], env);
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe("The database is up to date.");
    // The key file was created with mode 0600.
    expect((fs.statSync(path.join(dataDir, KEY_FILE)).mode & 0o777).toString(8)).toBe("600");
    mailroom = open();
    await mailroom.servers.create(
      {
        name: "Main SMTP",
        driver: "smtp",
        fromAddress: "noreply@example.com",
        fromName: "Example",
        settings: { host: "smtp.example.com", username: "relay", password: smtpPassword },
        isDefault: true,
      },
      systemActor,
    );
    await mailroom.servers.create(
      {
        name: "Bulk Mailgun",
        driver: "mailgun",
        fromAddress: "news@example.com",
        settings: { domain: "mg.example.com", apiKey: mailgunKey, region: "eu" },
      },
      systemActor,
    );
  });

  it("user create prints a one-time password that signs in through the API", async () => {
    const res = await cli(["user", "create", "alice@example.com", "--name", "Alice"], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toContain("Created user alice@example.com.");
    const password = /One-time password: (\S+)/.exec(res.stdout)?.[1];
    expect(password).toMatch(/^\S{20}$/);

    const app = await buildServer(mailroom);
    try {
      const login = await app.inject({
        method: "POST",
        url: "/api/auth/login",
        payload: { email: "alice@example.com", password },
      });
      expect(login.statusCode, login.body).toBe(200);
      expect(login.json().user).toMatchObject({ email: "alice@example.com", name: "Alice", superAdmin: false });
    } finally {
      await app.close();
    }

    const admin = await cli(["user", "create", "root@example.com", "--super-admin"], env);
    expect(admin.code, admin.stderr).toBe(0);
    expect(admin.stdout).toContain("Created super admin root@example.com.");

    const duplicate = await cli(["user", "create", "ALICE@example.com"], env);
    expect(duplicate.code).toBe(1);
    expect(duplicate.stderr.trim()).toMatch(/^mailroom: A user with the email alice@example.com already exists\.$/);

    const audit = await mailroom.ctx.db.selectFrom("audit_log").selectAll().where("action", "=", "user.create").execute();
    expect(audit.map((a) => a.actor_type)).toEqual(expect.arrayContaining(["cli"]));
    expect(JSON.stringify(audit)).not.toContain(password);
  });

  it("user reset-password replaces the password", async () => {
    const res = await cli(["user", "reset-password", "alice@example.com"], env);
    expect(res.code, res.stderr).toBe(0);
    const password = /New one-time password for alice@example.com: (\S+)/.exec(res.stdout)?.[1];
    expect(password).toBeDefined();
    expect(await mailroom.users.authenticate("alice@example.com", password!)).not.toBeNull();
    const unknown = await cli(["user", "reset-password", "nobody@example.com"], env);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain("nobody@example.com");
  });

  it("token create prints a token that works as Bearer with exactly its permission", async () => {
    const res = await cli(
      ["token", "create", "--name", "ticketing", "--permission", "messages.send", "--server", "Main SMTP"],
      env,
    );
    expect(res.code, res.stderr).toBe(0);
    const token = res.stdout.trim().split("\n").at(-1)!;
    expect(token).toMatch(/^mrt_[0-9a-f]{16}_[A-Za-z0-9_-]{32}$/);
    const app = await buildServer(mailroom);
    try {
      const me = await app.inject({ method: "GET", url: "/api/auth/me", headers: { authorization: `Bearer ${token}` } });
      expect(me.statusCode, me.body).toBe(200);
      const main = await mailroom.servers.get("Main SMTP");
      expect(me.json().token).toMatchObject({ label: "token ticketing", permissions: ["messages.send"], serverIds: [main.id] });
      const list = await app.inject({ method: "GET", url: "/api/email-servers", headers: { authorization: `Bearer ${token}` } });
      expect(list.statusCode).toBe(403);
      expect(list.json().code).toBe("forbidden");
    } finally {
      await app.close();
    }
    const bad = await cli(["token", "create", "--name", "x", "--permission", "everything"], env);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("unknown permission 'everything'");
    const noServer = await cli(["token", "create", "--name", "x", "--permission", "messages.send", "--server", "Nope"], env);
    expect(noServer.code).toBe(1);
    expect(noServer.stderr).toContain("Nope");
  });

  it("servers list and show never print a secret", async () => {
    const list = await cli(["servers", "list"], env);
    expect(list.code, list.stderr).toBe(0);
    expect(list.stdout).toMatch(/^\* Main SMTP {2}\[smtp\] {2}ready/m);
    expect(list.stdout).toMatch(/^ {2}Bulk Mailgun {2}\[mailgun\] {2}ready/m);
    const show = await cli(["servers", "show", "main smtp"], env);
    expect(show.code, show.stderr).toBe(0);
    expect(show.stdout).toContain("Main SMTP (default)  [smtp]  ready");
    expect(show.stdout).toContain('host: "smtp.example.com"');
    expect(show.stdout).toContain("password: [set]");
    for (const out of [list.stdout, show.stdout]) {
      expect(out).not.toContain(smtpPassword);
      expect(out).not.toContain(mailgunKey);
    }
    const missing = await cli(["servers", "show", "Nope"], env);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain("'Nope'");
  });

  let exportFile: string;
  it("servers export writes YAML (or JSON) with secrets as ${MAILROOM_SECRET_...} placeholders", async () => {
    const res = await cli(["servers", "export"], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).not.toContain(smtpPassword);
    expect(res.stdout).not.toContain(mailgunKey);
    const data = YAML.parse(res.stdout);
    expect(data.version).toBe(1);
    const smtp = data.servers.find((s: { name: string }) => s.name === "Main SMTP");
    expect(smtp).toMatchObject({
      driver: "smtp",
      isDefault: true,
      settings: { host: "smtp.example.com", username: "relay", password: "${MAILROOM_SECRET_MAIN_SMTP_PASSWORD}" },
    });
    const mailgun = data.servers.find((s: { name: string }) => s.name === "Bulk Mailgun");
    expect(mailgun.settings.apiKey).toBe("${MAILROOM_SECRET_BULK_MAILGUN_API_KEY}");

    exportFile = path.join(dataDir, "servers.json");
    const json = await cli(["servers", "export", "--output", exportFile], env);
    expect(json.code, json.stderr).toBe(0);
    expect(JSON.parse(fs.readFileSync(exportFile, "utf8"))).toEqual(data);
    expect(fs.readFileSync(exportFile, "utf8")).not.toContain(smtpPassword);
  });

  it("servers import --dry-run shows the changes and changes nothing", async () => {
    const data = JSON.parse(fs.readFileSync(exportFile, "utf8"));
    const smtp = data.servers.find((s: { name: string }) => s.name === "Main SMTP");
    smtp.settings.host = "relay.example.org";
    smtp.settings.port = 465;
    smtp.settings.security = "tls";
    data.servers.push({
      name: "Imported Postmark",
      driver: "postmark",
      fromAddress: "hello@example.com",
      fromName: "Hello",
      isDefault: false,
      settings: { serverToken: "${MAILROOM_SECRET_IMPORTED_POSTMARK_SERVER_TOKEN}" },
    });
    const file = path.join(dataDir, "import.yaml");
    fs.writeFileSync(file, YAML.stringify(data));

    const before = {
      servers: JSON.stringify((await mailroom.servers.list()).items),
      audit: (await mailroom.ctx.db.selectFrom("audit_log").select("id").execute()).length,
    };
    const importEnv = {
      ...env,
      MAILROOM_SECRET_MAIN_SMTP_PASSWORD: "imported-smtp-password-1",
      MAILROOM_SECRET_IMPORTED_POSTMARK_SERVER_TOKEN: "imported-postmark-token-2",
    };
    const dry = await cli(["servers", "import", file, "--dry-run"], importEnv);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.stdout).toMatch(/^update {4}Main SMTP$/m);
    expect(dry.stdout).toContain('host: "smtp.example.com" → "relay.example.org"');
    expect(dry.stdout).toContain("port: 587 → 465");
    expect(dry.stdout).toContain("password: [secret from the environment]");
    expect(dry.stdout).toMatch(/^create {4}Imported Postmark$/m);
    expect(dry.stdout).toMatch(/^unchanged Bulk Mailgun$/m);
    expect(dry.stdout).toContain("BULK_MAILGUN_API_KEY is not set");
    expect(dry.stdout).toContain("Dry run: nothing was changed.");
    expect(dry.stdout).not.toContain("imported-smtp-password-1");
    expect(JSON.stringify((await mailroom.servers.list()).items)).toBe(before.servers);
    expect((await mailroom.ctx.db.selectFrom("audit_log").select("id").execute()).length).toBe(before.audit);

    const real = await cli(["servers", "import", file], importEnv);
    expect(real.code, real.stderr).toBe(0);
    const main = await mailroom.servers.getRow("Main SMTP");
    expect(mailroom.servers.toView(main).settings).toMatchObject({ host: "relay.example.org", port: 465, security: "tls" });
    expect(mailroom.servers.secretsOf(main)).toEqual({ password: "imported-smtp-password-1" });
    const postmark = await mailroom.servers.getRow("Imported Postmark");
    expect(mailroom.servers.secretsOf(postmark)).toEqual({ serverToken: "imported-postmark-token-2" });
    expect(mailroom.servers.toView(postmark).status).toBe("ready");
    // The secret whose variable was not set is kept.
    expect(mailroom.servers.secretsOf(await mailroom.servers.getRow("Bulk Mailgun"))).toEqual({ apiKey: mailgunKey });

    // Importing the same file again changes nothing.
    const again = await cli(["servers", "import", file, "--dry-run"], env);
    expect(again.stdout).toMatch(/^unchanged Main SMTP$/m);
    expect(again.stdout).toMatch(/^unchanged Imported Postmark$/m);
  });

  it("servers import checks every server before writing any", async () => {
    const file = path.join(dataDir, "bad.yaml");
    fs.writeFileSync(
      file,
      YAML.stringify({
        version: 1,
        servers: [
          { name: "Good One", driver: "capture", fromAddress: "a@example.com", settings: {} },
          { name: "Bad\nName", driver: "capture", fromAddress: "a@example.com", settings: {} },
        ],
      }),
    );
    const before = JSON.stringify((await mailroom.servers.list()).items);
    const res = await cli(["servers", "import", file], env);
    expect(res.code).not.toBe(0);
    expect(res.stderr).toContain("servers[1]");
    expect(JSON.stringify((await mailroom.servers.list()).items)).toBe(before);

    fs.writeFileSync(
      file,
      YAML.stringify({
        version: 1,
        servers: [
          { name: "Twice", driver: "capture", fromAddress: "a@example.com", settings: {} },
          { name: "twice", driver: "capture", fromAddress: "b@example.com", settings: {} },
        ],
      }),
    );
    const twice = await cli(["servers", "import", file], env);
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toContain("twice");
    expect(JSON.stringify((await mailroom.servers.list()).items)).toBe(before);

    const missingFile = path.join(dataDir, "no-such-file.yaml");
    const absent = await cli(["servers", "import", missingFile], env);
    expect(absent.code).toBe(1);
    expect(absent.stderr.trim()).toBe(`mailroom: cannot use ${missingFile}: no such file or directory.`);

    fs.writeFileSync(file, "servers: [");
    const broken = await cli(["servers", "import", file], env);
    expect(broken.code).toBe(1);
    expect(broken.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("keys rotate re-encrypts every secret with a new key and drops the old one", async () => {
    const keyFile = path.join(dataDir, KEY_FILE);
    const oldKey = fs.readFileSync(keyFile, "utf8").trim();
    const oldKeyId = mailroom.ctx.secrets.currentKeyId;
    const before = await mailroom.ctx.db.selectFrom("email_servers").select(["name", "secrets"]).execute();
    expect(before.some((r) => r.secrets.includes(`mr1:${oldKeyId}:`))).toBe(true);

    // An authorized OAuth server: its tokens are secrets under the same key.
    const gmail = await mailroom.servers.create(
      {
        name: "Rotated Gmail",
        driver: "gmail",
        fromAddress: "me@example.com",
        settings: { clientId: "id", clientSecret: "cli-gmail-secret" },
      },
      systemActor,
    );
    const now = Date.now();
    await mailroom.ctx.db
      .insertInto("oauth_tokens")
      .values({
        server_id: gmail.id,
        provider: "google",
        account: "me@example.com",
        scopes: "https://mail.google.com/",
        refresh_token: mailroom.ctx.secrets.encrypt("cli-refresh-token"),
        access_token: mailroom.ctx.secrets.encrypt("cli-access-token"),
        access_expires_at: now + 3_600_000,
        access_obtained_at: now,
        grant_expires_at: null,
        generation: 1,
        lease_owner: null,
        lease_until: null,
        refreshed_at: now,
        refresh_error_code: null,
        refresh_error: null,
        refresh_error_at: null,
        created_at: now,
        updated_at: now,
      })
      .execute();

    // An alert channel's Slack URL is a secret under the same key too.
    const slackUrl = "https://hooks.slack.example/services/T0/B0/cli-slack-secret";
    const slack = await mailroom.alerts.channels.create({ name: "Rotated Slack", type: "slack", url: slackUrl }, systemActor);

    const res = await cli(["keys", "rotate"], env);
    expect(res.code, res.stderr).toBe(0);
    expect(res.stdout).toMatch(/^Re-encrypted 7 secret\(s\), OAuth tokens included, with key [0-9a-f]{8}\./);

    const newKey = fs.readFileSync(keyFile, "utf8").trim();
    expect(newKey).not.toBe(oldKey);
    expect(newKey.split("\n")).toHaveLength(1);
    expect(newKey).not.toContain(oldKey);
    expect((fs.statSync(keyFile).mode & 0o777).toString(8)).toBe("600");

    // A Mailroom started now (new key only) reads every secret.
    await mailroom.close();
    mailroom = open();
    expect(mailroom.ctx.secrets.currentKeyId).not.toBe(oldKeyId);
    const after = await mailroom.ctx.db.selectFrom("email_servers").selectAll().execute();
    expect(after.map((r) => r.secrets).join()).not.toContain(`mr1:${oldKeyId}:`);
    expect(mailroom.servers.secretsOf(await mailroom.servers.getRow("Main SMTP"))).toEqual({
      password: "imported-smtp-password-1",
    });
    expect(mailroom.servers.secretsOf(await mailroom.servers.getRow("Bulk Mailgun"))).toEqual({ apiKey: mailgunKey });
    const tokens = await mailroom.ctx.db
      .selectFrom("oauth_tokens")
      .selectAll()
      .where("server_id", "=", gmail.id)
      .executeTakeFirstOrThrow();
    expect(mailroom.ctx.secrets.decrypt(tokens.refresh_token)).toBe("cli-refresh-token");
    expect(mailroom.ctx.secrets.decrypt(tokens.access_token!)).toBe("cli-access-token");
    expect(mailroom.alerts.channels.secretOf(await mailroom.alerts.channels.getRow(slack.id))).toBe(slackUrl);
    const audit = await mailroom.ctx.db.selectFrom("audit_log").selectAll().where("action", "=", "keys.rotate").execute();
    expect(audit).toHaveLength(1);
    expect(audit[0].actor_type).toBe("cli");
  });
});
