import fs from "node:fs";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Retention } from "../../src/core/retention.js";
import { storeCaptured } from "../../src/drivers/capture/store.js";
import type { MessageStatus } from "../../src/storage/schema.js";
import { startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";

const DAY = 24 * 60 * 60 * 1000;
const BODY = "capture-body-mark-3f9a";
const ATTACHMENT = "capture-attachment-mark-81c2";
const HEADER = "capture-header-mark-5d07";

describe.each(await availableDialects())("retention of captured copies on %s", (dialect) => {
  let t: TestApp;
  let serverId: string;
  let folder: string;
  const base = Date.now();
  // Finished: sent, sent, failed. Not to be purged: queued, held.
  const statuses: MessageStatus[] = ["sent", "sent", "failed", "queued", "held"];
  const ids: string[] = [];
  /** The copy's id (its file name without the extension) of each message. */
  const copies: string[] = [];
  let orphan: string;

  /** A Retention of this Mailroom whose clock reads `offset` from the start of the test. */
  const at = (offset: number) =>
    new Retention(t.mailroom.ctx, t.mailroom.retention.policy, { intervalMs: 60_000, batchSize: 2, clock: () => base + offset });
  const files = () => fs.readdirSync(folder).sort();
  const bytes = (name: string) => fs.readFileSync(path.join(folder, name), "utf8");
  const get = (id: string) => t.request(t.admin, { method: "GET", url: `/api/capture/${serverId}/messages/${id}` });

  beforeAll(async () => {
    t = await startTestApp(dialect);
    const server = (await t.mailroom.servers.getDefaultRow()) as { id: string; driver: string };
    expect(server.driver).toBe("capture");
    serverId = server.id;
    folder = path.join(t.mailroom.ctx.config.dataDir, "capture", serverId);
    t.mailroom.worker.start();
    for (const [i] of statuses.entries()) {
      const res = await t.request(t.admin, {
        method: "POST",
        url: "/api/messages",
        payload: {
          to: `r${i}@example.com`,
          subject: `Invoice ${i}`,
          text: `${BODY}-${i}`,
          headers: { "X-Customer": `${HEADER}-${i}` },
          attachments: [
            { filename: "a.txt", contentType: "text/plain", content: Buffer.from(`${ATTACHMENT}-${i}`).toString("base64") },
          ],
        },
      });
      expect(res.statusCode).toBe(202);
      ids.push(res.json().id);
    }
    await waitFor("every message captured", async () => {
      const rows = await t.mailroom.ctx.db.selectFrom("messages").select("status").where("id", "in", ids).execute();
      return rows.length === ids.length && rows.every((r) => r.status === "sent");
    });
    await t.mailroom.worker.stop();
    for (const [i, id] of ids.entries()) {
      await t.mailroom.ctx.db.updateTable("messages").set({ status: statuses[i] }).where("id", "=", id).execute();
      copies.push(
        files()
          .find((f) => f.endsWith(`-${id}.eml`))
          ?.replace(/\.eml$/, "") as string,
      );
    }
    // A copy whose message this database never had: it follows the periods by its own age.
    orphan = await storeCaptured(
      t.mailroom.ctx.config.dataDir,
      serverId,
      "never-logged",
      Buffer.from(`To: x@example.com\r\nSubject: orphan\r\n\r\n${BODY}-orphan`),
      1000,
    );
  });
  afterAll(() => t.close());

  it("keeps every copy whole before the body period", async () => {
    expect(await at(29 * DAY).purge()).toMatchObject({ bodies: 0, copies: 0 });
    expect(files()).toEqual([...copies, orphan].map((c) => `${c}.eml`).sort());
    for (const [i, copy] of copies.entries()) expect(bytes(`${copy}.eml`)).toContain(`${BODY}-${i}`);
  });

  it("removes a finished message's copy's body with its message's, keeps what names it, and leaves queued and held copies whole", async () => {
    const whole = copies.map((c) => bytes(`${c}.eml`));
    // Batches of 2: four copies due (three finished messages and the orphan) take two.
    expect(await at(31 * DAY).purge()).toMatchObject({ bodies: 3, copies: 4 });
    const day = new Date(base + 31 * DAY).toISOString().slice(0, 10);
    for (const [i, copy] of copies.entries()) {
      const finished = i < 3;
      expect(fs.existsSync(path.join(folder, `${copy}.eml`)), `whole copy of ${statuses[i]}`).toBe(!finished);
      if (!finished) {
        expect(bytes(`${copy}.eml`)).toBe(whole[i]);
        continue;
      }
      const trimmed = bytes(`${copy}.body-removed.eml`);
      for (const gone of [`${BODY}-${i}`, Buffer.from(`${ATTACHMENT}-${i}`).toString("base64"), `${HEADER}-${i}`]) {
        expect(trimmed).not.toContain(gone);
      }
      expect(trimmed).toContain(`r${i}@example.com`);
      expect(trimmed).toContain(`Invoice ${i}`);
      // The message's metadata stays in the log.
      const row = await t.mailroom.ctx.db.selectFrom("messages").selectAll().where("id", "=", ids[i]).executeTakeFirst();
      expect(row).toMatchObject({ subject: `Invoice ${i}`, status: statuses[i] });
      expect(row?.body_purged_at).not.toBeNull();
    }
    expect(bytes(`${orphan}.body-removed.eml`)).not.toContain(BODY);

    // The API and the UI say what happened, not an error.
    const one = await get(copies[0]);
    expect(one.statusCode).toBe(200);
    expect(one.json()).toMatchObject({
      id: copies[0],
      parsed: { subject: "Invoice 0", to: [{ address: "r0@example.com" }], text: null, html: null, attachments: [] },
    });
    expect(one.json().bodyRemovedAt.slice(0, 10)).toBe(day);
    expect((await get(copies[3])).json()).toMatchObject({ bodyRemovedAt: null, parsed: { text: expect.stringContaining(BODY) } });
    const list = await t.request(t.admin, { method: "GET", url: `/api/capture/${serverId}/messages` });
    expect(list.json().total).toBe(6);
    const listed = new Map(list.json().items.map((c: { id: string; bodyRemovedAt: string | null }) => [c.id, c.bodyRemovedAt]));
    expect(String(listed.get(copies[1])).slice(0, 10)).toBe(day);
    expect(listed.get(copies[4])).toBeNull();
    const release = await t.request(t.admin, {
      method: "POST",
      url: `/api/capture/${serverId}/messages/${copies[0]}/release`,
      payload: { server: serverId },
    });
    expect(release.statusCode).toBe(409);
    expect(release.json()).toMatchObject({ code: "message_not_retryable", message: expect.stringContaining("retention") });
  });

  it("does nothing twice: run again, or by two processes at once, nothing more changes", async () => {
    const before = files().map((f) => [f, bytes(f)]);
    const results = await Promise.all([at(31 * DAY).purge(), at(31 * DAY).purge(), at(31 * DAY).purge()]);
    expect(results.reduce((n, r) => n + (r?.copies ?? 0), 0)).toBe(0);
    expect(files().map((f) => [f, bytes(f)])).toEqual(before);

    // A purge stopped between writing a trimmed copy and removing the whole one: the next finishes it.
    fs.writeFileSync(path.join(folder, `${copies[0]}.eml`), `To: r0@example.com\r\n\r\n${BODY}-again`);
    expect((await get(copies[0])).json().bodyRemovedAt).not.toBeNull();
    await at(31 * DAY).purge();
    expect(fs.existsSync(path.join(folder, `${copies[0]}.eml`))).toBe(false);
  });

  it("removes a copy whole with its message after the metadata period; queued and held copies stay", async () => {
    expect(await at(364 * DAY).purge()).toMatchObject({ messages: 0, copies: 0 });
    expect(await at(366 * DAY).purge()).toMatchObject({ messages: 3, copies: 4 });
    expect(files()).toEqual([`${copies[3]}.eml`, `${copies[4]}.eml`]);
    const gone = await get(copies[0]);
    expect(gone.statusCode).toBe(404);
    expect(gone.json()).toMatchObject({ code: "message_not_found", message: expect.stringContaining("retention") });
    const audit = await t.mailroom.ctx.db
      .selectFrom("audit_log")
      .select("after")
      .where("action", "=", "retention.purge")
      .execute();
    expect(audit.map((a) => JSON.parse(a.after ?? "{}").copies)).toEqual([4, 1, 4]);
  });
});
