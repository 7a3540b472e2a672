import { afterAll, beforeAll, describe, expect, it } from "vitest";
import YAML from "yaml";
import { applyImport, exportServers, planImport, secretEnvName } from "../../src/cli/servers.js";
import { systemActor } from "../../src/core/audit.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";

/** Export and import in process (test/cli/cli.test.ts runs the same through the built command). */
describe.each(await availableDialects())("servers export and import on %s", (dialect) => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startTestApp(dialect);
  });
  afterAll(() => t.close());

  it("names secret variables after the server and the setting", () => {
    expect(secretEnvName("Main SMTP", "password")).toBe("MAILROOM_SECRET_MAIN_SMTP_PASSWORD");
    expect(secretEnvName("bulk-mailgun (eu)", "apiKey")).toBe("MAILROOM_SECRET_BULK_MAILGUN_EU_API_KEY");
    expect(secretEnvName("Ünïcode", "clientSecret")).toMatch(/^MAILROOM_SECRET_[A-Z0-9_]+_CLIENT_SECRET$/);
  });

  it("gives two servers whose names look alike different variables, and imports each its own secret", async () => {
    for (const [name, password] of [
      ["Relay One", "first-password-1"],
      ["relay-one", "second-password-2"],
    ]) {
      await t.mailroom.servers.create(
        { name, driver: "smtp", fromAddress: "a@example.com", settings: { host: "smtp.example.com", password } },
        systemActor,
      );
    }
    const data = await exportServers(t.mailroom);
    const placeholders = data.servers
      .filter((s) => s.name.toLowerCase().startsWith("relay"))
      .map((s) => s.settings.password as string);
    expect(new Set(placeholders).size).toBe(2);
    expect(placeholders.sort()).toEqual(
      ["${MAILROOM_SECRET_RELAY_ONE_PASSWORD_2}", "${MAILROOM_SECRET_RELAY_ONE_PASSWORD}"].sort(),
    );

    // An import with a value for each variable gives each server its own secret back.
    const env: Record<string, string> = {};
    for (const s of data.servers) {
      const name = /^\$\{(.+)\}$/.exec(String(s.settings.password ?? ""))?.[1];
      if (name) env[name] = `imported-${s.name}`;
    }
    const steps = await planImport(t.mailroom, YAML.stringify(data), env);
    await applyImport(t.mailroom, steps);
    expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow("Relay One"))).toEqual({
      password: "imported-Relay One",
    });
    expect(t.mailroom.servers.secretsOf(await t.mailroom.servers.getRow("relay-one"))).toEqual({
      password: "imported-relay-one",
    });
  });

  it("plans without writing, names the bad server, and refuses duplicates within the file", async () => {
    const bad = (servers: unknown[]) => planImport(t.mailroom, YAML.stringify({ version: 1, servers }), {});
    await expect(bad([{ name: "X", driver: "fax", settings: {} }])).rejects.toMatchObject({
      code: "unknown_driver",
      message: expect.stringContaining('servers[0] ("X")'),
    });
    await expect(bad([{ name: "Y", driver: "smtp", settings: { port: "25" } }])).rejects.toMatchObject({
      code: "invalid_setting",
      message: expect.stringContaining("settings.port"),
    });
    await expect(bad([{ name: "Z", driver: "smtp", fromAddress: "not an address", settings: {} }])).rejects.toMatchObject({
      code: "validation_failed",
      message: expect.stringContaining("fromAddress"),
    });
    await expect(
      bad([
        { name: "Same", driver: "capture", settings: {} },
        { name: " SAME ", driver: "capture", settings: {} },
      ]),
    ).rejects.toMatchObject({ code: "name_taken", message: expect.stringContaining("servers[0]") });
    await expect(planImport(t.mailroom, "version: 2\nservers: []\n", {})).rejects.toMatchObject({ code: "validation_failed" });
    await expect(planImport(t.mailroom, "{", {})).rejects.toMatchObject({
      code: "validation_failed",
      message: expect.not.stringContaining("\n"),
    });
  });

  it("an export imported again changes nothing", async () => {
    const data = await exportServers(t.mailroom);
    const steps = await planImport(t.mailroom, JSON.stringify(data), {});
    expect(steps.map((s) => s.action)).toEqual([...data.servers, ...(data.routes ?? [])].map(() => "unchanged"));
  });

  it("exports the route rules with the servers, by name and in order, and imports them into another installation", async () => {
    for (const name of ["Transactional", "Bulk"]) {
      await t.mailroom.servers.create(
        { name, driver: "smtp", fromAddress: "a@example.com", settings: { host: "smtp.example.com" } },
        systemActor,
      );
    }
    await t.mailroom.routes.create(
      { name: "bulk", match: { tag: "newsletter" }, servers: ["Bulk", "Transactional"] },
      systemActor,
    );
    await t.mailroom.routes.create(
      { name: "billing", match: { from: "billing.example.com" }, servers: ["Transactional"] },
      systemActor,
    );
    const data = await exportServers(t.mailroom);
    expect(data.routes).toEqual([
      {
        name: "bulk",
        match: { from: null, token: null, tag: "newsletter", recipientDomain: null },
        servers: ["Bulk", "Transactional"],
      },
      {
        name: "billing",
        match: { from: "billing.example.com", token: null, tag: null, recipientDomain: null },
        servers: ["Transactional"],
      },
    ]);

    const other = await startTestApp(dialect);
    try {
      // A route naming a server neither the file nor the installation has is refused before anything is written.
      const broken = { ...data, routes: [{ name: "x", match: { tag: "t" }, servers: ["Nowhere"] }] };
      await expect(planImport(other.mailroom, JSON.stringify(broken), {})).rejects.toMatchObject({
        code: "email_server_not_found",
        message: expect.stringContaining("Nowhere"),
      });
      expect((await other.mailroom.servers.list()).items.map((s) => s.name)).not.toContain("Bulk");

      await applyImport(other.mailroom, await planImport(other.mailroom, YAML.stringify(data), {}));
      const imported = (await other.mailroom.routes.list()).items;
      expect(imported.map((r) => [r.name, r.position, r.servers.map((s) => s.name)])).toEqual([
        ["bulk", 1, ["Bulk", "Transactional"]],
        ["billing", 2, ["Transactional"]],
      ]);
      const again = await planImport(other.mailroom, YAML.stringify(data), {});
      expect(again.filter((s) => s.route).map((s) => s.action)).toEqual(["unchanged", "unchanged"]);
    } finally {
      await other.close();
    }
  });
});
