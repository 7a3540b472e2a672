/**
 * The SMTP conversation itself, command by command: what is offered when, what each refusal
 * says, the limits. Real clients (nodemailer, smtplib, msmtp) are in clients.test.ts.
 */

import path from "node:path";
import SQLite from "better-sqlite3";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { availableDialects } from "../helpers/databases.js";
import { dialog, type IntakeHarness, plain, rfc822, startIntake } from "./harness.js";

const dialects = await availableDialects();

const FROM = "noreply@mailroom.localhost";

describe.each(dialects)("SMTP submission on %s", (dialect) => {
  let h: IntakeHarness;
  let token: string;
  beforeAll(async () => {
    h = await startIntake(dialect, { MAILROOM_SMTP_MAX_RECIPIENTS: "3", MAILROOM_SMTP_AUTH_FAILURES: "3" });
    token = await h.token("ci-runner");
  });
  afterEach(() => {
    h.remote = false;
  });
  afterAll(() => h?.close());

  async function loggedIn(port = h.port) {
    const d = await dialog(port);
    await d.send("EHLO printer.local");
    expect(await d.send(`AUTH PLAIN ${plain("scanner-3rd-floor", token)}`)).toMatch(/^235 /);
    return d;
  }

  it("greets, and lists PIPELINING, 8BITMIME, SMTPUTF8, SIZE, STARTTLS and AUTH to a loopback client", async () => {
    const d = await dialog(h.port);
    expect(d.greeting).toMatch(/^220 localhost ESMTP Mailroom SMTP submission/);
    const ehlo = await d.send("EHLO app.local");
    for (const feature of ["PIPELINING", "8BITMIME", "SMTPUTF8", "STARTTLS", "AUTH PLAIN LOGIN", `SIZE ${25 * 1024 * 1024}`]) {
      expect(ehlo).toContain(feature);
    }
    d.close();
  });

  it("offers AUTH to a remote client only after STARTTLS, and refuses MAIL before AUTH", async () => {
    h.remote = true;
    const d = await dialog(h.port);
    const before = await d.send("EHLO remote.example");
    expect(before).toContain("STARTTLS");
    expect(before).not.toContain("AUTH");
    expect(await d.send(`AUTH PLAIN ${plain("x", token)}`)).toMatch(/^50[0-3] /);
    expect(await d.send(`MAIL FROM:<${FROM}>`)).toMatch(/^530 5\.7\.0 Authentication required/);
    await d.startTls(h.ca);
    const after = await d.send("EHLO remote.example");
    expect(after).toContain("AUTH PLAIN LOGIN");
    expect(await d.send(`AUTH PLAIN ${plain("x", token)}`)).toMatch(/^235 /);
    expect(await d.send(`MAIL FROM:<${FROM}>`)).toMatch(/^250 /);
    d.close();
  });

  it("on the implicit TLS port offers AUTH at once", async () => {
    h.remote = true;
    const d = await dialog(h.tlsPort, { tls: { ca: h.ca } });
    expect(await d.send("EHLO remote.example")).toContain("AUTH PLAIN LOGIN");
    d.close();
  });

  it("answers a wrong, a revoked and an unpermitted token with 535 5.7.8 and a clear text", async () => {
    const d = await dialog(h.port);
    await d.send("EHLO app.local");
    const wrong = await d.send(`AUTH PLAIN ${plain("app", "hunter2")}`);
    expect(wrong).toMatch(/^535 5\.7\.8 Authentication failed: the password must be a Mailroom API token/);

    const revoked = await h.token("old");
    const id = /^mrt_([0-9a-f]+)_/.exec(revoked)?.[1] as string;
    await h.t.mailroom.tokens.revoke(id, systemActor);
    expect(await d.send(`AUTH PLAIN ${plain("app", revoked)}`)).toMatch(/^535 5\.7\.8 .*not revoked or expired/);

    const viewer = await h.token("viewer", { permissions: ["messages.view"] });
    expect(await d.send(`AUTH PLAIN ${plain("app", viewer)}`)).toMatch(/^535 5\.7\.8 .*lacks the messages\.send permission/);
    d.close();
    h.advance(16 * 60 * 1000); // these failures must not limit the next test
  });

  it("limits failed logins per address, and lets it try again once the window has passed", async () => {
    const d = await dialog(h.port);
    await d.send("EHLO app.local");
    for (let i = 0; i < 3; i++) expect(await d.send(`AUTH PLAIN ${plain("app", `mrt_${i}`)}`)).toMatch(/^535 /);
    // Even the right token is refused while the address is limited.
    expect(await d.send(`AUTH PLAIN ${plain("app", token)}`)).toMatch(/^454 4\.7\.0 Too many failed logins/);
    h.advance(15 * 60 * 1000 + 1);
    expect(await d.send(`AUTH PLAIN ${plain("app", token)}`)).toMatch(/^235 /);
    d.close();
  });

  it("accepts a message only once it is stored, and names its Mailroom id", async () => {
    const d = await loggedIn();
    const replies = await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<someone@example.com>", "DATA"]);
    expect(replies.map((r) => r.slice(0, 3))).toEqual(["250", "250", "354"]);
    const done = await d.data(`${rfc822({ From: FROM, To: "someone@example.com", Subject: "Pipelined" })}.\r\n`);
    const id = /^250 2\.6\.0 Accepted: queued as (\S+)$/.exec(done)?.[1];
    expect(id, done).toBeDefined();
    const row = await h.t.mailroom.messages.get(id as string);
    expect(row).toMatchObject({ status: "queued", subject: "Pipelined", to: [{ address: "someone@example.com" }] });
    expect(row.source).toMatchObject({
      kind: "smtp",
      by: "token ci-runner",
      username: "scanner-3rd-floor",
      clientIp: "127.0.0.1",
      ehlo: "printer.local",
      mailFrom: FROM,
    });
    d.close();
  });

  it("refuses a From the server may not send as with 550 5.7.1 and the reason", async () => {
    const d = await loggedIn();
    await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<someone@example.com>", "DATA"]);
    const done = await d.data(`${rfc822({ From: "ceo@elsewhere.example", To: "someone@example.com", Subject: "x" })}.\r\n`);
    expect(done).toMatch(
      /^550 5\.7\.1 'Capture' may not send as ceo@elsewhere\.example; add it to the server's "Other allowed from addresses"/,
    );
    const missing = await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<someone@example.com>", "DATA"]);
    expect(missing[2]).toMatch(/^354/);
    expect(await d.data(`${rfc822({ To: "someone@example.com", Subject: "no from" })}.\r\n`)).toMatch(
      /^550 5\.6\.0 The message has no From header/,
    );
    d.close();
  });

  it("limits recipients per message (452) and messages over SIZE (552, at MAIL FROM or after DATA)", async () => {
    const d = await loggedIn();
    const replies = await d.pipeline([
      `MAIL FROM:<${FROM}>`,
      "RCPT TO:<a@example.com>",
      "RCPT TO:<b@example.com>",
      "RCPT TO:<c@example.com>",
      "RCPT TO:<d@example.com>",
      "RSET",
    ]);
    expect(replies.slice(1, 4).every((r) => r.startsWith("250"))).toBe(true);
    expect(replies[4]).toMatch(/^452 /);

    const max = 25 * 1024 * 1024;
    expect(await d.send(`MAIL FROM:<${FROM}> SIZE=${max + 1}`)).toMatch(/^552 /);
    // A client that does not declare the size is stopped at the end of DATA.
    await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<a@example.com>", "DATA"]);
    const line = `${"x".repeat(998)}\r\n`;
    const body = Buffer.from(line.repeat(Math.ceil((30 * 1024 * 1024) / line.length)));
    const done = await d.data(
      Buffer.concat([Buffer.from(rfc822({ From: FROM, To: "a@example.com", Subject: "big" }, "")), body, Buffer.from(".\r\n")]),
    );
    expect(done).toMatch(/^552 5\.3\.4 /);
    expect(await d.send("NOOP")).toMatch(/^250/);
    d.close();
  });

  it("keeps a message's bytes, adding only a missing Message-ID and Date and dropping Bcc lines", async () => {
    const d = await loggedIn();
    await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<to@example.com>", "RCPT TO:<hidden@example.com>", "DATA"]);
    const sent = rfc822({ From: FROM, To: "to@example.com", Bcc: "hidden@example.com", Subject: "Bcc" });
    const done = await d.data(`${sent}.\r\n`);
    const id = /queued as (\S+)/.exec(done)?.[1] as string;
    const stored = await h.t.mailroom.ctx.db
      .selectFrom("message_raw")
      .selectAll()
      .where("message_id", "=", id)
      .executeTakeFirstOrThrow();
    const mime = Buffer.from(stored.mime).toString("utf8");
    expect(mime).toMatch(/^Message-ID: <[^>]+@mailroom\.localhost>\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d \+0000\r\n/);
    expect(mime).not.toMatch(/^Bcc:/im);
    expect(mime.endsWith(sent.replace("Bcc: hidden@example.com\r\n", ""))).toBe(true);
    const row = await h.t.mailroom.messages.get(id);
    expect(row.to).toEqual([{ address: "to@example.com" }]);
    expect(row.bcc).toEqual([{ address: "hidden@example.com" }]);
    expect(`<${row.messageId}>`).toBe(/^Message-ID: (\S+)/.exec(mime)?.[1]);
    d.close();
  });

  it("accepts the same Message-ID from the same token once in 24 hours", async () => {
    const d = await loggedIn();
    const message = `${rfc822({ From: FROM, To: "a@example.com", Subject: "Once", "Message-ID": "<once-123@app.example>", Date: "Tue, 2 Dec 2025 10:00:00 +0000" })}.\r\n`;
    await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<a@example.com>", "DATA"]);
    const first = /queued as (\S+)/.exec(await d.data(message))?.[1];
    await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<a@example.com>", "DATA"]);
    const again = await d.data(message);
    expect(again).toMatch(new RegExp(`^250 2\\.6\\.0 Already accepted as ${first} `));
    const { total } = await h.t.mailroom.messages.list({ recipient: "a@example.com" });
    expect(total).toBe(1);
    d.close();
  });

  it("routes a token limited to one server there, and refuses a token whose servers exclude the default", async () => {
    const other = await h.t.mailroom.servers.create(
      { name: "Billing", driver: "capture", fromAddress: "billing@example.com" },
      systemActor,
    );
    const third = await h.t.mailroom.servers.create(
      { name: "Third", driver: "capture", fromAddress: "third@example.com" },
      systemActor,
    );
    const scoped = await h.token("billing-app", { serverIds: [other.id] });
    const d = await dialog(h.port);
    await d.send("EHLO billing");
    await d.send(`AUTH PLAIN ${plain("billing", scoped)}`);
    await d.pipeline(["MAIL FROM:<billing@example.com>", "RCPT TO:<a@example.com>", "DATA"]);
    const id = /queued as (\S+)/.exec(
      await d.data(`${rfc822({ From: "billing@example.com", To: "a@example.com", Subject: "Invoice" })}.\r\n`),
    )?.[1];
    expect((await h.t.mailroom.messages.get(id as string)).server.name).toBe("Billing");
    // The From must suit the routed server, not the default one.
    await d.pipeline(["MAIL FROM:<billing@example.com>", "RCPT TO:<a@example.com>", "DATA"]);
    expect(await d.data(`${rfc822({ From: FROM, To: "a@example.com", Subject: "x" })}.\r\n`)).toMatch(
      /^550 5\.7\.1 'Billing' may not send as/,
    );
    d.close();

    const two = await h.token("two-servers", { serverIds: [other.id, third.id] });
    const e = await dialog(h.port);
    await e.send("EHLO two");
    await e.send(`AUTH PLAIN ${plain("two", two)}`);
    expect(await e.send(`MAIL FROM:<${FROM}>`)).toMatch(
      /^550 5\.7\.1 This token may not send through the default server 'Capture'/,
    );
    e.close();
  });

  it("limits connections per address and closes idle ones", async () => {
    const limited = await startIntake(dialect, {
      MAILROOM_SMTP_MAX_CONNECTIONS_PER_IP: "2",
      MAILROOM_SMTP_IDLE_TIMEOUT_SECONDS: "1",
    });
    try {
      const a = await dialog(limited.port);
      const b = await dialog(limited.port);
      const c = await dialog(limited.port);
      expect(c.greeting).toMatch(/^421 4\.7\.0 Too many connections from your address \(at most 2\)/);
      await c.closed;
      a.close();
      await a.closed;
      // The idle timeout closes b (an event, not a sleep: the socket's close).
      await b.closed;
      const d = await dialog(limited.port);
      expect(d.greeting).toMatch(/^220 /);
      d.close();
    } finally {
      await limited.close();
    }
  });

  // SQLite's write lock has no PostgreSQL counterpart: this test exists on SQLite only (not a skip).
  if (dialect === "sqlite") {
    it("answers 451 4.3.0 while the database is locked, and accepts the same message once it is back", async () => {
      const locked = await startIntake("sqlite", { MAILROOM_SQLITE_BUSY_MS: "200" });
      try {
        const appToken = await locked.token();
        const d = await dialog(locked.port);
        await d.send("EHLO app.local");
        expect(await d.send(`AUTH PLAIN ${plain("app", appToken)}`)).toMatch(/^235/);
        const message = `${rfc822({ From: FROM, To: "a@example.com", Subject: "During an outage", "Message-ID": "<outage@app.example>" })}.\r\n`;
        const other = new SQLite(path.join(locked.t.mailroom.ctx.config.dataDir, "mailroom.db"));
        other.exec("BEGIN EXCLUSIVE");
        try {
          await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<a@example.com>", "DATA"]);
          expect(await d.data(message)).toMatch(
            /^451 4\.3\.0 Mailroom could not store the message \(the database is busy or unavailable\); try again later/,
          );
        } finally {
          other.exec("ROLLBACK");
          other.close();
        }
        expect((await locked.t.mailroom.messages.list({})).total).toBe(0);
        await d.pipeline([`MAIL FROM:<${FROM}>`, "RCPT TO:<a@example.com>", "DATA"]);
        expect(await d.data(message)).toMatch(/^250 2\.6\.0 Accepted: queued as /);
        expect((await locked.t.mailroom.messages.list({})).total).toBe(1);
        d.close();
      } finally {
        await locked.close();
      }
    });
  }
});
