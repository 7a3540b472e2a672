import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import type { InjectOptions } from "fastify";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { exportServers } from "../../src/cli/servers.js";
import { applies } from "../../src/core/settings.js";
import { drivers } from "../../src/drivers/registry.js";
import type { Driver } from "../../src/drivers/types.js";
import type { Settings } from "../../src/kernel/settings.js";
import { KEY_FILE } from "../../src/storage/secrets.js";
import type { Caller } from "../helpers/app.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { fixtureFor, serverBody } from "./fixtures.js";

/** Drivers with at least one secret field: every one of them is exercised. */
const secretDrivers = drivers.filter((d) => d.fields.some((f) => f.secret));
/**
 * The secret fields of a driver's fixture: those of its authentication method (the app-only
 * methods' keys are checked to be PEM or JSON; test/oauth/app-only.test.ts searches for them).
 */
const secretFieldsOf = (driver: Driver) =>
  driver.fields.filter((f) => f.secret && applies(driver, f, fixtureFor(driver.id).settings as Settings));

/**
 * "Secrets never leave": a server of every driver with secrets goes through every
 * operation, then the plain values are searched for everywhere they must not be.
 */
describe.each(await availableDialects())("secrets on %s", (dialect) => {
  let t: TestApp;
  /** Every plain secret value ever sent. */
  const plain: string[] = [];
  /** Every response body the API gave. */
  const responses: string[] = [];
  const ids: Record<string, string> = {};

  const secretValue = (driver: string, key: string) => {
    const value = `s3cr3t-${driver}-${key}-${randomBytes(6).toString("hex")}`;
    plain.push(value);
    return value;
  };

  const call = async (caller: Caller | null, options: InjectOptions) => {
    const res = await t.request(caller, options);
    responses.push(res.body);
    return res;
  };

  beforeAll(async () => {
    t = await startTestApp(dialect);
    // The drivers known to hold secrets must be among those checked; a new one joins by itself.
    expect(secretDrivers.map((d) => d.id)).toEqual(
      expect.arrayContaining(["gmail", "mailgun", "microsoft365", "postmark", "ses", "smtp"]),
    );

    for (const driver of secretDrivers) {
      const settings = fixtureFor(driver.id).settings;
      for (const f of secretFieldsOf(driver)) settings[f.key] = secretValue(driver.id, f.key);
      const res = await call(t.admin, {
        method: "POST",
        url: "/api/email-servers",
        payload: serverBody(driver.id, `Secret ${driver.id}`, { settings }),
      });
      expect(res.statusCode, res.body).toBe(201);
      ids[driver.id] = res.json().id;
    }

    // Read, list and search. (Searching for a secret finds nothing: email-servers.test.ts. It is
    // not done here because the search words a user types are in the request log.)
    for (const id of Object.values(ids)) await call(t.admin, { method: "GET", url: `/api/email-servers/${id}` });
    await call(t.admin, { method: "GET", url: "/api/email-servers?limit=500" });
    await call(t.admin, { method: "GET", url: "/api/email-servers?q=secret" });

    for (const driver of secretDrivers) {
      const id = ids[driver.id];
      const secretKeys = secretFieldsOf(driver).map((f) => f.key);
      // Copy: secrets copied encrypted.
      expect((await call(t.admin, { method: "POST", url: `/api/email-servers/${id}/copy` })).statusCode).toBe(201);
      // PUT with the secrets omitted (kept), then PUT with a new secret value.
      const settings = fixtureFor(driver.id).settings;
      for (const key of secretKeys) delete settings[key];
      let res = await call(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${id}`,
        payload: serverBody(driver.id, `Secret ${driver.id}`, { settings, fromName: "Renamed" }),
      });
      expect(res.statusCode, res.body).toBe(200);
      res = await call(t.admin, {
        method: "PUT",
        url: `/api/email-servers/${id}`,
        payload: serverBody(driver.id, `Secret ${driver.id}`, {
          settings: { ...settings, [secretKeys[0]]: secretValue(driver.id, `${secretKeys[0]}-put`) },
        }),
      });
      expect(res.statusCode, res.body).toBe(200);
      // PATCH a secret to another new value, and a non-secret setting beside it.
      res = await call(t.admin, {
        method: "PATCH",
        url: `/api/email-servers/${id}/settings/${secretKeys[0]}`,
        payload: { value: secretValue(driver.id, `${secretKeys[0]}-patch`) },
      });
      expect(res.statusCode, res.body).toBe(200);
      const plainField = driver.fields.find((f) => !f.secret && !f.readOnly && !f.destination && f.type === "integer");
      if (plainField) {
        res = await call(t.admin, {
          method: "PATCH",
          url: `/api/email-servers/${id}/settings/${plainField.key}`,
          payload: { value: plainField.min ?? 1 },
        });
        expect(res.statusCode, res.body).toBe(200);
      }
    }

    // Refused requests carrying secrets: the error must not echo them.
    const smtpSettings = { ...fixtureFor("smtp").settings, host: "not a host", password: secretValue("smtp", "refused") };
    let res = await call(t.admin, {
      method: "POST",
      url: "/api/email-servers",
      payload: serverBody("smtp", "Refused", { settings: smtpSettings }),
    });
    expect(res.statusCode).toBe(400);
    res = await call(t.admin, {
      method: "PATCH",
      url: `/api/email-servers/${ids.smtp}/settings/password`,
      payload: { value: `${secretValue("smtp", "control")}\r\n` },
    });
    expect(res.statusCode).toBe(400);
    res = await call(t.admin, {
      method: "POST",
      url: "/api/email-servers",
      payload: { ...serverBody("smtp", "Unknown field"), settings: { password: secretValue("smtp", "unknown") }, bogus: 1 },
    });
    expect(res.statusCode).toBe(400);
    res = await call(t.admin, {
      method: "POST",
      url: "/api/email-servers",
      payload: serverBody("mailgun", "Wrong key", {
        settings: { domain: "x.example.com", apiKeyy: secretValue("mailgun", "typo") },
      }),
    });
    expect(res.statusCode).toBe(400);

    // The app's own logger given a request body shaped like the API's redacts secrets too.
    t.mailroom.ctx.log.info(
      { body: { settings: { password: secretValue("smtp", "logged"), apiKey: secretValue("mailgun", "logged") } } },
      "a body",
    );
    t.mailroom.ctx.log.info({ settings: { clientSecret: secretValue("gmail", "logged") } }, "settings");

    await call(t.admin, { method: "GET", url: "/api/audit?limit=500" });
  });
  afterAll(() => t.close());

  it("stored every secret (the test is not vacuous)", async () => {
    expect(plain.length).toBeGreaterThanOrEqual(secretDrivers.length * 3);
    for (const driver of secretDrivers) {
      const secrets = t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow(ids[driver.id]));
      const keys = secretFieldsOf(driver).map((f) => f.key);
      expect(Object.keys(secrets).sort()).toEqual(keys.sort());
      for (const value of Object.values(secrets)) expect(plain).toContain(value);
      const row = await t.mailroom.servers.getRow(ids[driver.id]);
      for (const cipher of Object.values(JSON.parse(row.secrets) as Record<string, string>)) {
        expect(cipher).toMatch(new RegExp(`^mr1:${t.mailroom.ctx.secrets.currentKeyId}:`));
      }
    }
  });

  const expectNoSecret = (where: string, text: string) => {
    expect(text.length, where).toBeGreaterThan(0);
    for (const value of plain) {
      // The random part alone is enough to recognise a leak, even if cut or re-encoded.
      const tail = value.slice(-12);
      expect(text.includes(value) || text.includes(tail), `${where} contains ${value}`).toBe(false);
    }
  };

  it("shows secrets only as {set}", async () => {
    for (const driver of secretDrivers) {
      const view = (await call(t.admin, { method: "GET", url: `/api/email-servers/${ids[driver.id]}` })).json();
      for (const f of secretFieldsOf(driver)) expect(view.settings[f.key]).toEqual({ set: true });
    }
  });

  it("no API response contains a secret", () => {
    expect(responses.length).toBeGreaterThan(secretDrivers.length * 5);
    expectNoSecret("API responses", responses.join("\n"));
  });

  it("no log line contains a secret", () => {
    expect(t.logs.length).toBeGreaterThan(10);
    expectNoSecret("logs", t.logs.join(""));
    expect(t.logs.join("")).toContain("[redacted]");
  });

  it("no audit entry contains a secret, and secret changes are recorded as such", async () => {
    const rows = await t.mailroom.ctx.db.selectFrom("audit_log").selectAll().execute();
    expect(rows.length).toBeGreaterThan(secretDrivers.length * 4);
    expectNoSecret("audit log", JSON.stringify(rows));
    const text = JSON.stringify(rows);
    expect(text).toContain("[secret changed]");
    expect(text).toContain("[secret unchanged]");
  });

  it("the export holds placeholders, never a secret", async () => {
    const data = await exportServers(t.mailroom);
    const text = `${YAML.stringify(data)}\n${JSON.stringify(data)}`;
    expectNoSecret("export", text);
    const smtp = data.servers.find((s) => s.name === "Secret smtp")!;
    expect(smtp.settings.password).toBe("${MAILROOM_SECRET_SECRET_SMTP_PASSWORD}");
  });

  it("the database holds no plain secret", async () => {
    if (t.mailroom.ctx.storage.dialect === "sqlite") {
      const dir = t.mailroom.ctx.config.dataDir;
      const files = fs.readdirSync(dir).filter((f) => f.startsWith("mailroom.db"));
      expect(files).toContain("mailroom.db");
      let bytes = 0;
      for (const file of files) {
        const content = fs.readFileSync(path.join(dir, file));
        bytes += content.length;
        expectNoSecret(file, content.toString("latin1") || " ");
        // SQLite may store text as UTF-16 in some encodings; check that too.
        expectNoSecret(`${file} (utf16)`, content.toString("utf16le") || " ");
      }
      expect(bytes).toBeGreaterThan(4096);
    } else {
      const tables = await sql<{ table_name: string }>`
        select table_name from information_schema.tables where table_schema = 'public' and table_type = 'BASE TABLE'`.execute(
        t.mailroom.ctx.db,
      );
      expect(tables.rows.map((r) => r.table_name)).toEqual(expect.arrayContaining(["email_servers", "audit_log"]));
      for (const { table_name } of tables.rows) {
        const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(table_name)} t`.execute(t.mailroom.ctx.db);
        expectNoSecret(table_name, rows.rows.map((r) => r.row).join("\n") || " ");
      }
    }
  });

  it("the key file in the data folder is mode 0600", () => {
    const file = path.join(t.mailroom.ctx.config.dataDir, KEY_FILE);
    expect((fs.statSync(file).mode & 0o777).toString(8)).toBe("600");
    expectNoSecret("key file", fs.readFileSync(file, "utf8"));
  });
});
