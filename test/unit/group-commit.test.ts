import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createMailroom, type Mailroom } from "../../src/app.js";
import { migrateToLatest } from "../../src/storage/db.js";
import { GroupCommit } from "../../src/storage/group-commit.js";
import { availableDialects, freshConfig } from "../helpers/databases.js";

describe.each(await availableDialects())("group commit on %s", (dialect) => {
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

  const group = (name: string) => ({ id: name, name, permissions: "[]", created_at: 1, updated_at: 1 });

  it("commits concurrent writes together, and a failing one alone without failing the others", async () => {
    const commits = new GroupCommit(mailroom.ctx.db);
    let transactions = 0;
    const results = await Promise.allSettled(
      Array.from({ length: 40 }, (_, i) =>
        commits.run(async (trx) => {
          transactions++;
          if (i === 7) throw new Error("this one is bad");
          await trx
            .insertInto("groups")
            .values(group(`g${i}`))
            .execute();
          return i;
        }),
      ),
    );
    expect(results.filter((r) => r.status === "fulfilled").map((r) => (r as PromiseFulfilledResult<number>).value)).toEqual(
      Array.from({ length: 40 }, (_, i) => i).filter((i) => i !== 7),
    );
    expect((results[7] as PromiseRejectedResult).reason.message).toBe("this one is bad");
    const rows = await mailroom.ctx.db.selectFrom("groups").select("name").execute();
    expect(rows).toHaveLength(39);
    expect(rows.map((r) => r.name)).not.toContain("g7");
    // The group ran up to the bad job (8 runs) and rolled back; then each job ran alone (40).
    expect(transactions).toBe(48);

    const before = transactions;
    await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        commits.run(async (trx) => {
          transactions++;
          await trx
            .insertInto("groups")
            .values(group(`h${i}`))
            .execute();
        }),
      ),
    );
    expect(transactions - before).toBe(20);
  });
});
