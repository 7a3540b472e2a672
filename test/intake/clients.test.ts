/**
 * Real SMTP clients against the listener: nodemailer (as a Node.js app), Python's smtplib
 * and Debian's msmtp (as printers, cron and CI use it). Messages go through the queue to
 * the Capture server, or to the SMTP peer through an SMTP server, as an app's would.
 */
import { execFile } from "node:child_process";
import { promises as fs } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createTransport, type SendMailOptions } from "nodemailer";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { systemActor } from "../../src/core/audit.js";
import { listCaptured, readCaptured } from "../../src/drivers/capture/store.js";
import { waitFor } from "../helpers/wait.js";
import { type SmtpPeer, startSmtpPeer } from "../peers/smtp-peer.js";
import { type IntakeHarness, MSMTP, msmtpAvailable, SIGNED_INVITE, startIntake } from "./harness.js";

const FROM = "noreply@mailroom.localhost";

let h: IntakeHarness;
let token: string;
let dir: string;
let caFile: string;
let captureId: string;

beforeAll(async () => {
  h = await startIntake("sqlite", { MAILROOM_POLL_MS: "50" });
  token = await h.token("clients");
  captureId = (await h.t.mailroom.servers.getRow("Capture")).id;
  // The Capture server may send as the invite's sender too.
  await h.t.mailroom.servers.setSetting(captureId, "allowedFromAddresses", ["sender@example.com", "*@example.org"], systemActor);
  dir = await fs.mkdtemp(path.join(os.tmpdir(), "mailroom-clients-"));
  caFile = path.join(dir, "mailroom-smtp.pem");
  await fs.writeFile(caFile, h.ca);
  h.t.mailroom.worker.start();
});
afterAll(async () => {
  await h?.close();
  await fs.rm(dir, { recursive: true, force: true });
});

/** The Capture file of a sent message, once the worker has delivered it. */
async function captured(id: string): Promise<Buffer> {
  const sent = await waitFor(`message ${id} to be sent`, async () => {
    const m = await h.t.mailroom.messages.get(id);
    return m.status === "sent" ? m : null;
  });
  const stored = await readCaptured(h.t.mailroom.ctx.config.dataDir, sent.server.id, sent.providerMessageId as string);
  return Buffer.from(stored?.raw ?? "", "utf8");
}

const idOf = (reply: string | undefined) => /queued as (\S+)/.exec(reply ?? "")?.[1] as string;

