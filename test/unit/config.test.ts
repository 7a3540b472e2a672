import path from "node:path";
import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { generateKeyText } from "../../src/storage/secrets.js";

function configError(env: Record<string, string>): ConfigError {
  try {
    loadConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error(`no ConfigError for ${JSON.stringify(env)}`);
}

describe("loadConfig", () => {
  it("has the documented defaults", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({
      port: 8025,
      host: "127.0.0.1",
      publicUrl: "http://localhost:8025",
      dataDir: path.resolve("./data"),
      logLevel: "info",
    });
    expect(config.databaseUrl).toBeUndefined();
    expect(config.secretKey).toBeUndefined();
    expect(config.adminEmail).toBeUndefined();
    // The failure model: three server problems in a row; probes 30 s, 1, 2, 5, 10, then 15 min.
    expect(config.delivery.breakerThreshold).toBe(3);
    expect(config.delivery.probeSchedule).toEqual([30_000, 60_000, 120_000, 300_000, 600_000, 900_000]);
    expect(loadConfig({ MAILROOM_PROBE_SCHEDULE: "0.2, 1" }).delivery.probeSchedule).toEqual([200, 1000]);
  });

  it("reads every variable", () => {
    const key = generateKeyText();
    const config = loadConfig({
      MAILROOM_PORT: "9000",
      MAILROOM_HOST: "0.0.0.0",
      MAILROOM_PUBLIC_URL: "https://mail.example.com/",
      MAILROOM_DATA_DIR: "/var/lib/mailroom",
      DATABASE_URL: "postgres://mailroom:pw@db.example.com:5432/mailroom",
      MAILROOM_SECRET_KEY: key,
      MAILROOM_ADMIN_EMAIL: "admin@example.com",
      MAILROOM_ADMIN_PASSWORD: "a long enough password",
      MAILROOM_LOG_LEVEL: "warn",
      MAILROOM_GOOGLE_TOKEN_URL: "http://127.0.0.1:9999/token",
    });
    expect(config).toMatchObject({
      port: 9000,
      host: "0.0.0.0",
      publicUrl: "https://mail.example.com",
      dataDir: "/var/lib/mailroom",
      databaseUrl: "postgres://mailroom:pw@db.example.com:5432/mailroom",
      secretKey: key,
      adminEmail: "admin@example.com",
      logLevel: "warn",
      oauth: { googleTokenUrl: "http://127.0.0.1:9999/token" },
    });
  });

  it("the public URL defaults to the port", () => {
    expect(loadConfig({ MAILROOM_PORT: "8080" }).publicUrl).toBe("http://localhost:8080");
  });

  it("treats an empty variable as unset", () => {
    const config = loadConfig({
      MAILROOM_PORT: "",
      MAILROOM_HOST: "",
      MAILROOM_LOG_LEVEL: "",
      MAILROOM_SECRET_KEY: "",
      DATABASE_URL: "",
      MAILROOM_PUBLIC_URL: "",
    });
    expect(config).toMatchObject({ port: 8025, host: "127.0.0.1", logLevel: "info", publicUrl: "http://localhost:8025" });
    expect(config.secretKey).toBeUndefined();
    expect(config.databaseUrl).toBeUndefined();
  });

  it("reads the operator's sendmail commands and allowed endpoints", () => {
    const config = loadConfig({
      MAILROOM_SENDMAIL_COMMANDS: '{"postfix": ["/usr/sbin/sendmail", "-i"], "msmtp": ["/usr/bin/msmtp", "-C", "/etc/msmtprc"]}',
      MAILROOM_ALLOWED_ENDPOINTS: "https://Proxy.Example.com:8443, 127.0.0.1:2525 ,[fe80::1]:25,relay.internal",
    });
    expect(config.operator.sendmailCommands).toEqual({
      postfix: { program: "/usr/sbin/sendmail", args: ["-i"] },
      msmtp: { program: "/usr/bin/msmtp", args: ["-C", "/etc/msmtprc"] },
    });
    expect(config.operator.allowedEndpoints).toEqual([
      { protocol: "https:", host: "proxy.example.com", port: 8443 },
      { host: "127.0.0.1", port: 2525 },
      { host: "fe80::1", port: 25 },
      { host: "relay.internal" },
    ]);
    expect(loadConfig({ MAILROOM_SENDMAIL_COMMANDS: "{}" }).operator.sendmailCommands).toEqual({});
  });

  it("accepts several secret keys, comma-separated", () => {
    const [a, b] = [generateKeyText(), generateKeyText()];
    expect(loadConfig({ MAILROOM_SECRET_KEY: `${a}, ${b}` }).secretKey).toBe(`${a},${b}`);
  });

  it.each([
    ["MAILROOM_PORT", "abc"],
    ["MAILROOM_PORT", "-1"],
    ["MAILROOM_PORT", "65536"],
    ["MAILROOM_PORT", "80.5"],
    ["MAILROOM_HOST", "not a host!"],
    ["MAILROOM_HOST", "http://localhost"],
    ["MAILROOM_PUBLIC_URL", "mail.example.com"],
    ["MAILROOM_PUBLIC_URL", "ftp://mail.example.com"],
    ["MAILROOM_LOG_LEVEL", "verbose"],
    ["MAILROOM_LOG_LEVEL", "INFO"],
    ["DATABASE_URL", "mysql://db.example.com/mailroom"],
    ["DATABASE_URL", "not a url"],
    ["MAILROOM_ADMIN_EMAIL", "admin"],
    ["MAILROOM_ADMIN_EMAIL", "admin@localhost"],
    ["MAILROOM_ADMIN_PASSWORD", "short"],
    ["MAILROOM_GOOGLE_AUTH_URL", "not a url"],
    ["MAILROOM_GOOGLE_TOKEN_URL", "file:///etc/passwd"],
    ["MAILROOM_GOOGLE_REVOKE_URL", "revoke"],
    ["MAILROOM_GOOGLE_USERINFO_URL", "userinfo"],
    ["MAILROOM_GOOGLE_ISSUER", "accounts.google.com"],
    ["MAILROOM_MICROSOFT_AUTHORITY", "login.microsoftonline.com"],
    ["MAILROOM_WORKERS", "maybe"],
    ["MAILROOM_RETRY_SCHEDULE", "1m,5m"],
    ["MAILROOM_PROBE_SCHEDULE", "30s"],
    ["MAILROOM_BREAKER_THRESHOLD", "0"],
    ["MAILROOM_WORKER_CONCURRENCY", "0"],
    ["MAILROOM_MAX_ATTEMPTS", "many"],
    ["MAILROOM_SENDMAIL_COMMANDS", "/usr/sbin/sendmail -i"],
    ["MAILROOM_SENDMAIL_COMMANDS", '["/usr/sbin/sendmail"]'],
    ["MAILROOM_SENDMAIL_COMMANDS", '{"postfix": "/usr/sbin/sendmail -i"}'],
    ["MAILROOM_SENDMAIL_COMMANDS", '{"postfix": ["sendmail", "-i"]}'],
    ["MAILROOM_SENDMAIL_COMMANDS", '{"post fix": ["/usr/sbin/sendmail"]}'],
    ["MAILROOM_SENDMAIL_COMMANDS", '{"postfix": []}'],
    ["MAILROOM_ALLOWED_ENDPOINTS", "https://proxy.example.com/mailgun"],
    ["MAILROOM_ALLOWED_ENDPOINTS", "https://user:pw@proxy.example.com"],
    ["MAILROOM_ALLOWED_ENDPOINTS", "proxy.example.com:99999"],
  ])("%s=%s is a ConfigError naming the variable and what it accepts", (name, value) => {
    const error = configError({ [name]: value });
    expect(error.message).toContain(name);
    expect(error.message).not.toContain("\n");
    // Says what to do: "use …" or "must …".
    expect(error.message).toMatch(/use |must /);
  });

  it("never repeats a secret: the secret key, the admin password, a password in DATABASE_URL", () => {
    const shortKey = "c2VjcmV0LWtleS10b28tc2hvcnQ=";
    let error = configError({ MAILROOM_SECRET_KEY: shortKey });
    expect(error.message).toContain("MAILROOM_SECRET_KEY");
    expect(error.message).not.toContain(shortKey);

    error = configError({ MAILROOM_SECRET_KEY: `${generateKeyText()},${shortKey}` });
    expect(error.message).toContain("key 2 of 2");
    expect(error.message).not.toContain(shortKey);

    error = configError({ MAILROOM_ADMIN_PASSWORD: "hunter2" });
    expect(error.message).not.toContain("hunter2");

    error = configError({ DATABASE_URL: "mysql://mailroom:hunter2@db.example.com/mailroom" });
    expect(error.message).toContain("DATABASE_URL");
    expect(error.message).not.toContain("hunter2");
    expect(error.message).toContain("mailroom:***@db.example.com");
  });
});

