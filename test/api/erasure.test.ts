import { execFile } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Principal } from "../../src/auth/permissions.js";
import { systemActor } from "../../src/core/audit.js";
import { matchesErasedAddress } from "../../src/core/erasure.js";
import { type Caller, startTestApp, type TestApp } from "../helpers/app.js";
import { availableDialects } from "../helpers/databases.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { auditEntries, createServer, expectError, serverBody } from "./fixtures.js";

const root = fileURLToPath(new URL("../..", import.meta.url));
const run = promisify(execFile);

// The person who asks for erasure, written as their mail was addressed (the case differs).
const TARGET = "jane.doe@example.org";
const AS_SENT = "Jane.Doe@Example.org";
const BODY_MARK = "body-mark-5e1f-for-jane";
const ATTACHMENT_MARK = "attachment-mark-77ab-for-jane";
const SUBJECT_MARK = "subject-mark-c0d3 invoice for Jane";
const KEPT_MARK = "kept-mark-91aa-for-someone-else";

describe.each(await availableDialects())("erasure of a recipient's data on %s", (dialect) => {
  let t: TestApp;
  let peer: SmtpPeer;
  let app: Caller;
  const ids: Record<string, string> = {};
  let captureFolder: string;
  let report: Record<string, unknown>;

  /** Every row of every table, as text (bytes as latin1): where a trace of the address would be. */
  async function everyRow(): Promise<string> {
    const db = t.mailroom.ctx.db;
    const tables =
      dialect === "sqlite"
        ? (await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(db)).rows.map((r) => r.name)
        : (
            await sql<{
              name: string;
            }>`select table_name as name from information_schema.tables where table_schema = current_schema()`.execute(db)
          ).rows.map((r) => r.name);
    const parts: string[] = [];
    for (const table of tables) {
      const { rows } = await sql<Record<string, unknown>>`select * from ${sql.table(table)}`.execute(db);
      for (const row of rows) {
        for (const value of Object.values(row)) parts.push(Buffer.isBuffer(value) ? value.toString("latin1") : String(value));
      }
    }
    return parts.join("\n").toLowerCase();
  }

  /** Every captured file's bytes, lower-cased. */
  function capturedText(): string {
    if (!fs.existsSync(captureFolder)) return "";
    return fs
      .readdirSync(captureFolder)
      .map((f) => fs.readFileSync(path.join(captureFolder, f), "latin1"))
      .join("\n")
      .toLowerCase();
  }

  const send = async (payload: Record<string, unknown>) => {
    const res = await t.request(app, { method: "POST", url: "/api/messages", payload });
    expect(res.statusCode, res.body).toBe(202);
    return res.json().id as string;
  };
  const settled = (id: string, statuses = ["sent", "failed"]) =>
    waitFor(`message ${id} to settle`, async () => {
      const m = await t.mailroom.messages.get(id);
      return statuses.includes(m.status) ? m : null;
    });

  beforeAll(async () => {
    peer = await startSmtpPeer({ security: "none", faults: { rejectRecipients: [TARGET] } });
    t = await startTestApp(dialect, { MAILROOM_POLL_MS: "20", MAILROOM_MAX_ATTEMPTS: "1" });
    const capture = (await t.mailroom.servers.getDefaultRow()) as { id: string; driver: string };
    expect(capture.driver).toBe("capture");
    captureFolder = path.join(t.mailroom.ctx.config.dataDir, "capture", capture.id);
    await t.mailroom.servers.create(
      {
        name: "Peer",
        driver: "smtp",
        fromAddress: "noreply@example.com",
        settings: { host: "127.0.0.1", port: peer.port, security: "none", timeoutSeconds: 5 },
      },
      systemActor,
    );
    // An OAuth server nobody authorized: its mail waits, held.
    await createServer(t, serverBody("gmail", "Waiting"));
    const { token } = await t.mailroom.tokens.create(
      { name: "app", permissions: ["messages.send", "messages.view"] },
      systemActor,
      null,
    );
    app = { headers: { authorization: `Bearer ${token}` } };
    t.mailroom.worker.start();

    const attachment = { filename: "invoice.txt", content: Buffer.from(ATTACHMENT_MARK).toString("base64") };
    ids.to = await send({
      to: { address: AS_SENT, name: "Jane Doe" },
      subject: SUBJECT_MARK,
      // Long: its end, marks included, lives in overflow pages, which a delete frees whole.
      text: `${BODY_MARK}: your address is ${AS_SENT}\n${"z".repeat(20_000)}\n${BODY_MARK} ${AS_SENT}`,
      attachments: [attachment],
    });
    ids.cc = await send({ to: "colleague@example.com", cc: AS_SENT, subject: SUBJECT_MARK, html: `<p>${BODY_MARK}</p>` });
    ids.bcc = await send({ to: "colleague@example.com", bcc: AS_SENT, subject: SUBJECT_MARK, text: BODY_MARK });
    ids.replyTo = await send({ to: "desk@example.com", replyTo: AS_SENT, subject: SUBJECT_MARK, text: BODY_MARK });
    ids.rejected = await send({ server: "Peer", to: AS_SENT, subject: SUBJECT_MARK, text: BODY_MARK });
    ids.held = await send({ server: "Waiting", to: AS_SENT, subject: SUBJECT_MARK, text: BODY_MARK });
    ids.other = await send({ to: "someone.else@example.com", subject: KEPT_MARK, text: KEPT_MARK });
    const admin = (await t.mailroom.users.list({})).items[0] as { id: string };
    const principal: Principal = {
      kind: "user",
      id: admin.id,
      label: "admin",
      email: null,
      superAdmin: true,
      permissions: new Set(),
      serverIds: null,
      userId: admin.id,
    };
    // As an SMTP client sent it: the bytes are kept in message_raw until it is sent.
    ids.raw = (
      await t.mailroom.messages.enqueueRaw(
        {
          server: "Waiting",
          mime: Buffer.from(`From: noreply@example.com\r\nTo: ${AS_SENT}\r\nSubject: ${SUBJECT_MARK}\r\n\r\n${BODY_MARK}\r\n`),
          from: { address: "noreply@example.com" },
          to: [{ address: AS_SENT }],
          cc: [],
          bcc: [],
          replyTo: [],
          subject: SUBJECT_MARK,
          messageId: "raw-1@example.com",
          source: { username: "app" },
        },
        principal,
      )
    ).id;
    for (const id of [ids.to, ids.cc, ids.bcc, ids.replyTo, ids.other]) expect((await settled(id)).status).toBe("sent");
    const rejected = await settled(ids.rejected);
    expect(rejected.status).toBe("failed");
    // The provider's reply quotes the address: a transcript that names it.
    expect(rejected.attempts[0].response.text?.toLowerCase()).toContain(TARGET);
    expect((await t.mailroom.messages.get(ids.held)).status).toBe("held");
    // A failed sign-in as the address is counted under its name.
    await t.request(null, { method: "POST", url: "/api/auth/login", payload: { email: AS_SENT, password: "wrong password!" } });
  });
  afterAll(async () => {
    await t.close();
    await peer.close();
  });

  it("before: the address, bodies and captured copies are stored (so the checks below can fail)", async () => {
    const rows = await everyRow();
    for (const mark of [TARGET, BODY_MARK, SUBJECT_MARK.toLowerCase()]) expect(rows).toContain(mark);
    expect(capturedText()).toContain(TARGET);
    expect(capturedText()).toContain(BODY_MARK);
  });

  it("refuses bad input with a clear 400 and changes nothing", async () => {
    const admin = t.admin;
    const erase = (address: string) =>
      t.request(admin, { method: "DELETE", url: `/api/recipients/${encodeURIComponent(address)}/data` });
    expect(expectError(await erase(`${TARGET}\r\nBcc: x@example.com`), 400, "control_characters").message).toContain("address");
    expect(expectError(await erase(`${"a".repeat(250)}@example.org`), 400, "invalid_address").message).toContain("254");
    expect(expectError(await erase("Jane <jane.doe@example.org>"), 400, "invalid_address").message).toContain("name@example.com");
    expect(expectError(await erase("not-an-address"), 400, "invalid_address").message).toContain("name@example.com");
    expect((await auditEntries(t)).filter((e) => e.action === "recipient.erase")).toEqual([]);
    expect(await everyRow()).toContain(BODY_MARK);
  });

  it("needs messages.erase: messages.view and messages.send are not enough; a server-limited token is refused", async () => {
    const viewer = await t.userWith(["messages.view", "messages.send", "email-servers.update"]);
    const res = await t.request(viewer, { method: "DELETE", url: `/api/recipients/${TARGET}/data` });
    expect(expectError(res, 403, "forbidden").message).toContain("messages.erase");
    const peerId = (await t.mailroom.servers.getRow("Peer")).id;
    const { token } = await t.mailroom.tokens.create(
      { name: "limited eraser", permissions: ["messages.erase"], serverIds: [peerId] },
      systemActor,
      null,
    );
    const limited = await t.request(
      { headers: { authorization: `Bearer ${token}` } },
      { method: "DELETE", url: `/api/recipients/${TARGET}/data` },
    );
    expectError(limited, 403, "server_not_allowed");
    expect(await everyRow()).toContain(BODY_MARK);
  });

  it("erases every body, raw copy, captured copy and provider reply, and reports the counts", async () => {
    const eraser = await t.userWith(["messages.erase"]);
    const res = await t.request(eraser, { method: "DELETE", url: `/api/recipients/${encodeURIComponent(AS_SENT)}/data` });
    expect(res.statusCode, res.body).toBe(200);
    report = res.json();
    expect(report).toMatchObject({
      messages: 7, // to, cc, bcc, reply-to, rejected, held, raw
      cancelled: 2, // held and raw were not sent yet
      rawCopies: 1,
      attempts: 5, // to, cc, bcc, reply-to and the rejected one made one attempt each; the held ones none
      auditEntries: 1, // the failed sign-in as the address
      capturedCopies: 4, // to, cc, bcc (found by id: no header names a bcc), reply-to
      walEmptied: true,
    });
    // A new database needs no rebuild: the log says so.
    if (dialect === "sqlite") expect(t.logs.join("")).toMatch(/"rebuilt":false[^\n]*recipient data erased/);
    expect(report.addressHash).toMatch(/^[0-9a-f]{8}:[0-9a-f]{64}$/);
    expect(report.replacement).toMatch(/^erased-[0-9a-f]{16}@erased\.invalid$/);
  });

  it("leaves no trace of the address or its mail in the database, nor in captured mail; other mail is untouched", async () => {
    const rows = await everyRow();
    for (const mark of [TARGET, BODY_MARK, SUBJECT_MARK.toLowerCase(), ATTACHMENT_MARK]) expect(rows).not.toContain(mark);
    expect(rows).not.toContain(Buffer.from(ATTACHMENT_MARK).toString("base64").toLowerCase());
    expect(capturedText()).not.toContain(TARGET);
    expect(capturedText()).not.toContain(BODY_MARK);
    // Someone else's mail is kept whole, in the log and in the capture folder.
    expect(rows).toContain(KEPT_MARK);
    expect(capturedText()).toContain(KEPT_MARK);
    expect((await t.mailroom.messages.get(ids.other)).subject).toBe(KEPT_MARK);

    if (dialect === "sqlite") {
      // The file itself, as bytes, without a VACUUM: SQLite zeroed what it deleted
      // (secure_delete), the write-ahead log was written home and emptied.
      const file = t.mailroom.ctx.storage.sqlitePath as string;
      const bytes = Buffer.concat([file, `${file}-wal`].filter(fs.existsSync).map((f) => fs.readFileSync(f)))
        .toString("latin1")
        .toLowerCase();
      for (const mark of [TARGET, BODY_MARK, SUBJECT_MARK.toLowerCase(), ATTACHMENT_MARK]) expect(bytes).not.toContain(mark);
      expect(bytes).toContain(KEPT_MARK);
    }
  });

  it("keeps the log's rows: the address replaced, statuses and attempts kept, the unsent cancelled for good", async () => {
    const to = await t.mailroom.messages.get(ids.to);
    expect(to.status).toBe("sent");
    expect(to.to).toEqual([{ address: report.replacement }]);
    expect(to.subject).toBe("");
    const cc = await t.mailroom.messages.get(ids.cc);
    expect(cc.to).toEqual([{ address: "colleague@example.com" }]);
    expect(cc.cc).toEqual([{ address: report.replacement }]);
    const rejected = await t.mailroom.messages.get(ids.rejected);
    expect(rejected.attempts[0]).toMatchObject({ outcome: "recipient", response: { code: 550, text: null } });
    const held = await t.mailroom.messages.get(ids.held);
    expect(held.status).toBe("failed");
    expect(held.lastError?.code).toBe("message_erased");
    const retry = await t.request(t.admin, { method: "POST", url: `/api/messages/${ids.held}/retry` });
    expect(expectError(retry, 409, "message_not_retryable").message).toContain("erased");
    // The delivery log's recipient filter finds the erased row by its replacement only.
    const found = await t.request(t.admin, { method: "GET", url: `/api/messages?recipient=${TARGET}` });
    expect(found.json().total).toBe(0);
  });

  it("records the erasure in the audit log with the address as a keyed hash that can be checked later", async () => {
    const entry = (await auditEntries(t)).find((e) => e.action === "recipient.erase");
    expect(entry).toBeDefined();
    expect(JSON.stringify(entry).toLowerCase()).not.toContain(TARGET);
    expect(JSON.stringify(entry)).toContain(report.addressHash as string);
    expect(matchesErasedAddress(t.mailroom.ctx, report.addressHash as string, AS_SENT)).toBe(true);
    expect(matchesErasedAddress(t.mailroom.ctx, report.addressHash as string, "someone.else@example.com")).toBe(false);
    // Run again, an erasure finds nothing left.
    const again = await t.request(t.admin, { method: "DELETE", url: `/api/recipients/${TARGET}/data` });
    expect(again.json()).toMatchObject({ messages: 0, capturedCopies: 0, rawCopies: 0, addressHash: report.addressHash });
  });

  it("mailroom erase <address> does the same from the command line and prints the counts", async () => {
    const config = t.mailroom.ctx.config;
    const env = {
      ...Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("MAILROOM_") && k !== "DATABASE_URL")),
      MAILROOM_DATA_DIR: config.dataDir,
      MAILROOM_LOG_LEVEL: "silent",
      ...(config.databaseUrl ? { DATABASE_URL: config.databaseUrl } : {}),
    };
    const bad = await run(process.execPath, ["bin/mailroom.js", "erase", "nobody"], { cwd: root, env }).catch((e) => e);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain("name@example.com");
    const { stdout } = await run(process.execPath, ["bin/mailroom.js", "erase", "someone.else@example.com"], { cwd: root, env });
    expect(stdout).toContain("Erased: 1 message(s) named the address (0 not yet sent");
    expect(stdout).toContain("1 captured cop(ies)");
    expect(stdout).not.toContain("someone.else@example.com");
    expect(await everyRow()).not.toContain(KEPT_MARK);
    expect(capturedText()).not.toContain(KEPT_MARK);
  });
});