describe("nodemailer", () => {
  const client = (secure: boolean, password = token, extra: Record<string, unknown> = {}) =>
    createTransport({
      host: "localhost",
      port: secure ? h.tlsPort : h.port,
      secure,
      requireTLS: !secure,
      tls: { ca: h.ca },
      auth: { user: "nodemailer-app", pass: password },
      name: "node-app.local",
      ...extra,
    });

  it("STARTTLS with AUTH PLAIN: 8-bit MIME arrives byte for byte, a DKIM-Signature and a calendar part intact", async () => {
    const mailer = client(false, token, { authMethod: "PLAIN" });
    const info = await mailer.sendMail({
      raw: SIGNED_INVITE,
      envelope: { from: "sender@example.com", to: ["rcpt@example.org", "hidden@example.org"] },
    } as SendMailOptions);
    mailer.close();
    const id = idOf(info.response);
    const row = await h.t.mailroom.messages.get(id);
    expect(row.source).toMatchObject({ kind: "smtp", username: "nodemailer-app", ehlo: "node-app.local", tls: true });
    expect(row.bcc).toEqual([{ address: "hidden@example.org" }]);
    expect((await captured(id)).equals(SIGNED_INVITE)).toBe(true);
  });

  it("implicit TLS with AUTH LOGIN; SMTPUTF8 addresses and UTF-8 headers", async () => {
    const mailer = client(true, token, { authMethod: "LOGIN" });
    const raw = Buffer.from(
      [
        "From: Zoë <sender@example.com>",
        "To: Jürgen <jürgen@example.org>",
        "Subject: Grüße ✉ 日本語",
        "Message-ID: <utf8-1@example.com>",
        "Date: Tue, 02 Dec 2025 10:00:00 +0000",
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: 8bit",
        "",
        "Hallo Jürgen ✓",
        "",
      ].join("\r\n"),
    );
    const info = await mailer.sendMail({
      raw,
      envelope: { from: "sender@example.com", to: ["jürgen@example.org"] },
    } as SendMailOptions);
    mailer.close();
    const id = idOf(info.response);
    const row = await h.t.mailroom.messages.get(id);
    expect(row.subject).toBe("Grüße ✉ 日本語");
    expect(row.to).toEqual([{ address: "jürgen@example.org", name: "Jürgen" }]);
    expect(row.source.tls).toBe(true);
    expect((await captured(id)).equals(raw)).toBe(true);
  });

  it("a wrong and a revoked token fail with 535", async () => {
    const wrong = client(false, "not-a-token");
    await expect(wrong.sendMail({ from: FROM, to: "a@example.org", text: "x" })).rejects.toMatchObject({
      code: "EAUTH",
      responseCode: 535,
    });
    wrong.close();
    const revoked = await h.token("soon-revoked");
    await h.t.mailroom.tokens.revoke(/^mrt_([0-9a-f]+)_/.exec(revoked)?.[1] as string, systemActor);
    const mailer = client(false, revoked);
    await expect(mailer.sendMail({ from: FROM, to: "a@example.org", text: "x" })).rejects.toMatchObject({ responseCode: 535 });
    mailer.close();
  });

  it("a 30 MB message is refused with 552 and nothing is stored", async () => {
    const before = (await h.t.mailroom.messages.list({})).total;
    const mailer = client(false);
    const big = Buffer.alloc(30 * 1024 * 1024, "a");
    await expect(
      mailer.sendMail({ from: FROM, to: "a@example.org", subject: "big", attachments: [{ filename: "big.bin", content: big }] }),
    ).rejects.toMatchObject({ responseCode: 552 });
    mailer.close();
    expect((await h.t.mailroom.messages.list({})).total).toBe(before);
  });

  describe("through an SMTP server", () => {
    let peer: SmtpPeer;
    let routed: string;
    beforeAll(async () => {
      peer = await startSmtpPeer({ security: "none" });
      const server = await h.t.mailroom.servers.create(
        {
          name: "Relay",
          driver: "smtp",
          fromAddress: "app@example.com",
          settings: { host: "127.0.0.1", port: peer.port, security: "none" },
        },
        systemActor,
      );
      routed = await h.token("relay-app", { serverIds: [server.id] });
    });
    afterAll(() => peer?.close());

    it("delivers Bcc to the bcc recipient and never writes it into the headers", async () => {
      const mailer = client(false, routed);
      const info = await mailer.sendMail({
        from: "App <app@example.com>",
        to: "to@example.org",
        cc: "cc@example.org",
        bcc: "secret@example.org",
        subject: "With a Bcc",
        text: "Hello.",
      });
      mailer.close();
      const [got] = await peer.waitForMessages(1);
      expect(got.envelope.to.sort()).toEqual(["cc@example.org", "secret@example.org", "to@example.org"]);
      expect(got.raw.toString()).not.toMatch(/secret@example\.org/);
      const row = await waitFor("the result to be recorded", async () => {
        const m = await h.t.mailroom.messages.get(idOf(info.response));
        return m.status === "sent" ? m : null;
      });
      expect(row).toMatchObject({ server: { name: "Relay" }, bcc: [{ address: "secret@example.org" }] });
      expect(got.messageId).toBe(`<${row.messageId}>`);
    });
  });
});

function run(file: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: Buffer } = {}) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const child = execFile(file, args, { env: options.env, timeout: 20_000 }, (error, stdout, stderr) =>
      resolve({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(options.input);
  });
}

describe("Python smtplib", () => {
  const script = path.resolve("test/intake/clients/smtplib_send.py");
  async function smtplib(mode: "starttls" | "tls", password: string, message: Buffer) {
    const file = path.join(dir, `python-${Date.now()}.eml`);
    await fs.writeFile(file, message);
    const env = {
      ...process.env,
      SMTP_PORT: String(mode === "tls" ? h.tlsPort : h.port),
      SMTP_MODE: mode,
      SMTP_CAFILE: caFile,
      SMTP_USER: "python-app",
      SMTP_PASSWORD: password,
      SMTP_FROM: "sender@example.com",
      SMTP_TO: "rcpt@example.org",
      SMTP_MESSAGE: file,
    };
    const out = await run("python3", [script], { env });
    expect(out.code, out.stderr).toBe(0);
    return JSON.parse(out.stdout) as { code: number; reply: string; features?: string[]; error?: string };
  }
  const message = Buffer.from(
    "From: sender@example.com\r\nTo: rcpt@example.org\r\nSubject: Python ✓\r\n\r\nFrom smtplib, 8-bit: Grüße\r\n",
  );

  it("sends over STARTTLS and over implicit TLS; the reply names the message", async () => {
    for (const mode of ["starttls", "tls"] as const) {
      const result = await smtplib(mode, token, message);
      expect(result).toMatchObject({ code: 250 });
      expect(result.features).toEqual(expect.arrayContaining(["auth", "pipelining", "8bitmime", "smtputf8", "size"]));
      const row = await h.t.mailroom.messages.get(idOf(result.reply));
      expect(row).toMatchObject({ subject: "Python ✓", source: { username: "python-app", ehlo: "python-app.local" } });
      // Only Message-ID and Date were added in front of what Python sent.
      expect((await captured(row.id)).subarray(-message.length).equals(message)).toBe(true);
    }
  });

  it("gets 535 5.7.8 for a wrong token", async () => {
    const result = await smtplib("starttls", "mrt_0000000000000000_wrongwrongwrongwrongwrongwrongwr", message);
    expect(result).toMatchObject({ error: "auth", code: 535 });
    expect(result.reply).toMatch(/^5\.7\.8 Authentication failed/);
  });
});