describe("retention periods (MAILROOM_RETENTION_*)", () => {
  it("keeps bodies 30 days, messages 365 and audit entries for ever by default; off keeps for ever", () => {
    expect(loadConfig({}).retention).toMatchObject({ bodyDays: 30, metadataDays: 365, auditDays: null, batchSize: 500 });
    expect(
      loadConfig({
        MAILROOM_RETENTION_BODY_DAYS: "off",
        MAILROOM_RETENTION_METADATA_DAYS: "off",
        MAILROOM_RETENTION_AUDIT_DAYS: "730",
      }).retention,
    ).toMatchObject({ bodyDays: null, metadataDays: null, auditDays: 730 });
  });

  it("stops the start with one line naming the variable and what it accepts", () => {
    for (const value of ["-1", "0", "1.5", "thirty", "36501"]) {
      expect(configError({ MAILROOM_RETENTION_BODY_DAYS: value }).message).toBe(
        `MAILROOM_RETENTION_BODY_DAYS=${value} is not valid: use whole days from 1 to 36500, or off to keep for ever.`,
      );
    }
    expect(configError({ MAILROOM_RETENTION_AUDIT_DAYS: "forever" }).message).toMatch(/^MAILROOM_RETENTION_AUDIT_DAYS=forever/);
    expect(configError({ MAILROOM_RETENTION_BODY_DAYS: "400" }).message).toBe(
      "MAILROOM_RETENTION_BODY_DAYS is longer than MAILROOM_RETENTION_METADATA_DAYS: bodies (400 days) cannot be kept longer than their messages (365 days); use at most 365.",
    );
    expect(configError({ MAILROOM_RETENTION_BATCH: "0" }).message).toMatch(/^MAILROOM_RETENTION_BATCH=0 is not valid/);
  });
});
