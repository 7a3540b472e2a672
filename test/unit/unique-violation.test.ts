import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom, type Mailroom } from "../../src/app.js";
import { systemActor } from "../../src/core/audit.js";
import { migrateToLatest } from "../../src/storage/db.js";
import { isUniqueViolation } from "../../src/storage/dialect.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";

describe.each(await availableDialects())("unique violations on %s", (dialect) => {
  let mailroom: Mailroom;
  let drop: () => Promise<void>;
  beforeAll(async () => {
    const fresh = await freshConfig(dialect);
    drop = fresh.drop;
    mailroom = createMailroom(fresh.config);
    await migrateToLatest(mailroom.ctx.db);
  });
  afterAll(async () => {
    await mailroom.close();
    await drop();
  });

  /** Inserts a copy of the first server row with changes, returning what the database threw. */
  async function insertCopy(changes: { id: string; name: string; is_default: number | null }): Promise<unknown> {
    const row = await mailroom.ctx.db.selectFrom("email_servers").selectAll().executeTakeFirstOrThrow();
    try {
      await mailroom.ctx.db
        .insertInto("email_servers")
        .values({ ...row, ...changes })
        .execute();
    } catch (error) {
      return error;
    }
    throw new Error("the insert was accepted");
  }

  it("names the index a duplicate hit, by the driver's error code", async () => {
    await mailroom.servers.create(
      { name: "Relay", driver: "capture", fromAddress: "app@example.com", isDefault: true },
      systemActor,
    );
    const sameName = await insertCopy({ id: "copy-1", name: "RELAY", is_default: null });
    expect(isUniqueViolation(sameName, "email_servers_name")).toBe(true);
    expect(isUniqueViolation(sameName, "email_servers_default")).toBe(false);

    const secondDefault = await insertCopy({ id: "copy-2", name: "Other", is_default: 1 });
    expect(isUniqueViolation(secondDefault, "email_servers_name")).toBe(false);
  });

  it("is false for errors that are no unique violation", () => {
    expect(isUniqueViolation(new Error("UNIQUE constraint failed: index 'email_servers_name'"), "email_servers_name")).toBe(
      false,
    );
    expect(isUniqueViolation(undefined, "email_servers_name")).toBe(false);
  });
});