describe.runIf(msmtpAvailable())("Debian msmtp", () => {
  async function msmtp(tls: "starttls" | "tls", password: string) {
    const rc = path.join(dir, `msmtprc-${tls}-${password.length}`);
    const lines = [
      "account default",
      "host localhost",
      `port ${tls === "tls" ? h.tlsPort : h.port}`,
      "tls on",
      `tls_starttls ${tls === "starttls" ? "on" : "off"}`,
      // One trusts the certificate file, the other pins its fingerprint, as docs/smtp.md shows.
      tls === "starttls" ? `tls_trust_file ${caFile}` : `tls_fingerprint ${h.intake.certificate?.fingerprint}`,
      "auth plain",
      "user printer-2nd-floor",
      `password ${password}`,
      "domain printer.example",
      "from sender@example.com",
      "syslog off",
    ];
    // msmtp refuses a configuration holding a password that others can read.
    await fs.writeFile(rc, `${lines.join("\n")}\n`, { mode: 0o600 });
    const input = Buffer.from(`From: sender@example.com\nTo: rcpt@example.org\nSubject: Scan (${tls})\n\nScanned.\n`);
    return run(MSMTP, ["-C", rc, "rcpt@example.org"], { input });
  }

  it("sends over STARTTLS and over implicit TLS", async () => {
    for (const tls of ["starttls", "tls"] as const) {
      const out = await msmtp(tls, token);
      expect(out.code, out.stderr).toBe(0);
      const { items } = await h.t.mailroom.messages.list({ recipient: "rcpt@example.org" });
      const row = items.find((m) => m.subject === `Scan (${tls})`);
      expect(row?.source).toMatchObject({ username: "printer-2nd-floor", ehlo: "printer.example", tls: true });
    }
  });

  it("exits with the 535 text for a wrong token", async () => {
    const out = await msmtp("starttls", "mrt_0000000000000000_wrongwrongwrongwrongwrongwrongwr");
    expect(out.code).not.toBe(0);
    expect(out.stderr).toMatch(/535 5\.7\.8 Authentication failed/);
  });
});

describe("what the operator sees", () => {
  it("/metrics counts sessions, failed logins and messages", async () => {
    const text = (await h.t.request(null, { method: "GET", url: "/metrics" })).body;
    expect(text).toMatch(/mailroom_smtp_sessions_total\{listener="smtp"\} [1-9]/);
    expect(text).toMatch(/mailroom_smtp_sessions_total\{listener="smtps"\} [1-9]/);
    expect(text).toMatch(/mailroom_smtp_auth_failures_total\{reason="invalid_token"\} [1-9]/);
    expect(text).toMatch(/mailroom_smtp_messages_total\{result="accepted"\} [1-9]/);
    expect(text).toMatch(/mailroom_smtp_messages_total\{result="too_big"\} [1-9]/);
  });

  it("GET /api/smtp-submission gives an app's settings", async () => {
    const res = await h.t.request(h.t.admin, { method: "GET", url: "/api/smtp-submission" });
    expect(res.json()).toEqual({
      enabled: true,
      host: "localhost",
      port: h.port,
      tlsPort: h.tlsPort,
      maxSize: 25 * 1024 * 1024,
      maxRecipients: 100,
      fingerprint: h.intake.certificate?.fingerprint,
      selfSigned: true,
    });
    expect((await h.t.request(null, { method: "GET", url: "/api/smtp-submission" })).statusCode).toBe(401);
  });

  it("the delivery log's API shows where a message came from", async () => {
    const { items } = await h.t.mailroom.messages.list({ recipient: "rcpt@example.org" });
    const res = await h.t.request(h.t.admin, { method: "GET", url: `/api/messages/${items[0].id}` });
    expect(res.json().source).toMatchObject({ kind: "smtp", by: "token clients", clientIp: "127.0.0.1" });
    const list = await h.t.request(h.t.admin, { method: "GET", url: "/api/messages?limit=1" });
    expect(list.json().items[0].source.kind).toBe("smtp");
    // A message sent by API says so too.
    const sent = await h.t.request(h.t.admin, {
      method: "POST",
      url: "/api/messages",
      payload: { to: "x@example.org", subject: "api" },
    });
    const view = await h.t.request(h.t.admin, { method: "GET", url: `/api/messages/${sent.json().id}` });
    expect(view.json().source).toEqual({ kind: "api" });
    expect((await listCaptured(h.t.mailroom.ctx.config.dataDir, captureId)).total).toBeGreaterThan(0);
  });
});
